#!/usr/bin/env bash
# Fills the four service databases (already created and migrated, e.g. by scripts/up.sh) with
# ORDERS finished orders, as if the system had taken them evenly over the past DAYS days: each
# order with its saga and the saga's history (six events), its payment, its reservation, and the
# inbox rows of every event each service handled for it, for the orders within the inbox's
# retention (the streams' seven days plus one), and the sent outbox rows of the events each
# service wrote within the outbox's retention (one day). Nine in ten orders are confirmed, one in
# ten cancelled for a declined payment, as at the default payment success rate. Used by scripts/bench.sh --stored to show that the cost
# of an order does not grow with the data kept.
#
#   scripts/seed.sh --orders 10000000 [--days 30] [--db-prefix PREFIX]
#
# Ids are UUIDv7-shaped and time-ordered like the services' own, so indexes grow as they do in
# use. Takes a few minutes per million orders on two cores; the databases are analysed after.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh

orders=0 days=30 prefix="${DB_PREFIX:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --db-prefix) prefix=$2; shift 2 ;;
    *) die "unknown argument $1 (see the top of scripts/seed.sh)" ;;
  esac
done
[ "$orders" -gt 0 ] || die "--orders N is required"

# The parts each database's statements share: i is the order's number (1..N), at(i) its time
# (the same in every database: ids are made from it).
now=$(date +%s)
common="
CREATE OR REPLACE FUNCTION pg_temp.at(i bigint) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS
  \$\$ SELECT to_timestamp($now) - make_interval(days => $days)
              + (i::float8 / $orders) * make_interval(days => $days) \$\$;
-- A UUIDv7-shaped id: the time's milliseconds, then what (k) and which order (i).
CREATE OR REPLACE FUNCTION pg_temp.id(i bigint, k int) RETURNS uuid LANGUAGE sql AS
  \$\$ SELECT (lpad(to_hex((extract(epoch FROM pg_temp.at(i)) * 1000)::bigint), 12, '0') || '7'
              || lpad(to_hex(k), 3, '0') || '8' || lpad(to_hex(i), 15, '0'))::uuid \$\$;
CREATE OR REPLACE FUNCTION pg_temp.cancelled(i bigint) RETURNS boolean LANGUAGE sql AS
  \$\$ SELECT i % 10 = 0 \$\$;
CREATE OR REPLACE FUNCTION pg_temp.product(i bigint) RETURNS text LANGUAGE sql AS
  \$\$ SELECT 'seed-' || (i % 100) \$\$;
CREATE OR REPLACE FUNCTION pg_temp.in_inbox(i bigint) RETURNS boolean LANGUAGE sql AS
  \$\$ SELECT pg_temp.at(i) > to_timestamp($now) - interval '8 days' \$\$;
CREATE OR REPLACE FUNCTION pg_temp.in_outbox(i bigint) RETURNS boolean LANGUAGE sql AS
  \$\$ SELECT pg_temp.at(i) > to_timestamp($now) - interval '1 day' \$\$;
-- A sent outbox row of event k of order i, of type t, written d after the order (bodies are
-- envelope-sized; they are never published again by the benchmark).
CREATE OR REPLACE FUNCTION pg_temp.sent(i bigint, k int, t text, d interval)
  RETURNS TABLE (event_id uuid, subject text, body bytea, created_at timestamptz, sent_at timestamptz)
  LANGUAGE sql AS
  \$\$ SELECT pg_temp.id(i, k), t || '.v1',
              convert_to(jsonb_build_object('eventId', pg_temp.id(i, k), 'eventType', t,
                                            'version', 1, 'payload', repeat('x', 480))::text, 'UTF8'),
              pg_temp.at(i) + d, pg_temp.at(i) + d + interval '2 ms' \$\$;
SET synchronous_commit = off;
"
# Event ids, one per kind of event of an order: k = 16 + position below.
#   order.created 16, payment.confirmed|failed 17, inventory.reserved 18,
#   saga.completed|aborted 19, order.confirmed|cancelled 20, inventory.committed|released 21

orders_sql="$common
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
FROM generate_series(1, $orders) AS i;
INSERT INTO messaging_inbox (consumer, event_id, handled_at)
SELECT CASE WHEN pg_temp.cancelled(i) THEN 'order-service-saga-aborted-v1'
            ELSE 'order-service-saga-completed-v1' END,
       pg_temp.id(i, 19), pg_temp.at(i) + interval '15 ms'
FROM generate_series(1, $orders) AS i WHERE pg_temp.in_inbox(i);
INSERT INTO messaging_outbox (event_id, subject, body, created_at, sent_at)
SELECT s.* FROM generate_series(1, $orders) AS i,
  LATERAL (SELECT * FROM pg_temp.sent(i, 16, 'order.created', interval '0 ms') UNION ALL
           SELECT * FROM pg_temp.sent(i, 20, CASE WHEN pg_temp.cancelled(i) THEN 'order.cancelled'
                                                  ELSE 'order.confirmed' END, interval '16 ms')) AS s
WHERE pg_temp.in_outbox(i);
ANALYZE orders, messaging_inbox, messaging_outbox;
"

payments_sql="$common
INSERT INTO payments (payment_id, order_id, saga_id, amount, currency, status, reason, created_at,
                      updated_at)
SELECT pg_temp.id(i, 3), pg_temp.id(i, 1), pg_temp.id(i, 2), 25.00, 'EUR',
       CASE WHEN pg_temp.cancelled(i) THEN 'FAILED' ELSE 'CONFIRMED' END,
       CASE WHEN pg_temp.cancelled(i) THEN 'CARD_DECLINED' END,
       pg_temp.at(i) + interval '5 ms', pg_temp.at(i) + interval '5 ms'
