#!/usr/bin/env bash
# Past saturation, where does an accepted POST /orders wait, and does giving order-service CPU
# priority bound it? For each run and each variant, a fresh stack (release build, own ports, run
# directory and databases, PUBLISH_MAJORS=2 as in scripts/bench.sh) takes the closed loops of
# bench.sh's "Past saturation" table (saga-load --concurrency N, 60 s each, Retry-After honoured).
# The variants:
#   as-run     the stack as scripts/up.sh starts it;
#   nice       order-service reniced to -10 once started (needs root or CAP_SYS_NICE): the kernel
#              runs it before the saga's work (PostgreSQL, nats-server, the other services) when
#              both wait for a core;
#   nice-age   the same, with ORDER_ADMISSION_MAX_AGE_MS=500;
#   writing-N  ORDER_ADMISSION_MAX_WRITING=N: at most N orders being written at once, the others
#              refused (the default is the setting's default);
#   retry-N    ORDER_ADMISSION_RETRY_AFTER_MAX_S=N: the write bound's refusals ask for at most N s
#              (retry-1: every refusal 1 s).
# Beside saga-load's figures, each loop reads order-service's CPU and run-queue wait (time runnable
# but not running; scripts/lib/cpu.py) and the server-side duration of POST /orders (its /metrics
# histogram) and its refusals by rule. Writes admission-priority.json (every loop's figures) and
# admission-priority.md (ranges over the runs, written from the JSON) to docs/experiments/.
#
#   scripts/experiment-admission-priority.sh [--runs N] [--seconds S] [--levels "128 256 512"]
#                                            [--variants "as-run nice nice-age"] [--out DIR]
#                                            [--fresh-per-level] [--report-only]
#     --fresh-per-level  a fresh stack (databases, streams) for each level, not one per variant:
#                    each loop then starts on empty databases, whatever loops came before it
#     --report-only  write admission-priority.md from the stored JSON, measure nothing
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh
# shellcheck source=lib/experiment.sh
source scripts/lib/experiment.sh

runs=2 seconds=60 levels="128 256 512" variants="as-run nice nice-age" out=docs/experiments
report_only="" fresh_per_level=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --report-only) report_only=1; shift ;;
    --fresh-per-level) fresh_per_level=1; shift ;;
    *) die "unknown argument $1 (see the top of scripts/experiment-admission-priority.sh)" ;;
  esac
done
if [ -z "$report_only" ]; then
  mkdir -p "$out"
  work=$(mktemp -d)
  # The commit measured: the one built at the start, whatever is committed while the loops run.
  commit=$(git rev-parse --short HEAD)
  experiment_setup 13104 14322
  trap 'experiment_drop_stack; rm -rf "$work"' EXIT

  # fresh_stack RUN VARIANT TAG: a stack of its own for the variant (settings, renice); sets pid.
  fresh_stack() {
    RUN_DIR="$work/run-$1-$2$3"
    DB_PREFIX="exp_$$_${1}_${2//-/_}_$3"
    mkdir -p "$RUN_DIR"
    unset ORDER_ADMISSION_MAX_AGE_MS ORDER_ADMISSION_MAX_WRITING ORDER_ADMISSION_RETRY_AFTER_MAX_S
    case "$2" in
      nice-age) export ORDER_ADMISSION_MAX_AGE_MS=500 ;;
      writing-*) export ORDER_ADMISSION_MAX_WRITING=${2#writing-} ;;
      retry-*) export ORDER_ADMISSION_RETRY_AFTER_MAX_S=${2#retry-} ;;
    esac
    log "run $1, $2$3: fresh stack"
    scripts/up.sh > "$RUN_DIR/up.out" 2>&1 || { cat "$RUN_DIR/up.out"; die "up.sh failed"; }
    pid=$(cat "$RUN_DIR/order-service.pid")
    case "$2" in
      nice|nice-age) renice -n -10 -p "$pid" >/dev/null || die "renice needs root or CAP_SYS_NICE" ;;
    esac
    sleep 3
  }

  for run in $(seq 1 "$runs"); do
    for variant in $variants; do
      [ -n "$fresh_per_level" ] || fresh_stack "$run" "$variant" ""
      for level in $levels; do
        [ -z "$fresh_per_level" ] || fresh_stack "$run" "$variant" "-$level"
        name="$run-$variant-$level"
        log "$name: saga-load --concurrency $level --seconds $seconds"
        python3 scripts/lib/cpu.py snap --service order-service="$pid" > "$work/$name.cpu0"
        curl -sf "http://127.0.0.1:$ORDER_PORT/metrics" > "$work/$name.before"
        experiment_load "$work" "$name" --concurrency "$level" --seconds "$seconds"
        python3 scripts/lib/cpu.py snap --service order-service="$pid" > "$work/$name.cpu1"
        curl -sf "http://127.0.0.1:$ORDER_PORT/metrics" > "$work/$name.after"
        [ -z "$fresh_per_level" ] || experiment_drop_stack
      done
      [ -n "$fresh_per_level" ] || experiment_drop_stack
    done
  done
  python3 - "$work" "$out" "$runs" "$levels" "$variants" "$seconds" "$fresh_per_level" "$commit" <<'PY'
