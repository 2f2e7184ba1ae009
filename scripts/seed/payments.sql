-- payment-service's database: payments, orders cancelled before they were created, the inbox
-- and the sent outbox.
INSERT INTO payments (payment_id, order_id, saga_id, amount, currency, status, reason, created_at,
                      updated_at)
SELECT pg_temp.id(i, 3), pg_temp.id(i, 1), pg_temp.id(i, 2), 25.00, 'EUR',
       CASE WHEN pg_temp.cancelled(i) THEN 'FAILED' ELSE 'CONFIRMED' END,
       CASE WHEN pg_temp.cancelled(i) THEN 'CARD_DECLINED' END,
       pg_temp.at(i) + interval '5 ms', pg_temp.at(i) + interval '5 ms'
FROM generate_series(1, @ORDERS@) AS i;
INSERT INTO messaging_inbox (consumer, event_id, handled_at)
SELECT 'payment-service-order-created-v1', pg_temp.id(i, 16), pg_temp.at(i) + interval '5 ms'
FROM generate_series(1, @ORDERS@) AS i WHERE pg_temp.in_inbox(i);
INSERT INTO messaging_inbox (consumer, event_id, handled_at)
SELECT 'payment-service-order-cancelled-v1', pg_temp.id(i, 20), pg_temp.at(i) + interval '18 ms'
FROM generate_series(1, @ORDERS@) AS i WHERE pg_temp.in_inbox(i) AND pg_temp.cancelled(i);
INSERT INTO messaging_outbox (event_id, subject, body, created_at, sent_at)
SELECT s.* FROM generate_series(1, @ORDERS@) AS i,
  LATERAL (SELECT * FROM pg_temp.sent(i, 17, CASE WHEN pg_temp.cancelled(i) THEN 'payment.failed'
                                                  ELSE 'payment.confirmed' END, interval '5 ms')) AS s
WHERE pg_temp.in_outbox(i);
ANALYZE payments, messaging_inbox, messaging_outbox;
-- Orders cancelled before they were seen created: one in a thousand, kept for 8 days.
INSERT INTO cancelled_orders (order_id, cancelled_at)
SELECT pg_temp.id(i, 6), pg_temp.at(i) FROM generate_series(1, @ORDERS@) AS i
WHERE i % 1000 = 3 AND pg_temp.in_inbox(i);
ANALYZE cancelled_orders;
-- In every database: the admin calls of the period (50 a day), and messages dead-lettered by the
-- service's consumers (one order in 100,000), kept for the streams' 7 days plus one.
INSERT INTO admin_audit (at, action, target, detail, actor)
SELECT to_timestamp(@NOW@) - make_interval(days => @DAYS@) + (j::float8 / (50 * @DAYS@)) * make_interval(days => @DAYS@),
       'stock.set', 'seed-' || (j % 100), 'seeded', 'token:seed'
FROM generate_series(1, 50 * @DAYS@) AS j;
INSERT INTO messaging_dead_letters (consumer, stream, stream_sequence, reason, dead_at)
SELECT 'seed-consumer', 'ORDERS', i, 'RETRIES_EXHAUSTED', pg_temp.at(i)
FROM generate_series(1, @ORDERS@) AS i WHERE i % 100000 = 7 AND pg_temp.in_inbox(i);
ANALYZE admin_audit, messaging_dead_letters;
