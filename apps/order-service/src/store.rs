//! The `orders` table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use shared_events::{Event, Money, OrderCancelled, OrderConfirmed};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
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
    /// The charge and the reservation the order was confirmed with.
    #[serde(skip)]
    pub payment_id: Option<Uuid>,
    #[serde(skip)]
    pub reservation_id: Option<Uuid>,
}

const COLUMNS: &str = "order_id, saga_id, customer_id, items, total_amount, currency, status, \
    cancellation_reason, cancellation_detail, created_at, updated_at, payment_id, reservation_id";

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
    Option<Uuid>,
    Option<Uuid>,
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
        payment_id: row.11,
        reservation_id: row.12,
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
    let encode = |e: serde_json::Error| sqlx::Error::Encode(e.into());
    let ids: Vec<Uuid> = rows.iter().map(|r| r.order_id).collect();
    let sagas: Vec<Uuid> = rows.iter().map(|r| r.saga_id).collect();
    let customers: Vec<&str> = rows.iter().map(|r| r.order.customer_id.as_str()).collect();
    let items = rows
        .iter()
        .map(|r| serde_json::to_value(&r.order.items).map(Json))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode)?;
    let totals: Vec<Decimal> = rows.iter().map(|r| r.order.total_amount.amount()).collect();
    let currencies: Vec<&str> = rows.iter().map(|r| r.order.currency.as_str()).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|r| r.idempotency_key.as_deref()).collect();
    // The validated request, to tell a retry (same body) from a reuse of the key.
    let requests = rows
        .iter()
        .map(|r| serde_json::to_value(&r.order).map(Json))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode)?;
    let sql = format!(
        "INSERT INTO orders (order_id, saga_id, customer_id, items, total_amount, currency, status, \
         idempotency_key, request) \
         SELECT o, s, c, i, t, cur, 'PENDING', k, r \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::numeric[], $6::text[], \
                     $7::text[], $8::jsonb[]) AS x(o, s, c, i, t, cur, k, r) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING {COLUMNS}"
    );
    let written: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .bind(&sagas)
        .bind(&customers)
        .bind(&items)
        .bind(&totals)
        .bind(&currencies)
        .bind(&keys)
        .bind(&requests)
        .fetch_all(conn)
        .await?;
    written.into_iter().map(order).collect()
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
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .fetch_all(conn)
        .await?;
    rows.into_iter()
        .map(|r| order(r).map(|o| (o.order_id, o)))
        .collect()
}

/// Applies `command` to `order` in memory, by the order lifecycle. Returns the event the change
/// causes, or `None` when the command changes nothing (the caller then has nothing to save).
pub fn decide(order: &mut Order, command: Command) -> Option<Event> {
    let change = transition(order.status, command)?;
    order.status = change.status();
    Some(match change {
        Change::Confirm {
            payment_id,
            reservation_id,
        } => {
            order.payment_id = Some(payment_id);
            order.reservation_id = Some(reservation_id);
            OrderConfirmed {
                order_id: order.order_id,
                saga_id: order.saga_id,
                payment_id,
                reservation_id,
            }
            .into()
        }
        Change::Cancel { reason, detail } => {
            order.cancellation_reason = Some(reason.as_str().to_owned());
            order.cancellation_detail.clone_from(&detail);
            OrderCancelled {
                order_id: order.order_id,
                saga_id: order.saga_id,
                reason,
                detail,
            }
            .into()
        }
    })
}

/// Writes the status of `orders` back in one statement, and stamps their `updated_at`.
pub async fn save(conn: &mut PgConnection, orders: &mut [&mut Order]) -> Result<(), sqlx::Error> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = orders.iter().map(|o| o.order_id).collect();
    let statuses: Vec<&str> = orders.iter().map(|o| o.status.as_str()).collect();
    let payment_ids: Vec<Option<Uuid>> = orders.iter().map(|o| o.payment_id).collect();
    let reservation_ids: Vec<Option<Uuid>> = orders.iter().map(|o| o.reservation_id).collect();
    let reasons: Vec<Option<&str>> = orders
        .iter()
        .map(|o| o.cancellation_reason.as_deref())
        .collect();
    let details: Vec<Option<&str>> = orders
        .iter()
        .map(|o| o.cancellation_detail.as_deref())
        .collect();
    let stamped: HashMap<Uuid, DateTime<Utc>> = sqlx::query_as(
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
    .await?
    .into_iter()
    .collect();
    for o in orders.iter_mut() {
        if let Some(at) = stamped.get(&o.order_id) {
            o.updated_at = *at;
        }
    }
    Ok(())
}

/// Applies `command` to one order under a row lock. Returns the order after it, and the event
/// the change causes (`None` when the command changed nothing); `Ok(None)` for an unknown order.
pub async fn apply(
    conn: &mut PgConnection,
    order_id: Uuid,
    command: Command,
) -> Result<Option<(Order, Option<Event>)>, sqlx::Error> {
    let Some(mut order) = lock(conn, &[order_id]).await?.remove(&order_id) else {
        return Ok(None);
    };
    let event = decide(&mut order, command);
    if event.is_some() {
        save(conn, &mut [&mut order]).await?;
    }
    Ok(Some((order, event)))
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
    // Only the filters given, so that each query plans well whatever the plan cache does.
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM orders WHERE true"));
    if let Some(customer_id) = &filter.customer_id {
        query.push(" AND customer_id = ").push_bind(customer_id);
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(before) = filter.before {
        query.push(" AND order_id < ").push_bind(before);
    }
    query
        .push(" ORDER BY order_id DESC LIMIT ")
        .push_bind(filter.limit);
    let rows: Vec<Row> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(order).collect()
}
