#!/usr/bin/env bash
# The benchmark: the four services (release build), NATS and PostgreSQL all on this machine.
# Measures and writes docs/benchmarks.md: the machine; PostgreSQL's single-row insert rate by
# pgbench (the database's ceiling); CPU while idle; latency at 200 orders/s open loop; throughput
# at 1100 orders/s open loop for 60 s with the invariant check (open loop at exactly 1000/s cannot
# show 1000/s from first POST to last end, since the last order takes time to end); a stretch run
# at 2200/s; peak RSS of each service; database commits, NATS messages and CPU per order by
# process; and a perf profile of a shorter run (perf is installed with apt-get if missing).
#
# docs/benchmarks.md is written up to the line `<!-- written by hand below -->`; what follows that
# line (the reading of the figures) is kept.
#
#   scripts/bench.sh [--seconds 60] [--rate 1100] [--stretch-rate 2200 (0: none)]
#                    [--latency-rate 200] [--latency-seconds 60] [--out docs/benchmarks.md]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh

seconds=60 rate=1100 stretch_rate=2200 latency_rate=200 latency_seconds=60 out=docs/benchmarks.md
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --stretch-rate) stretch_rate=$2; shift 2 ;;
    --latency-rate) latency_rate=$2; shift 2 ;;
    --latency-seconds) latency_seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) die "unknown argument $1 (see the top of scripts/bench.sh)" ;;
  esac
done
ensure_rust
ensure_postgres
nats_bin=$(nats_server_bin)
command -v perf >/dev/null 2>&1 || apt_install linux-perf || true
work=$(mktemp -d)
log "building (release)"
cargo build --release --locked -q -p order-service -p payment-service -p inventory-service -p saga-coordinator -p loadgen

export PROFILE=release ADMIN_TOKEN=bench PAYMENT_SUCCESS_RATE=0.9 PAYMENT_SEED=1 INVENTORY_AUTO_PROVISION=0
export ORDER_PORT=16004 PAYMENT_PORT=16006 INVENTORY_PORT=16007 SAGA_PORT=16008 NATS_PORT=16222
export RUN_DIR="$work/run" DB_PREFIX="bench_$$_"
mon_port=16223
mkdir -p "$RUN_DIR"
cleanup() {
  for p in "${throughput_load:-}" "${profile_load:-}"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
  done
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

log "latency: $latency_rate orders/s open loop for $latency_seconds s"
load "$latency_rate" "$latency_seconds" "$work/latency.json" > "$work/latency.txt" || true

# CPU time (clock ticks) of each process group: the four services, nats-server, PostgreSQL (all
# its processes). The load generator starts and ends within the run, so it is not counted here;
# the profile shows its share.
cpu_by_group() {
  python3 - "$nats_pid" "${pids[@]}" <<'PY'
import json, os, sys
nats, svc = sys.argv[1], sys.argv[2:]
names = ["order-service", "payment-service", "inventory-service", "saga-coordinator"]
groups = {}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    if pid in svc:
        g = names[svc.index(pid)]
    elif pid == nats:
        g = "nats-server"
    elif comm == "postgres":
        g = "postgresql"
    else:
        continue
    groups[g] = groups.get(g, 0) + ticks
print(json.dumps(groups))
PY
}

log "throughput: $rate orders/s open loop for $seconds s"
# Commits, NATS messages and CPU are counted over a window while orders are being sent at the set
# rate (from 5 s after the start to 5 s before the end), not over the whole run: the load
# generator's final invariant check reads every order back, and would be counted as work per order.
load "$rate" "$seconds" "$work/throughput.json" > "$work/throughput.txt" &
throughput_load=$!
window=$((seconds > 20 ? seconds - 10 : seconds / 2))
sleep 5
c0=$(commits); m0=$(nats_msgs); cpu0=$(cpu_by_group); t0=$(date +%s.%N)
sleep "$window"
c1=$(commits); m1=$(nats_msgs); cpu1=$(cpu_by_group); t1=$(date +%s.%N)
wait "$throughput_load" || true
rss_line=""
for p in "${pids[@]}"; do
  rss_line+="$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$p/status") "
done
printf '{"before": %s, "after": %s, "t0": %s, "t1": %s}\n' "$cpu0" "$cpu1" "$t0" "$t1" > "$work/cpu.json"

