//! The event contract shared by every service of the order saga.
//!
//! One place defines each event's payload, its type name, major version, subject and stream
//! ([`events`]); the envelope that carries it on the wire ([`envelope`]); exact money
//! ([`money`]); the checked values every service shares ([`domain`]: product and customer ids,
//! currencies, quantities); the one way to spell a status ([`text_enum!`]); the shape of every
//! service's rules ([`reaction`]); and the JSON Schemas checked into `docs/events` ([`schema`]).

pub mod domain;
pub mod envelope;
pub mod events;
pub mod money;
pub mod openapi;
pub mod reaction;
pub mod schema;
pub mod sql;
pub mod streams;
pub mod text_enum;
pub mod trace_context;

pub use domain::{Currency, CustomerId, Invalid, ProductId, Quantity};
pub use envelope::{DecodeError, EncodeError, Envelope};
pub use events::*;
pub use money::{MinorUnits, Money, MoneyError};
pub use reaction::Reaction;
pub use streams::Stream;
pub use trace_context::TraceParent;
