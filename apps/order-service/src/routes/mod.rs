//! The HTTP API of order-service. Each handler's `#[utoipa::path]` is its description in the
//! OpenAPI document (`GET /openapi.json`, `docs/openapi/order-service.json`).

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::api::{BodyErrors, Conflict, ErrorBody, Errors, Invalid, NotFound};
use service_kit::extract::{OptionalJson, Page, Time, keep, note, page_limit, query_value};
use service_kit::{ApiError, ApiJson, ApiPath, ApiQuery, FieldError, Infra};
use shared_events::{AbortReason, Currency, CustomerId, Money, OrderLine, ProductId, Quantity};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub mod new_order;

use crate::admission::{self, Admission};
use crate::intake::{Intake, IntakeError};
use crate::rules::{Input, Line, Order, OrderStatus, new_order_id};
use crate::store::{self, Keyed, ListFilter, NewRow, Sort};

/// What every route needs: the database and outbox, and the intake that writes new orders.
#[derive(Clone)]
pub struct Api {
    pub infra: Infra,
    pub intake: Intake,
    /// Whether a new order may be accepted now.
    pub admission: std::sync::Arc<Admission>,
}

/// What the service's description says of it.
pub const ABOUT: &str = "Takes orders and owns each order's status: PENDING until its saga \
    decides, then CONFIRMED or CANCELLED.";

/// The routes, each with its description.
pub fn api() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one))
        .routes(routes!(cancel))
}

/// A page of orders: newest first, or (`sort=updated`) oldest change first.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    #[serde(flatten)]
    page: Page<OrderView, Uuid>,
    /// With `sort=updated`, where the next page starts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<Change>,
}

impl utoipa::PartialSchema for OrderPage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
        let mut schema = <Page<OrderView, Uuid> as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.properties.insert(
                "nextAfter".to_owned(),
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .description(Some(
                        "With sort=updated, where the next page starts (pass it as after); \
                         absent on the last page. nextCursor is then null.",
                    ))
                    .into(),
            );
        }
        schema
    }
}

impl ToSchema for OrderPage {
    fn name() -> std::borrow::Cow<'static, str> {
        <Page<OrderView, Uuid> as ToSchema>::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <Page<OrderView, Uuid> as ToSchema>::schemas(schemas);
    }
}

/// The point in `sort=updated` order after which a page starts: the last order's `updatedAt`
/// and id, as `2026-12-07T17:00:00.123456Z_<orderId>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub updated_at: DateTime<Utc>,
    pub order_id: Uuid,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self
            .updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        write!(f, "{at}_{}", self.order_id)
    }
}

impl std::str::FromStr for Change {
    type Err = &'static str;
    fn from_str(text: &str) -> Result<Change, &'static str> {
        const SHAPE: &str = "must be the nextAfter of the previous page";
        let (at, order_id) = text.split_once('_').ok_or(SHAPE)?;
        Ok(Change {
            updated_at: DateTime::parse_from_rfc3339(at)
                .map_err(|_| SHAPE)?
                .with_timezone(&Utc),
            order_id: order_id.parse().map_err(|_| SHAPE)?,
        })
    }
}

impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::str::FromStr for Sort {
    type Err = &'static str;
    fn from_str(text: &str) -> Result<Sort, &'static str> {
        match text {
            "newest" => Ok(Sort::Newest),
            "updated" => Ok(Sort::Updated),
            _ => Err("must be newest or updated"),
        }
    }
}

/// One line of an order as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Line)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    product_id: ProductId,
    quantity: Quantity,
    unit_price: Money,
    total_price: Money,
}

impl From<&Line> for LineView {
    fn from(l: &Line) -> LineView {
        LineView {
            product_id: l.product_id.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            total_price: l.total_price,
        }
    }
}

/// An order as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Order)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    order_id: Uuid,
    saga_id: Uuid,
    customer_id: CustomerId,
    items: Vec<LineView>,
    total_amount: Money,
    currency: Currency,
    status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancellation_reason: Option<AbortReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancellation_detail: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Order> for OrderView {
    fn from(o: Order) -> OrderView {
        OrderView {
            order_id: o.order_id,
            saga_id: o.saga_id,
            customer_id: o.customer_id,
            items: o.items.iter().map(LineView::from).collect(),
            total_amount: o.total_amount,
            currency: o.currency,
            status: o.status,
            cancellation_reason: o.cancellation_reason,
            cancellation_detail: o.cancellation_detail,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

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
fn replay(existing: Keyed, request: &Value) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    if &existing.request == request {
        Ok((StatusCode::CREATED, Json(existing.order.into())))
    } else {
        Err(ApiError::conflict(
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was used with a different request",
        ))
    }
}

/// Places an order: stored PENDING with its `order.created` event, in one transaction. The
/// same `Idempotency-Key` with the same body answers the same order, even while new orders are
/// refused. While the orders that wait their turn are older than the admission bound, a new
/// order is refused with 503 `OVERLOADED` and `Retry-After`, and nothing is written.
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 visible ASCII characters: a retry with the same body gets the same order")),
    responses(
        (status = 201, description = "The order, PENDING", body = OrderView),
        Conflict, Invalid, BodyErrors, Errors,
        (status = 503, description = "`OVERLOADED`: accepting another order now would push \
            order-to-end latency past its bound, and nothing was written; try again after \
            `Retry-After` seconds. Or the service's database could not be reached; try again.",
            body = ErrorBody,
            headers(("Retry-After" = u64,
                description = "Seconds to wait before trying again (with `OVERLOADED`)")))))]
