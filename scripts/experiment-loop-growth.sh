#!/usr/bin/env bash
# Does a closed loop end fewer orders for coming after other loops on the same stack, and if so,
# is it what those loops stored (databases, JetStream store) or the state of the processes that
# ran them? For each variant, a fresh stack (release build, own ports, run directory and
# databases, PUBLISH_MAJORS=2, as scripts/bench.sh) takes the same closed loop
# (saga-load --concurrency N for S seconds) K times:
#   same      one loop after the other, nothing restarted;
#   restart   before every loop but the first, the four services and nats-server are stopped and
#             started again (scripts/down.sh, scripts/up.sh) on the databases and the JetStream
#             store the loops before filled.
# Before each loop, with the stack idle, it times a fixed piece of CPU work (SHA-256 of 256 MiB,
# the fastest of three): the machine's own speed at that moment, which on a VM can change by the
# hour. Each loop's figures are those of scripts/bench.sh (scripts/lib/bench.py's load_run and
# per_order): orders ended per second, CPU per order of each process group, commits and rows
# read per order; beside them what was stored when it began (orders, the databases' size, the
# JetStream store's size). Writes loop-growth.json (every loop) and loop-growth.md to --out.
#
#   scripts/experiment-loop-growth.sh [--loops K] [--seconds S] [--concurrency N]
#                                     [--variants "same restart"] [--out DIR] [--report-only]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh
# shellcheck source=lib/experiment.sh
source scripts/lib/experiment.sh

loops=4 seconds=60 concurrency=64 variants="same restart" out=docs/experiments/loop-growth
report_only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --loops) loops=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --report-only) report_only=1; shift ;;
    *) die "unknown argument $1 (see the top of scripts/experiment-loop-growth.sh)" ;;
  esac
done

if [ -z "$report_only" ]; then
  mkdir -p "$out"
  work=$(mktemp -d)
  commit=$(git rev-parse --short HEAD)
  experiment_setup 13404 14622
  export BENCH_WORK="$work"
  trap 'experiment_drop_stack; rm -rf "$work"' EXIT

  start_stack() {
    scripts/up.sh > "$RUN_DIR/up.out" 2>&1 || { cat "$RUN_DIR/up.out"; die "up.sh failed"; }
    sleep 3
  }
  for variant in $variants; do
    RUN_DIR="$work/run-$variant"
    DB_PREFIX="grow_$$_${variant}_"
    mkdir -p "$RUN_DIR"
    log "$variant: fresh stack"
    start_stack
    for loop in $(seq 1 "$loops"); do
      if [ "$variant" = restart ] && [ "$loop" -gt 1 ]; then
        log "$variant: every process stopped and started again, data kept"
        scripts/down.sh >/dev/null 2>&1
        start_stack
      fi
      NATS_PID=$(cat "$RUN_DIR/nats.pid")
      export NATS_PID
      log "$variant, loop $loop: saga-load --concurrency $concurrency --seconds $seconds"
      python3 - "$work/$variant-$loop.json" "$variant" "$loop" "$concurrency" "$seconds" \
        "$RUN_DIR/nats" <<'PY'
import hashlib, json, subprocess, sys, time
sys.path.insert(0, "scripts/lib")
import bench
path, variant, loop, concurrency, seconds, store = sys.argv[1:]

def probe():
    data = b"\x5a" * (1 << 20)
    best = None
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(256):
            hashlib.sha256(data).digest()
        took = time.perf_counter() - t
        best = took if best is None else min(best, took)
    return best

stored = {
    "orders": bench.psql_json("orders", "SELECT count(*) FROM orders"),
    "databasesMiB": sum(bench.psql_json(db, "SELECT pg_database_size(current_database())")
                        for db in bench.DATABASES) / 2**20,
    "jetstreamMiB": int(subprocess.run(["du", "-sk", store], capture_output=True, text=True,
                                       check=True).stdout.split()[0]) / 1024,
}
probe_s = probe()
r = bench.load_run(f"{variant}-{loop}", ["--concurrency", concurrency], int(seconds), False,
                   bench.ENV["BENCH_WORK"])
