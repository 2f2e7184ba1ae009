#!/usr/bin/env bash
# The rolling upgrade of docs/upgrading.md under load: the whole stack on the last release of
# docs/releases.md (two instances of each service), each service replaced by this tree's build
# one at a time in an order drawn from a seed, one rolled back and forward again; then every
# guarantee is checked (saga-upgrade --help).
#
#   scripts/test-upgrade.sh                 a random seed (printed)
#   UPGRADE_SEED=42 scripts/test-upgrade.sh the same order of steps again
#   UPGRADE_RATE=40                         orders per second during the roll
#
# The last release is built once from a git worktree into its own target directory, under
# ${RELEASES_CACHE:-~/.cache/order-saga/releases}; this tree's binaries come from target/debug
# (scripts/test.sh builds them).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh
# shellcheck source=lib/release.sh
source scripts/lib/release.sh

ensure_rust
export NATS_SERVER_BIN
NATS_SERVER_BIN=$(nats_server_bin)
ensure_postgres >/dev/null

release=$(last_release_commit)
[ -n "$release" ] || die "docs/releases.md lists no release"
old_bin_dir=$(release_bin_dir "$release")
[ -x target/debug/saga-upgrade ] || cargo build --workspace --locked -q
seed=${UPGRADE_SEED:-$(( (RANDOM << 15) | RANDOM ))}
log "rolling upgrade from release $release to this tree (seed $seed)"
report=$(mktemp)
if ! target/debug/saga-upgrade --old-bin-dir "$old_bin_dir" --new-bin-dir target/debug \
    --rate "${UPGRADE_RATE:-40}" --seed "$seed" --report "$report" >/dev/null; then
  cat "$report" >&2 2>/dev/null || true
  die "the rolling upgrade broke a guarantee (seed $seed: rerun with UPGRADE_SEED=$seed)"
fi
python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
steps = ", ".join(f"{s['service']} to {s['to']} ({s['seconds']:.1f}s, {s['sagasAcrossStep']} sagas across)" for s in r["steps"])
print(f"upgrade: seed {r['seed']}: {steps}")
print(f"upgrade: {r['orders']} orders at {r['rate']}/s over {r['rollSeconds']:.0f}s of roll; "
      f"POST failures {r['postFailures']} ({r['ordersRetried']} orders retried), POST p99 {r['postP99Ms']:.0f} ms; "
      f"order-to-end during the roll p50 {r['orderToEndDuringRollMs']['p50']:.0f} ms, p99 {r['orderToEndDuringRollMs']['p99']:.0f} ms")
PY
rm -f "$report"
