#!/usr/bin/env bash
# ad hoc: PG profile at 20/s (DSO split) and the listing plan after a 512 loop
set -euo pipefail
cd /work/main
source scripts/lib/infra.sh
source scripts/lib/experiment.sh
work=/tmp/probe3; rm -rf $work; mkdir -p $work
experiment_setup 13304 14522
export RUN_DIR=$work/run DB_PREFIX="probe3_$$_" BENCH_WORK=$work
mkdir -p $RUN_DIR
trap 'experiment_drop_stack' EXIT
scripts/up.sh > $RUN_DIR/up.out 2>&1 || { cat $RUN_DIR/up.out; exit 1; }
sleep 3
export NATS_PID=$(cat $RUN_DIR/nats.pid)
python3 - <<'PY'
import sys; sys.path.insert(0,"scripts/lib")
import bench
r = bench.load_run("p20", ["--rate","20"], 30, False, "/tmp/probe3", bench.pg_profile("/tmp/probe3/pg20.txt", 15))
import time; time.sleep(2)
print(open("/tmp/probe3/pg20.txt").read()[:2500])
p = bench.per_order(r, 20.0); print("pg us/order", p["schedUs"]["postgresql"], "commits", p["commits"])
PY
