//! `saga-upgrade`: see `saga-upgrade --help` and docs/upgrading.md.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let options = chaos::UpgradeCli::parse().options();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(chaos::upgrade::run(options))
}
