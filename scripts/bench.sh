#!/usr/bin/env bash
# The benchmark: the four services (release build), NATS and PostgreSQL all on this machine, on
# fresh databases. Measures (scripts/lib/bench.py has the details):
#   - CPU while idle;
#   - open loop at 20, 50, 200 (60 s: the latency run) and 1,000 orders/s: CPU per order of each
#     process group and the machine's busy share, latencies;
#   - the per-hop breakdown of the 200/s run, from the saga history's timestamps;
#   - closed loop with 64 and with 128 orders in flight, 60 s each, with the invariant check;
#   - per order, in each run: CPU (ticks and schedstat), context switches per process group,
#     PostgreSQL commits, statements (pg_stat_statements: the first benchmark on a server restarts
#     it once to load the library) and rows read per table, NATS messages in and out;
#   - each service's peak RSS; then, outside the measured runs, PostgreSQL's on- and off-CPU
#     profile at 20/s and a whole-machine profile at 64 in flight (perf is installed with apt-get
#     if missing).
# With --stored N, the databases are first filled with N finished orders (scripts/seed.sh) and only
# the 200/s run and the closed loop at 64 are made: the growth check. With --cluster, NATS is a
# three-node cluster on this machine (NATS_CLUSTER=3 scripts/up.sh, streams with three replicas)
# and only the closed loop at 64 is made: one replica against three. With --traced, every service
# exports its spans (OTEL_EXPORTER_OTLP_ENDPOINT) to a sink that discards them, and the latency
# run and the closed loop at 64 are made: the cost of exporting traces. With --no-admission,
# order-service takes every order (ORDER_ADMISSION_MAX_AGE_MS=0, ORDER_ADMISSION_MAX_WRITING=0)
# and only the closed loops past saturation (128, 256, 512 POSTs in flight) are made: what
# admission changes.
#
# Every run but --change-over measures the system once a change-over of majors is over: the
# producers publish only the newest major of each event (PUBLISH_MAJORS=2), as every consumer of
# this release reads it. With --change-over they publish both (PUBLISH_MAJORS=1,2, the default,
# docs/upgrading.md), every consumer receives each of those events twice and drops one copy, and
# the latency run and the closed loop at 64 are made: what a change-over costs while it lasts.
#
# Each run's figures go to docs/bench/<time>-<label>.json (label `empty`, `stored-N` or
# `cluster-r3`, `traced`, `no-admission`, `change-over`), and
# docs/benchmarks.md is written again from the newest two runs of each label, as ranges where they
# differ, up to the line `<!-- written by hand below -->` (what follows it is kept).
#
#   scripts/bench.sh [--stored N | --cluster | --traced | --no-admission | --change-over]
#                    [--short] [--report-only]
#     --short        a few seconds per run, results not used by the report (to try the script)
#     --report-only  write docs/benchmarks.md from the stored results, measure nothing
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh

stored=0 cluster="" traced="" no_admission="" change_over="" short="" results=docs/bench out=docs/benchmarks.md
while [ $# -gt 0 ]; do
  case "$1" in
    --stored) stored=$2; shift 2 ;;
    --cluster) cluster=1; shift ;;
    --traced) traced=1; shift ;;
    --no-admission) no_admission=1; shift ;;
    --change-over) change_over=1; shift ;;
    --short) short=--short; shift ;;
    --report-only) python3 scripts/lib/bench.py report --results "$results" --out "$out"; exit 0 ;;
    *) die "unknown argument $1 (see the top of scripts/bench.sh)" ;;
  esac
done
label=empty
[ "$stored" -gt 0 ] && label="stored-$stored"
[ -n "$cluster" ] && label="cluster-r3"
[ -n "$traced" ] && label="traced"
if [ -n "$no_admission" ]; then
  label="no-admission"
  export ORDER_ADMISSION_MAX_AGE_MS=0 ORDER_ADMISSION_MAX_WRITING=0
fi
export PUBLISH_MAJORS=2
if [ -n "$change_over" ]; then
  label="change-over"
  PUBLISH_MAJORS=1,2
fi
[ "$stored" -gt 0 ] && [ -n "$cluster" ] && die "--stored and --cluster are separate runs"

