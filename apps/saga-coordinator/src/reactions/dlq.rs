//! Copies every service's dead letters from the DLQ stream into the `dead_letters` table, where
//! operators list, replay and discard them. Each message is recorded once by its sequence in the
//! stream, so a redelivery changes nothing.

use anyhow::Context as _;
use async_nats::jetstream;
use messaging::RawHandler;
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::dlq::{self, Letter};

/// The durable consumer, on the DLQ stream, that the coordinator indexes it with.
pub const DURABLE: &str = "saga-coordinator-dlq-index";

#[derive(Clone)]
pub struct DlqIndex {
    pub pool: PgPool,
}

impl RawHandler for DlqIndex {
    async fn handle(&self, messages: &[jetstream::Message]) -> anyhow::Result<()> {
        let rows: Vec<Letter> = messages.iter().filter_map(entry).collect();
        let mut conn = self.pool.acquire().await.context("connecting")?;
        dlq::insert(&mut conn, &rows)
            .await
            .context("recording dead letters")
    }
}

/// A DLQ message as an entry: what the dead-lettering consumer said in its `Dlq-*` headers, the
/// original body, and the original headers.
fn entry(message: &jetstream::Message) -> Option<Letter> {
    let info = message.info().ok()?;
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let mut headers = Map::new();
    for (name, values) in message.headers.iter().flat_map(|h| h.iter()) {
        if messaging::consumer::kept_header(name.as_ref())
            && let Some(value) = values.first()
        {
            headers.insert(name.to_string(), Value::String(value.as_str().to_owned()));
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
    let published = info.published.unix_timestamp_nanos();
    Some(Letter {
        id: i64::try_from(info.stream_sequence).ok()?,
        consumer: header("Dlq-Consumer").unwrap_or_else(|| {
            message
                .subject
                .strip_prefix("dlq.")
                .unwrap_or(&message.subject)
                .to_owned()
        }),
        subject: header("Dlq-Subject").unwrap_or_default(),
        reason: header("Dlq-Reason").unwrap_or_else(|| "UNKNOWN".into()),
        detail: header("Dlq-Detail"),
        delivered: header("Dlq-Delivered").and_then(|d| d.parse().ok()),
        dead_lettered_at: chrono::DateTime::from_timestamp_nanos(
            i64::try_from(published).unwrap_or(i64::MAX),
        ),
        event_id: field("eventId").and_then(|id| Uuid::parse_str(&id).ok()),
        event_type: field("eventType"),
        payload: message.payload.to_vec(),
        headers: sqlx::types::Json(Value::Object(headers)),
    })
}
