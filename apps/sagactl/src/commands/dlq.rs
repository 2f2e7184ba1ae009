//! `sagactl dlq`: every service's dead letters, over saga-coordinator's `/dlq`: a page of them,
//! one with its original message and headers, and what an operator does to them (replay one or
//! every one matching a filter, discard one).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Page, Time};
use crate::{Api, Service, query};

#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// A page of dead letters, oldest first; the filters combine.
    List(DlqFilter),
    /// One dead letter, with the original message and its headers.
    Show {
        /// The entry id (its sequence in the DLQ stream).
        id: i64,
    },
    /// Publish dead letters again to their original subject, for the consumer that failed:
    /// one by id, or every DEAD entry matching a filter. Admin.
    Replay {
        /// The entry id; or give a filter instead.
        id: Option<i64>,
        /// Replay every DEAD entry of this consumer.
        #[arg(long, conflicts_with = "id")]
        consumer: Option<String>,
        /// Replay every DEAD entry of this original subject.
        #[arg(long, conflicts_with = "id")]
        subject: Option<String>,
        /// Replay every DEAD entry dead-lettered for this reason.
        #[arg(long, conflicts_with = "id")]
        reason: Option<String>,
    },
    /// Mark a dead letter DISCARDED: nothing is published. Admin.
    Discard {
        /// The entry id.
        id: i64,
        /// Why (recorded with the entry and in the audit log).
        #[arg(long)]
        detail: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct DlqFilter {
    /// The durable consumer that dead-lettered it, e.g. payment-service-order-created-v1.
    #[arg(long)]
    pub consumer: Option<String>,
    /// The original subject, e.g. order.created.v1.
    #[arg(long)]
    pub subject: Option<String>,
    /// MALFORMED, UNKNOWN_EVENT_TYPE, UNKNOWN_VERSION, INVALID_PAYLOAD, SUBJECT_MISMATCH,
    /// REJECTED or RETRIES_EXHAUSTED.
    #[arg(long)]
    pub reason: Option<String>,
    /// DEAD, REPLAYED or DISCARDED.
    #[arg(long)]
    pub status: Option<String>,
    /// Entries per page (1 to 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The page after this id (the `next` of the previous page).
    #[arg(long)]
    pub cursor: Option<i64>,
}

pub(crate) async fn run(command: &Dlq, api: &Api<'_>, out: &mut String) -> anyhow::Result<()> {
    match command {
        Dlq::List(f) => {
            let q = query(&[
                ("consumer", f.consumer.clone()),
                ("subject", f.subject.clone()),
                ("reason", f.reason.clone()),
                ("status", f.status.clone()),
                ("limit", f.limit.map(|l| l.to_string())),
                ("cursor", f.cursor.map(|c| c.to_string())),
            ]);
            let url = api.url(Service::Saga, &format!("/dlq{q}"));
            api.get(url, false).await?.print(out, list)
        }
        Dlq::Show { id } => {
            let url = api.url(Service::Saga, &format!("/dlq/{id}"));
            api.get(url, false).await?.print(out, entry)
        }
        Dlq::Replay {
            id: Some(id),
            consumer: None,
            subject: None,
            reason: None,
        } => {
            let url = api.url(Service::Saga, &format!("/dlq/{id}/replay"));
            api.post(url, None).await?.print(out, entry)
        }
        Dlq::Replay {
            id: None,
            consumer,
            subject,
            reason,
        } => {
            if consumer.is_none() && subject.is_none() && reason.is_none() {
                bail!("give an entry id, or at least one of --consumer, --subject and --reason");
            }
            let url = api.url(Service::Saga, "/dlq/replay");
            let body = json!({ "consumer": consumer, "subject": subject, "reason": reason });
            api.post(url, Some(body)).await?.print(out, replayed)
        }
        Dlq::Replay { .. } => bail!("give an entry id or a filter, not both"),
        Dlq::Discard { id, detail } => {
            let url = api.url(Service::Saga, &format!("/dlq/{id}/discard"));
            let body = json!({ "detail": detail });
            api.post(url, Some(body)).await?.print(out, entry)
        }
    }
}

/// A dead letter as saga-coordinator shows it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetter {
    id: i64,
    status: String,
    consumer: String,
    subject: String,
    reason: String,
    detail: Option<String>,
    delivered: Option<i64>,
    dead_lettered_at: Time,
    event_id: Option<String>,
    event_type: Option<String>,
    status_changed_by: Option<String>,
    status_changed_at: Option<Time>,
    status_detail: Option<String>,
    /// The original message's headers, name to value (an entry shown alone has them).
    headers: Option<BTreeMap<String, String>>,
    /// The original message's body: JSON when it parses, else its text. Any message can be
    /// dead-lettered, so this stays untyped.
    payload: Value,
}

