-- order-service's database: orders, the inbox of the saga's outcomes, the sent outbox.
INSERT INTO orders (order_id, saga_id, customer_id, items, total_amount, currency, status,
                    cancellation_reason, payment_id, reservation_id, idempotency_key, request,
                    created_at, updated_at)
SELECT pg_temp.id(i, 1), pg_temp.id(i, 2), 'seed-' || (i % 10000),
       jsonb_build_array(jsonb_build_object('productId', pg_temp.product(i), 'quantity', 1,
                                            'unitPrice', 25.00, 'totalPrice', 25.00)),
       25.00, 'EUR',
       CASE WHEN pg_temp.cancelled(i) THEN 'CANCELLED' ELSE 'CONFIRMED' END,
       CASE WHEN pg_temp.cancelled(i) THEN 'PAYMENT_FAILED' END,
       CASE WHEN NOT pg_temp.cancelled(i) THEN pg_temp.id(i, 3) END, pg_temp.id(i, 4),
       pg_temp.id(i, 5)::text,
       jsonb_build_object('customerId', 'seed-' || (i % 10000), 'currency', 'EUR', 'totalAmount', 25.00,
                          'items', jsonb_build_array(jsonb_build_object('productId', pg_temp.product(i),
                                   'quantity', 1, 'unitPrice', 25.00, 'totalPrice', 25.00))),
       pg_temp.at(i), pg_temp.at(i) + interval '20 ms'
FROM generate_series(1, @ORDERS@) AS i;
INSERT INTO messaging_inbox (consumer, event_id, handled_at)
SELECT CASE WHEN pg_temp.cancelled(i) THEN 'order-service-saga-aborted-v1'
            ELSE 'order-service-saga-completed-v1' END,
       pg_temp.id(i, 19), pg_temp.at(i) + interval '15 ms'
FROM generate_series(1, @ORDERS@) AS i WHERE pg_temp.in_inbox(i);
INSERT INTO messaging_outbox (event_id, subject, body, created_at, sent_at)
SELECT s.* FROM generate_series(1, @ORDERS@) AS i,
  LATERAL (SELECT * FROM pg_temp.sent(i, 16, 'order.created', interval '0 ms') UNION ALL
           SELECT * FROM pg_temp.sent(i, 20, CASE WHEN pg_temp.cancelled(i) THEN 'order.cancelled'
                                                  ELSE 'order.confirmed' END, interval '16 ms')) AS s
WHERE pg_temp.in_outbox(i);
ANALYZE orders, messaging_inbox, messaging_outbox;
