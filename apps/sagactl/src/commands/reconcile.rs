//! `sagactl reconcile`: compare the four services' records now and re-send what settles each
//! disagreement, or list the last runs, over saga-coordinator's `/admin/reconcile`.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{next_page, s, short_time};
use crate::{Api, Service, query};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReconcileArgs {
    #[command(subcommand)]
    pub list: Option<ReconcileList>,
    /// Compare the records that changed from this time on (RFC 3339) [default: since the last
    /// run].
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ReconcileList {
    /// The last runs, newest first, with the disagreements each found and what it re-sent.
    List {
        /// Runs per page (1 to 100).
        #[arg(long)]
        limit: Option<u32>,
    },
}

pub(crate) async fn run(
    args: &ReconcileArgs,
    api: &Api<'_>,
    out: &mut String,
) -> anyhow::Result<()> {
    match args {
        ReconcileArgs { list: None, since } => {
            let url = api.url(Service::Saga, "/admin/reconcile");
            let body = since.as_ref().map(|since| json!({ "since": since }));
            api.post(url, body).await?.print(out, reconcile_run)
        }
        ReconcileArgs {
            list: Some(ReconcileList::List { limit }),
            ..
        } => {
            let q = query(&[("limit", limit.map(|l| l.to_string()))]);
            let url = api.url(Service::Saga, &format!("/admin/reconcile{q}"));
            api.get(url, false).await?.print(out, reconcile_runs)
        }
    }
}

/// One reconciliation run: what it compared, and each disagreement with what was done.
fn reconcile_run(run: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "run {} ({}) since {}: {} orders compared, {} mismatches{}",
        run["id"],
        s(&run["trigger"]),
        short_time(&run["since"]),
        run["checked"],
        run["mismatches"].as_array().map_or(0, Vec::len),
        run["error"]
            .as_str()
            .map(|e| format!("; stopped: {e}"))
            .unwrap_or_default()
    );
    for m in run["mismatches"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<26}  order {}  saga {}\n    {}\n    {}",
            s(&m["kind"]),
            s(&m["orderId"]),
            s(&m["sagaId"]),
            s(&m["detail"]),
            s(&m["action"])
        );
    }
}

fn reconcile_runs(value: &Value, out: &mut String) {
    for run in value["items"].as_array().into_iter().flatten() {
        reconcile_run(run, out);
    }
    next_page(value, out);
}
