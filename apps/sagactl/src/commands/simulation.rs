//! `sagactl simulation`: payment-service's simulated gateway, read and changed at run time for
//! every instance, over its `/admin/simulation`.

use std::fmt::Write as _;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use super::s;
use crate::{Api, Service};

#[derive(Debug, Subcommand)]
pub enum Simulation {
    /// The settings in force. Admin.
    Get,
    /// Change the settings from the next charge on, for every instance. Admin.
    Set {
        /// The share of charges approved, 0 to 1.
        #[arg(long)]
        success_rate: Option<f64>,
        /// The gateway's answer time in milliseconds (0 to 10000).
        #[arg(long)]
        latency_ms: Option<u64>,
        /// The seed of the gateway's decisions.
        #[arg(long)]
        seed: Option<u64>,
    },
}

pub(crate) async fn run(
    command: &Simulation,
    api: &Api<'_>,
    out: &mut String,
) -> anyhow::Result<()> {
    let url = api.url(Service::Payment, "/admin/simulation");
    match command {
        Simulation::Get => api.get(url, true).await?.print(out, simulation),
        Simulation::Set {
            success_rate,
            latency_ms,
            seed,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(rate) = success_rate {
                body.insert("successRate".into(), json!(rate));
            }
            if let Some(ms) = latency_ms {
                body.insert("latencyMs".into(), json!(ms));
            }
            if let Some(seed) = seed {
                body.insert("seed".into(), json!(seed));
            }
            if body.is_empty() {
                bail!("give at least one of --success-rate, --latency-ms and --seed");
            }
            let body = Value::Object(body);
            api.put(url, body).await?.print(out, simulation)
        }
    }
}

fn simulation(value: &Value, out: &mut String) {
    let _ = writeln!(out, "success rate  {}", value["successRate"]);
    let _ = writeln!(out, "latency       {} ms", value["latencyMs"]);
    let _ = writeln!(out, "seed          {}", value["seed"]);
    let _ = writeln!(
        out,
        "set           {} by {}",
        s(&value["updatedAt"]),
        s(&value["updatedBy"])
    );
}
