//! saga-coordinator: follows every order's saga, persists it with the history of its events,
//! decides its outcome, enforces deadlines from the database, and answers `GET /sagas/{id}` and
//! `GET /sagas`.
//!
//! - [`rules`]: the saga rules and what operators may do, pure.
//! - [`store`]: every SQL statement (`sagas`, `saga_history`, `saga_counts`, `dead_letters`).
//! - [`reactions`]: the followed events, the deadline sweep, and the dead letters' index.
//! - [`routes`]: the sagas, their stats, operator actions, the dead letters.
//! - [`metrics`]: the saga gauges and histogram.

pub mod metrics;
pub mod reactions;
pub mod routes;
pub mod rules;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use messaging::db::Migration;
use messaging::{RawConsumer, Shutdown};
use service_kit::settings::{CommonArgs, Defaults, ServiceArgs};
use service_kit::{CommonSettings, Infra, Service, ServiceBuilder};
use shared_events::{EventKind, Stream};

pub const SERVICE: &str = "saga-coordinator";
pub const DEFAULT_PORT: u16 = 3008;

/// Where saga-coordinator listens and keeps its data by default.
pub const DEFAULTS: Defaults = Defaults {
    service: SERVICE,
    port: DEFAULT_PORT,
    database: "sagas",
};

pub const MIGRATIONS: &[Migration] = &[
    Migration::frozen(1000, "sagas", include_str!("../migrations/1000_sagas.sql")),
    Migration::frozen(
        1001,
        "operations: counts, ended_at, operator history, dead letters",
        include_str!("../migrations/1001_operations.sql"),
    ),
    Migration::frozen(
        1002,
        "saga trace",
        include_str!("../migrations/1002_trace.sql"),
    ),
    Migration::frozen(
        1003,
        "saga writes without index updates or triggers",
        include_str!("../migrations/1003_hot_updates.sql"),
    ),
    Migration::frozen(
        1004,
        "settled dead letters by age",
        include_str!("../migrations/1004_dead_letters_settled.sql"),
    ),
];

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

/// saga-coordinator's command line and environment.
#[derive(Clone, Debug, Parser)]
#[command(
    version = build_info::VERSION,
    about = "saga-coordinator: follows every order's saga, decides its outcome, enforces deadlines; \
             serves the sagas, the dead letters and the dashboard (/ui)."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// A saga still STARTED this long (ms) after it began is aborted with reason TIMEOUT.
    #[arg(long, env = "SAGA_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub saga_timeout_ms: u64,
    /// A saga still COMPENSATING this long (ms) after its compensation began is marked FAILED,
    /// for an operator.
    #[arg(long, env = "SAGA_COMPENSATION_TIMEOUT_MS", default_value_t = 300_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub saga_compensation_timeout_ms: u64,
}

impl ServiceArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

impl Args {
    pub fn settings(&self) -> Settings {
        Settings {
            common: CommonSettings::from_args(SERVICE, &self.common),
            timeouts: Timeouts {
                saga: Duration::from_millis(self.saga_timeout_ms),
                compensation: Duration::from_millis(self.saga_compensation_timeout_ms),
            },
        }
    }
}

/// The service's OpenAPI description, as `GET /openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::api::document(SERVICE, routes::ABOUT, routes::api())
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
        reactions::sweep(infra.clone(), settings.timeouts.clone(), shutdown.clone()),
    );
    let index = RawConsumer::provision(
        infra.js.clone(),
        Stream::Dlq,
        reactions::dlq::DURABLE,
        "dlq.>",
        reactions::dlq::DlqIndex {
            pool: infra.pool.clone(),
        },
    )
    .await
    .context("provisioning the dead letters' index")?;
    builder.spawn(
        &format!("consumer {}", reactions::dlq::DURABLE),
        index.run(shutdown),
    );
    metrics::describe();
    let (pool, compensation) = (infra.pool.clone(), settings.timeouts.compensation);
    builder.on_scrape(Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move { metrics::refresh(&pool, compensation).await })
    }));
    let admin = builder.admin();
    let api = routes::Api {
        infra,
        admin,
        timeouts: settings.timeouts,
    };
    builder
        .serve(routes::api().with_state(api), routes::ABOUT)
        .await
}
