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