ensure_rust
ensure_postgres
# pg_stat_statements, for the statements per order. It must be loaded when the server starts: the
# first benchmark on a server restarts it once with the library added (the setting is kept).
pg_su() { as_root runuser -u postgres -- psql -p "$PG_PORT" -d postgres -Atqc "$1"; }
preload=$(pg_su 'SHOW shared_preload_libraries')
if [[ "$preload" != *pg_stat_statements* ]]; then
  cluster=$(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p {print $1" "$2; exit}')
  [ -n "$cluster" ] || die "no Debian cluster on port $PG_PORT: load pg_stat_statements by hand"
  log "PostgreSQL $cluster: adding pg_stat_statements to shared_preload_libraries, restarting"
  pg_su "ALTER SYSTEM SET shared_preload_libraries = '${preload:+$preload,}pg_stat_statements'"
  # shellcheck disable=SC2086
  as_root pg_ctlcluster $cluster restart
  wait_for 60 "PostgreSQL on port $PG_PORT" pg_ready
fi
pg_su "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
nats_bin=$(nats_server_bin)
command -v perf >/dev/null 2>&1 || apt_install linux-perf || true
work=$(mktemp -d)
log "building (release)"
cargo build --release --locked -q -p order-service -p payment-service -p inventory-service -p saga-coordinator -p loadgen

export PROFILE=release ADMIN_TOKEN=bench PAYMENT_SUCCESS_RATE=0.9 PAYMENT_SEED=1 INVENTORY_AUTO_PROVISION=0
export ORDER_PORT=16004 PAYMENT_PORT=16006 INVENTORY_PORT=16007 SAGA_PORT=16008 NATS_PORT=16222
export RUN_DIR="$work/run" DB_PREFIX="bench_$$_" BENCH_WORK="$work" NATS_BIN="$nats_bin"
export PG_APP_USER PG_APP_PASSWORD PG_PORT
mon_port=16223
mkdir -p "$RUN_DIR"
cleanup() {
  [ -n "${sink_pid:-}" ] && kill "$sink_pid" 2>/dev/null || true
  scripts/down.sh >/dev/null 2>&1 || true
  [ -n "${nats_pid:-}" ] && kill "$nats_pid" 2>/dev/null || true
  for db in orders payments inventory sagas; do
    psql "$(pg_url postgres)" -qc "DROP DATABASE IF EXISTS \"${DB_PREFIX}$db\"" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "$cluster" ]; then
  # up.sh starts the three nodes (client ports NATS_PORT..+2) and down.sh stops them.
  export NATS_CLUSTER=3 NATS_ROUTE_PORT=18222 NATS_MONITOR_PORT=20222
  export NATS_MONITOR_URLS="http://127.0.0.1:20222 http://127.0.0.1:20223 http://127.0.0.1:20224"
else
  export NATS_MONITOR_URLS="http://127.0.0.1:$mon_port"
  log "nats-server with monitoring on $mon_port"
  "$nats_bin" -a 127.0.0.1 -p "$NATS_PORT" -m "$mon_port" -js -sd "$work/nats" -l "$work/nats.log" >/dev/null 2>&1 &
  nats_pid=$!
  export NATS_PID=$nats_pid
  wait_for 30 "nats-server" grep -qs "Server is ready" "$work/nats.log"
fi

if [ -n "$traced" ]; then
  # An OTLP/HTTP receiver that reads every export and answers 200 (an empty
  # ExportTraceServiceResponse), so that the exporters do their whole work.
  python3 -c '
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", 16318), Sink).serve_forever()
' &
  sink_pid=$!
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:16318
  wait_for 10 "the OTLP sink" curl -s -o /dev/null -X POST --data '' http://127.0.0.1:16318/v1/traces
fi

log "starting the stack"
scripts/up.sh > "$work/up.out" 2>&1 || { cat "$work/up.out"; die "up.sh failed"; }
if [ -n "$cluster" ]; then
  # The load generator watches the events through the first node (core NATS spans the cluster).
  # (nats-server writes its pid file without a newline.)
  NATS_PID=$(for i in 1 2 3; do cat "$RUN_DIR/nats-$i.pid"; echo; done | paste -sd, -)
  export NATS_PID
fi
if [ "$stored" -gt 0 ]; then
  scripts/seed.sh --orders "$stored" --db-prefix "$DB_PREFIX"
  # What the seed wrote goes to disk now, not by the checkpoints during the measured runs.
  pg_su "CHECKPOINT" >/dev/null
  sync
  # The services' connections were opened on small tables; start them again on the filled ones.
  scripts/down.sh >/dev/null 2>&1 || true
  scripts/up.sh > "$work/up.out" 2>&1 || { cat "$work/up.out"; die "up.sh failed"; }
fi
sleep 3

python3 scripts/lib/bench.py run --label "$label" --results "$results" $short
if [ -z "$short" ]; then
  python3 scripts/lib/bench.py report --results "$results" --out "$out" || true
fi
