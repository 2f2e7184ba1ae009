#!/usr/bin/env bash
# Runs every check and test of the workspace. Installs and starts what the tests need when it is
# missing: the pinned nats-server (scripts/lib/infra.sh; each test starts its own on a free port)
# and PostgreSQL.
#
#   scripts/test.sh              formatting, clippy, then every test
#   scripts/test.sh <filter>     only tests whose name contains <filter>
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/infra.sh
source scripts/lib/infra.sh

ensure_rust
export NATS_SERVER_BIN NATS_SERVER_DEBIAN_BIN
NATS_SERVER_BIN=$(nats_server_bin)
log "nats-server: $NATS_SERVER_BIN ($("$NATS_SERVER_BIN" --version 2>&1 | head -1))"
# The release the rolling-upgrade test (tests/e2e/tests/e2e/cluster.rs) upgrades a cluster from.
NATS_SERVER_DEBIAN_BIN=$(nats_server_debian_bin) || log "no nats-server 2.9.10 here: the rolling-upgrade test skips"

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  ensure_postgres
  export TEST_DATABASE_URL
  TEST_DATABASE_URL=$(pg_url postgres)
fi
# The tests' databases (each test makes its own, named test_<uuid>): those left by earlier runs
# are dropped first, and this run's once every test has passed. A failed run leaves its own for a
# look; while they stay, the server's autovacuum visits each of them every minute, beside
# whatever runs next (a benchmark, say).
drop_test_databases() {
  psql "$TEST_DATABASE_URL" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'" 2>/dev/null \
    | while read -r db; do [ -n "$db" ] && psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1; done || true
}
drop_test_databases

if [ $# -eq 0 ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets --locked -q -- -D warnings
fi
log "building"
cargo build --workspace --all-targets --locked -q
log "compatibility gate: event schemas and OpenAPI documents against the last release (docs/compatibility.md)"
target/debug/compat-gate
if [ $# -eq 0 ]; then
  log "scripts/up.sh, test-event-flow.sh and down.sh on a fresh set of ports"
  scripts/test-up.sh
  log "NATS_CLUSTER=3 scripts/up.sh: three nodes, a node killed and started again"
  scripts/test-up-cluster.sh
  log "rolling upgrade from the last release under load, one service at a time (docs/upgrading.md)"
  scripts/test-upgrade.sh
  log "schemathesis against every service's OpenAPI document"
  scripts/test-api.sh
  log "fault injection, short form (docs/reliability.md; scripts/soak.sh is the long form)"
  target/debug/saga-chaos --seconds 60 --rate 15 --bin-dir target/debug > /dev/null
  log "fault injection: the lasting faults, 10 s each (scripts/soak.sh holds them 60 s)"
  target/debug/saga-chaos --seconds 60 --rate 15 --bin-dir target/debug --hold-seconds 10 \
    --faults payment-db-down,restart-postgresql-cleanly,nats-down,store-full,slow-payment > /dev/null
fi
ensure_browser
log "running tests"
cargo test --workspace --locked -q -- "$@"
log "every test passed: dropping this run's test databases"
drop_test_databases
