//! `sagactl reconcile`: compare the four services' records now and re-send what settles each
//! disagreement, or list the last runs, over saga-coordinator's `/admin/reconcile`.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;

use super::{Page, Time};
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
            api.post(url, body).await?.print(out, run_text)
        }
        ReconcileArgs {
            list: Some(ReconcileList::List { limit }),
            ..
        } => {
            let q = query(&[("limit", limit.map(|l| l.to_string()))]);
            let url = api.url(Service::Saga, &format!("/admin/reconcile{q}"));
            api.get(url, false).await?.print(out, runs)
        }
    }
}

/// A reconciliation run: what it compared, and what it found.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    id: i64,
    /// SCHEDULE or OPERATOR.
    trigger: String,
    since: Time,
    /// Orders compared.
    checked: i64,
    /// Why the run stopped early, if it did.
    error: Option<String>,
    mismatches: Vec<Mismatch>,
}

/// A disagreement between the records, and what was done about it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mismatch {
    kind: String,
    order_id: String,
    saga_id: String,
    detail: String,
    action: String,
}

/// One reconciliation run: what it compared, and each disagreement with what was done.
fn run_text(run: &Run, out: &mut String) {
    let _ = writeln!(
        out,
        "run {} ({}) since {}: {} orders compared, {} mismatches{}",
        run.id,
        run.trigger,
        run.since.short(),
        run.checked,
        run.mismatches.len(),
        run.error
            .as_ref()
            .map(|e| format!("; stopped: {e}"))
            .unwrap_or_default()
    );
    for m in &run.mismatches {
        let _ = writeln!(
            out,
            "  {:<26}  order {}  saga {}\n    {}\n    {}",
            m.kind, m.order_id, m.saga_id, m.detail, m.action
        );
    }
}

fn runs(page: &Page<Run, i64>, out: &mut String) {
    for run in &page.items {
        run_text(run, out);
    }
    page.write_next(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_shows_each_mismatch_with_what_was_done() {
        let run: Run = serde_json::from_value(json!({
            "id": 3, "trigger": "OPERATOR", "actor": "token:abc",
            "since": "2026-11-29T12:00:00.123Z", "startedAt": "2026-11-29T12:05:00Z",
            "finishedAt": null, "checked": 12, "error": "order-service did not answer",
            "mismatches": [{"kind": "UNDO_NOT_HEARD", "orderId": "o", "sagaId": "s",
                            "detail": "payment REFUNDED", "action": "re-sent payment.refunded"}]
        }))
        .expect("a run sagactl reads");
        let mut out = String::new();
        run_text(&run, &mut out);
        assert_eq!(
            out,
            "run 3 (OPERATOR) since 2026-11-29 12:00:00: 12 orders compared, 1 mismatches; \
             stopped: order-service did not answer\n\
             \x20 UNDO_NOT_HEARD              order o  saga s\n    payment REFUNDED\n    \
             re-sent payment.refunded\n"
        );
    }
}
