//! inventory-service: owns stock. It reserves every line of an order or none, commits on
//! confirmation, releases or restocks on cancellation ([`stock`] holds the rules), and shows
//! stock and reservations over HTTP; setting stock is an admin call.

pub mod stock;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use messaging::db::Migration;
use messaging::{Batch, Handler, HandlerError, Shutdown};
use serde::{Deserialize, Serialize};
use service_kit::auth::AdminToken;
use service_kit::extract::{Page, page_limit};
use service_kit::settings::env_or;
use service_kit::{
    ApiError, ApiJson, ApiPath, ApiQuery, CommonSettings, FieldError, Infra, Service,
    ServiceBuilder,
};
use shared_events::{Envelope, Event, EventKind};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::stock::{Outcome, Reservation};

pub const SERVICE: &str = "inventory-service";
pub const DEFAULT_PORT: u16 = 3007;
/// The most stock one product may hold.
pub const MAX_ON_HAND: i64 = 1_000_000_000;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1000,
    description: "stock",
    sql: include_str!("../migrations/1000_stock.sql"),
}];

#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonSettings,
    /// `INVENTORY_AUTO_PROVISION`: stock given to a product the first time an order names it
    /// (default 0: unknown products fail the reservation with `UNKNOWN_PRODUCT`).
    pub auto_provision: i64,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        let auto_provision: i64 = env_or("INVENTORY_AUTO_PROVISION", 0)?;
        if !(0..=MAX_ON_HAND).contains(&auto_provision) {
            anyhow::bail!(
                "INVENTORY_AUTO_PROVISION={auto_provision} is not valid: must be 0 to {MAX_ON_HAND}"
            );
        }
        Ok(Settings {
            common: CommonSettings::from_env(SERVICE, DEFAULT_PORT, "inventory")?,
            auto_provision,
        })
    }
}

/// Reacts to `order.created.v1`, `order.confirmed.v1` and `order.cancelled.v1`.
#[derive(Clone)]
pub struct Reactions {
    auto_provision: i64,
}

impl Handler for Reactions {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let mut book = stock::Book::load(batch.conn(), events, self.auto_provision).await?;
        for event in events {
            let outcome = match &event.payload {
                Event::OrderCreated(order) => book.created(order),
                Event::OrderConfirmed(e) => book.confirmed(e.order_id),
                Event::OrderCancelled(e) => book.cancelled(e.order_id),
                other => {
                    return Err(HandlerError::Rejected(format!(
                        "inventory-service does not handle {}",
                        other.kind().subject()
                    )));
                }
            };
            match outcome {
                Outcome::Emit(emitted) => {
                    batch.emit(event, emitted);
                }
                Outcome::Nothing => {}
                Outcome::NotYet => batch.retry_later(
                    event,
                    format!("order {} is not reserved yet", event.payload.order_id()),
                ),
            }
        }
        book.save(batch.conn()).await?;
        Ok(())
    }
}

#[derive(Clone)]
struct Api {
    infra: Infra,
    admin: AdminToken,
}

pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Service> {
    let infra = Infra::connect(&settings.common, MIGRATIONS).await?;
    let admin = AdminToken::new(settings.common.admin_token.as_deref());
    let mut builder = ServiceBuilder::new(settings.common, infra.clone(), shutdown);
    let reactions = Reactions {
        auto_provision: settings.auto_provision,
    };
    for kind in [
        EventKind::OrderCreated,
        EventKind::OrderConfirmed,
        EventKind::OrderCancelled,
    ] {
        builder.consume(kind, reactions.clone()).await?;
    }
    let routes = Router::new()
        .route("/inventory", get(list))
        .route("/inventory/{product_id}", get(get_one).put(set_stock))
        .route("/reservations/{order_id}", get(reservation))
        .with_state(Api { infra, admin });
    builder.serve(routes).await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Product {
    product_id: String,
    on_hand: i64,
    reserved: i64,
    available: i64,
    updated_at: DateTime<Utc>,
}

type ProductRow = (String, i64, i64, DateTime<Utc>);

fn product(row: ProductRow) -> Product {
    Product {
        product_id: row.0,
        on_hand: row.1,
        reserved: row.2,
        available: row.1 - row.2,
        updated_at: row.3,
    }
}

fn product_id(raw: &str) -> Result<String, ApiError> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::bad_request(
            "INVALID_ID",
            "productId must be 1 to 64 letters, digits, '-', '_', '.' or ':'",
        ))
    }
}

async fn get_one(
    State(api): State<Api>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Product>, ApiError> {
    let id = product_id(&raw)?;
    let row: Option<ProductRow> = sqlx::query_as(
        "SELECT product_id, on_hand, reserved, updated_at FROM products WHERE product_id = $1",
    )
    .bind(&id)
    .fetch_optional(&api.infra.pool)
    .await?;
    row.map(|r| Json(product(r)))
        .ok_or_else(|| ApiError::not_found(format!("no product {id}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetStock {
    on_hand: serde_json::Value,
}

/// `PUT /inventory/{productId}` `{"onHand": N}` (admin): sets what is on the shelf.
async fn set_stock(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<SetStock>,
) -> Result<Json<Product>, ApiError> {
    api.admin.check(&headers)?;
    let id = product_id(&raw)?;
    let on_hand = body
        .on_hand
        .as_i64()
        .filter(|n| (0..=MAX_ON_HAND).contains(n))
        .ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                "onHand",
                format!("must be a whole number from 0 to {MAX_ON_HAND}"),
            )])
        })?;
    let mut tx = api.infra.pool.begin().await?;
    let reserved: Option<i64> =
        sqlx::query_scalar("SELECT reserved FROM products WHERE product_id = $1 FOR UPDATE")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(reserved) = reserved.filter(|r| *r > on_hand) {
        return Err(ApiError::conflict(
            "STOCK_HELD",
            format!("{reserved} units of {id} are reserved by orders; onHand cannot go below that"),
        ));
    }
    let row: ProductRow = sqlx::query_as(
        "INSERT INTO products (product_id, on_hand) VALUES ($1, $2) \
         ON CONFLICT (product_id) DO UPDATE SET on_hand = $2, updated_at = now() \
         RETURNING product_id, on_hand, reserved, updated_at",
    )
    .bind(&id)
    .bind(on_hand)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(product(row)))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /inventory?limit=&cursor=`: products in id order.
async fn list(
    State(api): State<Api>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<Product, String>>, ApiError> {
    let limit = page_limit(query.limit)?;
    let mut select = QueryBuilder::<Postgres>::new(
        "SELECT product_id, on_hand, reserved, updated_at FROM products",
    );
    if let Some(after) = &query.cursor {
        select.push(" WHERE product_id > ").push_bind(after);
    }
    select
        .push(" ORDER BY product_id LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<ProductRow> = select.build_query_as().fetch_all(&api.infra.pool).await?;
    let items: Vec<Product> = rows.into_iter().map(product).collect();
    Ok(Json(Page::from_fetched(items, limit, |p| {
        p.product_id.clone()
    })))
}

async fn reservation(
    State(api): State<Api>,
    ApiPath(order_id): ApiPath<Uuid>,
) -> Result<Json<Reservation>, ApiError> {
    let mut conn = api.infra.pool.acquire().await?;
    stock::reservation(&mut conn, order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no reservation for order {order_id}")))
}
