//! `saga-chaos`: the fault-injection harness. See `docs/reliability.md`.
//!
//! ```text
//! saga-chaos [--minutes N | --seconds N] [--rate ORDERS_PER_S] [--bin-dir target/debug] [--report FILE]
//! ```
//! Exits non-zero, saying why, if any guarantee does not hold.

mod harness;

use std::path::PathBuf;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let mut options = harness::Options {
        duration: Duration::from_secs(60),
        rate: 20.0,
        bin_dir: PathBuf::from("target/debug"),
        report: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--minutes" => {
                options.duration = Duration::from_secs_f64(value()?.parse::<f64>()? * 60.0)
            }
            "--seconds" => options.duration = Duration::from_secs_f64(value()?.parse()?),
            "--rate" => options.rate = value()?.parse()?,
            "--bin-dir" => options.bin_dir = value()?.into(),
            "--report" => options.report = Some(value()?.into()),
            other => {
                anyhow::bail!("unknown argument {other}; see the top of apps/chaos/src/main.rs")
            }
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(harness::run(options))
}