/// `POST /dlq/replay`: how many entries matched and were replayed.
#[derive(Debug, Deserialize)]
struct Replayed {
    replayed: u64,
}

fn list(page: &Page<DeadLetter, i64>, out: &mut String) {
    let _ = writeln!(
        out,
        "{:>6}  {:<9}  {:<42}  {:<20}  {:<18}  DEAD-LETTERED",
        "ID", "STATUS", "CONSUMER", "SUBJECT", "REASON"
    );
    // The header pads ID to 6 columns but the rows never have (sagactl used to write the id as
    // a JSON value, which ignores the width): kept so, as these lines are what people and
    // scripts already read.
    for d in &page.items {
        let _ = writeln!(
            out,
            "{}  {:<9}  {:<42}  {:<20}  {:<18}  {}",
            d.id,
            d.status,
            d.consumer,
            d.subject,
            d.reason,
            d.dead_lettered_at.short()
        );
    }
    page.write_next(out);
}

/// One dead letter: a line for each field it has, then its headers and its payload.
fn entry(d: &DeadLetter, out: &mut String) {
    let fields = [
        ("id", Some(d.id.to_string())),
        ("status", Some(d.status.clone())),
        ("consumer", Some(d.consumer.clone())),
        ("subject", Some(d.subject.clone())),
        ("reason", Some(d.reason.clone())),
        ("detail", d.detail.clone()),
        ("delivered", d.delivered.map(|n| n.to_string())),
        ("dead-lettered", Some(d.dead_lettered_at.to_string())),
        ("event id", d.event_id.clone()),
        ("event type", d.event_type.clone()),
        ("status by", d.status_changed_by.clone()),
        (
            "status at",
            d.status_changed_at.as_ref().map(Time::to_string),
        ),
        ("note", d.status_detail.clone()),
    ];
    for (label, value) in fields {
        if let Some(value) = value {
            let _ = writeln!(out, "{label:<14} {value}");
        }
    }
    if let Some(headers) = &d.headers {
        let _ = writeln!(out, "headers:");
        for (name, value) in headers {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
    let _ = writeln!(
        out,
        "payload:\n{}",
        serde_json::to_string_pretty(&d.payload).unwrap_or_default()
    );
}

fn replayed(replayed: &Replayed, out: &mut String) {
    let _ = writeln!(out, "replayed {} dead letter(s)", replayed.replayed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_shows_the_fields_it_has_its_headers_and_its_payload() {
        let d: DeadLetter = serde_json::from_value(json!({
            "id": 7, "consumer": "payment-service-order-created-v1", "subject": "order.created.v1",
            "reason": "RETRIES_EXHAUSTED", "detail": null, "delivered": 5,
            "deadLetteredAt": "2026-11-29T12:00:00Z", "eventId": null, "eventType": null,
            "status": "REPLAYED", "payload": {"b": [1, 2]},
            "statusChangedAt": "2026-11-29T12:01:00Z", "statusChangedBy": "token:abc",
            "headers": {"Nats-Msg-Id": "m-1", "Dlq-Original-X": "x"}
        }))
        .expect("an entry sagactl reads");
        let mut out = String::new();
        entry(&d, &mut out);
        assert_eq!(
            out,
            "id             7\n\
             status         REPLAYED\n\
             consumer       payment-service-order-created-v1\n\
             subject        order.created.v1\n\
             reason         RETRIES_EXHAUSTED\n\
             delivered      5\n\
             dead-lettered  2026-11-29T12:00:00Z\n\
             status by      token:abc\n\
             status at      2026-11-29T12:01:00Z\n\
             headers:\n  Dlq-Original-X: x\n  Nats-Msg-Id: m-1\n\
             payload:\n{\n  \"b\": [\n    1,\n    2\n  ]\n}\n"
        );
    }
}
