//! payment-service: charges each order once through a simulated gateway, refunds a confirmed
//! charge when the order is cancelled, and shows payments over HTTP.
//!
//! - [`rules`]: the payment rules, pure; [`gateway`]: the simulated gateway's decision, pure.
//! - [`store`]: every SQL statement (`payments`, `cancelled_orders`).
//! - [`reactions`]: `order.created.v1` and `order.cancelled.v1`.
//! - [`routes`]: `GET /payments/{id}`, `GET /payments?orderId=`.

pub mod gateway;
pub mod reactions;
pub mod routes;
pub mod rules;
pub mod store;

use std::time::Duration;

use clap::Parser;
use messaging::Shutdown;
use messaging::db::Migration;
use service_kit::settings::{CommonArgs, Defaults, ServiceArgs};
use service_kit::{CommonSettings, Infra, Service, ServiceBuilder};
use shared_events::EventKind;

use anyhow::Context as _;

use crate::gateway::{Gateway, SuccessRate};

pub const SERVICE: &str = "payment-service";
pub const DEFAULT_PORT: u16 = 3006;

/// Where payment-service listens and keeps its data by default.
pub const DEFAULTS: Defaults = Defaults {
    service: SERVICE,
    port: DEFAULT_PORT,
    database: "payments",
};

pub const MIGRATIONS: &[Migration] = &[
    Migration::frozen(
        1000,
        "payments",
        include_str!("../migrations/1000_payments.sql"),
    ),
    Migration::frozen(
        1001,
        "simulation settings",
        include_str!("../migrations/1001_simulation.sql"),
    ),
    participant::cancellations::BY_AGE,
];

/// The simulated gateway's settings. The environment gives them at first start; after that
/// they live in the database (`simulation` table), where `PUT /admin/simulation` changes them
/// for every instance at once.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    /// `PAYMENT_SUCCESS_RATE`, 0 to 1 (default 0.9).
    pub success_rate: SuccessRate,
    /// `PAYMENT_SEED` (default 0).
    pub seed: u64,
    /// `PAYMENT_LATENCY_MS`: how long the gateway takes to answer (default 0, at most
    /// [`gateway::MAX_LATENCY_MS`]).
    pub latency: Duration,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonSettings,
    pub simulation: Simulation,
}

impl Default for Simulation {
    /// The documented defaults: 90% approved, seed 0, no latency.
    fn default() -> Simulation {
        Simulation {
            success_rate: SuccessRate::DEFAULT,
            seed: 0,
            latency: Duration::ZERO,
        }
    }
}

impl Simulation {
    /// The gateway as this simulation configures it.
    pub fn gateway(&self) -> Gateway {
        Gateway {
            seed: self.seed,
            rate: self.success_rate,
        }
    }
}

/// payment-service's command line and environment.
#[derive(Clone, Debug, Parser)]
#[command(
    version = build_info::VERSION,
    about = "payment-service: charges each order once through a simulated gateway and refunds it \
             when the order is cancelled."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The share of charges the simulated gateway approves, 0 to 1 (applied at the first start;
    /// then changed at run time with PUT /admin/simulation).
    #[arg(long, env = "PAYMENT_SUCCESS_RATE", default_value = "0.9")]
    pub payment_success_rate: SuccessRate,
    /// The seed of the gateway's decisions: a decision is a pure function of the seed and the
    /// order id.
    #[arg(long, env = "PAYMENT_SEED", default_value_t = 0)]
    pub payment_seed: u64,
    /// How long the gateway takes to answer, in ms (0 to 10000).
    #[arg(long, env = "PAYMENT_LATENCY_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=gateway::MAX_LATENCY_MS))]
    pub payment_latency_ms: u64,
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
            simulation: Simulation {
                success_rate: self.payment_success_rate,
                seed: self.payment_seed,
                latency: Duration::from_millis(self.payment_latency_ms),
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
    let in_force = store::init_simulation(&infra.pool, &settings.simulation)
        .await
        .context("applying the simulation settings")?;
    let s = &in_force.simulation;
    if in_force.from_environment {
        tracing::info!(success_rate = %s.success_rate, seed = s.seed,
            latency_ms = s.latency.as_millis() as u64, "payment simulation (from the environment)");
    } else {
        tracing::info!(success_rate = %s.success_rate, seed = s.seed,
            latency_ms = s.latency.as_millis() as u64, set_by = %in_force.updated_by,
            set_at = %in_force.updated_at,
            "payment simulation (as changed at run time; the environment's values are those applied before)");
    }
    let mut builder = ServiceBuilder::new(settings.common, infra.clone(), shutdown.clone());
    let retention = participant::cancellations::keep_pruned(infra.pool.clone(), shutdown);
    builder.spawn("cancelled-orders retention", retention);
    let admin = builder.admin();
    let reactions = reactions::Reactions;
    builder.consume(EventKind::OrderCreated, reactions).await?;
    builder
        .consume(EventKind::OrderCancelled, reactions)
        .await?;
    builder
        .serve(
            routes::api().with_state(routes::Api { infra, admin }),
            routes::ABOUT,
        )
        .await
}
