//! What every service of the order saga shares outside messaging: settings from the environment
//! ([`settings`]), the one error shape of the HTTP API ([`error`]), extractors that turn bad input
//! into that shape ([`extract`]), admin authentication ([`auth`]), health and metrics routes
//! ([`health`]), and start-up ([`startup`]): database, migrations, NATS, streams, relay,
//! consumers and the HTTP server, stopped together.

pub mod auth;
pub mod cancellations;
pub mod error;
pub mod extract;
pub mod health;
pub mod settings;
pub mod startup;

pub use error::{ApiError, FieldError};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use settings::CommonSettings;
pub use startup::{Infra, Service, ServiceBuilder};
