//! The HTTP API of payment-service: `GET /payments/{paymentId}`, `GET /payments?orderId=`, and
//! the simulation settings, `GET|PUT /admin/simulation` (admin calls).

use anyhow::Context as _;
use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::api::{BodyErrors, Errors, Invalid, NotFound, Refused};
use service_kit::auth::AdminToken;
use service_kit::extract::id_list;
use service_kit::{ApiError, ApiJson, ApiPath, ApiQuery, FieldError, Infra};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::Simulation;
use crate::gateway::{self, SuccessRate};
use crate::rules::{Payment, PaymentFailure, PaymentStatus};
use shared_events::{Currency, Money};

/// A payment as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Payment)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    payment_id: Uuid,
    order_id: Uuid,
    amount: Money,
    currency: Currency,
    status: PaymentStatus,
    reason: Option<PaymentFailure>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> PaymentView {
        PaymentView {
            payment_id: p.payment_id,
            order_id: p.order_id,
            amount: p.amount,
            currency: p.currency,
            status: p.status,
            reason: p.reason,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}
use crate::store::{self, SimulationRow};

#[derive(Clone)]
pub struct Api {
    pub infra: Infra,
    pub admin: AdminToken,
}

impl FromRef<Api> for Infra {
    fn from_ref(api: &Api) -> Infra {
        api.infra.clone()
    }
}

/// What the service's description says of it.
pub const ABOUT: &str = "Charges each order once through a simulated gateway, refunds a \
    confirmed charge when its order is cancelled, and shows payments; the gateway's settings \
    change at run time for every instance.";

/// The routes, each with its description.
pub fn api() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(by_order))
        .routes(routes!(search))
        .routes(routes!(by_id))
        .routes(routes!(get_simulation, put_simulation))
}

/// One payment.
#[utoipa::path(get, path = "/payments/{payment_id}", tag = "payments",
    params(("payment_id" = Uuid, Path, description = "The payment's id")),
    responses((status = 200, description = "The payment", body = PaymentView), NotFound, Errors))]
async fn by_id(
    State(infra): State<Infra>,
    ApiPath(payment_id): ApiPath<Uuid>,
) -> Result<Json<PaymentView>, ApiError> {
    let mut conn = infra.pool.acquire().await?;
    store::by_id(&mut conn, payment_id)
        .await
        .context("reading a payment")?
        .map(|p| Json(p.into()))
        .ok_or_else(|| ApiError::not_found(format!("no payment {payment_id}")))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ByOrder {
    /// The order whose payment to show (required).
    order_id: Option<Uuid>,
}

/// `GET /payments?orderId=`: the order's one payment (an order is charged at most once).
#[utoipa::path(get, path = "/payments", tag = "payments", params(ByOrder),
    responses((status = 200, description = "The order's payment", body = PaymentView),
        NotFound, Invalid, Errors))]
async fn by_order(
    State(infra): State<Infra>,
    ApiQuery(query): ApiQuery<ByOrder>,
) -> Result<Json<PaymentView>, ApiError> {
    let order_id = query
        .order_id
        .ok_or_else(|| ApiError::validation(vec![FieldError::new("orderId", "is required")]))?;
    let mut conn = infra.pool.acquire().await?;
    store::by_order(&mut conn, order_id)
        .await
        .context("reading an order's payment")?
        .map(|p| Json(p.into()))
        .ok_or_else(|| ApiError::not_found(format!("no payment for order {order_id}")))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ByOrders {
    /// The orders whose payments to show: 1 to 100 comma-separated ids (required).
    order_ids: Option<String>,
}

/// The payments of several orders at once.
#[derive(Serialize, ToSchema)]
struct Payments {
    /// The orders' payments, by order id; an order never charged has none.
    items: Vec<PaymentView>,
}

/// `GET /payments/search?orderIds=`: the payments of up to 100 orders in one call (orders
/// never charged are left out), as the reconciliation reads them.
#[utoipa::path(get, path = "/payments/search", tag = "payments", params(ByOrders),
    responses((status = 200, description = "The orders' payments", body = Payments),
        Invalid, Errors))]
async fn search(
    State(infra): State<Infra>,
    ApiQuery(query): ApiQuery<ByOrders>,
) -> Result<Json<Payments>, ApiError> {
    let order_ids = id_list("orderIds", query.order_ids.as_deref())?;
    let items = store::by_orders(&infra.pool, &order_ids)
        .await
        .context("reading orders' payments")?;
    Ok(Json(Payments {
        items: items.into_iter().map(PaymentView::from).collect(),
    }))
}

