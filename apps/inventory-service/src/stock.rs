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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared_events::{
    Envelope, Event, InventoryCommitted, InventoryFailed, InventoryFailureReason,
    InventoryReleased, InventoryReserved, OrderCreated, StockLine, UnavailableItem,
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

fn reservation_of(r: Row) -> Reservation {
    Reservation {
        order_id: r.0,
        reservation_id: r.1,
        saga_id: r.2,
        status: r.3,
        reason: r.4,
        items: r.5.0,
        created_at: r.6,
        updated_at: r.7,
    }
}

const RESERVATION_COLUMNS: &str =
    "order_id, reservation_id, saga_id, status, reason, items, created_at, updated_at";

pub async fn reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    let sql = format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE order_id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(reservation_of))
}

fn standing_of(reservation: Option<&Reservation>, cancelled_first: bool) -> Standing {
    match reservation.map(|r| r.status.as_str()) {
        Some("RESERVED") => Standing::Reserved,
        Some("COMMITTED") => Standing::Committed,
        Some("RELEASED") => Standing::Released,
        Some(_) => Standing::Failed,
        None if cancelled_first => Standing::CancelledFirst,
        None => Standing::Unknown,
    }
}

/// What handling an event came to.
pub enum Outcome {
    Emit(Event),
    Nothing,
    /// The event arrived before the one it depends on; retry it later.
    NotYet,
}

/// A product's row: what is on the shelf and how much of it orders hold.
#[derive(Clone, Copy, Debug)]
struct Shelf {
    on_hand: i64,
    reserved: i64,
}

/// The reservations and stock a batch's orders touch: read once under locks, changed in memory
/// by the rules, written back with one statement per table.
pub struct Book {
    reservations: HashMap<Uuid, Reservation>,
    cancelled_first: HashSet<Uuid>,
    stock: HashMap<String, Shelf>,
    created: Vec<Uuid>,
    moved: Vec<Uuid>,
    marked: Vec<Uuid>,
    touched: BTreeSet<String>,
}

/// Every line of the order, one per product.
fn lines(order: &OrderCreated) -> BTreeMap<String, u32> {
    let mut requested: BTreeMap<String, u32> = BTreeMap::new();
    for line in &order.items {
        *requested.entry(line.product_id.clone()).or_default() += line.quantity;
    }
    requested
}

