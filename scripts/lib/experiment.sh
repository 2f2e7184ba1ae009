# What the experiment scripts share: a release build of the services and saga-load, the
# environment of a stack of their own (scripts/up.sh on the given ports, PUBLISH_MAJORS=2 as in
# scripts/bench.sh), taking a stack down with its databases, and running saga-load against it.
# shellcheck shell=bash

# experiment_setup ORDER_PORT NATS_PORT: builds, and exports the stack's settings; the other
# services listen on ORDER_PORT+2, +3 and +4.
experiment_setup() {
  ensure_rust
  ensure_postgres
  log "building (release)"
  cargo build --release --locked -q -p order-service -p payment-service -p inventory-service -p saga-coordinator -p loadgen
  export PROFILE=release ADMIN_TOKEN=experiment PAYMENT_SUCCESS_RATE=0.9 PAYMENT_SEED=1
  export INVENTORY_AUTO_PROVISION=0 PUBLISH_MAJORS=2 PG_APP_USER PG_APP_PASSWORD PG_PORT
  export ORDER_PORT=$1 PAYMENT_PORT=$(($1 + 2)) INVENTORY_PORT=$(($1 + 3)) SAGA_PORT=$(($1 + 4))
  export NATS_PORT=$2
  export RUN_DIR DB_PREFIX
}

# experiment_drop_stack: stops the stack of $RUN_DIR and drops its databases (${DB_PREFIX}*).
experiment_drop_stack() {
  scripts/down.sh >/dev/null 2>&1 || true
  for db in orders payments inventory sagas; do
    psql "$(pg_url postgres)" -qc "DROP DATABASE IF EXISTS \"${DB_PREFIX}$db\"" >/dev/null 2>&1 || true
  done
}

# experiment_load OUT NAME SAGA-LOAD-ARGS...: saga-load against the stack, its report in
# OUT/NAME.json and its output in OUT/NAME.txt; stops the script if it fails.
experiment_load() {
  local out=$1 name=$2
  shift 2
  target/release/saga-load "$@" --no-check --products 100 --expected-rate 0.9 --json "$out/$name.json" \
    --order-url "http://127.0.0.1:$ORDER_PORT" --payment-url "http://127.0.0.1:$PAYMENT_PORT" \
    --inventory-url "http://127.0.0.1:$INVENTORY_PORT" --saga-url "http://127.0.0.1:$SAGA_PORT" \
    --nats-url "nats://127.0.0.1:$NATS_PORT" --admin-token "$ADMIN_TOKEN" > "$out/$name.txt" 2>&1 \
    || { tail -5 "$out/$name.txt"; die "saga-load failed in $name"; }
}
