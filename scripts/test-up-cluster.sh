#!/usr/bin/env bash
# Proves NATS_CLUSTER=3 scripts/up.sh on this machine: three JetStream nodes and the four
# services connected to all three, every stream with three replicas, orders confirmed and
# cancelled and none pending; a second up.sh changes nothing; a killed node is started again,
# alone, and orders still flow; down.sh stops every node. It uses its own free ports, run
# directory and databases, so a stack already running here is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh
export NATS_CLUSTER=3
# shellcheck source=lib/stack.sh
source scripts/lib/stack.sh

fail() { printf 'test-up-cluster: FAILED: %s\n' "$*" >&2; exit 1; }

export RUN_DIR PROFILE=dev DB_PREFIX NATS_PORT NATS_ROUTE_PORT NATS_MONITOR_PORT
export ORDER_PORT PAYMENT_PORT INVENTORY_PORT SAGA_PORT
RUN_DIR=$(mktemp -d)
DB_PREFIX="upcluster_$RANDOM"_
# One block of thirteen: ports drawn one call at a time could coincide, none being bound yet.
base=$(free_port 13)
NATS_PORT=$base NATS_ROUTE_PORT=$((base + 3)) NATS_MONITOR_PORT=$((base + 6))
ORDER_PORT=$((base + 9)) PAYMENT_PORT=$((base + 10)) INVENTORY_PORT=$((base + 11))
SAGA_PORT=$((base + 12))
export PAYMENT_SUCCESS_RATE=0.7 ADMIN_TOKEN=test-up-token

cleanup() {
  scripts/down.sh >/dev/null 2>&1 || true
  for db in orders payments inventory sagas; do
    psql "$(pg_url postgres)" -qc "DROP DATABASE IF EXISTS \"${DB_PREFIX}$db\"" >/dev/null 2>&1 || true
  done
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

pids() {
  for svc in "${SERVICES[@]}" nats-1 nats-2 nats-3; do printf '%s=%s ' "$svc" "$(cat "$RUN_DIR/$svc.pid")"; done
}
flow() { # flow N: N orders, some confirmed, some cancelled, none pending
  local out confirmed cancelled pending
  out=$(scripts/test-event-flow.sh "$1") || { echo "$out"; fail "orders left pending"; }
  echo "$out"
  confirmed=$(sed -n 's/.*confirmed: \([0-9]*\).*/\1/p' <<<"$out")
  cancelled=$(sed -n 's/.*cancelled: \([0-9]*\).*/\1/p' <<<"$out")
  pending=$(sed -n 's/.*pending: \([0-9]*\).*/\1/p' <<<"$out")
  [ "${confirmed:-0}" -gt 0 ] || fail "no order confirmed"
  [ "${cancelled:-0}" -gt 0 ] || fail "no order cancelled"
  [ "${pending:-1}" -eq 0 ] || fail "$pending orders pending"
}

log "test-up-cluster: NATS_CLUSTER=3 up.sh"
scripts/up.sh > "$RUN_DIR/up1.out" 2>&1 || { cat "$RUN_DIR/up1.out"; fail "up.sh failed"; }
for i in 1 2 3; do
  grep -q "nats-$i .*client $((NATS_PORT + i - 1)), route $((NATS_ROUTE_PORT + i - 1))" "$RUN_DIR/up1.out" \
    || { cat "$RUN_DIR/up1.out"; fail "up.sh did not print node nats-$i"; }
done
for svc in "${SERVICES[@]}"; do
  grep -q "NATS_URL=$(nats_urls)" "$RUN_DIR/$svc.settings" || fail "$svc is not connected to all three nodes"
  curl -fsS "http://127.0.0.1:$(service_port "$svc")/health/ready" >/dev/null || fail "$svc not ready"
done
# Every stream has three replicas (what each node's monitoring reports).
for i in 1 2 3; do
  jsz=$(curl -fsS "http://127.0.0.1:$((NATS_MONITOR_PORT + i - 1))/jsz?accounts=true&streams=true&config=true" | tr -d ' \n')
  for stream in ORDERS PAYMENTS INVENTORY SAGAS DLQ; do
    grep -q "\"config\":{\"name\":\"$stream\",[^}]*\"num_replicas\":3," <<<"$jsz" \
      || fail "nats-$i does not hold stream $stream with three replicas"
  done
done

log "test-up-cluster: test-event-flow.sh"
flow 30

log "test-up-cluster: up.sh again changes nothing"
before=$(pids)
scripts/up.sh > "$RUN_DIR/up2.out" 2>&1 || { cat "$RUN_DIR/up2.out"; fail "second up.sh failed"; }
[ "$(pids)" = "$before" ] || fail "second up.sh restarted something: $before -> $(pids)"

log "test-up-cluster: a killed node is started again, alone"
kill -9 "$(cat "$RUN_DIR/nats-2.pid")"
scripts/up.sh > "$RUN_DIR/up3.out" 2>&1 || { cat "$RUN_DIR/up3.out"; fail "third up.sh failed"; }
grep -q "started: nats-2)" "$RUN_DIR/up3.out" || { cat "$RUN_DIR/up3.out"; fail "nats-2 was not the only node started"; }
grep -q "The order saga is up:" "$RUN_DIR/up3.out" || { cat "$RUN_DIR/up3.out"; fail "a service was started again"; }
after=$(pids)
for name in "${SERVICES[@]}" nats-1 nats-3; do
  grep -q "$name=$(cat "$RUN_DIR/$name.pid")" <<<"$before" || fail "$name was restarted"
done
[ "$after" != "$before" ] || fail "nats-2 was not restarted"
flow 10

log "test-up-cluster: down.sh stops every node"
scripts/down.sh > /dev/null 2>&1
for i in 1 2 3; do
  ! port_open $((NATS_PORT + i - 1)) || fail "nats-$i still listening after down.sh"
done
for svc in "${SERVICES[@]}"; do
  ! port_open "$(service_port "$svc")" || fail "$svc still listening after down.sh"
done
log "test-up-cluster: ok"
