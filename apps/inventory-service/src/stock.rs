//! The stock rules: reserve every line of an order or none, commit the reservation when the order
//! is confirmed, release it (or restock what was committed) when the order is cancelled, and never
//! reserve for an order cancelled before this service saw it created.
//!
//! ```text
//! (none) --order.created, all lines available--> RESERVED --order.confirmed--> COMMITTED
//! (none) --order.created, a line missing--> FAILED
//! RESERVED | COMMITTED --order.cancelled--> RELEASED (stock back on the shelf)
//! (none) --order.cancelled--> cancelled mark --order.created--> FAILED (ORDER_CANCELLED)
//! ```
//! Oversell is impossible across instances: reserving locks the product rows (in product order,
//! so that concurrent orders cannot deadlock) and the table refuses `reserved > on_hand`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared_events::{
    Event, InventoryCommitted, InventoryFailed, InventoryFailureReason, InventoryReleased,
    InventoryReserved, OrderCreated, StockLine, UnavailableItem,
};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Unknown,
    CancelledFirst,
    Reserved,
    Committed,
    Released,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Reserve,
    /// Record the reservation as failed without touching stock: the order was cancelled first.
    Skip,
    Commit,
    Release {
        restock: bool,
    },
    MarkCancelled,
    /// Not reserved yet (the confirmation overtook the creation): try again later.
    NotYet,
}

pub fn on_created(standing: Standing) -> Option<Action> {
    match standing {
        Standing::Unknown => Some(Action::Reserve),
        Standing::CancelledFirst => Some(Action::Skip),
        _ => None,
    }
}

pub fn on_confirmed(standing: Standing) -> Option<Action> {
    match standing {
        Standing::Reserved => Some(Action::Commit),
        Standing::Unknown => Some(Action::NotYet),
        _ => None,
    }
}

pub fn on_cancelled(standing: Standing) -> Option<Action> {
    match standing {
        Standing::Unknown => Some(Action::MarkCancelled),
        Standing::Reserved => Some(Action::Release { restock: false }),
        Standing::Committed => Some(Action::Release { restock: true }),
        Standing::CancelledFirst | Standing::Released | Standing::Failed => None,
    }
}

/// Whether every requested line is available: `Err` names the reason and each short line.
pub fn check(
    requested: &BTreeMap<String, u32>,
    stock: &HashMap<String, i64>,
) -> Result<(), (InventoryFailureReason, Vec<UnavailableItem>)> {
    let unknown: Vec<UnavailableItem> = requested
        .iter()
        .filter(|(p, _)| !stock.contains_key(*p))
        .map(|(p, q)| UnavailableItem {
            product_id: p.clone(),
            requested: *q,
            available: 0,
        })
        .collect();
    if !unknown.is_empty() {
        return Err((InventoryFailureReason::UnknownProduct, unknown));
    }
    let short: Vec<UnavailableItem> = requested
        .iter()
        .filter_map(|(p, q)| {
            let available = stock.get(p).copied().unwrap_or(0);
            (available < i64::from(*q)).then(|| UnavailableItem {
                product_id: p.clone(),
                requested: *q,
                available,
            })
        })
        .collect();
    if short.is_empty() {
        Ok(())
    } else {
        Err((InventoryFailureReason::InsufficientStock, short))
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub order_id: Uuid,
    pub reservation_id: Uuid,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub items: Vec<StockLine>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub saga_id: Uuid,
}

type Row = (
    Uuid,
    Uuid,
    Uuid,
    String,
    Option<String>,
    Json<Vec<StockLine>>,
    DateTime<Utc>,
    DateTime<Utc>,
);

pub async fn reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT order_id, reservation_id, saga_id, status, reason, items, created_at, updated_at \
         FROM reservations WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Reservation {
        order_id: r.0,
        reservation_id: r.1,
        saga_id: r.2,
        status: r.3,
        reason: r.4,
        items: r.5.0,
        created_at: r.6,
        updated_at: r.7,
    }))
}

