//! saga-coordinator: follows every order's saga, persists it with the history of its events,
//! decides its outcome, enforces deadlines from the database, and answers `GET /sagas/{id}` and
//! `GET /sagas`.
//!
//! - [`rules`]: the saga rules and what operators may do, pure.
//! - [`store`]: every SQL statement of the sagas (`sagas`, `saga_history`, `saga_counts`,
//!   and the reconciliation's runs).
//! - [`reactions`]: the followed events and the deadline sweep.
//! - [`routes`]: the sagas, their stats, operator actions, the reconciliation, the dashboard.
//! - [`dlq`]: every service's dead letters: the index, their table, their routes.
//! - [`reconcile`]: the services' records compared, and what settles a disagreement re-sent.
//! - [`metrics`]: the saga gauges and histogram.

pub mod dlq;
pub mod metrics;
pub mod reactions;
pub mod reconcile;
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
    Migration::expand(
        1005,
        "reconciliation runs and mismatches",
        include_str!("../migrations/1005_reconcile.sql"),
    ),
    Migration::expand(
        1006,
        "how far a reconciliation run compared",
        include_str!("../migrations/1006_reconcile_reached.sql"),
    ),
    Migration::expand_outside_transaction(
        1007,
        "reconciliation runs by when they started",
        include_str!("../migrations/1007_reconcile_runs_started.sql"),
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
    pub reconcile: reconcile::ReconcileSettings,
    /// Where the other services answer; `None` (not all three set): no reconciliation.
    pub peers: Option<reconcile::peers::PeerUrls>,
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
    /// Milliseconds between reconciliation runs (docs/operations.md, "Reconciliation"); 0: only
    /// when an operator asks (POST /admin/reconcile).
    #[arg(long, env = "RECONCILE_INTERVAL_MS", default_value_t = 60_000)]
    pub reconcile_interval_ms: u64,
    /// Records younger than this many milliseconds are left alone by the reconciliation: their
    /// events may still be on their way.
    #[arg(long, env = "RECONCILE_GRACE_MS", default_value_t = 60_000)]
    pub reconcile_grace_ms: u64,
    /// How far back (ms) the first reconciliation run looks, and an operator's run that names
    /// no time.
    #[arg(long, env = "RECONCILE_WINDOW_MS", default_value_t = 3_600_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reconcile_window_ms: u64,
    /// The most cancelled orders one reconciliation run compares; a window with more is
    /// compared oldest change first, and the next run goes on from the last one compared.
    #[arg(long, env = "RECONCILE_MAX_ORDERS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub reconcile_max_orders: u64,
    /// order-service's HTTP API, which the reconciliation reads (e.g. http://127.0.0.1:3004).
    /// The reconciliation runs only once all three services' URLs are set: it re-sends events
    /// for the orders it reads, so it never guesses where they are.
    #[arg(long, env = "ORDER_SERVICE_URL", value_parser = peer_url)]
    pub order_service_url: Option<String>,
    /// payment-service's HTTP API, which the reconciliation reads (e.g. http://127.0.0.1:3006).
    #[arg(long, env = "PAYMENT_SERVICE_URL", value_parser = peer_url)]
    pub payment_service_url: Option<String>,
    /// inventory-service's HTTP API, which the reconciliation reads (e.g.
    /// http://127.0.0.1:3007).
    #[arg(long, env = "INVENTORY_SERVICE_URL", value_parser = peer_url)]
    pub inventory_service_url: Option<String>,
}

/// An http(s) URL of another service, without a trailing slash.
fn peer_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.starts_with('/') || rest.chars().any(char::is_whitespace) {
        return Err("must be a URL such as http://127.0.0.1:3004".into());
    }
    Ok(text.trim_end_matches('/').to_owned())
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
            reconcile: reconcile::ReconcileSettings {
                interval: Duration::from_millis(self.reconcile_interval_ms),
                grace: Duration::from_millis(self.reconcile_grace_ms),
                window: Duration::from_millis(self.reconcile_window_ms),
                max_orders: self.reconcile_max_orders as usize,
                saga_timeout: Duration::from_millis(self.saga_timeout_ms),
                keep: Duration::from_secs(30 * 24 * 3600),
            },
            peers: match (
                &self.order_service_url,
                &self.payment_service_url,
                &self.inventory_service_url,
            ) {
                (Some(order), Some(payment), Some(inventory)) => Some(reconcile::peers::PeerUrls {
                    order: order.clone(),
                    payment: payment.clone(),
                    inventory: inventory.clone(),
                }),
                _ => None,
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
    let reactions = reactions::Reactions {
        timeouts: settings.timeouts.clone(),
    };
    for kind in FOLLOWED {
        builder.consume(kind, reactions.clone()).await?;
    }
    builder.spawn(
        "sweep",
        reactions::sweep(infra.clone(), settings.timeouts.clone(), shutdown.clone()),
    );
    let index = RawConsumer::provision(
        infra.js.clone(),
        Stream::Dlq,
        dlq::index::DURABLE,
        "dlq.>",
        dlq::index::DlqIndex {
            pool: infra.pool.clone(),
        },
    )
    .await
    .context("provisioning the dead letters' index")?;
    builder.spawn(
        &format!("consumer {}", dlq::index::DURABLE),
        index.run(shutdown.clone()),
    );
    let reconciler = Arc::new(reconcile::Reconciler::new(
        infra.clone(),
        settings.peers.clone().map(reconcile::peers::Peers::new),
        settings.reconcile.clone(),
    ));
    builder.spawn(
        "reconcile",
        reconciler.as_ref().clone().every(shutdown.clone()),
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
        reconciler,
    };
    builder
        .serve(routes::api().with_state(api), routes::ABOUT)
        .await
}