FROM generate_series(1, $orders) AS i;
INSERT INTO messaging_inbox (consumer, event_id, handled_at)
SELECT 'payment-service-order-created-v1', pg_temp.id(i, 16), pg_temp.at(i) + interval '5 ms'
FROM generate_series(1, $orders) AS i WHERE pg_temp.in_inbox(i);
INSERT INTO messaging_inbox (consumer, event_id, handled_at)
SELECT 'payment-service-order-cancelled-v1', pg_temp.id(i, 20), pg_temp.at(i) + interval '18 ms'
FROM generate_series(1, $orders) AS i WHERE pg_temp.in_inbox(i) AND pg_temp.cancelled(i);
INSERT INTO messaging_outbox (event_id, subject, body, created_at, sent_at)
SELECT s.* FROM generate_series(1, $orders) AS i,
  LATERAL (SELECT * FROM pg_temp.sent(i, 17, CASE WHEN pg_temp.cancelled(i) THEN 'payment.failed'
                                                  ELSE 'payment.confirmed' END, interval '5 ms')) AS s
WHERE pg_temp.in_outbox(i);
ANALYZE payments, messaging_inbox, messaging_outbox;
"

inventory_sql="$common
INSERT INTO reservations (reservation_id, order_id, saga_id, status, items, created_at, updated_at)
SELECT pg_temp.id(i, 4), pg_temp.id(i, 1), pg_temp.id(i, 2),
       CASE WHEN pg_temp.cancelled(i) THEN 'RELEASED' ELSE 'COMMITTED' END,
       jsonb_build_array(jsonb_build_object('productId', pg_temp.product(i), 'quantity', 1)),
       pg_temp.at(i) + interval '5 ms', pg_temp.at(i) + interval '20 ms'
FROM generate_series(1, $orders) AS i;
INSERT INTO messaging_inbox (consumer, event_id, handled_at)
SELECT c, e, h FROM generate_series(1, $orders) AS i,
  LATERAL (VALUES ('inventory-service-order-created-v1', pg_temp.id(i, 16), pg_temp.at(i) + interval '5 ms'),
                  (CASE WHEN pg_temp.cancelled(i) THEN 'inventory-service-order-cancelled-v1'
                        ELSE 'inventory-service-order-confirmed-v1' END,
                   pg_temp.id(i, 20), pg_temp.at(i) + interval '18 ms')) AS x(c, e, h)
WHERE pg_temp.in_inbox(i);
INSERT INTO messaging_outbox (event_id, subject, body, created_at, sent_at)
SELECT s.* FROM generate_series(1, $orders) AS i,
  LATERAL (SELECT * FROM pg_temp.sent(i, 18, 'inventory.reserved', interval '5 ms') UNION ALL
           SELECT * FROM pg_temp.sent(i, 21, CASE WHEN pg_temp.cancelled(i) THEN 'inventory.released'
                                                  ELSE 'inventory.committed' END, interval '19 ms')) AS s
WHERE pg_temp.in_outbox(i);
ANALYZE reservations, messaging_inbox, messaging_outbox;
"

sagas_sql="$common
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
FROM generate_series(1, $orders) AS i;
INSERT INTO saga_history (saga_id, event_id, event_type, occurred_at, received_at)
SELECT pg_temp.id(i, 2), pg_temp.id(i, k), t, pg_temp.at(i) + make_interval(secs => k - 16) / 250,
       pg_temp.at(i) + make_interval(secs => k - 16) / 250 + interval '1 ms'
FROM generate_series(1, $orders) AS i,
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
FROM generate_series(1, $orders) AS i,
  LATERAL (VALUES (16, 'order.created'),
                  (17, CASE WHEN pg_temp.cancelled(i) THEN 'payment.failed' ELSE 'payment.confirmed' END),
                  (18, 'inventory.reserved'),
                  (20, CASE WHEN pg_temp.cancelled(i) THEN 'order.cancelled' ELSE 'order.confirmed' END),
                  (21, CASE WHEN pg_temp.cancelled(i) THEN 'inventory.released' ELSE 'inventory.committed' END))
          AS x(k, t)
WHERE pg_temp.in_inbox(i);
INSERT INTO saga_count_deltas (status, reason, d)
SELECT 'COMPLETED', '', $orders - $orders / 10 UNION ALL SELECT 'COMPENSATED', 'PAYMENT_FAILED', $orders / 10;
INSERT INTO messaging_outbox (event_id, subject, body, created_at, sent_at)
SELECT s.* FROM generate_series(1, $orders) AS i,
  LATERAL (SELECT * FROM pg_temp.sent(i, 19, CASE WHEN pg_temp.cancelled(i) THEN 'saga.aborted'
                                                  ELSE 'saga.completed' END, interval '12 ms')) AS s
WHERE pg_temp.in_outbox(i);
ANALYZE sagas, saga_history, messaging_inbox, messaging_outbox, saga_count_deltas;
"

log "seeding $orders orders over $days days into ${prefix}orders, ${prefix}payments, ${prefix}inventory, ${prefix}sagas"
started=$(date +%s)
pids=()
for pair in "orders:$orders_sql" "payments:$payments_sql" "inventory:$inventory_sql" "sagas:$sagas_sql"; do
  db=${pair%%:*}
  sql=${pair#*:}
  psql "$(pg_url "${prefix}$db")" -v ON_ERROR_STOP=1 -q -c "$sql" > /dev/null &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" = 0 ] || die "seeding failed"
log "seeded in $(( $(date +%s) - started )) s"