import datetime, json, re, sys
sys.path.insert(0, "scripts/lib")
import cpu
work, out, runs, levels, variants, seconds, fresh_per_level, commit = sys.argv[1:]

def series(path, head):
    """The samples of /metrics whose line starts `head` and a quoted label value: value -> count."""
    found = {}
    for line in open(path):
        m = re.match(re.escape(head) + r'"([^"]+)"\} (\S+)', line)
        if m:
            found[m.group(1)] = float(m.group(2))
    return found

def posts(path):
    """POST /orders as order-service timed it: the histogram's buckets (le -> count)."""
    return series(path, 'http_request_duration_seconds_bucket{route="/orders",le=')

def refused(path):
    """order-service's refusals by rule (reason -> count); none before the rule was labelled."""
    return series(path, "order_admission_refused_total{reason=")

loops = []
for run in range(1, int(runs) + 1):
    for variant in variants.split():
        for level in levels.split():
            name = f"{run}-{variant}-{level}"
            rep = json.load(open(f"{work}/{name}.json"))
            window = cpu.diff(json.load(open(f"{work}/{name}.cpu0")),
                              json.load(open(f"{work}/{name}.cpu1")))
            before, after = posts(f"{work}/{name}.before"), posts(f"{work}/{name}.after")
            hist = {le: after[le] - before.get(le, 0) for le in after}
            total = hist.get("+Inf", 0)
            r0, r1 = refused(f"{work}/{name}.before"), refused(f"{work}/{name}.after")
            # The smallest bucket holding 99% of the POSTs order-service answered (refusals too).
            server_p99 = next((le for le in sorted((k for k in hist if k != "+Inf"), key=float)
                               if hist[le] >= 0.99 * total), "+Inf") if total else None
            loops.append({"run": run, "variant": variant, "level": int(level),
                          "ordersPerSecond": rep["throughputOrdersPerSecond"],
                          "accepted": rep["orders"], "refusals": rep["refusals"],
                          "serverErrors": rep["serverErrors"], "postFailures": rep["postFailures"],
                          "postMs": rep["postLatency"], "orderToEndMs": rep["orderToEndLatency"],
                          "orderServiceCpuNs": round(window["cpuSched"]["order-service"] * 1e9),
                          "orderServiceWaitNs": round(window["runQueueWait"]["order-service"] * 1e9),
                          "serverPostP99AtMostS": server_p99, "serverPosts": total,
                          "refusedBy": {k: round(r1[k] - r0.get(k, 0)) for k in r1}})
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
json.dump({"date": date, "commit": commit, "seconds": int(seconds), "loops": loops,
           "freshPerLevel": bool(fresh_per_level), "levelOrder": [int(l) for l in levels.split()]},
          open(f"{out}/admission-priority.json", "w"), indent=2, sort_keys=True)
PY
fi