echo '{}' > "$work/stretch.json"
if [ "$stretch_rate" != 0 ]; then
  log "stretch: $stretch_rate orders/s open loop for $seconds s"
  load "$stretch_rate" "$seconds" "$work/stretch.json" > "$work/stretch.txt" || true
fi

: > "$work/profile.txt"
if command -v perf >/dev/null 2>&1; then
  log "profile: perf, 15 s of a $rate orders/s run"
  load "$rate" 25 "$work/profile-load.json" > /dev/null 2>&1 &
  profile_load=$!
  sleep 5
  if perf record -F 499 -a -o "$work/perf.data" -- sleep 15 > "$work/perf-record.out" 2>&1; then
    {
      # Service threads are all named tokio-rt-worker, so samples are grouped by binary (dso):
      # the kernel's share is one line of its own here (the CPU table above splits it by process).
      echo "### Samples by binary"; echo; echo '```'
      perf report -i "$work/perf.data" --stdio --no-children --sort dso 2>/dev/null \
        | grep -E '^ +[0-9]' | awk 'NR <= 15'
      echo '```'; echo; echo "### Hottest functions"; echo; echo '```'
      perf report -i "$work/perf.data" --stdio --no-children --sort dso,sym -g none 2>/dev/null \
        | grep -E '^ +[0-9]' | awk 'NR <= 30' | cut -c1-150
      echo '```'
    } > "$work/profile.txt"
  else
    { echo "perf record failed:"; echo '```'; tail -5 "$work/perf-record.out"; echo '```'; } > "$work/profile.txt"
  fi
  wait "$profile_load" || true
fi

python3 - "$out" "$work" "$pg_tps" "$idle_line" "$rss_line" "$c0" "$c1" "$m0" "$m1" "$rate" "$seconds" "$latency_rate" "$stretch_rate" "$(getconf CLK_TCK)" "$latency_seconds" <<'PY'
import json, os, platform, subprocess, sys
out, work, pg_tps, idle, rss, c0, c1, m0, m1, rate, seconds, lrate, srate, hz, lseconds = sys.argv[1:]
lat = json.load(open(f"{work}/latency.json"))
thr = json.load(open(f"{work}/throughput.json"))
stretch = json.load(open(f"{work}/stretch.json"))
cpu = json.load(open(f"{work}/cpu.json"))
profile = open(f"{work}/profile.txt").read().strip()
def sh(cmd):
    try: return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception: return "?"
names = ["order-service", "payment-service", "inventory-service", "saga-coordinator"]
idle, rss = idle.split(), rss.split()
orders = thr["orders"] or 1
pl, el = lat["postLatency"], lat["orderToEndLatency"]
tp, te = thr["postLatency"], thr["orderToEndLatency"]
def verdict(ok): return "met" if ok else "**not met**"
def reached(r):
    return (r.get("throughputOrdersPerSecond", 0) >= 1000 and r.get("unfinished", 1) == 0
            and r.get("invariants") == "hold" and r.get("sendingSeconds", 0) >= float(seconds) - 0.5)
def run_line(r):
    if not r:
        return "not run"
    return (f"{r['throughputOrdersPerSecond']:.0f} orders/s: {r['orders']:,} orders sent in {r['sendingSeconds']:.1f} s, "
            f"{r['orders'] - r['unfinished']:,} ended within {r['firstPostToLastEndSeconds']:.1f} s of the first POST, "
            f"{r['unfinished']} unfinished, invariants: {r['invariants']}")
def run_section(title, r):
    p, e = r["postLatency"], r["orderToEndLatency"]
    return [f"## {title}", "",
        f"- {run_line(r)}; POST failures {r['postFailures']}",
        f"- POST /orders: p50 {p['p50Ms']:.1f} ms, p90 {p['p90Ms']:.1f} ms, p99 {p['p99Ms']:.1f} ms, max {p['maxMs']:.1f} ms",
        f"- order to end (order.confirmed or order.cancelled seen on NATS): p50 {e['p50Ms']:.1f} ms, p90 {e['p90Ms']:.1f} ms, p99 {e['p99Ms']:.1f} ms, max {e['maxMs']:.1f} ms",
        f"- outcomes {json.dumps(r['outcomes'])}; payment share {r['payment']['share']:.4f} (95% interval {r['payment']['interval95'][0]:.4f} to {r['payment']['interval95'][1]:.4f}, configured 0.9)", ""]
