#!/usr/bin/env bash
# An open loop well past capacity, with and without the bound on HTTP connections
# (HTTP_MAX_CONNECTIONS): how many connections order-service holds, its memory, and what the
# client sees. For each run and each variant, a fresh stack (release build, own ports, run
# directory and databases, PUBLISH_MAJORS=2 as in scripts/bench.sh) takes
# `saga-load --rate R --seconds S` (each refused order sent again after its Retry-After, new ones
# coming at the rate all the same, so the POSTs in flight grow as long as the system is behind).
# The variants:
#   bound      the default bound (1024);
#   unbounded  HTTP_MAX_CONNECTIONS=1000000: more than the load ever opens.
# Every second of the load, order-service's open descriptors and RSS are read from /proc; its
# http_connection_waits_total (times the bound was reached) before and after. Writes connection-bound.json (every run's
# figures) and connection-bound.md (ranges over the runs, written from the JSON) to
# docs/experiments/.
#
#   scripts/experiment-connection-bound.sh [--runs N] [--rate R] [--seconds S]
#                                          [--variants "bound unbounded"] [--out DIR]
#                                          [--report-only]
#     --report-only  write connection-bound.md from the stored JSON, measure nothing
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh
# shellcheck source=lib/experiment.sh
source scripts/lib/experiment.sh

runs=2 rate=2500 seconds=30 variants="bound unbounded" out=docs/experiments report_only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --report-only) report_only=1; shift ;;
    *) die "unknown argument $1 (see the top of scripts/experiment-connection-bound.sh)" ;;
  esac
done
if [ -z "$report_only" ]; then
  mkdir -p "$out"
  work=$(mktemp -d)
  experiment_setup 13204 14422
  stop_stack() {
    [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null || true
    experiment_drop_stack
  }
  trap 'stop_stack; rm -rf "$work"' EXIT
  waits() {
    curl -sf "http://127.0.0.1:$ORDER_PORT/metrics" \
      | awk '$1 == "http_connection_waits_total" { print $2 }'
  }

  for run in $(seq 1 "$runs"); do
    for variant in $variants; do
      name="$run-$variant"
      RUN_DIR="$work/run-$name"
      DB_PREFIX="exp_$$_${run}_${variant}_"
      mkdir -p "$RUN_DIR"
      unset HTTP_MAX_CONNECTIONS
      [ "$variant" = unbounded ] && export HTTP_MAX_CONNECTIONS=1000000
      log "run $run, $variant: fresh stack"
      scripts/up.sh > "$RUN_DIR/up.out" 2>&1 || { cat "$RUN_DIR/up.out"; die "up.sh failed"; }
      pid=$(cat "$RUN_DIR/order-service.pid")
      sleep 3
      waits > "$work/$name.waits0"
      (while kill -0 "$pid" 2>/dev/null; do
         printf '%s %s %s\n' "$(date +%s.%N)" "$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" \
           "$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
         sleep 1
       done) > "$work/$name.samples" &
      sampler=$!
      log "$name: saga-load --rate $rate --seconds $seconds"
      experiment_load "$work" "$name" --rate "$rate" --seconds "$seconds"
      waits > "$work/$name.waits1"
      kill "$sampler" 2>/dev/null || true
      sampler=""
      stop_stack
    done
  done
  python3 - "$work" "$out" "$runs" "$variants" "$rate" "$seconds" <<'PY'
import datetime, json, subprocess, sys
work, out, runs, variants, rate, seconds = sys.argv[1:]
loads = []
for run in range(1, int(runs) + 1):
    for variant in variants.split():
        name = f"{run}-{variant}"
        rep = json.load(open(f"{work}/{name}.json"))
        samples = [l.split() for l in open(f"{work}/{name}.samples") if len(l.split()) == 3]
        count = lambda f: float((open(f).read().strip() or "0"))
        loads.append({"run": run, "variant": variant,
                      "ordersPerSecond": rep["throughputOrdersPerSecond"],
                      "accepted": rep["orders"], "refusals": rep["refusals"],
                      "serverErrors": rep["serverErrors"], "postFailures": rep["postFailures"],
                      "attemptsPerSecond": rep["attemptsPerSecond"],
                      "postMs": rep["postLatency"], "orderToEndMs": rep["orderToEndLatency"],
                      "boundReached": count(f"{work}/{name}.waits1")
                                      - count(f"{work}/{name}.waits0"),
                      "peakDescriptors": max(int(s[1]) for s in samples),
                      "peakRssKiB": max(int(s[2]) for s in samples)})
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True).stdout.strip()
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
json.dump({"date": date, "commit": commit, "rate": float(rate), "seconds": int(seconds),
           "loads": loads}, open(f"{out}/connection-bound.json", "w"), indent=2, sort_keys=True)
PY
fi

python3 - "$out" <<'PY'
import json, sys
sys.path.insert(0, "scripts/lib")
from bench import fmt
out = sys.argv[1]
data = json.load(open(f"{out}/connection-bound.json"))
loads = data["loads"]
runs = len({l["run"] for l in loads})
rows = []
for variant in dict.fromkeys(l["variant"] for l in loads):
    ls = [l for l in loads if l["variant"] == variant]
    col = lambda f, unit="", digits=0: fmt([f(l) for l in ls], unit, digits)
    rows.append("| " + " | ".join([
        variant, col(lambda l: l["peakDescriptors"]), col(lambda l: l["peakRssKiB"] / 1024, " MiB"),
        col(lambda l: l["boundReached"]), col(lambda l: l["refusals"]),
        col(lambda l: l["serverErrors"]) + ", " + col(lambda l: l["postFailures"]),
        col(lambda l: l["attemptsPerSecond"]), col(lambda l: l["ordersPerSecond"]),
        col(lambda l: l["postMs"]["p50Ms"]) + " / " + col(lambda l: l["postMs"]["p99Ms"], " ms"),
        col(lambda l: l["orderToEndMs"]["p50Ms"]) + " / "
        + col(lambda l: l["orderToEndMs"]["p99Ms"], " ms"),
    ]) + " |")
with open(f"{out}/connection-bound.md", "w") as f:
    f.write(f"""# An open loop past capacity, with and without the bound on connections

Written by `scripts/experiment-connection-bound.sh --runs {runs} --rate {data["rate"]:g} --seconds
{data["seconds"]}` on commit `{data["commit"]}`, {data["date"]}; every run's figures are in
connection-bound.json. Each variant of each run is a fresh stack (release build, fresh databases,
`PUBLISH_MAJORS=2`) taking `saga-load --rate {data["rate"]:g} --seconds {data["seconds"]}`: new
orders at that rate, and every refused one again after its `Retry-After`. `bound` is the default
`HTTP_MAX_CONNECTIONS` (1024); `unbounded` sets it to 1,000,000. Ranges are over the {runs} runs.

Descriptors and RSS are order-service's, read every second from `/proc` (the peak); "bound
reached" is its `http_connection_waits_total` over the load (times new connections had to wait for
one to close); "refusals" are the 503s with `Retry-After` saga-load received (admission's);
"5xx, failures" the other 5xx answers and the POSTs without an answer (a connection that failed
or timed out). POST latencies are those of accepted POSTs; order-to-end
counts accepted orders.

| variant | peak descriptors | peak RSS | bound reached | refusals | other 5xx, failures | POSTs sent/s | orders ended/s | POST p50 / p99 | order-to-end p50 / p99 |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
""")
    f.write("\n".join(rows) + "\n")
PY
log "wrote $out/connection-bound.md from $out/connection-bound.json"
