//! The envelope every event travels in, and decoding it from the wire.
//!
//! Decoding is tolerant where the contract says it must be (unknown fields are ignored, so a
//! producer may add a field within a major version) and strict everywhere else: an event type or
//! major version this build does not know is a typed error, never a guess.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::events::{Event, EventKind};
use crate::trace_context::TraceParent;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<P = Event> {
    /// Unique per event; also the `Nats-Msg-Id` header and the inbox key of every consumer.
    pub event_id: Uuid,
    pub event_type: String,
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    /// The saga the event belongs to.
    pub correlation_id: Uuid,
    /// The event that caused this one, if any.
    pub causation_id: Option<Uuid>,
    pub producer: String,
    pub payload: P,
    /// The trace the event belongs to. Not part of the envelope on the wire: it travels as the
    /// message's `traceparent` header, and is stored beside the event in the outbox.
    #[serde(skip)]
    pub trace: Option<TraceParent>,
}

/// Why bytes from the wire are not an event this build can handle.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not an event envelope: {0}")]
    Malformed(String),
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("unknown major version {version} of {event_type}")]
    UnknownVersion { event_type: String, version: u32 },
    #[error("invalid {subject} payload: {error}")]
    InvalidPayload {
        subject: &'static str,
        error: String,
    },
}

impl DecodeError {
    /// A short stable code for dead-letter headers and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Malformed(_) => "MALFORMED",
            DecodeError::UnknownEventType(_) => "UNKNOWN_EVENT_TYPE",
            DecodeError::UnknownVersion { .. } => "UNKNOWN_VERSION",
            DecodeError::InvalidPayload { .. } => "INVALID_PAYLOAD",
        }
    }
}

impl Envelope<Event> {
    /// A new event with a fresh time-ordered id, occurring now.
    pub fn new(
        payload: impl Into<Event>,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
        producer: &str,
    ) -> Envelope<Event> {
        let payload = payload.into();
        let kind = payload.kind();
        Envelope {
            event_id: Uuid::now_v7(),
            event_type: kind.name().to_owned(),
            version: kind.version(),
            occurred_at: Utc::now(),
            correlation_id,
            causation_id,
            producer: producer.to_owned(),
            payload,
            trace: None,
        }
    }

    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }

    pub fn subject(&self) -> &'static str {
        self.kind().subject()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs of strings, numbers and uuids cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Envelope<Event>, DecodeError> {
        let raw: Envelope<&RawValue> =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let kind = EventKind::from_name_version(&raw.event_type, raw.version).ok_or_else(|| {
            if EventKind::is_known_name(&raw.event_type) {
                DecodeError::UnknownVersion {
                    event_type: raw.event_type.clone(),
                    version: raw.version,
                }
            } else {
                DecodeError::UnknownEventType(raw.event_type.clone())
            }
        })?;
        let payload = Event::from_payload(kind, raw.payload.get()).map_err(|e| {
            DecodeError::InvalidPayload {
                subject: kind.subject(),
                error: e.to_string(),
            }
        })?;
        Ok(Envelope {
            event_id: raw.event_id,
            event_type: raw.event_type,
            version: raw.version,
            occurred_at: raw.occurred_at,
            correlation_id: raw.correlation_id,
            causation_id: raw.causation_id,
            producer: raw.producer,
            payload,
            trace: None,
        })
    }
}
