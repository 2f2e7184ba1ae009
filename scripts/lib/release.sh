# The previous release, built from its own worktree into its own target directory, cached
# between runs. Sourced by scripts/test-upgrade.sh (and anything else that needs the last
# release's binaries); needs infra.sh's log and die.

RELEASES_CACHE="${RELEASES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/order-saga/releases}"

# The commit of the last release listed in docs/releases.md (the last row of its first table
# whose commit is a hash).
last_release_commit() {
  awk -F'|' '
    /^\| version \| commit \|/ { table = 1; next }
    table && /^\| *---/ { next }
    table && /^\|/ { c = $3; gsub(/ /, "", c); if (c ~ /^[0-9a-f]+$/) last = c; next }
    table { table = 0 }
    END { print last }
  ' docs/releases.md
}

# Builds the four services of release commit $1 and prints the directory of its binaries.
# The worktree lives in $RELEASES_CACHE/<full hash>, its target directory inside it; a built
# release is reused as it is.
release_bin_dir() {
  local commit full dir bins="order-service payment-service inventory-service saga-coordinator"
  commit=$1
  full=$(git rev-parse --verify -q "$commit^{commit}") \
    || die "release $commit is not in this clone's history (a shallow clone? fetch it with git fetch --unshallow)"
  dir="$RELEASES_CACHE/$full"
  if [ ! -f "$dir/.built" ]; then
    if [ ! -d "$dir" ] || ! git -C "$dir" rev-parse --verify -q HEAD >/dev/null 2>&1; then
      rm -rf "$dir"
      git worktree prune
      mkdir -p "$RELEASES_CACHE"
      git worktree add --detach -f "$dir" "$full" >/dev/null 2>&1 \
        || die "could not check out release $commit into $dir"
    fi
    # Most of what the release needs is this tree's build already: the dependencies the two
    # lock files share, at the same versions and features. Cargo names each artifact by a hash
    # of those, so hard links of this tree's artifacts let it build only what differs (the
    # workspace's own crates, a dependency that changed), into its own target directory.
    if [ ! -d "$dir/target/debug/deps" ] && [ -d target/debug/deps ]; then
      mkdir -p "$dir/target/debug"
      cp -al target/debug/deps target/debug/build target/debug/.fingerprint "$dir/target/debug/" 2>/dev/null || true
    fi
    log "building release $commit in $dir (once: the build is kept for later runs)"
    local packages=()
    for b in $bins; do packages+=(-p "$b"); done
    (cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo build --locked -q "${packages[@]}") \
      || die "building release $commit failed"
    touch "$dir/.built"
  fi
  for b in $bins; do
    [ -x "$dir/target/debug/$b" ] || die "release $commit: $dir/target/debug/$b missing"
  done
  printf '%s\n' "$dir/target/debug"
}