/// The simulation settings as the API shows them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SimulationView {
    success_rate: f64,
    latency_ms: u64,
    seed: u64,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

impl From<SimulationRow> for SimulationView {
    fn from(row: SimulationRow) -> SimulationView {
        SimulationView {
            success_rate: row.simulation.success_rate.get(),
            latency_ms: row.simulation.latency.as_millis() as u64,
            seed: row.simulation.seed,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        }
    }
}

/// `GET /admin/simulation` (admin): the settings in force.
#[utoipa::path(get, path = "/admin/simulation", tag = "admin",
    security(("admin_token" = [])),
    responses((status = 200, description = "The settings in force", body = SimulationView),
        Refused, Errors))]
async fn get_simulation(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Json<SimulationView>, ApiError> {
    api.admin.check(&headers)?;
    let mut conn = api.infra.pool.acquire().await?;
    let row = store::simulation(&mut conn)
        .await
        .context("reading the simulation settings")?;
    Ok(Json(row.into()))
}

/// Applies a `PUT /admin/simulation` body to the settings in force, reporting every bad field.
fn changed(current: &Simulation, body: &Value) -> Result<Simulation, Vec<FieldError>> {
    let Some(fields) = body.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut next = current.clone();
    let mut errors = Vec::new();
    for (name, value) in fields {
        let set = match name.as_str() {
            "successRate" => value
                .as_f64()
                .ok_or_else(|| "must be a number from 0 to 1".to_owned())
                .and_then(SuccessRate::new)
                .map(|rate| next.success_rate = rate),
            "latencyMs" => value
                .as_u64()
                .ok_or_else(|| {
                    format!(
                        "must be a whole number of milliseconds from 0 to {}",
                        gateway::MAX_LATENCY_MS
                    )
                })
                .and_then(gateway::latency)
                .map(|latency| next.latency = latency),
            "seed" => value
                .as_u64()
                .ok_or_else(|| "must be a whole number from 0 to 18446744073709551615".to_owned())
                .map(|seed| next.seed = seed),
            other => Err(format!(
                "unknown setting {other:?}: the settings are successRate, latencyMs and seed"
            )),
        };
        if let Err(message) = set {
            errors.push(FieldError::new(name.clone(), message));
        }
    }
    if fields.is_empty() {
        errors.push(FieldError::new(
            "body",
            "give at least one of successRate, latencyMs and seed",
        ));
    }
    if errors.is_empty() {
        Ok(next)
    } else {
        Err(errors)
    }
}

/// New simulation settings: each optional, at least one.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct SetSimulation {
    /// The share of charges approved, 0 to 1.
    #[schema(minimum = 0, maximum = 1)]
    success_rate: Option<f64>,
    /// The gateway's answer time in milliseconds, 0 to 10000.
    #[schema(minimum = 0, maximum = 10000)]
    latency_ms: Option<u64>,
    /// The seed of the gateway's decisions.
    seed: Option<u64>,
}

/// `PUT /admin/simulation` `{"successRate", "latencyMs", "seed"}` (each optional, admin): from
/// the next charge on, for every instance. A bad value changes nothing.
#[utoipa::path(put, path = "/admin/simulation", tag = "admin", request_body = SetSimulation,
    security(("admin_token" = [])),
    responses((status = 200, description = "The settings now in force", body = SimulationView),
        Refused, Invalid, BodyErrors, Errors))]
async fn put_simulation(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<SimulationView>, ApiError> {
    let actor = api.admin.check(&headers)?;
    let mut tx = api.infra.pool.begin().await?;
    let current = store::lock_simulation(&mut tx)
        .await
        .context("locking the simulation settings")?;
    let next = changed(&current.simulation, &body).map_err(ApiError::validation)?;
    let row = store::set_simulation(&mut tx, &next, actor.as_str())
        .await
        .context("writing the simulation settings")?;
    let was = &current.simulation;
    let detail = format!(
        "successRate {} -> {}, latencyMs {} -> {}, seed {} -> {}",
        was.success_rate,
        next.success_rate,
        was.latency.as_millis(),
        next.latency.as_millis(),
        was.seed,
        next.seed
    );
    service_kit::audit::record(
        &mut tx,
        &actor,
        "simulation.set",
        "payment-service",
        Some(&detail),
    )
    .await
    .context("auditing the change")?;
    tx.commit()
        .await
        .context("committing the simulation settings")?;
    Ok(Json(row.into()))
}
