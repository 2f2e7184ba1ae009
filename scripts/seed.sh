#!/usr/bin/env bash
# Fills the four service databases (already created and migrated, e.g. by scripts/up.sh) with
# ORDERS finished orders, as if the system had taken them evenly over the past DAYS days: each
# order with its saga and the saga's history (six events), its payment, its reservation, and the
# inbox rows of every event each service handled for it, for the orders within the inbox's
# retention (the streams' seven days plus one), and the sent outbox rows of the events each
# service wrote within the outbox's retention (one day). Nine in ten orders are confirmed, one in
# ten cancelled for a declined payment, as at the default payment success rate. Every other table
# in proportion: orders cancelled before they were created (one in 1,000, within their 8 days),
# dead letters (one order in 100,000: the services' records and the coordinator's index), the
# reconciliation's runs (one a minute, 30 days) and mismatches, the admin audit (50 calls a day).
# Used by scripts/bench.sh --stored to show that the cost of an order does not grow with the data
# kept. The SQL is in scripts/seed/.
#
#   scripts/seed.sh --orders 10000000 [--days 30] [--db-prefix PREFIX]
#
# Ids are UUIDv7-shaped and time-ordered like the services' own, so indexes grow as they do in
# use. Takes a few minutes per million orders on two cores; the databases are vacuumed and
# analysed after.
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

# The SQL of each database is in scripts/seed/: common.sql, the database's own file, participant.sql
# for payments and inventory, every.sql; with @ORDERS@, @DAYS@ and @NOW@ (seconds since 1970)
# replaced.
now=$(date +%s)
seed_sql() { # seed_sql DB
  local files=(scripts/seed/common.sql "scripts/seed/$1.sql")
  case "$1" in payments|inventory) files+=(scripts/seed/participant.sql) ;; esac
  sed -e "s/@ORDERS@/$orders/g" -e "s/@DAYS@/$days/g" -e "s/@NOW@/$now/g" \
    "${files[@]}" scripts/seed/every.sql
}

log "seeding $orders orders over $days days into ${prefix}orders, ${prefix}payments, ${prefix}inventory, ${prefix}sagas"
started=$(date +%s)
pids=()
for db in orders payments inventory sagas; do
  seed_sql "$db" | psql "$(pg_url "${prefix}$db")" -v ON_ERROR_STOP=1 -q -1 > /dev/null &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" = 0 ] || die "seeding failed"
log "seeded in $(( $(date +%s) - started )) s"
# A system that took these orders over 30 days has had its tables vacuumed as they grew: the
# visibility map set and every row's commit hint written. Freshly written, the first reads of
# each page write those hints and autovacuum works through every table at once, both while the
# orders that follow are measured. Vacuumed here, they start on data at rest.
started=$(date +%s)
pids=()
for db in orders payments inventory sagas; do
  psql "$(pg_url "${prefix}$db")" -v ON_ERROR_STOP=1 -qc "VACUUM (ANALYZE)" > /dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" = 0 ] || die "vacuuming failed"
log "vacuumed in $(( $(date +%s) - started )) s"
