//! What `--version` of every binary says: the release (the workspace version; docs/releases.md
//! lists each release with its commit) and the commit it was built from.

/// The release: `0.2.0`.
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// The commit built, twelve hex digits (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("BUILD_INFO_COMMIT");

/// `0.2.0 (commit 1a2b3c4d5e6f)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_INFO_COMMIT"),
    ")"
);
