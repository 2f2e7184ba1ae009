//! What every service of the order saga shares outside messaging: settings from the environment
//! ([`settings`]), the one error shape of the HTTP API ([`error`]), extractors that turn bad input
//! into that shape ([`extract`]), admin authentication ([`auth`]) and the audit log of admin
//! calls ([`audit`]), health and metrics routes ([`health`], [`metrics`]), the bound on HTTP connections
//! ([`connections`]), and start-up ([`startup`]): database, migrations, NATS, streams, relay,
//! consumers and the HTTP server, stopped together.

pub mod api;
pub mod audit;
pub mod auth;
pub mod connections;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod testing;

pub use error::{ApiError, FieldError};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use settings::CommonSettings;
pub use startup::{Infra, Service, ServiceBuilder};
