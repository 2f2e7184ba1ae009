//! `saga-load`: drives orders into a running system (`scripts/up.sh`) and reports what happened.
//! Open loop (`--rate`) sends at a fixed rate whatever the latency; closed loop
//! (`--concurrency`) keeps that many POSTs in flight: each task sends its next order as soon as
//! the last was accepted, without waiting for it to end. A refusal (503 with `Retry-After`) is
//! counted apart from failures, and the same order is sent again after the time it names. Each
//! order's end is the moment its `order.confirmed` or `order.cancelled` event is seen on NATS.

pub mod run;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "saga-load",
    version = build_info::VERSION,
    about = "Drives orders into a running system and reports throughput, latencies, outcomes, \
             the payment success share and the invariant check."
)]
pub struct Cli {
    /// Open loop: send this many orders per second, whatever the latency.
    #[arg(long, conflicts_with = "concurrency")]
    pub rate: Option<f64>,
    /// Closed loop: keep this many POSTs in flight, each task sending its next order once the
    /// last was accepted [default: 8 when --rate is not given].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Stop after this many orders [default: 1000 when --seconds is not given].
    #[arg(long, conflicts_with = "seconds")]
    pub orders: Option<u64>,
    /// Stop sending after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Products the orders pick from.
    #[arg(long, default_value_t = 50)]
    pub products: usize,
    /// Stock set for each product before the run.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub stock: i64,
    /// The payment success rate the gateway is set to, to compare the observed share with.
    #[arg(long)]
    pub expected_rate: Option<f64>,
    /// Write the full report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a one-line summary to this file.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Skip the invariant check at the end.
    #[arg(long)]
    pub no_check: bool,
    /// Seed of the order generator: the same seed makes the same orders (which product,
    /// quantity and price the nth order has).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "http://127.0.0.1:3004")]
    pub order_url: String,
    #[arg(long, default_value = "http://127.0.0.1:3006")]
    pub payment_url: String,
    #[arg(long, default_value = "http://127.0.0.1:3007")]
    pub inventory_url: String,
    #[arg(long, default_value = "http://127.0.0.1:3008")]
    pub saga_url: String,
    /// NATS, where the orders' ends are watched.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The admin token (to set stock) [default: the file .run/admin-token, if there is one].
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Idempotency-Keys <prefix>-0, <prefix>-1, ...: the same orders in every run.
    #[arg(long)]
    pub key_prefix: Option<String>,
    /// How long to wait for the last orders to end, in seconds.
    #[arg(long, default_value_t = 90.0)]
    pub settle_seconds: f64,
}

impl Cli {
    pub fn options(self) -> run::Options {
        let mode = match (self.rate, self.concurrency) {
            (Some(rate), _) => run::Mode::Open { rate },
            (None, Some(concurrency)) => run::Mode::Closed { concurrency },
            (None, None) => run::Mode::Closed { concurrency: 8 },
        };
        let stop = match (self.orders, self.seconds) {
            (_, Some(seconds)) => run::Stop::Duration(Duration::from_secs_f64(seconds)),
            (Some(orders), None) => run::Stop::Orders(orders),
            (None, None) => run::Stop::Orders(1000),
        };
        let admin_token = self.admin_token.or_else(|| {
            std::fs::read_to_string(".run/admin-token")
                .ok()
                .map(|t| t.trim().to_owned())
        });
        run::Options {
            mode,
            stop,
            products: self.products,
            stock: self.stock,
            expected_rate: self.expected_rate,
            json: self.json,
            summary: self.summary,
            check: !self.no_check,
            seed: self.seed,
            order_url: self.order_url,
            payment_url: self.payment_url,
            inventory_url: self.inventory_url,
            saga_url: self.saga_url,
            nats_url: self.nats_url,
            admin_token,
            settle: Duration::from_secs_f64(self.settle_seconds),
            key_prefix: self.key_prefix,
        }
    }
}
