//! The `orders` table.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use shared_events::{Event, Money, OrderCancelled, OrderConfirmed};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{Change, Command, Line, NewOrder, OrderStatus, transition};

/// An order as the API shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub customer_id: String,
    pub items: Vec<Line>,
    pub total_amount: Money,
    pub currency: String,
    pub status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "order_id, saga_id, customer_id, items, total_amount, currency, status, \
    cancellation_reason, cancellation_detail, created_at, updated_at";

type Row = (
    Uuid,
    Uuid,
    String,
    Json<Vec<Line>>,
    Decimal,
    String,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn order(row: Row) -> Result<Order, sqlx::Error> {
    let corrupt = |what: String| sqlx::Error::Decode(what.into());
    Ok(Order {
        order_id: row.0,
        saga_id: row.1,
        customer_id: row.2,
        items: row.3.0,
        total_amount: Money::parse(row.4).map_err(|e| corrupt(format!("total_amount: {e}")))?,
        currency: row.5,
        status: OrderStatus::parse(&row.6).ok_or_else(|| corrupt(format!("status {}", row.6)))?,
        cancellation_reason: row.7,
        cancellation_detail: row.8,
        created_at: row.9,
        updated_at: row.10,
    })
}

pub async fn get(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE order_id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    row.map(order).transpose()
}

/// The order stored under an idempotency key, with the request it was made from.
pub async fn by_idempotency_key(
    conn: &mut PgConnection,
    key: &str,
) -> Result<Option<(Order, serde_json::Value)>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS}, request FROM orders WHERE idempotency_key = $1");
    let row: Option<sqlx::postgres::PgRow> = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    use sqlx::Row as _;
    let request: serde_json::Value = row.try_get("request")?;
    let order_id: Uuid = row.try_get("order_id")?;
    Ok(get(conn, order_id).await?.map(|o| (o, request)))
}

/// Inserts a new `PENDING` order; `false` if another order already holds the idempotency key.
pub async fn insert(
    conn: &mut PgConnection,
    order_id: Uuid,
    saga_id: Uuid,
    new: &NewOrder,
    idempotency_key: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let request = serde_json::to_value(new).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let inserted = sqlx::query(
        "INSERT INTO orders (order_id, saga_id, customer_id, items, total_amount, currency, status, \
         idempotency_key, request) VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7, $8) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(order_id)
    .bind(saga_id)
    .bind(&new.customer_id)
    .bind(Json(&new.items))
    .bind(new.total_amount.amount())
    .bind(&new.currency)
    .bind(idempotency_key)
    .bind(Json(request))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Applies `command` to the order under a row lock. Returns the order after it, and the event
/// the change causes (`None` when the command changed nothing); `Ok(None)` for an unknown order.
pub async fn apply(
    conn: &mut PgConnection,
    order_id: Uuid,
    command: Command,
) -> Result<Option<(Order, Option<Event>)>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM orders WHERE order_id = $1 FOR UPDATE");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(current) = row.map(order).transpose()? else {
        return Ok(None);
    };
    let Some(change) = transition(current.status, command) else {
        return Ok(Some((current, None)));
    };
    let event: Event = match &change {
        Change::Confirm {
            payment_id,
            reservation_id,
        } => OrderConfirmed {
            order_id,
            saga_id: current.saga_id,
            payment_id: *payment_id,
            reservation_id: *reservation_id,
        }
        .into(),
        Change::Cancel { reason, detail } => OrderCancelled {
            order_id,
            saga_id: current.saga_id,
            reason: *reason,
            detail: detail.clone(),
        }
        .into(),
    };
    let (payment_id, reservation_id, reason, detail) = match &change {
        Change::Confirm {
            payment_id,
            reservation_id,
        } => (Some(*payment_id), Some(*reservation_id), None, None),
        Change::Cancel { reason, detail } => (None, None, Some(reason.as_str()), detail.clone()),
    };
    sqlx::query(
        "UPDATE orders SET status = $2, payment_id = COALESCE($3, payment_id), \
         reservation_id = COALESCE($4, reservation_id), cancellation_reason = $5, \
         cancellation_detail = $6, updated_at = now() WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(change.status().as_str())
    .bind(payment_id)
    .bind(reservation_id)
    .bind(reason)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    let after = get(conn, order_id).await?;
    Ok(after.map(|o| (o, Some(event))))
}

pub struct ListFilter {
    pub customer_id: Option<String>,
    pub status: Option<OrderStatus>,
    /// Orders older than this one (ids are time-ordered UUIDv7).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// A page of orders, newest first.
pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<Order>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE ($1::text IS NULL OR customer_id = $1) \
         AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR order_id < $3) \
         ORDER BY order_id DESC LIMIT $4"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(filter.customer_id.as_deref())
        .bind(filter.status.map(OrderStatus::as_str))
        .bind(filter.before)
        .bind(filter.limit)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(order).collect()
}
