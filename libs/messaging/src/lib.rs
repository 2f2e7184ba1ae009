//! The messaging plumbing every service of the order saga stands on.
//!
//! - [`db`]: PostgreSQL pools and the one embedded migrator (this library's tables plus the
//!   service's own).
//! - [`nats`]: connecting to NATS, and provisioning the streams and durable consumers, read back
//!   and checked against what was asked.
//! - [`outbox`]: events written in the caller's transaction, and the relay that publishes them.
//! - [`consumer`]: durable pull consumers that handle batches of deliveries in a transaction with
//!   the inbox; [`pull`]: the pull loop they run, and raw consumers for streams of non-events.
//! - [`metrics`] and [`shutdown`]: what every long-running task reports, and how it stops.
//! - [`trace`]: the trace context every event carries, and the spans of the traced paths.

pub mod backoff;
pub mod consumer;
pub mod db;
pub mod metrics;
pub mod nats;
pub mod outbox;
pub mod pull;
pub mod shutdown;
pub mod trace;

pub use consumer::{Batch, Consumer, ConsumerSpec, Handler, HandlerError};
pub use outbox::{Outbox, Relay, RelayConfig, RelayStats, Written};
pub use pull::{RawConsumer, RawHandler};
pub use shutdown::Shutdown;
