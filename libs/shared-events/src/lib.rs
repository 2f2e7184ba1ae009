//! The event contract shared by every service of the order saga.
//!
//! One place defines each event's payload, its type name, major version, subject and stream
//! ([`events`]); the envelope that carries it on the wire ([`envelope`]); exact money ([`money`]);
//! and the JSON Schemas checked into `docs/events` ([`schema`]).

pub mod envelope;
pub mod events;
pub mod money;
pub mod schema;
pub mod streams;

pub use envelope::{DecodeError, Envelope};
pub use events::*;
pub use money::{Money, MoneyError};
pub use streams::Stream;
