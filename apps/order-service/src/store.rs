//! Every SQL statement of order-service: the `orders` table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shared_events::{AbortReason, Currency, CustomerId, Money};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::rules::{Line, NewOrder, Order, OrderStatus};

const COLUMNS: &str = "order_id, saga_id, customer_id, items, total_amount, currency, status, \
    cancellation_reason, cancellation_detail, created_at, updated_at, payment_id, reservation_id";

/// An order as its row holds it.
#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: Uuid,
    saga_id: Uuid,
    customer_id: CustomerId,
    items: Json<Vec<Line>>,
    total_amount: Money,
    currency: Currency,
    status: OrderStatus,
    cancellation_reason: Option<AbortReason>,
    cancellation_detail: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    payment_id: Option<Uuid>,
    reservation_id: Option<Uuid>,
}

impl From<OrderRow> for Order {
    fn from(r: OrderRow) -> Order {
        Order {
            order_id: r.order_id,
            saga_id: r.saga_id,
            customer_id: r.customer_id,
            items: r.items.0,
            total_amount: r.total_amount,
            currency: r.currency,
            status: r.status,
            cancellation_reason: r.cancellation_reason,
            cancellation_detail: r.cancellation_detail,
            created_at: r.created_at,
            updated_at: r.updated_at,
            payment_id: r.payment_id,
            reservation_id: r.reservation_id,
        }
    }
}

pub async fn get(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE order_id = $1");
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Order::from))
}

/// An order with the validated request it was made from.
pub struct Keyed {
    pub order: Order,
    pub request: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct KeyedRow {
    #[sqlx(flatten)]
    order: OrderRow,
    request: serde_json::Value,
}

/// The order stored under an idempotency key, with the request it was made from.
pub async fn by_idempotency_key(
    conn: &mut PgConnection,
    key: &str,
) -> Result<Option<Keyed>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS}, request FROM orders WHERE idempotency_key = $1");
    let row: Option<KeyedRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| Keyed {
        order: r.order.into(),
        request: r.request,
    }))
}

/// A new order to store.
pub struct NewRow {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub order: NewOrder,
    pub idempotency_key: Option<String>,
}

/// Inserts new `PENDING` orders in one statement and returns those written; an order whose
/// idempotency key another order already holds is not.
pub async fn insert(conn: &mut PgConnection, rows: &[&NewRow]) -> Result<Vec<Order>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.order_id).collect();
    let sagas: Vec<Uuid> = rows.iter().map(|r| r.saga_id).collect();
    let customers: Vec<&CustomerId> = rows.iter().map(|r| &r.order.customer_id).collect();
    let items: Vec<Json<&[Line]>> = rows
        .iter()
        .map(|r| Json(r.order.items.as_slice()))
        .collect();
    let totals: Vec<Money> = rows.iter().map(|r| r.order.total_amount).collect();
    let currencies: Vec<&Currency> = rows.iter().map(|r| &r.order.currency).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|r| r.idempotency_key.as_deref()).collect();
    // The validated request, to tell a retry (same body) from a reuse of the key.
    let requests: Vec<Json<&NewOrder>> = rows.iter().map(|r| Json(&r.order)).collect();
    let sql = format!(
        "INSERT INTO orders (order_id, saga_id, customer_id, items, total_amount, currency, status, \
         idempotency_key, request) \
         SELECT o, s, c, i, t, cur, $9, k, r \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::numeric[], $6::text[], \
                     $7::text[], $8::jsonb[]) AS x(o, s, c, i, t, cur, k, r) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING {COLUMNS}"
    );
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .bind(&sagas)
        .bind(&customers)
        .bind(&items)
        .bind(&totals)
        .bind(&currencies)
        .bind(&keys)
        .bind(&requests)
        .bind(OrderStatus::Pending)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Order::from).collect())
}

/// The orders `order_ids` that exist, locked for this transaction in order id order.
pub async fn lock(
    conn: &mut PgConnection,
    order_ids: &[Uuid],
) -> Result<HashMap<Uuid, Order>, sqlx::Error> {
    let mut ids = order_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE"
    );
    let orders: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .fetch_all(conn)
        .await?;
    Ok(orders
        .into_iter()
        .map(|o| (o.order_id, Order::from(o)))
        .collect())
}

