//! payment-service: charges each order once through a simulated gateway ([`gateway`]), refunds a
//! confirmed charge when the order is cancelled ([`payments`] holds the rules), and shows payments
//! over HTTP.

pub mod gateway;
pub mod payments;

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use messaging::db::Migration;
use messaging::{Batch, Handler, HandlerError, Shutdown};
use serde::Deserialize;
use service_kit::settings::{SettingsError, env_or, env_var};
use service_kit::{
    ApiError, ApiPath, ApiQuery, CommonSettings, FieldError, Infra, Service, ServiceBuilder,
};
use shared_events::{Envelope, Event, EventKind};
use uuid::Uuid;

use crate::gateway::SuccessRate;
use crate::payments::{Payment, Standing};

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
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        Ok(Settings {
            common: CommonSettings::from_env(SERVICE, DEFAULT_PORT, "payments")?,
            simulation: Simulation::from_env()?,
        })
    }
}

/// Reacts to `order.created.v1` (charge) and `order.cancelled.v1` (refund, or never charge).
#[derive(Clone)]
pub struct Reactions {
    simulation: Simulation,
}

impl Handler for Reactions {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.payload.order_id()).collect();
        let mut book = payments::Book::load(batch.conn(), &ids).await?;
        let asks_gateway = events.iter().any(|e| {
            matches!(&e.payload, Event::OrderCreated(o) if book.standing(o.order_id) == Standing::Unknown)
        });
        if asks_gateway && !self.simulation.latency.is_zero() {
            // The gateway answers the charges of a batch together, after its latency.
            tokio::time::sleep(self.simulation.latency).await;
        }
        let Simulation {
            success_rate, seed, ..
        } = self.simulation;
        for event in events {
            let emitted = match &event.payload {
                Event::OrderCreated(order) => book.created(order, seed, success_rate),
                Event::OrderCancelled(order) => book.cancelled(order),
                other => {
                    return Err(HandlerError::Rejected(format!(
                        "payment-service does not handle {}",
                        other.kind().subject()
                    )));
                }
            };
            if let Some(emitted) = emitted {
                batch.emit(event, emitted);
            }
        }
        book.save(batch.conn()).await?;
        Ok(())
    }
}

pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Service> {
    let infra = Infra::connect(&settings.common, MIGRATIONS).await?;
    tracing::info!(success_rate = %settings.simulation.success_rate, seed = settings.simulation.seed,
        latency_ms = settings.simulation.latency.as_millis() as u64, "payment simulation");
    let mut builder = ServiceBuilder::new(settings.common, infra.clone(), shutdown);
    let reactions = Reactions {
        simulation: settings.simulation,
    };
    builder
        .consume(EventKind::OrderCreated, reactions.clone())
        .await?;
    builder
        .consume(EventKind::OrderCancelled, reactions)
        .await?;
    let routes = Router::new()
        .route("/payments", get(by_order))
        .route("/payments/{payment_id}", get(by_id))
        .with_state(infra);
    builder.serve(routes).await
}

async fn by_id(
    State(infra): State<Infra>,
    ApiPath(payment_id): ApiPath<Uuid>,
) -> Result<Json<Payment>, ApiError> {
    let mut conn = infra.pool.acquire().await?;
    payments::by_id(&mut conn, payment_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no payment {payment_id}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByOrder {
    order_id: Option<Uuid>,
}

/// `GET /payments?orderId=`: the order's one payment (an order is charged at most once).
async fn by_order(
    State(infra): State<Infra>,
    ApiQuery(query): ApiQuery<ByOrder>,
) -> Result<Json<Payment>, ApiError> {
    let order_id = query
        .order_id
        .ok_or_else(|| ApiError::validation(vec![FieldError::new("orderId", "is required")]))?;
    let mut conn = infra.pool.acquire().await?;
    payments::by_order(&mut conn, order_id, false)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no payment for order {order_id}")))
}
