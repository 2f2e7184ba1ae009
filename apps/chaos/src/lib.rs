//! `saga-chaos`: the fault-injection harness. It runs the four services (two instances each) as
//! processes under a steady order load while killing, restarting, duplicating and poisoning,
//! then checks every guarantee. With `--cluster`, NATS is a three-node JetStream cluster and its
//! nodes are faulted too. See `docs/reliability.md`.

pub mod harness;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "saga-chaos",
    version = build_info::VERSION,
    about = "Fault injection: runs the services under load while killing, restarting, \
             duplicating and poisoning, then checks every guarantee; exits non-zero, saying why, \
             if one does not hold."
)]
pub struct Cli {
    /// How long to inject faults, in minutes.
    #[arg(long, conflicts_with = "seconds")]
    pub minutes: Option<f64>,
    /// How long to inject faults, in seconds [default: 60].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Orders per second sent meanwhile.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Where the service binaries are (build them first).
    #[arg(long, default_value = "target/debug")]
    pub bin_dir: PathBuf,
    /// Write the report (JSON) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Run NATS as a three-node JetStream cluster, every stream with three replicas and every
    /// service connected to all three nodes, and add the cluster's faults: SIGKILL of a stream's
    /// leader, of the meta leader and of any node, a node stopped for longer than the saga
    /// deadline, and a rolling restart of all three.
    #[arg(long)]
    pub cluster: bool,
}

impl Cli {
    pub fn options(self) -> harness::Options {
        let seconds = self
            .minutes
            .map(|m| m * 60.0)
            .or(self.seconds)
            .unwrap_or(60.0);
        harness::Options {
            duration: Duration::from_secs_f64(seconds),
            rate: self.rate,
            bin_dir: self.bin_dir,
            report: self.report,
            cluster: self.cluster,
        }
    }
}
