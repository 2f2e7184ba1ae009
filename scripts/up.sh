#!/usr/bin/env bash
# Brings the whole system up on this machine: installs and starts NATS (JetStream) and PostgreSQL
# when they are missing or stopped, creates the databases, builds, starts the four services,
# waits until each is ready and prints where they listen. Running it again starts only what is
# not running. scripts/down.sh stops what it started.
#
# Settings (environment, with demo defaults): ADMIN_TOKEN, PAYMENT_SUCCESS_RATE (0.9),
# PAYMENT_SEED (0), PAYMENT_LATENCY_MS (0), SAGA_TIMEOUT_MS (30000), INVENTORY_AUTO_PROVISION
# (1000 in the demo), ORDER_PORT (3004), PAYMENT_PORT (3006), INVENTORY_PORT (3007), SAGA_PORT
# (3008), NATS_PORT (4222), PG_PORT (5432), PROFILE (release, or dev), RUN_DIR (.run),
# DB_PREFIX (saga_), RUST_LOG.
#
# NATS_CLUSTER=3 runs NATS as a three-node JetStream cluster instead of one server: nodes nats-1,
# nats-2, nats-3 with client ports NATS_PORT, +1, +2 (4222-4224), route ports NATS_ROUTE_PORT,
# +1, +2 (6222-6224) and monitoring ports NATS_MONITOR_PORT, +1, +2 (8222-8224), stores in
# $RUN_DIR/nats-N; the services connect to all three and create every stream with three
# replicas (NATS_STREAM_REPLICAS=3). A node that is not running is started again.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh
# shellcheck source=lib/stack.sh
source scripts/lib/stack.sh

ensure_rust
mkdir -p "$RUN_DIR"

# NATS: use the one on $NATS_PORT if there is one, else start ours with JetStream. Or, with
# NATS_CLUSTER=3, the three nodes of our cluster.
nats_started=()
if [ "$NATS_NODES" -gt 1 ]; then
  if pid_alive "$RUN_DIR/nats.pid"; then
    die "a single nats-server started by up.sh runs on $NATS_PORT; stop it first (scripts/down.sh). The cluster keeps its streams apart, so start it with a fresh DB_PREFIX too, or drop the databases"
  fi
  bin=$(nats_server_bin)
  routes=$(for i in $(seq 1 "$NATS_NODES"); do printf 'nats://127.0.0.1:%s\n' "$(nats_route_port "$i")"; done | paste -sd, -)
  for i in $(seq 1 "$NATS_NODES"); do
    name=$(nats_node_name "$i")
    port=$(nats_client_port "$i") route=$(nats_route_port "$i") monitor=$(nats_monitor_port "$i")
    if pid_alive "$RUN_DIR/$name.pid" && port_open "$port"; then
      log "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"
      continue
    fi
    for p in "$port" "$route" "$monitor"; do
      port_open "$p" && die "port $p (for $name) is taken by another process; set NATS_PORT, NATS_ROUTE_PORT or NATS_MONITOR_PORT"
    done
    log "starting $name (JetStream cluster node: client $port, route $route, monitoring $monitor)"
    rm -f "$RUN_DIR/$name.pid"
    # Its own session: a signal to this shell's process group does not reach it.
    setsid "$bin" -a 127.0.0.1 -p "$port" -n "$name" -js -sd "$RUN_DIR/$name" \
      --cluster_name saga --cluster "nats://127.0.0.1:$route" --routes "$routes" \
      -m "$monitor" -P "$RUN_DIR/$name.pid" -l "$RUN_DIR/$name.log" </dev/null >/dev/null 2>&1 &
    nats_started+=("$name")
  done
  for i in $(seq 1 "$NATS_NODES"); do
    name=$(nats_node_name "$i")
    wait_for 30 "$name" port_open "$(nats_client_port "$i")"
  done
  # JetStream answers once the nodes have elected a meta leader: under a second on a fresh
  # cluster, several seconds when all three start again on their stores.
  for i in $(seq 1 "$NATS_NODES"); do
    wait_for 60 "the JetStream meta leader seen by $(nats_node_name "$i")" \
      nats_sees_meta_leader "$(nats_monitor_port "$i")"
  done
  # Healthy: every stream and consumer replica of the node is current. A replica can take a
  # while after a restart; the services cope, so this waits a bounded time only.
  for i in $(seq 1 "$NATS_NODES"); do
    monitor=$(nats_monitor_port "$i")
    deadline=$((SECONDS + 30))
    until curl -fsS --max-time 2 "http://127.0.0.1:$monitor/healthz" >/dev/null 2>&1; do
      if [ $SECONDS -ge $deadline ]; then
        log "$(nats_node_name "$i") not healthy after 30s (http://127.0.0.1:$monitor/healthz); carrying on"
        break
      fi
      sleep 0.2
    done
  done
