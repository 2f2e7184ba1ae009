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

use messaging::Shutdown;
use messaging::db::Migration;
use service_kit::settings::{SettingsError, env_or, env_var};
use service_kit::{CommonSettings, Infra, Service, ServiceBuilder};
use shared_events::EventKind;

use crate::gateway::{Gateway, SuccessRate};

pub const SERVICE: &str = "payment-service";
pub const DEFAULT_PORT: u16 = 3006;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1000,
    description: "payments",
    sql: include_str!("../migrations/1000_payments.sql"),
}];

#[derive(Clone, Debug)]
pub struct Simulation {
    /// `PAYMENT_SUCCESS_RATE`, 0 to 1 (default 0.9).
    pub success_rate: SuccessRate,
    /// `PAYMENT_SEED` (default 0).
    pub seed: u64,
    /// `PAYMENT_LATENCY_MS`: how long the gateway takes to answer (default 0).
    pub latency: Duration,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonSettings,
    pub simulation: Simulation,
}

impl Simulation {
    pub fn from_env() -> Result<Simulation, SettingsError> {
        let success_rate = match env_var("PAYMENT_SUCCESS_RATE") {
            None => SuccessRate::new(0.9)
                .map_err(|e| SettingsError::new("PAYMENT_SUCCESS_RATE", "0.9", e))?,
            Some(v) => v
                .parse()
                .map_err(|e| SettingsError::new("PAYMENT_SUCCESS_RATE", &v, e))?,
        };
        Ok(Simulation {
            success_rate,
            seed: env_or("PAYMENT_SEED", 0u64)?,
            latency: Duration::from_millis(env_or("PAYMENT_LATENCY_MS", 0u64)?),
        })
    }

    /// The gateway as this simulation configures it.
    pub fn gateway(&self) -> Gateway {
        Gateway {
            seed: self.seed,
            rate: self.success_rate,
        }
    }
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        Ok(Settings {
            common: CommonSettings::from_env(SERVICE, DEFAULT_PORT, "payments")?,
            simulation: Simulation::from_env()?,
        })
    }
}

pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Service> {
    let infra = Infra::connect(&settings.common, MIGRATIONS).await?;
    tracing::info!(success_rate = %settings.simulation.success_rate, seed = settings.simulation.seed,
        latency_ms = settings.simulation.latency.as_millis() as u64, "payment simulation");
    let mut builder = ServiceBuilder::new(settings.common, infra.clone(), shutdown);
    let reactions = reactions::Reactions {
        simulation: settings.simulation,
    };
    builder
        .consume(EventKind::OrderCreated, reactions.clone())
        .await?;
    builder
        .consume(EventKind::OrderCancelled, reactions)
        .await?;
    builder.serve(routes::router(infra)).await
}
