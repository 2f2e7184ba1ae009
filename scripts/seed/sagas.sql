-- saga-coordinator's database: sagas and their history, the counts, the dead-letter index, the
-- reconciliation's runs, the inbox and the sent outbox.
INSERT INTO sagas (saga_id, order_id, status, reason, payment_status, payment_id, inventory_status,
                   reservation_id, order_cancelled, deadline, compensating_since, created_at,
                   updated_at, deadline_passed, ended_at)
SELECT pg_temp.id(i, 2), pg_temp.id(i, 1),
       CASE WHEN pg_temp.cancelled(i) THEN 'COMPENSATED' ELSE 'COMPLETED' END,
       CASE WHEN pg_temp.cancelled(i) THEN 'PAYMENT_FAILED' END,
       CASE WHEN pg_temp.cancelled(i) THEN 'FAILED' ELSE 'CONFIRMED' END,
       CASE WHEN NOT pg_temp.cancelled(i) THEN pg_temp.id(i, 3) END,
       CASE WHEN pg_temp.cancelled(i) THEN 'RELEASED' ELSE 'COMMITTED' END, pg_temp.id(i, 4),
       CASE WHEN pg_temp.cancelled(i) THEN 'PAYMENT_FAILED' END,
       pg_temp.at(i) + interval '30 s', NULL, pg_temp.at(i), pg_temp.at(i) + interval '20 ms', false,
       pg_temp.at(i) + interval '20 ms'
FROM generate_series(1, @ORDERS@) AS i;
INSERT INTO saga_history (saga_id, event_id, event_type, occurred_at, received_at)
SELECT pg_temp.id(i, 2), pg_temp.id(i, k), t, pg_temp.at(i) + make_interval(secs => k - 16) / 250,
       pg_temp.at(i) + make_interval(secs => k - 16) / 250 + interval '1 ms'
FROM generate_series(1, @ORDERS@) AS i,
  LATERAL (VALUES (16, 'order.created'),
                  (17, CASE WHEN pg_temp.cancelled(i) THEN 'payment.failed' ELSE 'payment.confirmed' END),
                  (18, 'inventory.reserved'),
                  (19, CASE WHEN pg_temp.cancelled(i) THEN 'saga.aborted' ELSE 'saga.completed' END),
                  (20, CASE WHEN pg_temp.cancelled(i) THEN 'order.cancelled' ELSE 'order.confirmed' END),
                  (21, CASE WHEN pg_temp.cancelled(i) THEN 'inventory.released' ELSE 'inventory.committed' END))
          AS x(k, t);
INSERT INTO messaging_inbox (consumer, event_id, handled_at)
SELECT 'saga-coordinator-' || replace(t, '.', '-') || '-v1', pg_temp.id(i, k),
       pg_temp.at(i) + make_interval(secs => k - 16) / 250 + interval '1 ms'
FROM generate_series(1, @ORDERS@) AS i,
  LATERAL (VALUES (16, 'order.created'),
                  (17, CASE WHEN pg_temp.cancelled(i) THEN 'payment.failed' ELSE 'payment.confirmed' END),
                  (18, 'inventory.reserved'),
                  (20, CASE WHEN pg_temp.cancelled(i) THEN 'order.cancelled' ELSE 'order.confirmed' END),
                  (21, CASE WHEN pg_temp.cancelled(i) THEN 'inventory.released' ELSE 'inventory.committed' END))
          AS x(k, t)
WHERE pg_temp.in_inbox(i);
INSERT INTO saga_count_deltas (status, reason, d)
SELECT 'COMPLETED', '', @ORDERS@ - @ORDERS@ / 10 UNION ALL SELECT 'COMPENSATED', 'PAYMENT_FAILED', @ORDERS@ / 10;
INSERT INTO messaging_outbox (event_id, subject, body, created_at, sent_at)
SELECT s.* FROM generate_series(1, @ORDERS@) AS i,
  LATERAL (SELECT * FROM pg_temp.sent(i, 19, CASE WHEN pg_temp.cancelled(i) THEN 'saga.aborted'
                                                  ELSE 'saga.completed' END, interval '12 ms')) AS s
WHERE pg_temp.in_outbox(i);
ANALYZE sagas, saga_history, messaging_inbox, messaging_outbox, saga_count_deltas;
-- The dead-letter index: one order in 100,000 dead-lettered by its three consumers of
-- order.created; nine in ten replayed or discarded since.
INSERT INTO dead_letters (id, consumer, subject, reason, detail, delivered, dead_lettered_at,
                          event_id, event_type, payload, headers, status, status_at, status_by)
SELECT row_number() OVER (ORDER BY i, c), c || '-order-created-v1', 'order.created.v1',
       'RETRIES_EXHAUSTED', '8 attempts', 8, pg_temp.at(i), pg_temp.id(i, 16), 'order.created',
       convert_to(repeat('x', 500), 'UTF8'), '{}'::jsonb,
       CASE WHEN i % 10 = 0 THEN 'DEAD' ELSE 'REPLAYED' END,
       CASE WHEN i % 10 <> 0 THEN pg_temp.at(i) + interval '1 hour' END,
       CASE WHEN i % 10 <> 0 THEN 'token:seed' END
FROM generate_series(1, @ORDERS@) AS i,
  unnest(ARRAY['payment-service', 'inventory-service', 'saga-coordinator']) AS c
WHERE i % 100000 = 5;
-- The reconciliation: a run a minute (its default), kept 30 days; a mismatch for one order in
-- 100,000.
INSERT INTO reconcile_runs (trigger, since, started_at, finished_at, checked)
SELECT 'SCHEDULE', to_timestamp(@NOW@) - make_interval(mins => m + 61),
       to_timestamp(@NOW@) - make_interval(mins => m),
       to_timestamp(@NOW@) - make_interval(mins => m) + interval '40 ms', @ORDERS@ / (@DAYS@ * 1440)
FROM generate_series(1, least(@DAYS@, 30) * 1440) AS m;
INSERT INTO reconcile_mismatches (run_id, kind, order_id, saga_id, detail, action)
SELECT (SELECT min(id) FROM reconcile_runs) + (i % (least(@DAYS@, 30) * 1440)), 'ORDER_WITHOUT_SAGA',
       pg_temp.id(i, 1), pg_temp.id(i, 2), 'seeded', 'order.created re-sent'
FROM generate_series(1, @ORDERS@) AS i WHERE i % 100000 = 9;
ANALYZE dead_letters, reconcile_runs, reconcile_mismatches;
