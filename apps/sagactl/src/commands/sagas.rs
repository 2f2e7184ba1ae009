//! `sagactl sagas`: a page of sagas, one saga as a timeline, the stats, and what an operator does
//! to a saga (retry its compensation, abort it), over saga-coordinator's `/sagas`.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{next_page, s, short_time, time};
use crate::{Api, Service, encode, query};

#[derive(Debug, Subcommand)]
pub enum Sagas {
    /// A page of sagas, newest first; the filters combine.
    List(SagaFilter),
    /// One saga: participants, deadlines, and its history as a timeline.
    Show {
        /// The saga id.
        id: String,
    },
    /// Counts by status and reason, stuck and in-flight sagas, durations of those that ended.
    Stats {
        /// The window for ended sagas and durations: 1m to 24h, like 90s, 15m or 2h.
        #[arg(long, default_value = "15m")]
        window: String,
    },
    /// Ask every participant that still holds something to undo it again (a COMPENSATING or
    /// FAILED saga), with a fresh compensation deadline. Admin.
    Retry {
        /// The saga id.
        id: String,
    },
    /// Abort a STARTED saga now with reason OPERATOR: its order is cancelled and compensated.
    /// Admin.
    Abort {
        /// The saga id.
        id: String,
        /// Why (recorded in the saga's history, the order and the audit log).
        #[arg(long)]
        detail: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct SagaFilter {
    /// STARTED, COMPLETED, COMPENSATING, COMPENSATED or FAILED.
    #[arg(long)]
    pub status: Option<String>,
    /// The saga of this order.
    #[arg(long)]
    pub order_id: Option<String>,
    /// PAYMENT_FAILED, INVENTORY_UNAVAILABLE, TIMEOUT, CUSTOMER_REQUEST or OPERATOR.
    #[arg(long)]
    pub reason: Option<String>,
    /// Created at or after this RFC 3339 time.
    #[arg(long)]
    pub created_after: Option<String>,
    /// Created before this RFC 3339 time.
    #[arg(long)]
    pub created_before: Option<String>,
    /// Only sagas past a deadline that the sweep has not dealt with yet.
    #[arg(long)]
    pub stuck: bool,
    /// Sagas per page (1 to 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The page after this saga id (the `next` of the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
}

pub(crate) async fn run(command: &Sagas, api: &Api<'_>, out: &mut String) -> anyhow::Result<()> {
    match command {
        Sagas::List(f) => {
            let q = query(&[
                ("status", f.status.clone()),
                ("orderId", f.order_id.clone()),
                ("reason", f.reason.clone()),
                ("createdAfter", f.created_after.clone()),
                ("createdBefore", f.created_before.clone()),
                ("stuck", f.stuck.then(|| "true".to_owned())),
                ("limit", f.limit.map(|l| l.to_string())),
                ("cursor", f.cursor.clone()),
            ]);
            let url = api.url(Service::Saga, &format!("/sagas{q}"));
            api.get(url, false).await?.print(out, saga_list)
        }
        Sagas::Show { id } => {
            let url = api.url(Service::Saga, &format!("/sagas/{}", encode(id)));
            api.get(url, false).await?.print(out, saga_timeline)
        }
        Sagas::Stats { window } => {
            let q = query(&[("window", Some(window.clone()))]);
            let url = api.url(Service::Saga, &format!("/sagas/stats{q}"));
            api.get(url, false).await?.print(out, saga_stats)
        }
        Sagas::Retry { id } => {
            let url = api.url(Service::Saga, &format!("/sagas/{}/retry", encode(id)));
            api.post(url, None).await?.print(out, saga_acted)
        }
        Sagas::Abort { id, detail } => {
            let url = api.url(Service::Saga, &format!("/sagas/{}/abort", encode(id)));
            let body = json!({ "detail": detail });
            api.post(url, Some(body)).await?.print(out, saga_acted)
        }
    }
}

fn saga_list(value: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "{:<36}  {:<12}  {:<21}  {:<20}  ORDER",
        "SAGA", "STATUS", "REASON", "CREATED"
    );
    for saga in value["items"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<36}  {:<12}  {:<21}  {:<20}  {}",
            s(&saga["sagaId"]),
            s(&saga["status"]),
            s(&saga["reason"]),
            short_time(&saga["createdAt"]),
            s(&saga["orderId"])
        );
    }
    next_page(value, out);
}

