//! `sagactl sagas`: a page of sagas, one saga as a timeline, the stats, and what an operator does
//! to a saga (retry its compensation, abort it), over saga-coordinator's `/sagas`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;

use super::{JsonFloat, Page, Time};
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
            api.get(url, false).await?.print(out, list)
        }
        Sagas::Show { id } => {
            let url = api.url(Service::Saga, &format!("/sagas/{}", encode(id)));
            api.get(url, false).await?.print(out, timeline)
        }
        Sagas::Stats { window } => {
            let q = query(&[("window", Some(window.clone()))]);
            let url = api.url(Service::Saga, &format!("/sagas/stats{q}"));
            api.get(url, false).await?.print(out, stats)
        }
        Sagas::Retry { id } => {
            let url = api.url(Service::Saga, &format!("/sagas/{}/retry", encode(id)));
            api.post(url, None).await?.print(out, acted)
        }
        Sagas::Abort { id, detail } => {
            let url = api.url(Service::Saga, &format!("/sagas/{}/abort", encode(id)));
            let body = json!({ "detail": detail });
            api.post(url, Some(body)).await?.print(out, acted)
        }
    }
}

/// A saga as saga-coordinator shows it: one of a page, one alone (with its history), or the saga
/// an operator just acted on.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saga {
    saga_id: String,
    order_id: String,
    status: String,
    reason: Option<String>,
    payment: Participant,
    inventory: Participant,
    deadline: Time,
    compensation_deadline: Option<Time>,
    trace_id: Option<String>,
    created_at: Time,
    /// The sagas of a page come without it.
    #[serde(default)]
    history: Vec<HistoryEntry>,
}

/// Where a participant stands, and the id of what it did (a payment's or a reservation's).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Participant {
    status: String,
    payment_id: Option<String>,
    reservation_id: Option<String>,
}

/// An event the saga saw or emitted, or an operator's action on it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryEntry {
    event_id: String,
    event_type: String,
    received_at: Time,
    actor: Option<String>,
    detail: Option<String>,
}

/// `GET /sagas/stats`: counts over all sagas, and the durations of those that ended in the window.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    window: String,
    by_status: BTreeMap<String, i64>,
    by_reason: BTreeMap<String, i64>,
    stuck: i64,
    in_flight: i64,
    ended: i64,
    duration: Durations,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Durations {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn list(page: &Page<Saga, String>, out: &mut String) {
    let _ = writeln!(
        out,
        "{:<36}  {:<12}  {:<21}  {:<20}  ORDER",
        "SAGA", "STATUS", "REASON", "CREATED"
    );
    for saga in &page.items {
        let _ = writeln!(
            out,
            "{:<36}  {:<12}  {:<21}  {:<20}  {}",
            saga.saga_id,
            saga.status,
            saga.reason.as_deref().unwrap_or("-"),
            saga.created_at.short(),
            saga.order_id
        );
    }
    page.write_next(out);
}

/// The saga as a timeline: each history entry with its time since the saga began.
fn timeline(saga: &Saga, out: &mut String) {
    let _ = writeln!(out, "saga       {}", saga.saga_id);
    let _ = writeln!(out, "order      {}", saga.order_id);
    let _ = writeln!(
        out,
        "status     {}{}",
        saga.status,
        saga.reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "payment    {} {}",
        saga.payment.status,
        saga.payment.payment_id.as_deref().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "inventory  {} {}",
        saga.inventory.status,
        saga.inventory.reservation_id.as_deref().unwrap_or("")
    );
    let _ = writeln!(out, "started    {}", saga.created_at);
    let _ = writeln!(out, "deadline   {}", saga.deadline);
    if let Some(deadline) = &saga.compensation_deadline {
        let _ = writeln!(out, "compensate by {deadline}");
    }
    if let Some(trace) = &saga.trace_id {
        let _ = writeln!(out, "trace      {trace}");
    }
    let _ = writeln!(out, "\ntimeline:");
    for entry in &saga.history {
        let offset = format!("+{:.3}s", entry.received_at.seconds_since(&saga.created_at));
        let mut line = format!("  {offset:>10}  {:<22}", entry.event_type);
        if let Some(actor) = &entry.actor {
            let _ = write!(line, "  by {actor}");
        }
        if let Some(detail) = &entry.detail {
            let _ = write!(line, "  \"{detail}\"");
        }
        let _ = write!(line, "  {}", entry.event_id);
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn stats(stats: &Stats, out: &mut String) {
    let _ = writeln!(out, "by status:");
    for (status, n) in &stats.by_status {
        let _ = writeln!(out, "  {status:<13} {n}");
    }
    let _ = writeln!(out, "by reason:");
    for (reason, n) in &stats.by_reason {
        let _ = writeln!(out, "  {reason:<22} {n}");
    }
    let _ = writeln!(
        out,
        "stuck: {}   in flight: {}",
        stats.stuck, stats.in_flight
    );
    let d = &stats.duration;
    let _ = writeln!(
        out,
        "ended in the last {}: {}   duration p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        stats.window,
        stats.ended,
        JsonFloat(d.p50_ms),
        JsonFloat(d.p90_ms),
        JsonFloat(d.p99_ms),
        JsonFloat(d.max_ms)
    );
}

fn acted(saga: &Saga, out: &mut String) {
    let _ = writeln!(out, "saga {} is now {}", saga.saga_id, saga.status);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<T: serde::de::DeserializeOwned>(
        json: serde_json::Value,
        text: fn(&T, &mut String),
    ) -> String {
        let mut out = String::new();
        text(
            &serde_json::from_value(json).expect("an answer sagactl reads"),
            &mut out,
        );
        out
    }

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
        let out = text(saga, timeline);
        assert!(out.contains("+0.010s  order.created"), "{out}");
        assert!(out.contains("+1.500s  operator.abort"), "{out}");
        assert!(out.contains("by token:abc  \"fraud\""), "{out}");
        assert!(out.contains("status     COMPENSATED (OPERATOR)"), "{out}");
        assert!(out.contains("started    2026-11-29T12:00:00Z\n"), "{out}");
    }

    #[test]
    fn stats_show_durations_as_the_api_wrote_them() {
        let stats_json = json!({
            "window": "15m", "byStatus": {"STARTED": 2, "COMPLETED": 5}, "byReason": {"TIMEOUT": 1},
            "stuck": 0, "inFlight": 2, "ended": 5,
            "duration": {"p50Ms": 0.0, "p90Ms": 12.5, "p99Ms": 40.0, "maxMs": 41.25},
            "endedPerMinute": []
        });
        assert_eq!(
            text(stats_json, stats),
            "by status:\n  COMPLETED     5\n  STARTED       2\nby reason:\n  TIMEOUT                1\n\
             stuck: 0   in flight: 2\n\
             ended in the last 15m: 5   duration p50 0.0 ms, p90 12.5 ms, p99 40.0 ms, max 41.25 ms\n"
        );
    }
}