async fn standing(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<(Standing, Option<Reservation>), sqlx::Error> {
    messaging::db::lock_key(conn, order_id).await?;
    if let Some(r) = reservation(conn, order_id).await? {
        let standing = match r.status.as_str() {
            "RESERVED" => Standing::Reserved,
            "COMMITTED" => Standing::Committed,
            "RELEASED" => Standing::Released,
            _ => Standing::Failed,
        };
        return Ok((standing, Some(r)));
    }
    let standing = if service_kit::cancellations::cancelled_first(conn, order_id).await? {
        Standing::CancelledFirst
    } else {
        Standing::Unknown
    };
    Ok((standing, None))
}

/// Locks the products' rows in product order and returns what is available of each that exists.
async fn lock_products(
    conn: &mut PgConnection,
    products: &[String],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT product_id, on_hand - reserved FROM products WHERE product_id = ANY($1) \
         ORDER BY product_id FOR UPDATE",
    )
    .bind(products)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

async fn insert_reservation(
    conn: &mut PgConnection,
    order: &OrderCreated,
    status: &str,
    reason: Option<&str>,
    items: &[StockLine],
) -> Result<Uuid, sqlx::Error> {
    let reservation_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO reservations (reservation_id, order_id, saga_id, status, reason, items) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(reservation_id)
    .bind(order.order_id)
    .bind(order.saga_id)
    .bind(status)
    .bind(reason)
    .bind(Json(items))
    .execute(conn)
    .await?;
    Ok(reservation_id)
}

/// Handles `order.created.v1`: the event to emit, if any.
pub async fn created(
    conn: &mut PgConnection,
    order: &OrderCreated,
    auto_provision: i64,
) -> Result<Option<Event>, sqlx::Error> {
    let (standing, _) = standing(conn, order.order_id).await?;
    let mut requested: BTreeMap<String, u32> = BTreeMap::new();
    for line in &order.items {
        *requested.entry(line.product_id.clone()).or_default() += line.quantity;
    }
    let items: Vec<StockLine> = requested
        .iter()
        .map(|(p, q)| StockLine {
            product_id: p.clone(),
            quantity: *q,
        })
        .collect();
    match on_created(standing) {
        Some(Action::Reserve) => {}
        Some(Action::Skip) => {
            insert_reservation(conn, order, "FAILED", Some("ORDER_CANCELLED"), &items).await?;
            return Ok(None);
        }
        _ => return Ok(None),
    }
    let products: Vec<String> = requested.keys().cloned().collect();
    if auto_provision > 0 {
        sqlx::query(
            "INSERT INTO products (product_id, on_hand) SELECT p, $2 FROM unnest($1::text[]) AS p \
             ORDER BY p ON CONFLICT (product_id) DO NOTHING",
        )
        .bind(&products)
        .bind(auto_provision)
        .execute(&mut *conn)
        .await?;
    }
    let available = lock_products(conn, &products).await?;
    match check(&requested, &available) {
        Ok(()) => {
            let quantities: Vec<i64> = requested.values().map(|q| i64::from(*q)).collect();
            sqlx::query(
                "UPDATE products SET reserved = reserved + x.q, updated_at = now() \
                 FROM unnest($1::text[], $2::bigint[]) AS x(p, q) WHERE product_id = x.p",
            )
            .bind(&products)
            .bind(&quantities)
            .execute(&mut *conn)
            .await?;
            let reservation_id = insert_reservation(conn, order, "RESERVED", None, &items).await?;
            Ok(Some(
                InventoryReserved {
                    order_id: order.order_id,
                    saga_id: order.saga_id,
                    reservation_id,
                    items,
                }
                .into(),
            ))
        }
        Err((reason, unavailable_items)) => {
            let code = match reason {
                InventoryFailureReason::InsufficientStock => "INSUFFICIENT_STOCK",
                InventoryFailureReason::UnknownProduct => "UNKNOWN_PRODUCT",
            };
            insert_reservation(conn, order, "FAILED", Some(code), &items).await?;
            Ok(Some(
                InventoryFailed {
                    order_id: order.order_id,
                    saga_id: order.saga_id,
                    reason,
                    unavailable_items,
                }
                .into(),
            ))
        }
    }
}

/// Moves the reservation's quantities: `on_hand += on_hand_delta * q`, `reserved += reserved_delta * q`.
async fn move_stock(
    conn: &mut PgConnection,
    items: &[StockLine],
    on_hand_delta: i64,
    reserved_delta: i64,
) -> Result<(), sqlx::Error> {
    let products: Vec<String> = items.iter().map(|l| l.product_id.clone()).collect();
    let quantities: Vec<i64> = items.iter().map(|l| i64::from(l.quantity)).collect();
    lock_products(conn, &products).await?;
    sqlx::query(
        "UPDATE products SET on_hand = on_hand + $3 * x.q, reserved = reserved + $4 * x.q, updated_at = now() \
         FROM unnest($1::text[], $2::bigint[]) AS x(p, q) WHERE product_id = x.p",
    )
    .bind(&products)
    .bind(&quantities)
    .bind(on_hand_delta)
    .bind(reserved_delta)
    .execute(conn)
    .await?;
    Ok(())
}

async fn set_status(
    conn: &mut PgConnection,
    reservation_id: Uuid,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reservations SET status = $2, updated_at = now() WHERE reservation_id = $1",
    )
    .bind(reservation_id)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(())
}

