//! `saga-load`: see `saga-load --help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let options = loadgen::Cli::parse().options();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(loadgen::run::run(options))
}