cores = sh("nproc")
cpu_model = sh("lscpu | sed -n 's/^Model name: *//p'")
mem_gib = sh("free -g | awk '/Mem:/ {print $2}'")
pg_version = sh("psql --version | awk '{print $3}'")
nats_version = sh("nats-server --version 2>/dev/null || /usr/sbin/nats-server --version")
span = float(cpu["t1"]) - float(cpu["t0"])
window_orders = span * float(rate)
cpu_rows = []
for g in names + ["nats-server", "postgresql"]:
    ticks = cpu["after"].get(g, 0) - cpu["before"].get(g, 0)
    secs = ticks / int(hz)
    cpu_rows.append(f"| {g} | {secs:.1f} s | {secs / span * 100:.0f}% | {secs / window_orders * 1e6:.0f} µs |")
lines = [
"# Benchmarks", "",
"`scripts/bench.sh` measured everything down to the hand-written part in one run: the four services (release build), NATS and PostgreSQL on one machine, the load generator on the same machine.", "",
"## Machine", "",
f"- CPU: {cores} cores, {cpu_model}",
f"- memory: {mem_gib} GiB; kernel {platform.release()}",
f"- PostgreSQL: {pg_version} (default settings); nats-server: {nats_version}",
f"- PostgreSQL's ceiling, single-row inserts by pgbench (8 clients, 15 s, one INSERT per transaction): **{float(pg_tps or 0):.0f} inserts/s**", "",
"## Targets", "",
"| target | measured | |", "| --- | --- | --- |",
f"| ≥ 1,000 orders/s for {seconds} s, first POST to last saga end, all terminal, invariants holding | {run_line(thr)} (sent at {rate}/s) | {verdict(reached(thr))} |",
f"| stretch: 2,000 orders/s | {run_line(stretch)} (sent at {srate}/s) | {verdict(bool(stretch) and stretch['throughputOrdersPerSecond'] >= 2000 and reached(stretch))} |",
f"| POST /orders p99 ≤ 15 ms at {lrate}/s | {pl['p99Ms']:.1f} ms | {verdict(pl['p99Ms'] <= 15)} |",
f"| order-to-end p50 ≤ 25 ms at {lrate}/s | {el['p50Ms']:.1f} ms | {verdict(el['p50Ms'] <= 25)} |",
f"| order-to-end p99 ≤ 100 ms at {lrate}/s | {el['p99Ms']:.1f} ms | {verdict(el['p99Ms'] <= 100)} |",
f"| peak RSS ≤ 64 MiB per service (VmHWM after the {rate}/s run) | " + ", ".join(f"{n} {r} MiB" for n, r in zip(names, rss)) + f" | {verdict(all(float(r) <= 64 for r in rss))} |",
f"| no CPU while idle | " + ", ".join(f"{n} {c}%" for n, c in zip(names, idle)) + f" of one core over 10 s | {verdict(all(float(c) < 0.5 for c in idle))} |", "",
]
lines += run_section(f"Latency run: {lrate} orders/s open loop, {lseconds} s", lat)
lines += run_section(f"Throughput run: {rate} orders/s open loop, {seconds} s", thr)
lines += [
f"Counted over {span:.1f} s of steady sending in the middle of this run ({window_orders:,.0f} orders at {rate}/s):", "",
f"- database commits per order: {(int(c1) - int(c0)) / window_orders:.2f} (all four databases, pg_stat_database.xact_commit)",
f"- NATS messages per order: {(int(m1) - int(m0)) / window_orders:.1f} (in plus out, nats-server /varz; the load generator's subscription included)",
"- CPU by process (/proc/<pid>/stat, user plus system; the load generator is not counted):", "",
"| process | CPU time | of one core | per order |", "| --- | --- | --- | --- |", *cpu_rows, ""]
if stretch:
    lines += run_section(f"Stretch run: {srate} orders/s open loop, {seconds} s", stretch)
lines += ["## Profile", "",
f"`perf record -F 499 -a` (all CPUs, 499 samples/s each) for 15 s in the middle of a 25 s run at {rate} orders/s; self time.", "",
profile or "perf is not available on this machine.", ""]
marker = "<!-- written by hand below -->"
kept = ""
if os.path.exists(out):
    old = open(out).read()
    if marker in old:
        kept = old[old.index(marker):]
text = "\n".join(lines) + "\n" + (kept or marker + "\n")
open(out, "w").write(text)
print("\n".join(lines))
PY
