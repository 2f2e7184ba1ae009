-- inventory-service's database: reservations, orders cancelled before they were created, the
-- inbox and the sent outbox.
INSERT INTO reservations (reservation_id, order_id, saga_id, status, items, created_at, updated_at)
SELECT pg_temp.id(i, 4), pg_temp.id(i, 1), pg_temp.id(i, 2),
       CASE WHEN pg_temp.cancelled(i) THEN 'RELEASED' ELSE 'COMMITTED' END,
       jsonb_build_array(jsonb_build_object('productId', pg_temp.product(i), 'quantity', 1)),
       pg_temp.at(i) + interval '5 ms', pg_temp.at(i) + interval '20 ms'
FROM generate_series(1, @ORDERS@) AS i;
INSERT INTO messaging_inbox (consumer, event_id, handled_at)
SELECT c, e, h FROM generate_series(1, @ORDERS@) AS i,
  LATERAL (VALUES ('inventory-service-order-created-v1', pg_temp.id(i, 16), pg_temp.at(i) + interval '5 ms'),
                  (CASE WHEN pg_temp.cancelled(i) THEN 'inventory-service-order-cancelled-v1'
                        ELSE 'inventory-service-order-confirmed-v1' END,
                   pg_temp.id(i, 20), pg_temp.at(i) + interval '18 ms')) AS x(c, e, h)
WHERE pg_temp.in_inbox(i);
INSERT INTO messaging_outbox (event_id, subject, body, created_at, sent_at)
SELECT s.* FROM generate_series(1, @ORDERS@) AS i,
  LATERAL (SELECT * FROM pg_temp.sent(i, 18, 'inventory.reserved', interval '5 ms') UNION ALL
           SELECT * FROM pg_temp.sent(i, 21, CASE WHEN pg_temp.cancelled(i) THEN 'inventory.released'
                                                  ELSE 'inventory.committed' END, interval '19 ms')) AS s
WHERE pg_temp.in_outbox(i);
ANALYZE reservations, messaging_inbox, messaging_outbox;
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
