#!/usr/bin/env bash
set -euo pipefail
cd /work/main
source scripts/lib/infra.sh
source scripts/lib/experiment.sh
work=/tmp/probe2; rm -rf $work; mkdir -p $work
experiment_setup 13304 14522
export RUN_DIR=$work/run DB_PREFIX="probe2_$$_" BENCH_WORK=$work
mkdir -p $RUN_DIR
trap 'experiment_drop_stack' EXIT
scripts/up.sh > $RUN_DIR/up.out 2>&1 || { cat $RUN_DIR/up.out; exit 1; }
sleep 3
url=$(pg_url ${DB_PREFIX}orders)
experiment_load $work l64 --concurrency 64 --seconds 60 &
lp=$!
wait $lp
experiment_load $work l512 --concurrency 512 --seconds 90 &
lp=$!
for i in $(seq 1 20); do
  sleep 4
  echo "=== sample $i $(date +%T)"
  psql "$url" -Atc "SELECT n_live_tup, n_mod_since_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE relname='orders'"
  psql "$url" -Atc "SET plan_cache_mode = force_custom_plan" -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) SELECT order_id FROM orders WHERE true AND status = 'CANCELLED' AND updated_at > now() - interval '65 s' AND updated_at < now() - interval '5 s' ORDER BY order_id DESC LIMIT 101" | grep -E "Scan|Execution|Sort|Bitmap|rows=" | head -8
  kill -0 $lp 2>/dev/null || break
done
wait $lp || true
psql "$url" -Atc "SELECT calls, round(total_exec_time) FROM pg_stat_statements WHERE query LIKE 'SELECT order_id%updated_at >%'" 2>&1 | head