/// What handling an event came to.
pub enum Outcome {
    Emit(Event),
    Nothing,
    /// The event arrived before the one it depends on; retry it later.
    NotYet,
}

/// Handles `order.confirmed.v1`: stock leaves the shelf.
pub async fn confirmed(conn: &mut PgConnection, order_id: Uuid) -> Result<Outcome, sqlx::Error> {
    let (standing, existing) = standing(conn, order_id).await?;
    match (on_confirmed(standing), existing) {
        (Some(Action::Commit), Some(r)) => {
            move_stock(conn, &r.items, -1, -1).await?;
            set_status(conn, r.reservation_id, "COMMITTED").await?;
            Ok(Outcome::Emit(
                InventoryCommitted {
                    order_id,
                    saga_id: r.saga_id,
                    reservation_id: r.reservation_id,
                }
                .into(),
            ))
        }
        (Some(Action::NotYet), _) => Ok(Outcome::NotYet),
        _ => Ok(Outcome::Nothing),
    }
}

/// Handles `order.cancelled.v1`: held stock is released, committed stock restocked.
pub async fn cancelled(conn: &mut PgConnection, order_id: Uuid) -> Result<Outcome, sqlx::Error> {
    let (standing, existing) = standing(conn, order_id).await?;
    match (on_cancelled(standing), existing) {
        (Some(Action::Release { restock }), Some(r)) => {
            if restock {
                move_stock(conn, &r.items, 1, 0).await?;
            } else {
                move_stock(conn, &r.items, 0, -1).await?;
            }
            set_status(conn, r.reservation_id, "RELEASED").await?;
            Ok(Outcome::Emit(
                InventoryReleased {
                    order_id,
                    saga_id: r.saga_id,
                    reservation_id: r.reservation_id,
                    items: r.items,
                }
                .into(),
            ))
        }
        (Some(Action::MarkCancelled), _) => {
            service_kit::cancellations::remember(conn, order_id).await?;
            Ok(Outcome::Nothing)
        }
        _ => Ok(Outcome::Nothing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(lines: &[(&str, u32)]) -> BTreeMap<String, u32> {
        lines.iter().map(|(p, q)| (p.to_string(), *q)).collect()
    }

    fn stock(lines: &[(&str, i64)]) -> HashMap<String, i64> {
        lines.iter().map(|(p, q)| (p.to_string(), *q)).collect()
    }

    #[test]
    fn all_lines_available_reserves() {
        assert!(check(&req(&[("a", 2), ("b", 5)]), &stock(&[("a", 2), ("b", 9)])).is_ok());
    }

    #[test]
    fn one_short_line_fails_the_whole_order_and_names_it() {
        let (reason, items) =
            check(&req(&[("a", 2), ("b", 5)]), &stock(&[("a", 9), ("b", 4)])).unwrap_err();
        assert_eq!(reason, InventoryFailureReason::InsufficientStock);
        assert_eq!(
            items,
            vec![UnavailableItem {
                product_id: "b".into(),
                requested: 5,
                available: 4
            }]
        );
    }

    #[test]
    fn an_unknown_product_fails_with_its_own_reason() {
        let (reason, items) = check(&req(&[("a", 1), ("zz", 1)]), &stock(&[("a", 9)])).unwrap_err();
        assert_eq!(reason, InventoryFailureReason::UnknownProduct);
        assert_eq!(items[0].product_id, "zz");
    }

    #[test]
    fn transitions_follow_the_reservation_lifecycle() {
        assert_eq!(on_created(Standing::Unknown), Some(Action::Reserve));
        assert_eq!(on_created(Standing::CancelledFirst), Some(Action::Skip));
        assert_eq!(on_created(Standing::Reserved), None);
        assert_eq!(on_confirmed(Standing::Reserved), Some(Action::Commit));
        assert_eq!(on_confirmed(Standing::Unknown), Some(Action::NotYet));
        assert_eq!(on_confirmed(Standing::Released), None);
        assert_eq!(
            on_cancelled(Standing::Reserved),
            Some(Action::Release { restock: false })
        );
        assert_eq!(
            on_cancelled(Standing::Committed),
            Some(Action::Release { restock: true })
        );
        assert_eq!(on_cancelled(Standing::Unknown), Some(Action::MarkCancelled));
        assert_eq!(on_cancelled(Standing::Released), None);
        assert_eq!(on_cancelled(Standing::Failed), None);
    }
}
