# The four services as scripts/up.sh and scripts/down.sh run them. Sourced, not run.

RUN_DIR="${RUN_DIR:-.run}"
NATS_PORT="${NATS_PORT:-4222}"
DB_PREFIX="${DB_PREFIX:-saga_}"
PROFILE="${PROFILE:-release}"
case "$PROFILE" in
  release) TARGET_DIR=release ;;
  dev|debug) TARGET_DIR=debug ;;
  *) echo "PROFILE must be release or dev" >&2; exit 1 ;;
esac
# NATS_CLUSTER unset (or 1): one nats-server on $NATS_PORT. NATS_CLUSTER=3: a three-node
# JetStream cluster, nodes nats-1..nats-3 on client ports NATS_PORT..NATS_PORT+2, route ports
# NATS_ROUTE_PORT..+2 (default NATS_PORT+2000: 6222..6224) and monitoring ports
# NATS_MONITOR_PORT..+2 (default NATS_PORT+4000: 8222..8224), every stream with three replicas.
NATS_CLUSTER="${NATS_CLUSTER:-1}"
case "$NATS_CLUSTER" in
  1) NATS_NODES=1 ;;
  3) NATS_NODES=3 ;;
  *) echo "NATS_CLUSTER must be 3 (a three-node cluster), or unset for one server" >&2; exit 1 ;;
esac
NATS_ROUTE_PORT="${NATS_ROUTE_PORT:-$((NATS_PORT + 2000))}"
NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-$((NATS_PORT + 4000))}"
NATS_REPLICAS=$NATS_NODES
SERVICES=(order-service payment-service inventory-service saga-coordinator)
PACKAGES=("${SERVICES[@]}")

port_var() {
  case "$1" in
    order-service) echo ORDER_PORT ;;
    payment-service) echo PAYMENT_PORT ;;
    inventory-service) echo INVENTORY_PORT ;;
    saga-coordinator) echo SAGA_PORT ;;
  esac
}

service_port() {
  case "$1" in
    order-service) echo "${ORDER_PORT:-3004}" ;;
    payment-service) echo "${PAYMENT_PORT:-3006}" ;;
    inventory-service) echo "${INVENTORY_PORT:-3007}" ;;
    saga-coordinator) echo "${SAGA_PORT:-3008}" ;;
  esac
}

service_db() {
  case "$1" in
    order-service) echo orders ;;
    payment-service) echo payments ;;
    inventory-service) echo inventory ;;
    saga-coordinator) echo sagas ;;
  esac
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port p such that p .. p+n-1 are free (n is 1 unless given), for a stack of a test's own. It
# is drawn from 20000 up to the kernel's ephemeral range (ip_local_port_range), where outgoing
# connections take their source ports: a port picked inside that range could be taken by a
# connection between the pick and the bind (a service once failed so, "Address already in use").
# Draw every port a stack needs in one call: two calls can return the same port, since nothing
# binds it until the stack starts (test-up's saga-coordinator once drew nats-server's port).
free_port() {
  local n=${1:-1} lo=20000 hi p i
  hi=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || hi=32768
  [ "${hi:-0}" -gt $((lo + 1000)) ] || { lo=1024; hi=${hi:-32768}; }
  for _ in $(seq 50); do
    p=$((lo + RANDOM % (hi - lo - n)))
    for ((i = 0; i < n; i++)); do port_open $((p + i)) && continue 2; done
    echo "$p"
    return
  done
  printf 'no %s free port(s) between %s and %s\n' "$n" "$lo" "$hi" >&2
  return 1
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Running, and answering on its port.
service_running() {
  pid_alive "$RUN_DIR/$1.pid" && curl -fsS "http://127.0.0.1:$(service_port "$1")/health/live" >/dev/null 2>&1
}

# The nodes of the cluster (NATS_CLUSTER=3): nats-1, nats-2, nats-3.
nats_node_name() { echo "nats-$1"; }
nats_client_port() { echo $((NATS_PORT + $1 - 1)); }
nats_route_port() { echo $((NATS_ROUTE_PORT + $1 - 1)); }
nats_monitor_port() { echo $((NATS_MONITOR_PORT + $1 - 1)); }

# The services' NATS_URL: the one server, or every node of the cluster.
nats_urls() {
  local i urls=()
  for i in $(seq 1 "$NATS_NODES"); do urls+=("nats://127.0.0.1:$(nats_client_port "$i")"); done
  (IFS=,; echo "${urls[*]}")
}

# The meta leader a node's monitoring endpoint reports (empty while there is none).
nats_meta_leader() { # nats_meta_leader MONITOR_PORT
  curl -fsS --max-time 2 "http://127.0.0.1:$1/jsz" 2>/dev/null | tr -d ' \n' \
    | sed -n 's/.*"meta_cluster":{[^}]*"leader":"\([^"]*\)".*/\1/p'
}
nats_sees_meta_leader() { [ -n "$(nats_meta_leader "$1")" ]; }

# The version a NATS server on 127.0.0.1:PORT announces in its INFO line (empty if none answers).
nats_version_on() { # nats_version_on PORT
  # shellcheck disable=SC2016
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r -t 2 line <&3 && printf "%s\n" "$line"' _ "$1" \
    2>/dev/null | sed -n 's/.*"version":"\([^"]*\)".*/\1/p'
}

# Whether version $1 is older than $2 (both as nats-server prints them, without the v).
version_older() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }
