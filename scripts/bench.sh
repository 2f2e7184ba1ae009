#!/usr/bin/env bash
# The benchmark: the four services (release build), NATS and PostgreSQL all on this machine.
# Measures and writes docs/benchmarks.md: the machine; PostgreSQL's single-row insert rate by
# pgbench (the database's ceiling); CPU while idle; latency at 200 orders/s open loop; throughput
# at 1000 orders/s open loop for 60 s with the invariant check; peak RSS of each service;
# database commits and NATS messages per order.
#
#   scripts/bench.sh [--seconds 60] [--rate 1000] [--latency-rate 200] [--out docs/benchmarks.md]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh

seconds=60 rate=1000 latency_rate=200 out=docs/benchmarks.md
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --latency-rate) latency_rate=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) die "unknown argument $1 (see the top of scripts/bench.sh)" ;;
  esac
done
ensure_rust
ensure_postgres
nats_bin=$(nats_server_bin)
work=$(mktemp -d)
log "building (release)"
cargo build --release --locked -q -p order-service -p payment-service -p inventory-service -p saga-coordinator -p loadgen

export PROFILE=release ADMIN_TOKEN=bench PAYMENT_SUCCESS_RATE=0.9 PAYMENT_SEED=1 INVENTORY_AUTO_PROVISION=0
export ORDER_PORT=16004 PAYMENT_PORT=16006 INVENTORY_PORT=16007 SAGA_PORT=16008 NATS_PORT=16222
export RUN_DIR="$work/run" DB_PREFIX="bench_$$_"
mon_port=16223
mkdir -p "$RUN_DIR"
cleanup() {
  scripts/down.sh >/dev/null 2>&1 || true
  [ -n "${nats_pid:-}" ] && kill "$nats_pid" 2>/dev/null || true
  for db in orders payments inventory sagas; do
    psql "$(pg_url postgres)" -qc "DROP DATABASE IF EXISTS \"${DB_PREFIX}$db\"" >/dev/null 2>&1 || true
  done
  psql "$(pg_url postgres)" -qc "DROP DATABASE IF EXISTS bench_pgbench_$$" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

log "pgbench: single-row inserts"
pgbench_bin=$(ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -1)
psql "$(pg_url postgres)" -qc "CREATE DATABASE bench_pgbench_$$" >/dev/null
psql "$(pg_url "bench_pgbench_$$")" -qc "CREATE TABLE t (id bigserial PRIMARY KEY, v int NOT NULL)" >/dev/null
echo 'INSERT INTO t (v) VALUES (1);' > "$work/insert.sql"
pg_tps=$(PGPASSWORD="$PG_APP_PASSWORD" "$pgbench_bin" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_APP_USER" -n -c 8 -j 2 -T 15 \
  -f "$work/insert.sql" "bench_pgbench_$$" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)

log "nats-server with monitoring on $mon_port"
"$nats_bin" -a 127.0.0.1 -p "$NATS_PORT" -m "$mon_port" -js -sd "$work/nats" -l "$work/nats.log" >/dev/null 2>&1 &
nats_pid=$!
wait_for 30 "nats-server" grep -q "Server is ready" "$work/nats.log"

log "starting the stack"
scripts/up.sh > "$work/up.out" 2>&1 || { cat "$work/up.out"; die "up.sh failed"; }
pids=()
for svc in order-service payment-service inventory-service saga-coordinator; do pids+=("$(cat "$RUN_DIR/$svc.pid")"); done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
log "CPU while idle (10 s)"
sleep 3
declare -A idle_before
for p in "${pids[@]}"; do idle_before[$p]=$(cpu_ticks "$p"); done
sleep 10
idle_line=""
hz=$(getconf CLK_TCK)
for i in 0 1 2 3; do
  p=${pids[$i]}
  pct=$(awk -v a="${idle_before[$p]}" -v b="$(cpu_ticks "$p")" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz / 10 * 100 }')
  idle_line+="$pct "
done

commits() {
  psql "$(pg_url postgres)" -tAc "SELECT sum(xact_commit) FROM pg_stat_database WHERE datname LIKE '${DB_PREFIX}%'"
}
nats_msgs() {
  curl -fsS "http://127.0.0.1:$mon_port/varz" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["in_msgs"] + v["out_msgs"])'
}
load() { # load RATE SECONDS JSON
  target/release/saga-load --rate "$1" --seconds "$2" --products 100 --expected-rate 0.9 --json "$3" \
    --order-url "http://127.0.0.1:$ORDER_PORT" --payment-url "http://127.0.0.1:$PAYMENT_PORT" \
    --inventory-url "http://127.0.0.1:$INVENTORY_PORT" --saga-url "http://127.0.0.1:$SAGA_PORT" \
    --nats-url "nats://127.0.0.1:$NATS_PORT" --admin-token "$ADMIN_TOKEN"
}

log "latency: $latency_rate orders/s open loop for 60 s"
load "$latency_rate" 60 "$work/latency.json" > "$work/latency.txt" || true

log "throughput: $rate orders/s open loop for $seconds s"
c0=$(commits); m0=$(nats_msgs)
load "$rate" "$seconds" "$work/throughput.json" > "$work/throughput.txt" || true
c1=$(commits); m1=$(nats_msgs)
rss_line=""
for p in "${pids[@]}"; do
  rss_line+="$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$p/status") "
