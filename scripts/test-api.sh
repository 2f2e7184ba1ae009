#!/usr/bin/env bash
# Property-based API testing: schemathesis (PyPI) generates requests from each service's served
# OpenAPI document (GET /openapi.json) against a stack of its own (scripts/up.sh on free ports,
# its own run directory and databases), and fails on any 5xx and on any response that does not
# conform to the document (status code, content type, body schema).
#
#   scripts/test-api.sh [examples per operation, default 40]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh
# shellcheck source=lib/stack.sh
source scripts/lib/stack.sh

EXAMPLES="${1:-40}"
SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis

fail() { printf 'test-api: FAILED: %s\n' "$*" >&2; exit 1; }

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

export RUN_DIR PROFILE=dev DB_PREFIX NATS_PORT ORDER_PORT PAYMENT_PORT INVENTORY_PORT SAGA_PORT
RUN_DIR=$(mktemp -d)
DB_PREFIX="apitest_$RANDOM"_
# One block of five: ports drawn one call at a time could coincide, none being bound yet.
base=$(free_port 5)
NATS_PORT=$base ORDER_PORT=$((base + 1)) PAYMENT_PORT=$((base + 2))
INVENTORY_PORT=$((base + 3)) SAGA_PORT=$((base + 4))
export ADMIN_TOKEN=test-api-token INVENTORY_AUTO_PROVISION=1000

cleanup() {
  scripts/down.sh >/dev/null 2>&1 || true
  for db in orders payments inventory sagas; do
    psql "$(pg_url postgres)" -qc "DROP DATABASE IF EXISTS \"${DB_PREFIX}$db\"" >/dev/null 2>&1 || true
  done
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

log "test-api: a stack of its own"
scripts/up.sh > "$RUN_DIR/up.out" 2>&1 || { cat "$RUN_DIR/up.out"; fail "up.sh failed"; }

failed=()
for svc in "${SERVICES[@]}"; do
  port=$(service_port "$svc")
  log "test-api: schemathesis against $svc ($EXAMPLES examples per operation)"
  # Run from the run directory: schemathesis writes its own files where it runs.
  if ! (cd "$RUN_DIR" && "$OLDPWD/$VENV/bin/st" run "http://127.0.0.1:$port/openapi.json" \
      --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
      --max-examples "$EXAMPLES" --seed 42 --generation-database none --no-color \
      -H "Authorization: Bearer $ADMIN_TOKEN" > "$RUN_DIR/st-$svc.out" 2>&1); then
    sed -n '/^___/,/^=* SUMMARY/p' "$RUN_DIR/st-$svc.out" >&2
    failed+=("$svc")
  fi
  grep -E "generated, .* passed|passed|failures" "$RUN_DIR/st-$svc.out" | tail -1 >&2 || true
done
for svc in "${SERVICES[@]}"; do
  grep -qi "panicked\|handler panicked" "$RUN_DIR/$svc.log" && failed+=("$svc (a handler panicked; see its log)")
done
[ ${#failed[@]} -eq 0 ] || fail "${failed[*]}"
log "test-api: ok"
