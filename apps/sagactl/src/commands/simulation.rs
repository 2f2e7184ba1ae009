//! `sagactl simulation`: payment-service's simulated gateway, read and changed at run time for
//! every instance, over its `/admin/simulation`.

use std::fmt::Write as _;

use anyhow::bail;
use clap::Subcommand;
use serde::{Deserialize, Serialize};

use super::{JsonFloat, Time};
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
        Simulation::Get => api.get(url, true).await?.print(out, settings),
        Simulation::Set {
            success_rate,
            latency_ms,
            seed,
        } => {
            let change = Change {
                success_rate: *success_rate,
                latency_ms: *latency_ms,
                seed: *seed,
            };
            if change.success_rate.is_none() && change.latency_ms.is_none() && change.seed.is_none()
            {
                bail!("give at least one of --success-rate, --latency-ms and --seed");
            }
            let body = serde_json::to_value(&change)?;
            api.put(url, body).await?.print(out, settings)
        }
    }
}

/// `PUT /admin/simulation`: only the settings given change.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Change {
    #[serde(skip_serializing_if = "Option::is_none")]
    success_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

/// The settings in force, as payment-service shows them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    success_rate: f64,
    latency_ms: u64,
    seed: u64,
    updated_at: Time,
    updated_by: String,
}

fn settings(s: &Settings, out: &mut String) {
    let _ = writeln!(out, "success rate  {}", JsonFloat(s.success_rate));
    let _ = writeln!(out, "latency       {} ms", s.latency_ms);
    let _ = writeln!(out, "seed          {}", s.seed);
    let _ = writeln!(out, "set           {} by {}", s.updated_at, s.updated_by);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_sends_only_the_settings_given() {
        let change = Change {
            success_rate: Some(1.0),
            latency_ms: None,
            seed: Some(42),
        };
        assert_eq!(
            serde_json::to_value(&change).expect("json").to_string(),
            r#"{"seed":42,"successRate":1.0}"#
        );
    }

    #[test]
    fn the_settings_show_the_rate_as_the_api_wrote_it() {
        let s: Settings = serde_json::from_str(
            r#"{"successRate": 1.0, "latencyMs": 20, "seed": 42,
                "updatedAt": "2026-11-29T12:00:00.5Z", "updatedBy": "token:abc"}"#,
        )
        .expect("settings sagactl reads");
        let mut out = String::new();
        settings(&s, &mut out);
        assert_eq!(
            out,
            "success rate  1.0\nlatency       20 ms\nseed          42\n\
             set           2026-11-29T12:00:00.5Z by token:abc\n"
        );
    }
}
