#!/usr/bin/env bash
# Proves the README's run command on this machine: scripts/up.sh brings the four services up,
# scripts/test-event-flow.sh sees orders confirmed and cancelled and none pending, a second up.sh
# changes nothing, and after a service is killed up.sh starts just that one again. It uses its own
# free ports, run directory and databases, so a stack already running here is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh
# shellcheck source=lib/stack.sh
source scripts/lib/stack.sh

fail() { printf 'test-up: FAILED: %s\n' "$*" >&2; exit 1; }

export RUN_DIR PROFILE=dev DB_PREFIX NATS_PORT ORDER_PORT PAYMENT_PORT INVENTORY_PORT SAGA_PORT
RUN_DIR=$(mktemp -d)
DB_PREFIX="uptest_$RANDOM"_
# One block of five: ports drawn one call at a time could coincide, none being bound yet.
base=$(free_port 5)
NATS_PORT=$base ORDER_PORT=$((base + 1)) PAYMENT_PORT=$((base + 2))
INVENTORY_PORT=$((base + 3)) SAGA_PORT=$((base + 4))
export PAYMENT_SUCCESS_RATE=0.7 ADMIN_TOKEN=test-up-token

cleanup() {
  scripts/down.sh >/dev/null 2>&1 || true
  for db in orders payments inventory sagas; do
    psql "$(pg_url postgres)" -qc "DROP DATABASE IF EXISTS \"${DB_PREFIX}$db\"" >/dev/null 2>&1 || true
  done
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

pids() { for svc in "${SERVICES[@]}"; do printf '%s=%s ' "$svc" "$(cat "$RUN_DIR/$svc.pid")"; done; }

log "test-up: up.sh with nothing running on its ports"
scripts/up.sh > "$RUN_DIR/up1.out" 2>&1 || { cat "$RUN_DIR/up1.out"; fail "up.sh failed"; }
for svc in "${SERVICES[@]}"; do
  curl -fsS "http://127.0.0.1:$(service_port "$svc")/health/ready" >/dev/null || fail "$svc not ready"
done
grep -q "admin token        test-up-token" "$RUN_DIR/up1.out" || fail "up.sh did not print the admin token"

log "test-up: test-event-flow.sh"
flow=$(scripts/test-event-flow.sh 30) || { echo "$flow"; fail "orders left pending"; }
echo "$flow"
confirmed=$(sed -n 's/.*confirmed: \([0-9]*\).*/\1/p' <<<"$flow")
cancelled=$(sed -n 's/.*cancelled: \([0-9]*\).*/\1/p' <<<"$flow")
pending=$(sed -n 's/.*pending: \([0-9]*\).*/\1/p' <<<"$flow")
[ "${confirmed:-0}" -gt 0 ] || fail "no order confirmed"
[ "${cancelled:-0}" -gt 0 ] || fail "no order cancelled"
[ "${pending:-1}" -eq 0 ] || fail "$pending orders pending"

log "test-up: up.sh again changes nothing"
before=$(pids)
scripts/up.sh > "$RUN_DIR/up2.out" 2>&1 || { cat "$RUN_DIR/up2.out"; fail "second up.sh failed"; }
[ "$(pids)" = "$before" ] || fail "second up.sh restarted something: $before -> $(pids)"

log "test-up: a killed service is started again, alone"
kill -9 "$(cat "$RUN_DIR/payment-service.pid")"
scripts/up.sh > "$RUN_DIR/up3.out" 2>&1 || { cat "$RUN_DIR/up3.out"; fail "third up.sh failed"; }
grep -q "started: payment-service)" "$RUN_DIR/up3.out" || { cat "$RUN_DIR/up3.out"; fail "payment-service was not the only one started"; }
after=$(pids)
for svc in order-service inventory-service saga-coordinator; do
  grep -q "$svc=$(cat "$RUN_DIR/$svc.pid")" <<<"$before" || fail "$svc was restarted"
done
[ "$after" != "$before" ] || fail "payment-service was not restarted"
curl -fsS "http://127.0.0.1:$PAYMENT_PORT/health/ready" >/dev/null || fail "payment-service not ready after restart"

log "test-up: down.sh stops it all"
scripts/down.sh > /dev/null 2>&1
for svc in "${SERVICES[@]}"; do
  ! port_open "$(service_port "$svc")" || fail "$svc still listening after down.sh"
done
log "test-up: ok"
