#!/usr/bin/env bash
# Sweeps PAYMENT_SUCCESS_RATE: for each rate, a fresh stack (own ports, run directory and
# databases) takes N orders with fixed Idempotency-Keys and a fixed PAYMENT_SEED, and the observed
# approval share is compared with the configured rate. Writes docs/experiments/success-rate.md (a
# table), success-rate.svg (observed against configured, with 95% intervals) and one JSON report
# per rate. The same seed gives identical outcome counts on every run: when --out already holds
# a run with the same seed and number of orders, each rate's counts are compared with it, the
# table says whether they are identical, and the script fails if any differ.
#
#   scripts/experiment-success-rate.sh [--orders N] [--seed S] [--rates "0.5 0.6 ..."] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh

orders=2000 seed=42 rates="0.5 0.6 0.7 0.8 0.9 0.95 1.0" out=docs/experiments
while [ $# -gt 0 ]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) die "unknown argument $1 (see the top of scripts/experiment-success-rate.sh)" ;;
  esac
done
ensure_rust
mkdir -p "$out"
previous=$(mktemp -d)
trap 'rm -rf "$previous"' EXIT
cp "$out"/rate-*.json "$previous"/ 2>/dev/null || true
log "building (release)"
cargo build --release --locked -q -p order-service -p payment-service -p inventory-service -p saga-coordinator -p loadgen

export PROFILE=release ADMIN_TOKEN=experiment PAYMENT_SEED="$seed" INVENTORY_AUTO_PROVISION=0
export ORDER_PORT=13004 PAYMENT_PORT=13006 INVENTORY_PORT=13007 SAGA_PORT=13008 NATS_PORT=14222
for rate in $rates; do
  export PAYMENT_SUCCESS_RATE="$rate" RUN_DIR DB_PREFIX
  RUN_DIR=$(mktemp -d)
  DB_PREFIX="exp_$$_${rate//./_}_"
  log "rate $rate: fresh stack"
  scripts/up.sh > "$RUN_DIR/up.out" 2>&1 || { cat "$RUN_DIR/up.out"; die "up.sh failed"; }
  status=0
  target/release/saga-load --concurrency 32 --orders "$orders" --products 20 --expected-rate "$rate" \
    --key-prefix "experiment-$seed" --json "$out/rate-$rate.json" \
    --order-url "http://127.0.0.1:$ORDER_PORT" --payment-url "http://127.0.0.1:$PAYMENT_PORT" \
    --inventory-url "http://127.0.0.1:$INVENTORY_PORT" --saga-url "http://127.0.0.1:$SAGA_PORT" \
    --nats-url "nats://127.0.0.1:$NATS_PORT" --admin-token "$ADMIN_TOKEN" || status=$?
  scripts/down.sh > /dev/null 2>&1 || true
  for db in orders payments inventory sagas; do
    psql "$(pg_url postgres)" -qc "DROP DATABASE IF EXISTS \"${DB_PREFIX}$db\"" >/dev/null 2>&1 || true
  done
  rm -rf "$RUN_DIR"
  [ "$status" -eq 0 ] || die "the load run at rate $rate failed"
  python3 - "$out/rate-$rate.json" "$seed" <<'PY'
import json, sys
path, seed = sys.argv[1], int(sys.argv[2])
rep = json.load(open(path))
rep["experiment"] = {"paymentSeed": seed}
json.dump(rep, open(path, "w"), indent=2, sort_keys=True)
PY
done

python3 - "$out" "$orders" "$seed" "$previous" $rates <<'PY'
import json, os, sys
out, orders, seed, previous, rates = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def counts(rep):
    return (rep["orders"], rep["outcomes"], rep["payment"]["decided"], rep["payment"]["approved"])
rows, differ = [], []
for r in rates:
    rep = json.load(open(f"{out}/rate-{r}.json"))
    p = rep["payment"]
    same = "no earlier run"
    prev_path = f"{previous}/rate-{r}.json"
    if os.path.exists(prev_path):
        prev = json.load(open(prev_path))
        if prev.get("experiment", {}).get("paymentSeed") == int(seed) and prev["orders"] == rep["orders"]:
            same = "identical" if counts(prev) == counts(rep) else "**differ**"
            if same != "identical":
                differ.append(r)
    rows.append((float(r), p["decided"], p["approved"], p["share"], p["interval95"][0], p["interval95"][1],
                 rep["outcomes"].get("CONFIRMED", 0), sum(v for k, v in rep["outcomes"].items() if k.startswith("CANCELLED")),
                 rep["invariants"], same))
with open(f"{out}/success-rate.md", "w") as f:
    f.write(f"# Payment success rate: configured against observed\n\n")
    f.write(f"`scripts/experiment-success-rate.sh --orders {orders} --seed {seed}`: for each rate a fresh stack takes "
            f"{orders} orders (Idempotency-Keys `experiment-{seed}-<n>`, PAYMENT_SEED={seed}).\n\n")
    f.write("The 95% interval is Wilson's score interval of the observed share. The last column compares the "
            "outcome counts with the run that was in this directory before (same seed, same number of orders).\n\n")
    f.write("| configured | decided | approved | observed | 95% interval | inside | confirmed | cancelled | invariants | against the earlier run |\n")
    f.write("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
    for (rate, n, ok, share, lo, hi, conf, canc, inv, same) in rows:
        inside = "yes" if lo <= rate <= hi else "no"
        f.write(f"| {rate:g} | {n} | {ok} | {share:.4f} | {lo:.4f} to {hi:.4f} | {inside} | {conf} | {canc} | {inv} | {same} |\n")
    f.write("\n![observed against configured](success-rate.svg)\n")
W, H, M = 560, 420, 60
sx = lambda x: M + (x - 0.4) / 0.65 * (W - 2 * M)
sy = lambda y: H - M - (y - 0.4) / 0.65 * (H - 2 * M)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<line x1="{sx(0.4)}" y1="{sy(0.4)}" x2="{sx(1.05)}" y2="{sy(1.05)}" stroke="#bbb" stroke-dasharray="4 4"/>',
       f'<line x1="{M}" y1="{H-M}" x2="{W-M}" y2="{H-M}" stroke="black"/>',
       f'<line x1="{M}" y1="{M}" x2="{M}" y2="{H-M}" stroke="black"/>',
       f'<text x="{W/2}" y="{H-15}" text-anchor="middle">configured PAYMENT_SUCCESS_RATE</text>',
       f'<text x="15" y="{H/2}" transform="rotate(-90 15 {H/2})" text-anchor="middle">observed approval share (95% interval)</text>',
       f'<text x="{W/2}" y="25" text-anchor="middle" font-size="14">Observed against configured, {orders} orders per rate, seed {seed}</text>']
for t in [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]:
    svg.append(f'<line x1="{sx(t)}" y1="{H-M}" x2="{sx(t)}" y2="{H-M+5}" stroke="black"/><text x="{sx(t)}" y="{H-M+18}" text-anchor="middle">{t:g}</text>')
    svg.append(f'<line x1="{M-5}" y1="{sy(t)}" x2="{M}" y2="{sy(t)}" stroke="black"/><text x="{M-8}" y="{sy(t)+4}" text-anchor="end">{t:g}</text>')
for (rate, n, ok, share, lo, hi, *_ ) in rows:
    x = sx(rate)
    svg.append(f'<line x1="{x}" y1="{sy(lo)}" x2="{x}" y2="{sy(hi)}" stroke="#c33" stroke-width="2"/>')
    svg.append(f'<line x1="{x-5}" y1="{sy(lo)}" x2="{x+5}" y2="{sy(lo)}" stroke="#c33"/><line x1="{x-5}" y1="{sy(hi)}" x2="{x+5}" y2="{sy(hi)}" stroke="#c33"/>')
    svg.append(f'<circle cx="{x}" cy="{sy(share)}" r="4" fill="#236"/>')
svg.append("</svg>")
open(f"{out}/success-rate.svg", "w").write("\n".join(svg) + "\n")
print(open(f"{out}/success-rate.md").read())
if differ:
    sys.exit(f"outcome counts differ from the earlier run with seed {seed} at rates {' '.join(differ)}")
PY