impl Book {
    /// Serialises everything this service does for the batch's orders (transaction-scoped
    /// advisory locks keyed by order), reads where they stand, then locks every product they
    /// touch, in product order: each transaction takes its locks in the same global order (orders,
    /// then products), so concurrent batches wait for each other instead of deadlocking.
    pub async fn load(
        conn: &mut PgConnection,
        events: &[Envelope],
        auto_provision: i64,
    ) -> Result<Book, sqlx::Error> {
        let order_ids: Vec<Uuid> = events.iter().map(|e| e.payload.order_id()).collect();
        messaging::db::lock_keys(conn, &order_ids).await?;
        // Each order's reservation, if any, and whether it was cancelled before it was seen.
        let known = service_kit::cancellations::load::<Row>(
            &mut *conn,
            "reservations",
            RESERVATION_COLUMNS,
            &order_ids,
        )
        .await?;
        let reservations: HashMap<Uuid, Reservation> = known
            .rows
            .into_iter()
            .map(|(order_id, row)| (order_id, reservation_of(row)))
            .collect();
        let cancelled_first = known.cancelled_first;

        let mut named = BTreeSet::new();
        let mut products = BTreeSet::new();
        for event in events {
            if let Event::OrderCreated(order) = &event.payload {
                named.extend(order.items.iter().map(|l| l.product_id.clone()));
            }
        }
        for r in reservations.values() {
            products.extend(r.items.iter().map(|l| l.product_id.clone()));
        }
        products.extend(named.iter().cloned());
        let named: Vec<String> = named.into_iter().collect();
        let products: Vec<String> = products.into_iter().collect();
        if auto_provision > 0 && !named.is_empty() {
            sqlx::query(
                "INSERT INTO products (product_id, on_hand) SELECT p, $2 FROM unnest($1::text[]) AS p \
                 ON CONFLICT (product_id) DO NOTHING",
            )
            .bind(&named)
            .bind(auto_provision)
            .execute(&mut *conn)
            .await?;
        }
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT product_id, on_hand, reserved FROM products WHERE product_id = ANY($1) \
             ORDER BY product_id FOR UPDATE",
        )
        .bind(&products)
        .fetch_all(&mut *conn)
        .await?;
        let stock = rows
            .into_iter()
            .map(|(p, on_hand, reserved)| (p, Shelf { on_hand, reserved }))
            .collect();
        Ok(Book {
            reservations,
            cancelled_first,
            stock,
            created: Vec::new(),
            moved: Vec::new(),
            marked: Vec::new(),
            touched: BTreeSet::new(),
        })
    }

    fn standing(&self, order_id: Uuid) -> Standing {
        standing_of(
            self.reservations.get(&order_id),
            self.cancelled_first.contains(&order_id),
        )
    }

    fn record(
        &mut self,
        order: &OrderCreated,
        status: &str,
        reason: Option<&str>,
        items: Vec<StockLine>,
    ) -> Uuid {
        let now = Utc::now();
        let reservation_id = Uuid::now_v7();
        self.reservations.insert(
            order.order_id,
            Reservation {
                order_id: order.order_id,
                reservation_id,
                status: status.into(),
                reason: reason.map(Into::into),
                items,
                created_at: now,
                updated_at: now,
                saga_id: order.saga_id,
            },
        );
        self.created.push(order.order_id);
        reservation_id
    }

    /// Moves each line's quantity: `on_hand += on_hand_delta * q`, `reserved += reserved_delta * q`.
    fn shift(&mut self, items: &[StockLine], on_hand_delta: i64, reserved_delta: i64) {
        for line in items {
            let q = i64::from(line.quantity);
            let shelf = self.stock.entry(line.product_id.clone()).or_insert(Shelf {
                on_hand: 0,
                reserved: 0,
            });
            shelf.on_hand += on_hand_delta * q;
            shelf.reserved += reserved_delta * q;
            self.touched.insert(line.product_id.clone());
        }
    }

    /// `order.created.v1`: reserve every line or none.
    pub fn created(&mut self, order: &OrderCreated) -> Outcome {
        let requested = lines(order);
        let items: Vec<StockLine> = requested
            .iter()
            .map(|(p, q)| StockLine {
                product_id: p.clone(),
                quantity: *q,
            })
            .collect();
        match on_created(self.standing(order.order_id)) {
            Some(Action::Reserve) => {}
            Some(Action::Skip) => {
                self.record(order, "FAILED", Some("ORDER_CANCELLED"), items);
                return Outcome::Nothing;
            }
            _ => return Outcome::Nothing,
        }
        let available: HashMap<String, i64> = requested
            .keys()
            .filter_map(|p| {
                self.stock
                    .get(p)
                    .map(|s| (p.clone(), s.on_hand - s.reserved))
            })
            .collect();
        match check(&requested, &available) {
            Ok(()) => {
                self.shift(&items, 0, 1);
                let reservation_id = self.record(order, "RESERVED", None, items.clone());
                Outcome::Emit(
                    InventoryReserved {
                        order_id: order.order_id,
                        saga_id: order.saga_id,
                        reservation_id,
                        items,
                    }
                    .into(),
                )
            }
            Err((reason, unavailable_items)) => {
                let code = match reason {
                    InventoryFailureReason::InsufficientStock => "INSUFFICIENT_STOCK",
                    InventoryFailureReason::UnknownProduct => "UNKNOWN_PRODUCT",
                };
                self.record(order, "FAILED", Some(code), items);
                Outcome::Emit(
                    InventoryFailed {
                        order_id: order.order_id,
                        saga_id: order.saga_id,
                        reason,
                        unavailable_items,
                    }
                    .into(),
                )
            }
        }
    }

    fn set_status(&mut self, order_id: Uuid, status: &str) -> Option<Reservation> {
        let r = self.reservations.get_mut(&order_id)?;
        r.status = status.into();
        if !self.created.contains(&order_id) {
            self.moved.push(order_id);
        }
        Some(r.clone())
    }

    /// `order.confirmed.v1`: stock leaves the shelf.
    pub fn confirmed(&mut self, order_id: Uuid) -> Outcome {
        match on_confirmed(self.standing(order_id)) {
            Some(Action::Commit) => {
                let Some(r) = self.set_status(order_id, "COMMITTED") else {
                    return Outcome::Nothing;
                };
                self.shift(&r.items, -1, -1);
                Outcome::Emit(
                    InventoryCommitted {
                        order_id,
                        saga_id: r.saga_id,
                        reservation_id: r.reservation_id,
                    }
                    .into(),
                )
            }
            Some(Action::NotYet) => Outcome::NotYet,
            _ => Outcome::Nothing,
        }
    }

    /// `order.cancelled.v1`: held stock is released, committed stock touched.
    pub fn cancelled(&mut self, order_id: Uuid) -> Outcome {
        match on_cancelled(self.standing(order_id)) {
            Some(Action::Release { restock }) => {
                let Some(r) = self.set_status(order_id, "RELEASED") else {
                    return Outcome::Nothing;
                };
                if restock {
                    self.shift(&r.items, 1, 0);
                } else {
                    self.shift(&r.items, 0, -1);
                }
                Outcome::Emit(
                    InventoryReleased {
                        order_id,
                        saga_id: r.saga_id,
                        reservation_id: r.reservation_id,
                        items: r.items,
                    }
                    .into(),
                )
            }
            Some(Action::MarkCancelled) => {
                self.cancelled_first.insert(order_id);
                self.marked.push(order_id);
                Outcome::Nothing
            }
            _ => Outcome::Nothing,
        }
    }

    /// Writes what changed, in one statement: stock, new reservations, reservation statuses,
    /// cancellations seen first. The table's checks still refuse any stock below zero.
    pub async fn save(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.touched.is_empty()
            && self.created.is_empty()
            && self.moved.is_empty()
            && self.marked.is_empty()
        {
            return Ok(());
        }
        let products: Vec<&String> = self.touched.iter().collect();
        let shelves: Vec<Shelf> = products
            .iter()
            .map(|p| {
                self.stock.get(*p).copied().unwrap_or(Shelf {
                    on_hand: 0,
                    reserved: 0,
                })
            })
            .collect();
        let on_hand: Vec<i64> = shelves.iter().map(|s| s.on_hand).collect();
        let reserved: Vec<i64> = shelves.iter().map(|s| s.reserved).collect();
        let new: Vec<&Reservation> = self
            .created
            .iter()
            .filter_map(|id| self.reservations.get(id))
            .collect();
        let new_ids: Vec<Uuid> = new.iter().map(|r| r.reservation_id).collect();
        let new_orders: Vec<Uuid> = new.iter().map(|r| r.order_id).collect();
        let new_sagas: Vec<Uuid> = new.iter().map(|r| r.saga_id).collect();
        let new_statuses: Vec<&str> = new.iter().map(|r| r.status.as_str()).collect();
        let new_reasons: Vec<Option<&str>> = new.iter().map(|r| r.reason.as_deref()).collect();
        let new_items: Vec<Json<&Vec<StockLine>>> = new.iter().map(|r| Json(&r.items)).collect();
        let mut moved: Vec<&Reservation> = self
            .moved
            .iter()
            .filter_map(|id| self.reservations.get(id))
            .collect();
        moved.sort_unstable_by_key(|r| r.reservation_id);
        moved.dedup_by_key(|r| r.reservation_id);
        let moved_ids: Vec<Uuid> = moved.iter().map(|r| r.reservation_id).collect();
        let moved_statuses: Vec<&str> = moved.iter().map(|r| r.status.as_str()).collect();
        sqlx::query(
            "WITH stock AS ( \
                 UPDATE products SET on_hand = x.o, reserved = x.r, updated_at = now() \
                 FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS x(p, o, r) \
                 WHERE product_id = x.p), \
             reserved AS ( \
                 INSERT INTO reservations (reservation_id, order_id, saga_id, status, reason, items) \
                 SELECT * FROM unnest($4::uuid[], $5::uuid[], $6::uuid[], $7::text[], $8::text[], \
                                      $9::jsonb[])), \
             moved AS ( \
                 UPDATE reservations SET status = x.s, updated_at = now() \
                 FROM unnest($10::uuid[], $11::text[]) AS x(id, s) WHERE reservation_id = x.id) \
             INSERT INTO cancelled_orders (order_id) SELECT * FROM unnest($12::uuid[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&products)
        .bind(&on_hand)
        .bind(&reserved)
        .bind(&new_ids)
        .bind(&new_orders)
        .bind(&new_sagas)
        .bind(&new_statuses)
        .bind(&new_reasons)
        .bind(&new_items)
        .bind(&moved_ids)
        .bind(&moved_statuses)
        .bind(&self.marked)
        .execute(conn)
        .await?;
        Ok(())
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