python3 - "$out" <<'PY'
import json, sys
sys.path.insert(0, "scripts/lib")
from bench import fmt
out = sys.argv[1]
data = json.load(open(f"{out}/admission-priority.json"))
loops = data["loops"]
runs = len({l["run"] for l in loops})
variants = list(dict.fromkeys(l["variant"] for l in loops))
levels = sorted({l["level"] for l in loops})
best = {}
for l in loops:
    key = (l["run"], l["variant"])
    best[key] = max(best.get(key, 0), l["ordersPerSecond"])

rows = []
for variant in variants:
    for level in levels:
        ls = [l for l in loops if l["variant"] == variant and l["level"] == level]
        col = lambda f, unit="", digits=0: fmt([f(l) for l in ls], unit, digits)
        rows.append("| " + " | ".join([
            variant, str(level), col(lambda l: l["ordersPerSecond"]),
            col(lambda l: 100 * l["ordersPerSecond"] / best[(l["run"], variant)], "%"),
            col(lambda l: l["refusals"]), col(lambda l: l["serverErrors"] + l["postFailures"]),
            col(lambda l: l["postMs"]["p50Ms"]) + " / " + col(lambda l: l["postMs"]["p99Ms"], " ms"),
            col(lambda l: float(l["serverPostP99AtMostS"]) * 1000, " ms"),
            col(lambda l: l["orderToEndMs"]["p50Ms"]) + " / "
            + col(lambda l: l["orderToEndMs"]["p99Ms"], " ms"),
            col(lambda l: l["orderServiceWaitNs"] / 1e9, " s", 1),
            col(lambda l: l["orderServiceWaitNs"] / 1e6 / max(1, l["serverPosts"]), " ms", 2),
        ]) + " |")
listed = ", ".join(map(str, levels))
if data.get("freshPerLevel"):
    stacks = ("Each loop ran on a fresh stack of its own (release build, fresh databases and streams, "
              f"`PUBLISH_MAJORS=2`, `--fresh-per-level`): closed loops of {listed}")
    order_note = ""
else:
    stacks = ("Each variant of each run is a fresh stack (release build, fresh databases, "
              f"`PUBLISH_MAJORS=2`) taking closed loops of {listed}")
    order_note = (" (one after the other on the same databases, in the order "
                  + ", ".join(map(str, data["levelOrder"])) + ")") if "levelOrder" in data else ""
with open(f"{out}/admission-priority.md", "w") as f:
    f.write(f"""# Admission past saturation: where an accepted POST waits

Written by `scripts/experiment-admission-priority.sh --runs {runs} --seconds {data["seconds"]}` on
commit `{data["commit"]}`, {data["date"]}; every loop's figures are in admission-priority.json.
{stacks} POSTs in flight{order_note}, {data["seconds"]} s each, as
in `scripts/bench.sh`'s "Past saturation" table; ranges are over the {runs} runs. Variants:
`as-run` is the stack as `scripts/up.sh` starts it; `nice` reniced order-service to -10 once
started; `nice-age` did too, with `ORDER_ADMISSION_MAX_AGE_MS=500`; `writing-N` ran with
`ORDER_ADMISSION_MAX_WRITING=N` (at most N orders being written at once); `retry-N` with
`ORDER_ADMISSION_RETRY_AFTER_MAX_S=N` (the write bound's refusals ask for at most N s).

"Of the best" is the loop's orders ended per second against the best loop of the same variant in
the same run. POST latencies are saga-load's (accepted POSTs); "server POST p99 ≤" is the upper
bound of the histogram bucket of order-service's own `http_request_duration_seconds` holding 99%
of the POSTs it answered, refusals included. "Run-queue wait" is the time order-service's threads
were runnable but not running during the loop (`/proc/PID/task/*/schedstat`), in all and per
POST answered.

| variant | POSTs in flight | orders ended/s | of the best | refusals | other 5xx, failures | POST p50 / p99 | server POST p99 ≤ | order-to-end p50 / p99 | order-service run-queue wait | per POST |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
""")
    f.write("\n".join(rows) + "\n")
PY
log "wrote $out/admission-priority.md from $out/admission-priority.json"
