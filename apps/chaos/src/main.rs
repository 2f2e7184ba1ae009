//! `saga-chaos`: see `saga-chaos --help` and docs/reliability.md.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let options = chaos::Cli::parse().options()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(chaos::harness::run(options))
}