per = bench.per_order(r)
rep = r["report"]
json.dump({"variant": variant, "loop": int(loop), "probeS": probe_s, "storedBefore": stored,
           "ordersPerSecond": rep["throughputOrdersPerSecond"], "refusals": rep["refusals"],
           "postP99Ms": rep["postLatency"]["p99Ms"],
           "orderToEndP99Ms": rep["orderToEndLatency"]["p99Ms"],
           "cpuUsByGroup": per["schedUs"], "cpuUs": per["schedTotalUs"],
           "switches": per["switchesTotal"], "commits": per["commits"],
           "rowsRead": per["rowsRead"], "busyShare": per["busyShare"]},
          open(path, "w"), indent=1, sort_keys=True)
PY
    done
    experiment_drop_stack
  done
  python3 - "$work" "$out" "$variants" "$loops" "$seconds" "$concurrency" "$commit" <<'PY'
import datetime, json, sys
work, out, variants, loops, seconds, concurrency, commit = sys.argv[1:]
runs = [json.load(open(f"{work}/{v}-{l}.json"))
        for v in variants.split() for l in range(1, int(loops) + 1)]
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
json.dump({"date": date, "commit": commit, "seconds": int(seconds),
           "concurrency": int(concurrency), "loops": runs},
          open(f"{out}/loop-growth.json", "w"), indent=1, sort_keys=True)
PY
fi

python3 - "$out" <<'PY'
import json, sys
sys.path.insert(0, "scripts/lib")
from bench import GROUPS
out = sys.argv[1]
data = json.load(open(f"{out}/loop-growth.json"))
first = {}
for l in data["loops"]:
    first.setdefault(l["variant"], l)
short = {"order-service": "order", "payment-service": "payment", "inventory-service": "inventory",
         "saga-coordinator": "coordinator", "nats-server": "nats", "postgresql": "PostgreSQL"}
rows = []
for l in data["loops"]:
    f = first[l["variant"]]
    s = l["storedBefore"]
    rows.append("| " + " | ".join([
        l["variant"], str(l["loop"]), f"{s['orders']:,}", f"{s['databasesMiB']:,.0f}",
        f"{s['jetstreamMiB']:,.0f}", f"{l['probeS'] * 1000:,.0f} ms",
        f"{l['ordersPerSecond']:,.0f} ({100 * l['ordersPerSecond'] / f['ordersPerSecond']:.0f}%)",
        f"{l['cpuUs']:,.0f} µs ({100 * l['cpuUs'] / f['cpuUs']:.0f}%)"]
        + [f"{l['cpuUsByGroup'][g]:,.0f}" for g in GROUPS]
        + [f"{sum(l['commits'].values()):.2f}", f"{sum(l['rowsRead'].values()):.1f}"]) + " |")
with open(f"{out}/loop-growth.md", "w") as fh:
    fh.write(f"""# Does a loop slow down for coming after others?

Written by `scripts/experiment-loop-growth.sh` on commit `{data["commit"]}`, {data["date"]};
every loop's figures, rows read per table included, are in loop-growth.json. Each variant is a
fresh stack (release build, fresh databases and JetStream store, `PUBLISH_MAJORS=2`) taking the
closed loop of {data["concurrency"]} POSTs in flight for {data["seconds"]} s, one loop after the
other: `same` restarts nothing; `restart` stops and starts every process (the four services and
nats-server) before each loop after the first, on the data the loops before stored.

"Stored" is what the loop found: orders, the four databases' size, the JetStream store's size.
"Probe" is a fixed piece of CPU work (SHA-256 of 256 MiB, fastest of three) timed with the
stack idle just before the loop: the machine's speed then. CPU per order is schedstat's, per
process group, over the loop's counted window (as `scripts/bench.sh`); percentages are of the
variant's first loop. Commits and rows read are per order, all databases together.

| variant | loop | stored orders | databases MiB | JetStream MiB | probe | orders ended/s | CPU per order | {" | ".join(short[g] for g in GROUPS)} | commits | rows read |
| {"--- | " * (10 + len(GROUPS))}
""")
    fh.write("\n".join(rows) + "\n")
PY
log "wrote $out/loop-growth.md from $out/loop-growth.json"