done

python3 - "$out" "$work" "$pg_tps" "$idle_line" "$rss_line" "$c0" "$c1" "$m0" "$m1" "$rate" "$seconds" "$latency_rate" <<'PY'
import json, platform, subprocess, sys
out, work, pg_tps, idle, rss, c0, c1, m0, m1, rate, seconds, lrate = sys.argv[1:]
lat = json.load(open(f"{work}/latency.json"))
thr = json.load(open(f"{work}/throughput.json"))
def sh(cmd):
    try: return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception: return "?"
names = ["order-service", "payment-service", "inventory-service", "saga-coordinator"]
idle, rss = idle.split(), rss.split()
orders = thr["orders"] or 1
pl, el = lat["postLatency"], lat["orderToEndLatency"]
tp, te = thr["postLatency"], thr["orderToEndLatency"]
def verdict(ok): return "met" if ok else "**not met**"
cores = sh("nproc")
cpu_model = sh("lscpu | sed -n 's/^Model name: *//p'")
mem_gib = sh("free -g | awk '/Mem:/ {print $2}'")
pg_version = sh("psql --version | awk '{print $3}'")
nats_version = sh("nats-server --version 2>/dev/null || /usr/sbin/nats-server --version")
lines = [
"# Benchmarks", "",
"`scripts/bench.sh` measured everything on this page in one run: the four services (release build), NATS and PostgreSQL on one machine.", "",
"## Machine", "",
f"- CPU: {cores} cores, {cpu_model}",
f"- memory: {mem_gib} GiB; kernel {platform.release()}",
f"- PostgreSQL: {pg_version} (default settings); nats-server: {nats_version}",
f"- PostgreSQL's ceiling, single-row inserts by pgbench (8 clients, 15 s, one INSERT per transaction): **{float(pg_tps or 0):.0f} inserts/s**", "",
"## Targets", "",
"| target | measured | |", "| --- | --- | --- |",
f"| ≥ 1,000 orders/s for 60 s, first POST to last saga end, all terminal, invariants holding | {thr['throughputOrdersPerSecond']:.0f} orders/s over {thr['firstPostToLastEndSeconds']:.1f} s ({thr['orders']} orders, {thr['unfinished']} unfinished, invariants: {thr['invariants']}) | {verdict(thr['throughputOrdersPerSecond'] >= 1000 and thr['unfinished'] == 0 and thr['invariants'] == 'hold')} |",
f"| POST /orders p99 ≤ 15 ms at {lrate}/s | {pl['p99Ms']:.1f} ms | {verdict(pl['p99Ms'] <= 15)} |",
f"| order-to-end p50 ≤ 25 ms at {lrate}/s | {el['p50Ms']:.1f} ms | {verdict(el['p50Ms'] <= 25)} |",
f"| order-to-end p99 ≤ 100 ms at {lrate}/s | {el['p99Ms']:.1f} ms | {verdict(el['p99Ms'] <= 100)} |",
f"| peak RSS ≤ 64 MiB per service | " + ", ".join(f"{n} {r} MiB" for n, r in zip(names, rss)) + f" | {verdict(all(float(r) <= 64 for r in rss))} |",
f"| no CPU while idle | " + ", ".join(f"{n} {c}%" for n, c in zip(names, idle)) + " of one core over 10 s |  |", "",
f"## Latency run: {lrate} orders/s open loop, 60 s", "",
f"- orders: {lat['orders']}, throughput {lat['throughputOrdersPerSecond']:.0f}/s, outcomes {json.dumps(lat['outcomes'])}, invariants: {lat['invariants']}",
f"- POST /orders: p50 {pl['p50Ms']:.1f} ms, p90 {pl['p90Ms']:.1f} ms, p99 {pl['p99Ms']:.1f} ms, max {pl['maxMs']:.1f} ms",
f"- order to end (order.confirmed or order.cancelled seen on NATS): p50 {el['p50Ms']:.1f} ms, p90 {el['p90Ms']:.1f} ms, p99 {el['p99Ms']:.1f} ms, max {el['maxMs']:.1f} ms", "",
f"## Throughput run: {rate} orders/s open loop, {seconds} s", "",
f"- orders: {thr['orders']} sent in {thr['sendingSeconds']:.1f} s; first POST to last end {thr['firstPostToLastEndSeconds']:.1f} s: **{thr['throughputOrdersPerSecond']:.0f} orders/s**; POST failures {thr['postFailures']}; unfinished {thr['unfinished']}",
f"- POST /orders: p50 {tp['p50Ms']:.1f} ms, p99 {tp['p99Ms']:.1f} ms; order to end: p50 {te['p50Ms']:.1f} ms, p99 {te['p99Ms']:.1f} ms, max {te['maxMs']:.1f} ms",
f"- outcomes {json.dumps(thr['outcomes'])}; payment share {thr['payment']['share']:.4f} (95% interval {thr['payment']['interval95'][0]:.4f} to {thr['payment']['interval95'][1]:.4f}, configured 0.9); invariants: {thr['invariants']}",
f"- database commits per order: {(int(c1) - int(c0)) / orders:.1f} (all four databases, pg_stat_database.xact_commit)",
f"- NATS messages per order: {(int(m1) - int(m0)) / orders:.1f} (in plus out, nats-server /varz)", "",
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
