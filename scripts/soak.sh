#!/usr/bin/env bash
# The long form of the fault-injection suite: the four services, two instances each, under a
# steady order load while services are killed, NATS and PostgreSQL restarted, payment-service's
# database and the nats-server kept down, JetStream's store filled, payment-service slowed, every
# event delivered twice and poison fed; then every guarantee is checked (see
# docs/reliability.md). With --cluster, NATS is a three-node JetStream cluster (streams with three
# replicas) and its nodes are killed, stopped and restarted too.
#
#   scripts/soak.sh --minutes N [--rate ORDERS_PER_S] [--profile release|dev] [--report FILE]
#                   [--cluster] [--faults F1,F2,...] [--hold-seconds S]
#
# --faults takes the names of `saga-chaos --help` (default: every fault of the mode, in turn);
# --hold-seconds is how long the lasting faults last (default 60). The binaries are built in
# $CARGO_TARGET_DIR when it is set, else in target/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh

minutes=10 rate=20 profile=release report="" cluster="" faults="" hold=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --cluster) cluster=1; shift ;;
    --faults) faults=$2; shift 2 ;;
    --hold-seconds) hold=$2; shift 2 ;;
    *) die "unknown argument $1 (see the top of scripts/soak.sh)" ;;
  esac
done
ensure_rust
export NATS_SERVER_BIN
NATS_SERVER_BIN=$(nats_server_bin)
command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
packages=(-p order-service -p payment-service -p inventory-service -p saga-coordinator -p chaos)
target="${CARGO_TARGET_DIR:-target}"
if [ "$profile" = release ]; then
  cargo build --release --locked -q "${packages[@]}"; dir=$target/release
else
  cargo build --locked -q "${packages[@]}"; dir=$target/debug
fi
args=(--minutes "$minutes" --rate "$rate" --bin-dir "$dir")
[ -n "$report" ] && args+=(--report "$report")
[ -n "$cluster" ] && args+=(--cluster)
[ -n "$faults" ] && args+=(--faults "$faults")
[ -n "$hold" ] && args+=(--hold-seconds "$hold")
exec "$dir/saga-chaos" "${args[@]}"
