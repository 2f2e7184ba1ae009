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

use crate::events::{Event, EventKind, Majors};
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
        error: crate::events::PayloadError,
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

/// An event none of whose majors can carry it (an amount that fits no major's rules).
#[derive(Debug, thiserror::Error)]
#[error("no major of {event_type} can carry event {event_id}")]
pub struct EncodeError {
    pub event_type: &'static str,
    pub event_id: Uuid,
}

impl Envelope<Event> {
    /// A new event with a fresh time-ordered id, occurring now, in its newest major.
    pub fn new(
        payload: impl Into<Event>,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
        producer: &str,
    ) -> Envelope<Event> {
        let payload = payload.into();
        let kind = payload.newest();
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

    /// The major this envelope came in (or, for a new event, its newest).
    pub fn kind(&self) -> EventKind {
        EventKind::from_name_version(&self.event_type, self.version)
            .unwrap_or_else(|| self.payload.newest())
    }

    pub fn subject(&self) -> &'static str {
        self.kind().subject()
    }

    /// The message body of this event in major `kind`, if that major can carry it.
    pub fn encode(&self, kind: EventKind) -> Option<Vec<u8>> {
        let payload = kind.encode_payload(&self.payload)?;
        let wire = Envelope {
            event_id: self.event_id,
            event_type: kind.name().to_owned(),
            version: kind.version(),
            occurred_at: self.occurred_at,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            producer: self.producer.clone(),
            payload,
            trace: None,
        };
        serde_json::to_vec(&wire).ok()
    }

    /// The copies of this event to publish when `majors` are published: one in each of those
    /// majors that the event has and that can carry it. An event that none of them can carry
    /// (an event with only a first major while only the second is published, or an amount of
    /// three decimals, which only the second carries) goes in its newest major that can.
    pub fn copies(&self, majors: &Majors) -> Result<Vec<(EventKind, Vec<u8>)>, EncodeError> {
        let mut copies: Vec<(EventKind, Vec<u8>)> = self
            .payload
            .kinds()
            .filter(|k| majors.contains(k.version()))
            .filter_map(|k| self.encode(k).map(|body| (k, body)))
            .collect();
        if copies.is_empty() {
            let kinds: Vec<EventKind> = self.payload.kinds().collect();
            copies.extend(
                kinds
                    .into_iter()
                    .rev()
                    .find_map(|k| self.encode(k).map(|body| (k, body))),
            );
        }
        if copies.is_empty() {
            return Err(EncodeError {
                event_type: self.payload.name(),
                event_id: self.event_id,
            });
        }
        Ok(copies)
    }

    /// The message body in the envelope's own major (empty if that major cannot carry it).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode(self.kind()).unwrap_or_default()
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
        let payload = kind.decode_payload(raw.payload.get()).map_err(|error| {
            DecodeError::InvalidPayload {
                subject: kind.subject(),
                error,
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
