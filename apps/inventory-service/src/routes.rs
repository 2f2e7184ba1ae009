//! The HTTP API of inventory-service: stock per product (setting it is an admin call) and
//! reservations per order.

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use service_kit::api::{BodyErrors, Conflict, Errors, Invalid, NotFound, Refused};
use service_kit::auth::AdminToken;
use service_kit::extract::{Page, id_list, page_limit, query_value};
use service_kit::{ApiError, ApiJson, ApiPath, ApiQuery, FieldError, Infra};
use shared_events::{ProductId, StockLine};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::rules::{
    MAX_ON_HAND, Reservation, ReservationFailure, ReservationStatus, SetStockError, set_stock,
};
use crate::store::{self, Product};

/// A product as the API shows it.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Product)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    product_id: ProductId,
    on_hand: i64,
    reserved: i64,
    /// `onHand - reserved`.
    available: i64,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> ProductView {
        ProductView {
            product_id: p.product_id,
            on_hand: p.on_hand,
            reserved: p.reserved,
            available: p.available,
            updated_at: p.updated_at,
        }
    }
}

/// A reservation as the API shows it.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Reservation)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    order_id: Uuid,
    reservation_id: Uuid,
    status: ReservationStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<ReservationFailure>,
    items: Vec<StockLine>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Reservation> for ReservationView {
    fn from(r: Reservation) -> ReservationView {
        ReservationView {
            order_id: r.order_id,
            reservation_id: r.reservation_id,
            status: r.status,
            reason: r.reason,
            items: r.items,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Clone)]
pub struct Api {
    pub infra: Infra,
    pub admin: AdminToken,
}

/// What the service's description says of it.
pub const ABOUT: &str = "Owns stock: reserves every line of an order or none, commits on \
    confirmation, releases or restocks on cancellation; shows stock and reservations. Setting \
    stock is an admin call.";

/// The routes, each with its description.
pub fn api() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one, put_stock))
        .routes(routes!(reservation))
        .routes(routes!(reservations))
}

/// A page of products.
pub type ProductPage = Page<ProductView, ProductId>;

fn product_id(raw: &str) -> Result<ProductId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(
            "INVALID_ID",
            "productId must be 1 to 64 letters, digits, '-', '_', '.' or ':'",
        )
    })
}

/// One product's stock.
#[utoipa::path(get, path = "/inventory/{product_id}", tag = "inventory",
    params(("product_id" = ProductId, Path, description = "The product's id")),
    responses((status = 200, description = "The product", body = ProductView), NotFound, Errors))]
async fn get_one(
    State(api): State<Api>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<ProductView>, ApiError> {
    let id = product_id(&raw)?;
    store::product(&api.infra.pool, &id)
        .await
        .context("reading a product")?
        .map(|p| Json(p.into()))
        .ok_or_else(|| ApiError::not_found(format!("no product {id}")))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SetStock {
    /// What is on the shelf: 0 to 1000000000, never less than what orders hold.
    #[schema(value_type = i64, minimum = 0, maximum = 1_000_000_000)]
    on_hand: serde_json::Value,
}

/// `PUT /inventory/{productId}` `{"onHand": N}` (admin): sets what is on the shelf.
#[utoipa::path(put, path = "/inventory/{product_id}", tag = "inventory", request_body = SetStock,
    params(("product_id" = ProductId, Path, description = "The product's id")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The product, with its new stock", body = ProductView),
        Refused, Conflict, Invalid, BodyErrors, Errors))]
async fn put_stock(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<SetStock>,
) -> Result<Json<ProductView>, ApiError> {
    let actor = api.admin.check(&headers)?;
    let id = product_id(&raw)?;
    let out_of_range = || {
        ApiError::validation(vec![FieldError::new(
            "onHand",
            format!("must be a whole number from 0 to {MAX_ON_HAND}"),
        )])
    };
    let on_hand = body.on_hand.as_i64().ok_or_else(out_of_range)?;
    let mut tx = api.infra.pool.begin().await?;
    let current = store::lock_shelf(&mut tx, &id)
        .await
        .context("locking the product")?;
    let shelf = set_stock(current, on_hand).map_err(|e| match e {
        SetStockError::OutOfRange => out_of_range(),
        SetStockError::BelowReserved { reserved } => ApiError::conflict(
            "STOCK_HELD",
            format!("{reserved} units of {id} are reserved by orders; onHand cannot go below that"),
        ),
    })?;
    let product = store::put_shelf(&mut tx, &id, shelf)
        .await
        .context("writing the product's stock")?;
    let was = current.map_or_else(|| "none".to_owned(), |s| s.on_hand.to_string());
    let detail = format!("onHand {was} -> {on_hand}");
    service_kit::audit::record(&mut tx, &actor, "stock.set", id.as_str(), Some(&detail))
        .await
        .context("auditing the change")?;
    tx.commit().await.context("committing the stock")?;
    Ok(Json(product.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Products per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The page after this product: the `nextCursor` of the previous page.
    #[param(value_type = Option<ProductId>)]
    cursor: Option<String>,
}

/// `GET /inventory?limit=&cursor=`: products in id order.
#[utoipa::path(get, path = "/inventory", tag = "inventory", params(ListQuery),
    responses((status = 200, description = "A page of products", body = ProductPage),
        Invalid, Errors))]
async fn list(
    State(api): State<Api>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ProductPage>, ApiError> {
    let limit = page_limit(query.limit)?;
    let after: Option<ProductId> = query_value("cursor", query.cursor.as_deref())?;
    let items = store::products(&api.infra.pool, after.as_ref(), limit + 1)
        .await
        .context("listing products")?;
    Ok(Json(
        Page::from_fetched(items, limit, |p| p.product_id.clone()).map(ProductView::from),
    ))
}

/// The reservation made for an order.
#[utoipa::path(get, path = "/reservations/{order_id}", tag = "inventory",
    params(("order_id" = Uuid, Path, description = "The order's id")),
    responses((status = 200, description = "The reservation", body = ReservationView),
        NotFound, Errors))]
async fn reservation(
    State(api): State<Api>,
    ApiPath(order_id): ApiPath<Uuid>,
) -> Result<Json<ReservationView>, ApiError> {
    let mut conn = api.infra.pool.acquire().await?;
    store::reservation(&mut conn, order_id)
        .await
        .context("reading a reservation")?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::not_found(format!("no reservation for order {order_id}")))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ByOrders {
    /// The orders whose reservations to show: 1 to 100 comma-separated ids (required).
    order_ids: Option<String>,
}

/// The reservations of several orders at once.
#[derive(serde::Serialize, ToSchema)]
struct Reservations {
    /// The orders' reservations, by order id; an order never seen has none.
    items: Vec<ReservationView>,
}

/// `GET /reservations/search?orderIds=`: the reservations of up to 100 orders in one call
/// (orders without one are left out), as the reconciliation reads them.
#[utoipa::path(get, path = "/reservations/search", tag = "inventory", params(ByOrders),
    responses((status = 200, description = "The orders' reservations", body = Reservations),
        Invalid, Errors))]
async fn reservations(
    State(api): State<Api>,
    ApiQuery(query): ApiQuery<ByOrders>,
) -> Result<Json<Reservations>, ApiError> {
    let order_ids = id_list("orderIds", query.order_ids.as_deref())?;
    let items = store::reservations(&api.infra.pool, &order_ids)
        .await
        .context("reading orders' reservations")?;
    Ok(Json(Reservations {
        items: items.into_iter().map(ReservationView::from).collect(),
    }))
}
