//! The HTTP API of payment-service: `GET /payments/{paymentId}` and `GET /payments?orderId=`.

use anyhow::Context as _;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use service_kit::{ApiError, ApiPath, ApiQuery, FieldError, Infra};
use uuid::Uuid;

use crate::rules::Payment;
use crate::store;

pub fn router(infra: Infra) -> Router {
    Router::new()
        .route("/payments", get(by_order))
        .route("/payments/{payment_id}", get(by_id))
        .with_state(infra)
}

async fn by_id(
    State(infra): State<Infra>,
    ApiPath(payment_id): ApiPath<Uuid>,
) -> Result<Json<Payment>, ApiError> {
    let mut conn = infra.pool.acquire().await?;
    store::by_id(&mut conn, payment_id)
        .await
        .context("reading a payment")?
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
    store::by_order(&mut conn, order_id)
        .await
        .context("reading an order's payment")?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no payment for order {order_id}")))
}
