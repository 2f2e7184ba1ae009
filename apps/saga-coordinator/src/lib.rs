//! saga-coordinator: follows every order's saga, persists it with the history of its events,
//! decides its outcome, enforces deadlines from the database, and answers `GET /sagas/{id}` and
//! `GET /sagas`.
//!
//! - [`rules`]: the saga rules, pure.
//! - [`store`]: every SQL statement (`sagas`, `saga_history`).
//! - [`reactions`]: the followed events, and the deadline sweep.
//! - [`routes`]: `GET /sagas/{id}`, `GET /sagas`.

pub mod reactions;
pub mod routes;
pub mod rules;
pub mod store;

use std::time::Duration;

use messaging::Shutdown;
use messaging::db::Migration;
use service_kit::settings::env_or;
use service_kit::{CommonSettings, Infra, Service, ServiceBuilder};
use shared_events::EventKind;

pub const SERVICE: &str = "saga-coordinator";
pub const DEFAULT_PORT: u16 = 3008;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1000,
    description: "sagas",
    sql: include_str!("../migrations/1000_sagas.sql"),
}];

/// Every event of a saga that the coordinator follows.
pub const FOLLOWED: [EventKind; 10] = [
    EventKind::OrderCreated,
    EventKind::OrderConfirmed,
    EventKind::OrderCancelled,
    EventKind::PaymentConfirmed,
    EventKind::PaymentFailed,
    EventKind::PaymentRefunded,
    EventKind::InventoryReserved,
    EventKind::InventoryFailed,
    EventKind::InventoryCommitted,
    EventKind::InventoryReleased,
];

#[derive(Clone, Debug)]
pub struct Timeouts {
    /// `SAGA_TIMEOUT_MS` (default 30000): a saga still `STARTED` this long after the coordinator
    /// first saw it is aborted with `TIMEOUT`.
    pub saga: Duration,
    /// `SAGA_COMPENSATION_TIMEOUT_MS` (default 300000): a compensation unfinished this long
    /// marks the saga `FAILED`, for an operator.
    pub compensation: Duration,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonSettings,
    pub timeouts: Timeouts,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        let saga: u64 = env_or("SAGA_TIMEOUT_MS", 30_000)?;
        let compensation: u64 = env_or("SAGA_COMPENSATION_TIMEOUT_MS", 300_000)?;
        if saga == 0 || compensation == 0 {
            anyhow::bail!("SAGA_TIMEOUT_MS and SAGA_COMPENSATION_TIMEOUT_MS must be at least 1");
        }
        Ok(Settings {
            common: CommonSettings::from_env(SERVICE, DEFAULT_PORT, "sagas")?,
            timeouts: Timeouts {
                saga: Duration::from_millis(saga),
                compensation: Duration::from_millis(compensation),
            },
        })
    }
}

pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Service> {
    let infra = Infra::connect(&settings.common, MIGRATIONS).await?;
    let mut builder = ServiceBuilder::new(settings.common, infra.clone(), shutdown.clone());
    let coordinator = reactions::Coordinator {
        timeouts: settings.timeouts.clone(),
    };
    for kind in FOLLOWED {
        builder.consume(kind, coordinator.clone()).await?;
    }
    builder.spawn(
        "sweep",
        reactions::sweep(infra.clone(), settings.timeouts, shutdown),
    );
    builder.serve(routes::router(infra)).await
}
