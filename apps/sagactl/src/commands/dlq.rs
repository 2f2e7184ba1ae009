//! `sagactl dlq`: every service's dead letters, over saga-coordinator's `/dlq`: a page of them,
//! one with its original message and headers, and what an operator does to them (replay one or
//! every one matching a filter, discard one).

use std::fmt::Write as _;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{next_page, s, short_time};
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
            api.get(url, false).await?.print(out, dlq_list)
        }
        Dlq::Show { id } => {
            let url = api.url(Service::Saga, &format!("/dlq/{id}"));
            api.get(url, false).await?.print(out, dlq_entry)
        }
        Dlq::Replay {
            id: Some(id),
            consumer: None,
            subject: None,
            reason: None,
        } => {
            let url = api.url(Service::Saga, &format!("/dlq/{id}/replay"));
            api.post(url, None).await?.print(out, dlq_entry)
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
            api.post(url, Some(body)).await?.print(out, dlq_replayed)
        }
        Dlq::Replay { .. } => bail!("give an entry id or a filter, not both"),
        Dlq::Discard { id, detail } => {
            let url = api.url(Service::Saga, &format!("/dlq/{id}/discard"));
            let body = json!({ "detail": detail });
            api.post(url, Some(body)).await?.print(out, dlq_entry)
        }
    }
}

fn dlq_list(value: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "{:>6}  {:<9}  {:<42}  {:<20}  {:<18}  DEAD-LETTERED",
        "ID", "STATUS", "CONSUMER", "SUBJECT", "REASON"
    );
    for d in value["items"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:>6}  {:<9}  {:<42}  {:<20}  {:<18}  {}",
            d["id"],
            s(&d["status"]),
            s(&d["consumer"]),
            s(&d["subject"]),
            s(&d["reason"]),
            short_time(&d["deadLetteredAt"])
        );
    }
    next_page(value, out);
}

fn dlq_entry(d: &Value, out: &mut String) {
    for (label, key) in [
        ("id", "id"),
        ("status", "status"),
        ("consumer", "consumer"),
        ("subject", "subject"),
        ("reason", "reason"),
        ("detail", "detail"),
        ("delivered", "delivered"),
        ("dead-lettered", "deadLetteredAt"),
        ("event id", "eventId"),
        ("event type", "eventType"),
        ("status by", "statusChangedBy"),
        ("status at", "statusChangedAt"),
        ("note", "statusDetail"),
    ] {
        let v = &d[key];
        if !v.is_null() {
            let shown = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            let _ = writeln!(out, "{label:<14} {shown}");
        }
    }
    if let Some(headers) = d["headers"].as_object() {
        let _ = writeln!(out, "headers:");
        for (name, value) in headers {
            let _ = writeln!(out, "  {name}: {}", s(value));
        }
    }
    let _ = writeln!(
        out,
        "payload:\n{}",
        serde_json::to_string_pretty(&d["payload"]).unwrap_or_default()
    );
}

fn dlq_replayed(value: &Value, out: &mut String) {
    let _ = writeln!(out, "replayed {} dead letter(s)", value["replayed"]);
}
