//! `saga-load`: drives orders into a running system (`scripts/up.sh`) and reports what happened.
//!
//! ```text
//! saga-load (--rate R | --concurrency C) (--orders N | --seconds S) [--products P] [--stock N]
//!           [--expected-rate X] [--json FILE] [--summary FILE] [--no-check] [--seed N]
//!           [--order-url U] [--payment-url U] [--inventory-url U] [--saga-url U] [--nats-url U]
//!           [--admin-token T]   (default: $ADMIN_TOKEN, else .run/admin-token)
//!           [--key-prefix P]    (Idempotency-Keys P-0, P-1, ...: the same orders in every run)
//!           [--settle-seconds S] (how long to wait for the last ends, default 90)
//! ```
//! Open loop (`--rate`) sends at a fixed rate whatever the latency; closed loop (`--concurrency`)
//! keeps C orders in flight. Each order's end is the moment its `order.confirmed` or
//! `order.cancelled` event is seen on NATS.

mod run;
mod stats;

use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let mut o = run::Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--rate" => {
                o.mode = run::Mode::Open {
                    rate: value()?.parse()?,
                }
            }
            "--concurrency" => {
                o.mode = run::Mode::Closed {
                    concurrency: value()?.parse()?,
                }
            }
            "--orders" => o.stop = run::Stop::Orders(value()?.parse()?),
            "--seconds" => o.stop = run::Stop::Duration(Duration::from_secs_f64(value()?.parse()?)),
            "--products" => o.products = value()?.parse()?,
            "--stock" => o.stock = value()?.parse()?,
            "--expected-rate" => o.expected_rate = Some(value()?.parse()?),
            "--json" => o.json = Some(value()?.into()),
            "--summary" => o.summary = Some(value()?.into()),
            "--no-check" => o.check = false,
            "--seed" => o.seed = value()?.parse()?,
            "--order-url" => o.order_url = value()?,
            "--payment-url" => o.payment_url = value()?,
            "--inventory-url" => o.inventory_url = value()?,
            "--saga-url" => o.saga_url = value()?,
            "--nats-url" => o.nats_url = value()?,
            "--admin-token" => o.admin_token = Some(value()?),
            "--key-prefix" => o.key_prefix = Some(value()?),
            "--settle-seconds" => o.settle = Duration::from_secs_f64(value()?.parse()?),
            other => {
                anyhow::bail!("unknown argument {other}; see the top of apps/loadgen/src/main.rs")
            }
        }
    }
    if o.admin_token.is_none() {
        o.admin_token = std::env::var("ADMIN_TOKEN")
            .ok()
            .or_else(|| std::fs::read_to_string(".run/admin-token").ok())
            .map(|t| t.trim().to_owned());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run::run(o))
}
