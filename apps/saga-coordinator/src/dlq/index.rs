//! Copies every service's dead letters from the DLQ stream into the `dead_letters` table, where
//! operators list, replay and discard them. Each message is recorded once by its sequence in the
//! stream, so a redelivery changes nothing.

use anyhow::Context as _;
use async_nats::jetstream;
use messaging::RawHandler;
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::store::{self as dlq, Letter};

/// The durable consumer, on the DLQ stream, that the coordinator indexes it with.
pub const DURABLE: &str = "saga-coordinator-dlq-index";

#[derive(Clone)]
pub struct DlqIndex {
    pub pool: PgPool,
}

impl RawHandler for DlqIndex {
    async fn handle(&self, messages: &[jetstream::Message]) -> anyhow::Result<()> {
        let rows: Vec<Letter> = messages.iter().map(entry).collect();
        let mut conn = self.pool.acquire().await.context("connecting")?;
        dlq::insert(&mut conn, &rows)
            .await
            .context("recording dead letters")
    }
}

/// A DLQ message as an entry: what the dead-lettering consumer said in its `Dlq-*` headers, the
/// original body, and the original headers (`Nats-Msg-Id` included). Every message becomes an
/// entry: one whose place in the stream cannot be read (not a JetStream delivery) is kept under
/// a negative id of its own, with the reason `UNPARSEABLE`, for an operator to see.
fn entry(message: &jetstream::Message) -> Letter {
    let info = message.info().ok();
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let copy = message
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .flat_map(|(name, values)| values.iter().map(move |v| (name.as_ref(), v.as_str())));
    // A header sent with several values shows them joined by ", ", as HTTP joins them.
    let mut headers: Map<String, Value> = Map::new();
    for (name, value) in messaging::consumer::original_headers(copy) {
        match headers.get_mut(&name) {
            Some(Value::String(first)) => {
                first.push_str(", ");
                first.push_str(&value);
            }
            _ => {
                headers.insert(name, Value::String(value));
            }
        }
    }
    let envelope: Option<Value> = serde_json::from_slice(&message.payload).ok();
    let field = |name: &str| {
        envelope
            .as_ref()
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let now = chrono::Utc::now();
    let (id, dead_lettered_at) = match info
        .as_ref()
        .and_then(|i| Some((i64::try_from(i.stream_sequence).ok()?, i)))
    {
        Some((id, i)) => {
            let published = i64::try_from(i.published.unix_timestamp_nanos()).unwrap_or(i64::MAX);
            (id, chrono::DateTime::from_timestamp_nanos(published))
        }
        None => {
            tracing::warn!(subject = %message.subject, "a DLQ message without its place in the stream: kept as UNPARSEABLE");
            (-now.timestamp_nanos_opt().unwrap_or(i64::MAX).max(1), now)
        }
    };
    let reason = match info {
        Some(_) => header("Dlq-Reason").unwrap_or_else(|| "UNKNOWN".into()),
        None => "UNPARSEABLE".into(),
    };
    Letter {
        id,
        consumer: header("Dlq-Consumer").unwrap_or_else(|| {
            message
                .subject
                .strip_prefix("dlq.")
                .unwrap_or(&message.subject)
                .to_owned()
        }),
        subject: header("Dlq-Subject").unwrap_or_default(),
        reason,
        detail: header("Dlq-Detail"),
        delivered: header("Dlq-Delivered").and_then(|d| d.parse().ok()),
        dead_lettered_at,
        event_id: field("eventId").and_then(|id| Uuid::parse_str(&id).ok()),
        event_type: field("eventType"),
        payload: message.payload.to_vec(),
        headers: sqlx::types::Json(Value::Object(headers)),
    }
}
