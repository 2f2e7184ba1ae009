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

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Running, and answering on its port.
service_running() {
  pid_alive "$RUN_DIR/$1.pid" && curl -fsS "http://127.0.0.1:$(service_port "$1")/health/live" >/dev/null 2>&1
}
