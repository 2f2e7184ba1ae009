#!/usr/bin/env bash
# Stops what scripts/up.sh started: the four services, and NATS (one server, or every node of the
# NATS_CLUSTER=3 cluster) and PostgreSQL if up.sh was the one that started them. Data stays
# (databases, the JetStream stores in $RUN_DIR/nats and $RUN_DIR/nats-N).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh
# shellcheck source=lib/stack.sh
source scripts/lib/stack.sh

stop_pid() { # stop_pid NAME PIDFILE
  local name=$1 file=$2
  if pid_alive "$file"; then
    local pid
    pid=$(cat "$file")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
      sleep 0.1
    done
  fi
  rm -f "$file"
}

for svc in "${SERVICES[@]}"; do
  stop_pid "$svc" "$RUN_DIR/$svc.pid"
done
stop_pid nats-server "$RUN_DIR/nats.pid"
# The nodes of a cluster (NATS_CLUSTER=3), all at once: each takes a moment to hand over its
# leaderships.
nodes=()
for file in "$RUN_DIR"/nats-[0-9]*.pid; do
  [ -e "$file" ] || continue
  nodes+=("$(basename "$file" .pid)")
done
for name in "${nodes[@]}"; do
  stop_pid "$name" "$RUN_DIR/$name.pid" &
done
wait
if [ -f "$RUN_DIR/postgres-started-by-up" ]; then
  cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p {print $1" "$2; exit}')
  if [ -n "$cluster" ]; then
    log "stopping PostgreSQL cluster $cluster"
    # shellcheck disable=SC2086
    as_root pg_ctlcluster $cluster stop || true
  fi
  rm -f "$RUN_DIR/postgres-started-by-up"
fi
log "stopped"
