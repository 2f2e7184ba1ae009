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
