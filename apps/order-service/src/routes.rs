//! The HTTP API of order-service. Each handler's `#[utoipa::path]` is its description in the
//! OpenAPI document (`GET /openapi.json`, `docs/openapi/order-service.json`).

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use service_kit::api::{BodyErrors, Conflict, Errors, Invalid, NotFound};
use service_kit::extract::{OptionalJson, Page, Time, keep, page_limit, query_value};
use service_kit::{ApiError, ApiJson, ApiPath, ApiQuery, FieldError, Infra};
use shared_events::{Currency, CustomerId, OrderLine};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::admission::{self, Admission};
use crate::intake::Intake;
use crate::rules::{Command, NewOrder, Order, OrderStatus, new_order_id};
use crate::store::{self, Keyed, ListFilter, NewRow};

/// What every route needs: the database and outbox, and the intake that writes new orders.
#[derive(Clone)]
pub struct AppState {
    pub infra: Infra,
    pub intake: Intake,
    /// Whether a new order may be accepted now.
    pub admission: std::sync::Arc<Admission>,
}

/// What the service's description says of it.
pub const ABOUT: &str = "Takes orders and owns each order's status: PENDING until its saga \
    decides, then CONFIRMED or CANCELLED.";

/// The routes, each with its description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one))
        .routes(routes!(cancel))
}

/// A page of orders.
pub type OrderPage = Page<Order, Uuid>;

/// A new order, as `POST /orders` takes it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct CreateOrder {
    customer_id: CustomerId,
    /// 1 to 100 lines; a unit price is more than 0 and at most 1000000.
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<OrderLine>,
    /// Default EUR.
    currency: Option<Currency>,
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

/// Places an order: stored PENDING with its `order.created` event, in one transaction. The
/// same `Idempotency-Key` with the same body answers the same order, even while new orders are
/// refused. While the oldest order in flight is older than the admission bound, a new order is
/// refused with 503 `OVERLOADED` and `Retry-After`, and nothing is written.
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 visible ASCII characters: a retry with the same body gets the same order")),
    responses(
        (status = 201, description = "The order, PENDING", body = Order),
        Conflict, Invalid, BodyErrors, Errors))]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let key = idempotency_key(&headers)?;
    let new = NewOrder::parse(&body).map_err(ApiError::validation)?;
    let request = serde_json::to_value(&new).map_err(ApiError::internal)?;
    if let Err(overloaded) = state.admission.admit(state.intake.writing()).await {
        // A retry of an order already accepted is answered, never refused.
        if let Some(key) = key.as_deref() {
            let mut conn = state.infra.pool.acquire().await?;
            if let Some(existing) = store::by_idempotency_key(&mut conn, key)
                .await
                .context("reading the order of an idempotency key")?
            {
                return replay(existing, &request);
            }
        }
        metrics::counter!(admission::REFUSED).increment(1);
        return Err(ApiError::overloaded(
            overloaded.to_string(),
            Admission::RETRY_AFTER,
        ));
    }
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

/// One order, with its current status.
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order's id")),
    responses((status = 200, description = "The order", body = Order), NotFound, Errors))]
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

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this customer's orders.
    #[param(value_type = Option<CustomerId>)]
    customer_id: Option<String>,
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// Only orders placed before this time (RFC 3339).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    created_before: Option<String>,
    /// Only orders that last changed after this time (RFC 3339).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    updated_after: Option<String>,
    /// Only orders that last changed before this time (RFC 3339).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    updated_before: Option<String>,
    /// Orders per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The page after this order: the `nextCursor` of the previous page.
    cursor: Option<Uuid>,
}

/// A page of orders, newest first. Filters combine.
#[utoipa::path(get, path = "/orders", tag = "orders", params(ListQuery),
    responses((status = 200, description = "A page of orders", body = OrderPage), Invalid, Errors))]
async fn list(
    State(AppState { infra, .. }): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let mut errors = Vec::new();
    let limit = keep(&mut errors, page_limit(query.limit).map(Some));
    let filter = ListFilter {
        customer_id: keep(
            &mut errors,
            query_value("customerId", query.customer_id.as_deref()),
        ),
        status: keep(&mut errors, query_value("status", query.status.as_deref())),
        before: query.cursor,
        created_before: keep(
            &mut errors,
            query_value::<Time>("createdBefore", query.created_before.as_deref()),
        )
        .map(|t| t.0),
        updated_after: keep(
            &mut errors,
            query_value::<Time>("updatedAfter", query.updated_after.as_deref()),
        )
        .map(|t| t.0),
        updated_before: keep(
            &mut errors,
            query_value::<Time>("updatedBefore", query.updated_before.as_deref()),
        )
        .map(|t| t.0),
        limit: 0,
    };
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let filter = ListFilter {
        limit: limit + 1,
        ..filter
    };
    let items = store::list(&infra.pool, &filter)
        .await
        .context("listing orders")?;
    Ok(Json(Page::from_fetched(items, limit, |o| o.order_id)))
}

#[derive(Default, Deserialize, ToSchema)]
struct CancelRequest {
    /// Why, in the customer's words (at most 500 characters).
    reason: Option<String>,
}

/// The customer cancels a PENDING or CONFIRMED order: refund and restock follow. Cancelling a
/// cancelled order again changes nothing.
#[utoipa::path(post, path = "/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order's id")),
    request_body(content = Option<CancelRequest>, description = "Optional"),
    responses((status = 200, description = "The order, CANCELLED", body = Order),
        NotFound, Invalid, BodyErrors, Errors))]
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