elif pid_alive "$RUN_DIR/nats-1.pid"; then
  die "the NATS cluster started by NATS_CLUSTER=3 scripts/up.sh runs here; run up.sh with NATS_CLUSTER=3, or stop it first (scripts/down.sh)"
elif port_open "$NATS_PORT"; then
  version=$(nats_version_on "$NATS_PORT")
  log "NATS already listening on $NATS_PORT (nats-server ${version:-of unknown version}): using it as it is"
  if [ -n "$version" ] && version_older "$version" 2.12.0; then
    log "warning: nats-server $version is out of support; the project runs $NATS_SERVER_VERSION (README, Before you start)"
  fi
else
  bin=$(nats_server_bin)
  log "starting nats-server (JetStream) on $NATS_PORT"
  nohup "$bin" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$RUN_DIR/nats" -l "$RUN_DIR/nats.log" >/dev/null 2>&1 &
  echo $! > "$RUN_DIR/nats.pid"
  wait_for 30 "nats-server" grep -q "Server is ready" "$RUN_DIR/nats.log"
fi

# PostgreSQL, and one database per service.
pg_was_ready=1
pg_ready || pg_was_ready=0
ensure_postgres
[ "$pg_was_ready" = 1 ] || touch "$RUN_DIR/postgres-started-by-up"
for db in orders payments inventory sagas; do
  name="${DB_PREFIX}${db}"
  if ! psql "$(pg_url postgres)" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    log "creating database $name"
    psql "$(pg_url postgres)" -qc "CREATE DATABASE \"$name\"" >/dev/null
  fi
done

# The admin token: given, or made once and kept; in $RUN_DIR/admin-token either way, so that
# TOKEN=$(cat .run/admin-token) works.
if [ -z "${ADMIN_TOKEN:-}" ]; then
  [ -s "$RUN_DIR/admin-token" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$RUN_DIR/admin-token"
  ADMIN_TOKEN=$(cat "$RUN_DIR/admin-token")
else
  printf '%s\n' "$ADMIN_TOKEN" > "$RUN_DIR/admin-token"
fi
chmod 600 "$RUN_DIR/admin-token"
export ADMIN_TOKEN

log "building ($PROFILE; the first build takes a few minutes, then seconds)"
if [ "$PROFILE" = release ]; then
  cargo build --release --locked "${PACKAGES[@]/#/-p}"
else
  cargo build --locked "${PACKAGES[@]/#/-p}"
fi

# What a service is started with (its settings), to tell later whether a running one differs.
service_settings() { # service_settings SERVICE
  printf 'PORT=%s\nDATABASE_URL=%s\nNATS_URL=%s\nADMIN_TOKEN_SHA=%s\n' "$(service_port "$1")" \
    "$(pg_url "${DB_PREFIX}$(service_db "$1")")" "$(nats_urls)" \
    "$(printf '%s' "$ADMIN_TOKEN" | sha256sum | cut -c1-12)"
  [ "$NATS_REPLICAS" = 1 ] || printf 'NATS_STREAM_REPLICAS=%s\n' "$NATS_REPLICAS"
  case "$1" in
    payment-service) printf 'PAYMENT_SUCCESS_RATE=%s\nPAYMENT_SEED=%s\nPAYMENT_LATENCY_MS=%s\n' \
      "${PAYMENT_SUCCESS_RATE:-0.9}" "${PAYMENT_SEED:-0}" "${PAYMENT_LATENCY_MS:-0}" ;;
    inventory-service) printf 'INVENTORY_AUTO_PROVISION=%s\n' "${INVENTORY_AUTO_PROVISION:-1000}" ;;
    saga-coordinator) printf 'SAGA_TIMEOUT_MS=%s\nORDER_SERVICE_URL=%s\nPAYMENT_SERVICE_URL=%s\nINVENTORY_SERVICE_URL=%s\n' \
      "${SAGA_TIMEOUT_MS:-30000}" "$(service_url order-service)" "$(service_url payment-service)" \
      "$(service_url inventory-service)" ;;
  esac
}

service_url() { printf 'http://127.0.0.1:%s' "$(service_port "$1")"; }

launch() { # launch SERVICE
  local svc=$1
  (
    export PORT DATABASE_URL
    PORT=$(service_port "$svc")
    DATABASE_URL=$(pg_url "${DB_PREFIX}$(service_db "$svc")")
    NATS_URL=$(nats_urls)
    export NATS_URL NATS_STREAM_REPLICAS="$NATS_REPLICAS"
    export PAYMENT_SUCCESS_RATE="${PAYMENT_SUCCESS_RATE:-0.9}" PAYMENT_SEED="${PAYMENT_SEED:-0}"
    export PAYMENT_LATENCY_MS="${PAYMENT_LATENCY_MS:-0}" SAGA_TIMEOUT_MS="${SAGA_TIMEOUT_MS:-30000}"
    export INVENTORY_AUTO_PROVISION="${INVENTORY_AUTO_PROVISION:-1000}"
    # The reconciliation reads the other three services.
    ORDER_SERVICE_URL=$(service_url order-service) PAYMENT_SERVICE_URL=$(service_url payment-service)
    INVENTORY_SERVICE_URL=$(service_url inventory-service)
    export ORDER_SERVICE_URL PAYMENT_SERVICE_URL INVENTORY_SERVICE_URL
    exec nohup "target/$TARGET_DIR/$svc" >> "$RUN_DIR/$svc.log" 2>&1
  ) &
  echo $! > "$RUN_DIR/$svc.pid"
  service_settings "$svc" > "$RUN_DIR/$svc.settings"
}