/// When a saved order was stamped.
#[derive(sqlx::FromRow)]
struct Stamped {
    order_id: Uuid,
    updated_at: DateTime<Utc>,
}

/// Writes the status of `orders` back in one statement, and stamps their `updated_at`.
pub async fn save(conn: &mut PgConnection, orders: &mut [&mut Order]) -> Result<(), sqlx::Error> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = orders.iter().map(|o| o.order_id).collect();
    let statuses: Vec<OrderStatus> = orders.iter().map(|o| o.status).collect();
    let payment_ids: Vec<Option<Uuid>> = orders.iter().map(|o| o.payment_id).collect();
    let reservation_ids: Vec<Option<Uuid>> = orders.iter().map(|o| o.reservation_id).collect();
    let reasons: Vec<Option<AbortReason>> = orders.iter().map(|o| o.cancellation_reason).collect();
    let details: Vec<Option<&str>> = orders
        .iter()
        .map(|o| o.cancellation_detail.as_deref())
        .collect();
    let stamped: Vec<Stamped> = sqlx::query_as(
        "UPDATE orders SET status = x.status, payment_id = x.payment_id, \
         reservation_id = x.reservation_id, cancellation_reason = x.reason, \
         cancellation_detail = x.detail, updated_at = now() \
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[]) \
              AS x(order_id, status, payment_id, reservation_id, reason, detail) \
         WHERE orders.order_id = x.order_id RETURNING orders.order_id, orders.updated_at",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&payment_ids)
    .bind(&reservation_ids)
    .bind(&reasons)
    .bind(&details)
    .fetch_all(conn)
    .await?;
    let stamped: HashMap<Uuid, DateTime<Utc>> = stamped
        .into_iter()
        .map(|s| (s.order_id, s.updated_at))
        .collect();
    for o in orders.iter_mut() {
        if let Some(at) = stamped.get(&o.order_id) {
            o.updated_at = *at;
        }
    }
    Ok(())
}

/// The order of a listing's pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Newest order first (ids are time-ordered UUIDv7); a page continues after an order id.
    #[default]
    Newest,
    /// Oldest change first, by `(updated_at, order_id)`; a page continues after a change. A
    /// window of changes is read page by page at the cost of a page each, however many orders
    /// it holds (for `CANCELLED`, index `orders_cancelled_by_update`).
    Updated,
}

#[derive(Clone, Default)]
pub struct ListFilter {
    pub customer_id: Option<CustomerId>,
    pub status: Option<OrderStatus>,
    /// Orders older than this one (ids are time-ordered UUIDv7).
    pub before: Option<Uuid>,
    /// Orders placed before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Orders that last changed after this time.
    pub updated_after: Option<DateTime<Utc>>,
    /// Orders that last changed before this time.
    pub updated_before: Option<DateTime<Utc>>,
    pub sort: Sort,
    /// With [`Sort::Updated`]: orders whose `(updated_at, order_id)` comes after this one.
    pub after_change: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A page of orders, in the filter's order.
pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<Order>, sqlx::Error> {
    // Only the filters given, planned for their values (`fetch_listing`).
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM orders WHERE true"));
    if let Some(customer_id) = &filter.customer_id {
        query.push(" AND customer_id = ").push_bind(customer_id);
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(before) = filter.before {
        query.push(" AND order_id < ").push_bind(before);
    }
    if let Some(at) = filter.created_before {
        query.push(" AND created_at < ").push_bind(at);
    }
    if let Some(at) = filter.updated_after {
        query.push(" AND updated_at > ").push_bind(at);
    }
    if let Some(at) = filter.updated_before {
        query.push(" AND updated_at < ").push_bind(at);
    }
    if let Some((at, order_id)) = filter.after_change {
        query
            .push(" AND (updated_at, order_id) > (")
            .push_bind(at)
            .push(", ")
            .push_bind(order_id)
            .push(")");
    }
    query.push(match filter.sort {
        Sort::Newest => " ORDER BY order_id DESC LIMIT ",
        Sort::Updated => " ORDER BY updated_at, order_id LIMIT ",
    });
    query.push_bind(filter.limit);
    let rows: Vec<OrderRow> = messaging::db::fetch_listing(pool, &mut query).await?;
    Ok(rows.into_iter().map(Order::from).collect())
}