async fn create(
    State(state): State<Api>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let key = idempotency_key(&headers)?;
    let new = new_order::parse(&body).map_err(ApiError::validation)?;
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
        metrics::counter!(admission::REFUSED, "reason" => overloaded.reason()).increment(1);
        return Err(ApiError::overloaded(
            overloaded.to_string(),
            state.admission.retry_after(&overloaded),
        ));
    }
    let (order_id, saga_id) = (new_order_id(Uuid::now_v7(), key.as_deref()), Uuid::now_v7());
    let created = new.created(order_id, saga_id);
    let event = state.infra.outbox.event(created, saga_id, None);
    let row = NewRow {
        order_id,
        saga_id,
        order: new,
        idempotency_key: key.clone(),
    };
    let written = state.intake.submit(row, event).await.map_err(|e| match e {
        IntakeError::Stopping => {
            ApiError::dependency_away("UNAVAILABLE", "the service is stopping; try again", e)
        }
        IntakeError::Unavailable(_) => {
            ApiError::dependency_away("UNAVAILABLE", "the database is unavailable; try again", e)
        }
        IntakeError::Failed(_) => ApiError::internal(e),
    })?;
    match written {
        Some(order) => Ok((StatusCode::CREATED, Json(order.into()))),
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
    responses((status = 200, description = "The order", body = OrderView), NotFound, Errors))]
async fn get_one(
    State(Api { infra, .. }): State<Api>,
    ApiPath(order_id): ApiPath<Uuid>,
) -> Result<Json<OrderView>, ApiError> {
    let mut conn = infra.pool.acquire().await?;
    store::get(&mut conn, order_id)
        .await
        .context("reading an order")?
        .map(|o| Json(o.into()))
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
    /// The order of the pages: `newest` (the default), newest order first; or `updated`, oldest
    /// change first (by `updatedAt`, then `orderId`), to read what changed in a window
    /// (`updatedAfter`, `updatedBefore`) page by page.
    #[param(value_type = Option<String>, pattern = "^(newest|updated)$")]
    sort: Option<String>,
    /// The page after this order: the `nextCursor` of the previous page (`sort=newest`).
    cursor: Option<Uuid>,
    /// The page after this change: the `nextAfter` of the previous page (`sort=updated`).
    after: Option<String>,
}

/// A page of orders, newest first, or oldest change first with `sort=updated`. Filters combine.
#[utoipa::path(get, path = "/orders", tag = "orders", params(ListQuery),
    responses((status = 200, description = "A page of orders", body = OrderPage), Invalid, Errors))]
async fn list(
    State(Api { infra, .. }): State<Api>,
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
        sort: keep(&mut errors, query_value("sort", query.sort.as_deref())).unwrap_or_default(),
        after_change: keep(
            &mut errors,
            query_value::<Change>("after", query.after.as_deref()),
        )
        .map(|c| (c.updated_at, c.order_id)),
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
    match filter.sort {
        Sort::Newest if filter.after_change.is_some() => errors.push(FieldError::new(
            "after",
            "continues sort=updated pages; newest-first pages continue with cursor",
        )),
        Sort::Updated if filter.before.is_some() => errors.push(FieldError::new(
            "cursor",
            "continues newest-first pages; sort=updated pages continue with after",
        )),
        _ => {}
    }
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
    let page = match filter.sort {
        Sort::Newest => OrderPage {
            page: Page::from_fetched(items, limit, |o| o.order_id).map(OrderView::from),
            next_after: None,
        },
        Sort::Updated => {
            let page = Page::from_fetched(items, limit, |o| Change {
                updated_at: o.updated_at,
                order_id: o.order_id,
            })
            .map(OrderView::from);
            OrderPage {
                next_after: page.next_cursor,
                page: Page {
                    items: page.items,
                    next_cursor: None,
                },
            }
        }
    };
    Ok(Json(page))
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
    responses((status = 200, description = "The order, CANCELLED", body = OrderView),
        NotFound, Invalid, BodyErrors, Errors))]
async fn cancel(
    State(Api { infra, .. }): State<Api>,
    ApiPath(order_id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<CancelRequest>,
) -> Result<Json<OrderView>, ApiError> {
    let detail = note("reason", body.reason)?;
    let mut tx = infra.pool.begin().await?;
    let Some(order) = store::lock(&mut tx, &[order_id])
        .await
        .context("locking the order")?
        .remove(&order_id)
    else {
        return Err(ApiError::not_found(format!("no order {order_id}")));
    };
    let (mut order, reaction) = order.apply(Input::CustomerCancel { detail });
    let Some(event) = reaction.event().cloned() else {
        // Cancelled before: nothing changes.
        return Ok(Json(order.into()));
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
    Ok(Json(order.into()))
}
