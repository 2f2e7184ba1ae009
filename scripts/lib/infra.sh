# Shared by scripts/test.sh and scripts/up.sh: install and start what the system needs, only
# when it is missing or stopped. Debian packages, via apt-get. Sourced, not run.

PG_PORT="${PG_PORT:-5432}"
PG_APP_USER="${PG_APP_USER:-saga}"
PG_APP_PASSWORD="${PG_APP_PASSWORD:-saga}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    die "need root to run: $*"
  fi
}

APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

# Prints the path of nats-server, installing the Debian package when there is none.
nats_server_bin() {
  local candidate
  for candidate in "${NATS_SERVER_BIN:-}" "$(command -v nats-server 2>/dev/null)" /usr/sbin/nats-server /usr/local/bin/nats-server; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then printf '%s\n' "$candidate"; return 0; fi
  done
  apt_install nats-server >&2
  [ -x /usr/sbin/nats-server ] || die "nats-server not found after installing it"
  printf '%s\n' /usr/sbin/nats-server
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [ $SECONDS -ge $deadline ] && die "$what not ready after ${seconds}s"
    sleep 0.2
  done
}

# Makes PostgreSQL answer on 127.0.0.1:$PG_PORT, and an app role that may create databases.
ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    apt_install postgresql
  fi
  if ! pg_ready; then
    local cluster
    cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p {print $1" "$2; exit}')
    if [ -z "$cluster" ]; then
      if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
        log "creating a PostgreSQL cluster"
        local version
        version=$(ls /usr/lib/postgresql | sort -V | tail -1)
        as_root pg_createcluster "$version" main -p "$PG_PORT" >/dev/null
        cluster="$version main"
      else
        die "no PostgreSQL cluster on port $PG_PORT (pg_lsclusters shows others); set PG_PORT"
      fi
    fi
    log "starting PostgreSQL cluster $cluster"
    # shellcheck disable=SC2086
    as_root pg_ctlcluster $cluster start || true
    wait_for 60 "PostgreSQL on port $PG_PORT" pg_ready
  fi
  if PGPASSWORD="$PG_APP_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_APP_USER" -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    return 0
  fi
  log "creating PostgreSQL role $PG_APP_USER"
  as_root runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -q -d postgres <<SQL >/dev/null \
    || die "could not create role $PG_APP_USER (is this PostgreSQL managed by Debian's postgres user?)"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_APP_USER') THEN
    CREATE ROLE "$PG_APP_USER" LOGIN CREATEDB PASSWORD '$PG_APP_PASSWORD';
  ELSE
    ALTER ROLE "$PG_APP_USER" LOGIN CREATEDB PASSWORD '$PG_APP_PASSWORD';
  END IF;
END \$\$;
SQL
}

pg_url() { # pg_url DATABASE
  printf 'postgres://%s:%s@127.0.0.1:%s/%s\n' "$PG_APP_USER" "$PG_APP_PASSWORD" "$PG_PORT" "$1"
}

# What the dashboard's browser test needs (tests/e2e/tests/dashboard.rs): Debian's Chromium, and
# tests/ui's npm packages (playwright-core, which brings no browser), installed again when
# package-lock.json is newer than what is installed.
ensure_browser() {
  [ -x /usr/bin/chromium ] || apt_install chromium
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    || die "node and npm not found: install Node.js 20 or later (tests/ui)"
  if [ ! -f tests/ui/node_modules/.package-lock.json ] \
    || [ tests/ui/package-lock.json -nt tests/ui/node_modules/.package-lock.json ]; then
    log "npm ci (tests/ui)"
    (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci in tests/ui failed"
  fi
}

# Cargo, with the toolchain rust-toolchain.toml names. On a machine whose rustup has that Rust
# version only under the name "stable" (and no network to fetch it by its number), use stable.
ensure_rust() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs)"
  local pinned
  pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml 2>/dev/null || true)
  if [ -n "$pinned" ] && command -v rustup >/dev/null 2>&1 \
      && ! rustup toolchain list 2>/dev/null | grep -q "^$pinned-"; then
    if rustc +stable --version 2>/dev/null | grep -q "^rustc $pinned "; then
      export RUSTUP_TOOLCHAIN=stable
    else
      log "rust-toolchain.toml asks for Rust $pinned; rustup will install it"
    fi
  fi
}
