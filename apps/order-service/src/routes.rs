//! The HTTP API of order-service.

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use service_kit::extract::{OptionalJson, Page, page_limit, query_value};
use service_kit::{ApiError, ApiJson, ApiPath, ApiQuery, FieldError, Infra};
use uuid::Uuid;

use crate::intake::Intake;
use crate::rules::{Command, NewOrder, Order, new_order_id};
use crate::store::{self, Keyed, ListFilter, NewRow};

/// What every route needs: the database and outbox, and the intake that writes new orders.
#[derive(Clone)]
pub struct AppState {
    pub infra: Infra,
    pub intake: Intake,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", post(create).get(list))
        .route("/orders/{order_id}", get(get_one))
        .route("/orders/{order_id}/cancel", post(cancel))
        .with_state(state)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if !key.is_empty() && key.len() <= 255 && key.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::bad_request(
            "INVALID_IDEMPOTENCY_KEY",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// The order stored under the key, if the request matches the one that made it.
fn replay(existing: Keyed, request: &Value) -> Result<(StatusCode, Json<Order>), ApiError> {
    if &existing.request == request {
        Ok((StatusCode::CREATED, Json(existing.order)))
    } else {
        Err(ApiError::conflict(
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was used with a different request",
        ))
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let key = idempotency_key(&headers)?;
    let new = NewOrder::parse(&body).map_err(ApiError::validation)?;
    let request = serde_json::to_value(&new).map_err(ApiError::internal)?;
    let (order_id, saga_id) = (new_order_id(key.as_deref()), Uuid::now_v7());
    let created = new.created(order_id, saga_id);
    let event = state.infra.outbox.event(created, saga_id, None);
    let row = NewRow {
        order_id,
        saga_id,
        order: new,
        idempotency_key: key.clone(),
    };
    match state.intake.submit(row, event).await? {
        Some(order) => Ok((StatusCode::CREATED, Json(order))),
        None => {
            // The key is taken: a retry of the same request, or another request under it.
            let mut conn = state.infra.pool.acquire().await?;
            let existing = store::by_idempotency_key(&mut conn, key.as_deref().unwrap_or_default())
                .await
                .context("reading the order of an idempotency key")?
                .ok_or_else(|| ApiError::internal("idempotency key vanished"))?;
            replay(existing, &request)
        }
    }
}

async fn get_one(
    State(AppState { infra, .. }): State<AppState>,
    ApiPath(order_id): ApiPath<Uuid>,
) -> Result<Json<Order>, ApiError> {
    let mut conn = infra.pool.acquire().await?;
    store::get(&mut conn, order_id)
        .await
        .context("reading an order")?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no order {order_id}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    customer_id: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<Uuid>,
}

async fn list(
    State(AppState { infra, .. }): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<Order, Uuid>>, ApiError> {
    let limit = page_limit(query.limit)?;
    let filter = ListFilter {
        customer_id: query_value("customerId", query.customer_id.as_deref())?,
        status: query_value("status", query.status.as_deref())?,
        before: query.cursor,
        limit: limit + 1,
    };
    let items = store::list(&infra.pool, &filter)
        .await
        .context("listing orders")?;
    Ok(Json(Page::from_fetched(items, limit, |o| o.order_id)))
}

#[derive(Default, Deserialize)]
struct CancelRequest {
    reason: Option<String>,
}

async fn cancel(
    State(AppState { infra, .. }): State<AppState>,
    ApiPath(order_id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<CancelRequest>,
) -> Result<Json<Order>, ApiError> {
    let detail = body.reason.filter(|r| !r.trim().is_empty());
    if detail
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500 || r.chars().any(char::is_control))
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "reason",
            "must be at most 500 characters, without control characters",
        )]));
    }
    let mut tx = infra.pool.begin().await?;
    let Some(order) = store::lock(&mut tx, &[order_id])
        .await
        .context("locking the order")?
        .remove(&order_id)
    else {
        return Err(ApiError::not_found(format!("no order {order_id}")));
    };
    let (mut order, reaction) = order.apply(Command::CustomerCancel { detail });
    let Some(event) = reaction.event().cloned() else {
        // Cancelled before: nothing changes.
        return Ok(Json(order));
    };
    store::save(&mut tx, &mut [&mut order])
        .await
        .context("saving the cancelled order")?;
    let event = infra.outbox.event(event, order.saga_id, None);
    let written = infra
        .outbox
        .add(&mut tx, event)
        .await
        .context("writing order.cancelled to the outbox")?;
    infra
        .outbox
        .commit(tx, written)
        .await
        .context("committing the cancellation")?;
    Ok(Json(order))
}
