//! `saga-chaos`: the fault-injection harness. It runs the four services (two instances each) as
//! processes under a steady order load while killing, restarting, duplicating and poisoning,
//! then checks every guarantee. With `--cluster`, NATS is a three-node JetStream cluster and its
//! nodes are faulted too. See `docs/reliability.md`.

pub mod checks;
pub mod fault;
pub mod harness;
pub mod load;
mod outages;
pub mod procs;
pub mod upgrade;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::fault::Fault;

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
    /// The faults to inject, comma-separated, in this order, round after round until the time
    /// is up [default: every fault the mode takes].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Vec<Fault>,
    /// How long the faults that last are held: payment-service's database or the nats-server
    /// down, JetStream's store full, payment-service slow.
    #[arg(long, default_value_t = 60.0)]
    pub hold_seconds: f64,
}

impl Cli {
    /// The harness's options; a fault the mode cannot inject is refused, naming those it takes.
    pub fn options(self) -> anyhow::Result<harness::Options> {
        let seconds = self
            .minutes
            .map(|m| m * 60.0)
            .or(self.seconds)
            .unwrap_or(60.0);
        let faults = if self.faults.is_empty() {
            Fault::schedule(self.cluster).to_vec()
        } else {
            self.faults
        };
        fault::check_schedule(&faults, self.cluster).map_err(anyhow::Error::msg)?;
        if !(self.hold_seconds.is_finite() && self.hold_seconds > 0.0) {
            anyhow::bail!("--hold-seconds must be a positive number of seconds");
        }
        Ok(harness::Options {
            duration: Duration::from_secs_f64(seconds),
            rate: self.rate,
            bin_dir: self.bin_dir,
            report: self.report,
            cluster: self.cluster,
            faults,
            hold: Duration::from_secs_f64(self.hold_seconds),
        })
    }
}

/// `saga-upgrade`: the rolling upgrade of docs/upgrading.md, run by scripts/test-upgrade.sh.
#[derive(Debug, Parser)]
#[command(
    name = "saga-upgrade",
    version = build_info::VERSION,
    about = "Rolling upgrade under load: runs the four services (two instances each) on the \
             previous release, replaces one service at a time with the new release in an order \
             drawn from the seed, rolls one back and forward again, then checks every guarantee; \
             exits non-zero, saying why, if one does not hold."
)]
pub struct UpgradeCli {
    /// Where the previous release's service binaries are (scripts/test-upgrade.sh builds them).
    #[arg(long)]
    pub old_bin_dir: PathBuf,
    /// Where the new release's service binaries are.
    #[arg(long, default_value = "target/debug")]
    pub new_bin_dir: PathBuf,
    /// Orders per second, open loop, during the whole roll.
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,
    /// Draws the order of the services and the one rolled back [default: a random seed, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Orders confirmed before each step and cancelled after it, so that every step has sagas
    /// that began before it and end after it.
    #[arg(long, default_value_t = 5)]
    pub held: usize,
    /// Orders placed and ended on each mix of releases before the roll goes on (after each
    /// step; half as many while a service runs one instance of each release).
    #[arg(long, default_value_t = 100)]
    pub per_step: usize,
    /// Write the report (JSON) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// A setting (NAME=value) given to the new release's instances only. A rolling upgrade gives
    /// none; this shows what a change-over that breaks the contract does (PUBLISH_MAJORS=2 before
    /// every consumer knows the second major).
    #[arg(long, value_parser = setting)]
    pub new_env: Vec<(String, String)>,
}

fn setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("must be NAME=value".into()),
    }
}

impl UpgradeCli {
    pub fn options(self) -> upgrade::Options {
        upgrade::Options {
            old_bin_dir: self.old_bin_dir,
            new_bin_dir: self.new_bin_dir,
            rate: self.rate,
            seed: self.seed.unwrap_or_else(|| fastrand::u64(..1_000_000)),
            held: self.held,
            per_step: self.per_step,
            report: self.report,
            new_env: self.new_env,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("saga-chaos").chain(args.iter().copied()))
    }

    #[test]
    fn a_misspelt_fault_is_refused_when_the_command_line_is_read() {
        let e = cli(&["--faults", "poison,kill-order-servce"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(e.to_string().contains("kill-order-servce"), "{e}");
    }

    #[test]
    fn faults_are_injected_in_the_order_given_or_else_the_whole_schedule_of_the_mode() {
        let given = cli(&["--faults", "nats-down,poison,kill-order-service"])
            .unwrap()
            .options()
            .unwrap();
        assert_eq!(
            given.faults,
            [Fault::NatsDown, Fault::Poison, Fault::KillOrderService]
        );
        let single = cli(&[]).unwrap().options().unwrap();
        assert_eq!(single.faults, Fault::SCHEDULE);
        let cluster = cli(&["--cluster"]).unwrap().options().unwrap();
        assert_eq!(cluster.faults, Fault::CLUSTER_SCHEDULE);
    }

    #[test]
    fn a_fault_the_mode_cannot_inject_is_refused() {
        let e = cli(&["--faults", "kill-node"])
            .unwrap()
            .options()
            .unwrap_err();
        assert!(
            e.to_string().contains("kill-node cannot be injected"),
            "{e}"
        );
        assert!(
            cli(&["--cluster", "--faults", "nats-down"])
                .unwrap()
                .options()
                .is_err()
        );
    }
}