/// The saga as a timeline: each history entry with its time since the saga began.
fn saga_timeline(saga: &Value, out: &mut String) {
    let _ = writeln!(out, "saga       {}", s(&saga["sagaId"]));
    let _ = writeln!(out, "order      {}", s(&saga["orderId"]));
    let _ = writeln!(
        out,
        "status     {}{}",
        s(&saga["status"]),
        saga["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "payment    {} {}",
        s(&saga["payment"]["status"]),
        saga["payment"]["paymentId"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "inventory  {} {}",
        s(&saga["inventory"]["status"]),
        saga["inventory"]["reservationId"].as_str().unwrap_or("")
    );
    let _ = writeln!(out, "started    {}", s(&saga["createdAt"]));
    let _ = writeln!(out, "deadline   {}", s(&saga["deadline"]));
    if let Some(deadline) = saga["compensationDeadline"].as_str() {
        let _ = writeln!(out, "compensate by {deadline}");
    }
    if let Some(trace) = saga["traceId"].as_str() {
        let _ = writeln!(out, "trace      {trace}");
    }
    let start = time(&saga["createdAt"]);
    let _ = writeln!(out, "\ntimeline:");
    for entry in saga["history"].as_array().into_iter().flatten() {
        let at = time(&entry["receivedAt"]);
        let offset = match (start, at) {
            (Some(start), Some(at)) => {
                format!("+{:.3}s", (at - start).num_milliseconds() as f64 / 1000.0)
            }
            _ => "?".into(),
        };
        let mut line = format!("  {offset:>10}  {:<22}", s(&entry["eventType"]));
        if let Some(actor) = entry["actor"].as_str() {
            let _ = write!(line, "  by {actor}");
        }
        if let Some(detail) = entry["detail"].as_str() {
            let _ = write!(line, "  \"{detail}\"");
        }
        let _ = write!(line, "  {}", s(&entry["eventId"]));
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn saga_stats(stats: &Value, out: &mut String) {
    let _ = writeln!(out, "by status:");
    for (status, n) in stats["byStatus"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "  {status:<13} {n}");
    }
    let _ = writeln!(out, "by reason:");
    for (reason, n) in stats["byReason"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "  {reason:<22} {n}");
    }
    let _ = writeln!(
        out,
        "stuck: {}   in flight: {}",
        stats["stuck"], stats["inFlight"]
    );
    let d = &stats["duration"];
    let _ = writeln!(
        out,
        "ended in the last {}: {}   duration p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        s(&stats["window"]),
        stats["ended"],
        d["p50Ms"],
        d["p90Ms"],
        d["p99Ms"],
        d["maxMs"]
    );
}

fn saga_acted(saga: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "saga {} is now {}",
        s(&saga["sagaId"]),
        s(&saga["status"])
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_shows_each_entry_relative_to_the_start() {
        let saga = json!({
            "sagaId": "s", "orderId": "o", "status": "COMPENSATED", "reason": "OPERATOR",
            "payment": {"status": "REFUNDED"}, "inventory": {"status": "RELEASED"},
            "createdAt": "2026-11-29T12:00:00Z", "deadline": "2026-11-29T12:00:30Z",
            "history": [
                {"eventId": "e1", "eventType": "order.created", "receivedAt": "2026-11-29T12:00:00.010Z"},
                {"eventId": "e2", "eventType": "operator.abort", "receivedAt": "2026-11-29T12:00:01.500Z",
                 "actor": "token:abc", "detail": "fraud"}
            ]
        });
        let mut out = String::new();
        saga_timeline(&saga, &mut out);
        assert!(out.contains("+0.010s  order.created"), "{out}");
        assert!(out.contains("+1.500s  operator.abort"), "{out}");
        assert!(out.contains("by token:abc  \"fraud\""), "{out}");
        assert!(out.contains("status     COMPENSATED (OPERATOR)"), "{out}");
    }
}
