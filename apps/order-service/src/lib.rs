//! order-service: takes orders over HTTP, owns each order's status, and applies the saga's
//! decision to it.
//!
//! - [`rules`]: the validated order and the order lifecycle, pure.
//! - [`store`]: every SQL statement (the `orders` table).
//! - [`intake`]: new orders written in groups, one transaction for all that are waiting.
//! - [`routes`]: `POST /orders` (its body read in `routes::new_order`), `GET /orders/{id}`,
//!   `GET /orders`, `POST /orders/{id}/cancel`.
//! - [`reactions`]: `saga.completed` and `saga.aborted`.
//! - [`admission`]: whether a new order may be accepted now.

pub mod admission;
pub mod intake;
pub mod reactions;
pub mod routes;
pub mod rules;
pub mod store;

use clap::Parser;
use messaging::Shutdown;
use messaging::db::Migration;
use service_kit::settings::{CommonArgs, Defaults, ServiceArgs};
use service_kit::{CommonSettings, Infra, Service, ServiceBuilder};
use shared_events::EventKind;

pub const SERVICE: &str = "order-service";
pub const DEFAULT_PORT: u16 = 3004;

/// Where order-service listens and keeps its data by default.
pub const DEFAULTS: Defaults = Defaults {
    service: SERVICE,
    port: DEFAULT_PORT,
    database: "orders",
};

pub const MIGRATIONS: &[Migration] = &[
    Migration::frozen(
        1000,
        "orders",
        include_str!("../migrations/1000_orders.sql"),
    ),
    Migration::expand_outside_transaction(
        1001,
        "orders by when they last changed",
        include_str!("../migrations/1001_orders_by_update.sql"),
    ),
    Migration::expand_outside_transaction(
        1002,
        "cancelled orders by when they last changed",
        include_str!("../migrations/1002_cancelled_orders_by_update.sql"),
    ),
];

#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonSettings,
    pub admission: admission::AdmissionSettings,
}

/// order-service's command line and environment.
#[derive(Clone, Debug, Parser)]
#[command(
    version = build_info::VERSION,
    about = "order-service: takes orders over HTTP and owns each order's status."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Refuse new orders (503 OVERLOADED, Retry-After) while 20 orders waiting their turn (pending,
    /// placed after the newest confirmed order) are older than this many milliseconds; 0 accepts every order (docs/operations.md, "Admission").
    #[arg(long, env = "ORDER_ADMISSION_MAX_AGE_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub admission_max_age_ms: u64,
    /// Orders pending longer than this many milliseconds are stuck (waiting for their saga's
    /// deadline or an operator), not queued: admission does not count them. Keep it at the
    /// saga-coordinator's SAGA_TIMEOUT_MS.
    #[arg(long, env = "ORDER_ADMISSION_STUCK_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub admission_stuck_ms: u64,
    /// Refuse new orders (503 OVERLOADED) while this many are being written already on this
    /// instance; 0: no bound.
    #[arg(long, env = "ORDER_ADMISSION_MAX_WRITING", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(0..=4096))]
    pub admission_max_writing: u64,
    /// The longest Retry-After, in seconds, of a refusal for ORDER_ADMISSION_MAX_WRITING: the more
    /// clients refused, the longer they are asked to wait, up to this (docs/operations.md,
    /// "Admission"); 1 always answers 1.
    #[arg(long, env = "ORDER_ADMISSION_RETRY_AFTER_MAX_S", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub admission_retry_after_max_s: u64,
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
            admission: admission::AdmissionSettings {
                max_age: std::time::Duration::from_millis(self.admission_max_age_ms),
                stuck_after: std::time::Duration::from_millis(self.admission_stuck_ms),
                max_writing: self.admission_max_writing as usize,
                retry_after_max: self.admission_retry_after_max_s,
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
    let mut builder = ServiceBuilder::new(settings.common, infra.clone(), shutdown);
    let reactions = reactions::Reactions;
    builder.consume(EventKind::SagaCompleted, reactions).await?;
    builder.consume(EventKind::SagaAborted, reactions).await?;
    let (intake, writer) = intake::Intake::new(infra.pool.clone(), infra.outbox.clone());
    builder.spawn("intake", writer);
    admission::describe();
    let admission = std::sync::Arc::new(admission::Admission::new(
        settings.admission,
        infra.pool.clone(),
    ));
    builder
        .serve(
            routes::api().with_state(routes::Api {
                infra,
                intake,
                admission,
            }),
            routes::ABOUT,
        )
        .await
}