started=()
stale=()
for svc in "${SERVICES[@]}"; do
  port=$(service_port "$svc")
  if service_running "$svc"; then
    log "$svc already running (pid $(cat "$RUN_DIR/$svc.pid"))"
    if [ "target/$TARGET_DIR/$svc" -nt "$RUN_DIR/$svc.pid" ]; then
      stale+=("$svc runs an older build than target/$TARGET_DIR/$svc")
    fi
    if [ -f "$RUN_DIR/$svc.settings" ] && ! diff -q <(service_settings "$svc") "$RUN_DIR/$svc.settings" >/dev/null; then
      changed=$(diff <(service_settings "$svc") "$RUN_DIR/$svc.settings" | sed -n 's/^< \([A-Z_]*\)=.*/\1/p' | paste -sd, -)
      stale+=("$svc was started with other settings (${changed})")
    fi
    continue
  fi
  if port_open "$port"; then
    die "port $port is taken by another process; set $(port_var "$svc") to another port"
  fi
  log "starting $svc on $port"
  launch "$svc"
  started+=("$svc")
done

for svc in "${SERVICES[@]}"; do
  port=$(service_port "$svc")
  deadline=$((SECONDS + 90))
  relaunched=""
  until curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do
    if ! pid_alive "$RUN_DIR/$svc.pid"; then
      # Right after a cluster forms, a stream creation can time out although it went through:
      # a second start finds the streams in place.
      if [ "$NATS_NODES" -gt 1 ] && [ -z "$relaunched" ]; then
        log "$svc exited while starting ($(tail -n 1 "$RUN_DIR/$svc.log" 2>/dev/null || true)); starting it once more"
        relaunched=1
        launch "$svc"
        continue
      fi
      tail -n 20 "$RUN_DIR/$svc.log" >&2 || true
      die "$svc exited; see $RUN_DIR/$svc.log"
    fi
    [ $SECONDS -ge $deadline ] && die "$svc not ready after 90s; see $RUN_DIR/$svc.log"
    sleep 0.2
  done
done

echo
echo "The order saga is up${started[*]:+ (started: ${started[*]})}:"
for svc in "${SERVICES[@]}"; do
  printf '  %-18s http://127.0.0.1:%s   (pid %s, log %s)\n' "$svc" "$(service_port "$svc")" "$(cat "$RUN_DIR/$svc.pid")" "$RUN_DIR/$svc.log"
done
if [ "$NATS_NODES" -gt 1 ]; then
  leader=$(nats_meta_leader "$(nats_monitor_port 1)")
  echo "  NATS cluster       $(nats_urls) (nats-server $(nats_version_on "$(nats_client_port 1)"))"
  echo "                     (streams with $NATS_REPLICAS replicas; meta leader ${leader:-none yet}${nats_started[*]:+; started: ${nats_started[*]}})"
  for i in $(seq 1 "$NATS_NODES"); do
    name=$(nats_node_name "$i")
    printf '    %-16s client %s, route %s, monitoring http://127.0.0.1:%s   (pid %s, log %s)\n' "$name" \
      "$(nats_client_port "$i")" "$(nats_route_port "$i")" "$(nats_monitor_port "$i")" \
      "$(cat "$RUN_DIR/$name.pid" 2>/dev/null || echo '?')" "$RUN_DIR/$name.log"
  done
else
  echo "  NATS               nats://127.0.0.1:$NATS_PORT (nats-server $(nats_version_on "$NATS_PORT"))"
fi
echo "  PostgreSQL         127.0.0.1:$PG_PORT (databases ${DB_PREFIX}orders, ${DB_PREFIX}payments, ${DB_PREFIX}inventory, ${DB_PREFIX}sagas)"
echo "  admin token        $ADMIN_TOKEN"
echo
echo "Try: scripts/test-event-flow.sh    Dashboard: http://127.0.0.1:$(service_port saga-coordinator)/ui    Stop: scripts/down.sh"
if [ ${#stale[@]} -gt 0 ]; then
  echo
  for line in "${stale[@]}"; do echo "note: $line; to apply it: scripts/down.sh && scripts/up.sh"; done
fi
