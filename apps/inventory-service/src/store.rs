//! Every SQL statement of inventory-service: the `products`, `reservations` and
//! `cancelled_orders` tables.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use shared_events::{ProductId, StockLine};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::rules::{Book, Reservation, ReservationFailure, ReservationStatus, Shelf};

/// A product's row, with what it has available.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Product {
    pub product_id: ProductId,
    pub on_hand: i64,
    pub reserved: i64,
    /// Computed by the query: `on_hand - reserved`.
    pub available: i64,
    pub updated_at: DateTime<Utc>,
}

/// A product's shelf with its id.
#[derive(sqlx::FromRow)]
struct ShelfRow {
    product_id: ProductId,
    on_hand: i64,
    reserved: i64,
}

/// A reservation as its row holds it.
#[derive(sqlx::FromRow)]
struct ReservationRow {
    order_id: Uuid,
    reservation_id: Uuid,
    saga_id: Uuid,
    status: ReservationStatus,
    reason: Option<ReservationFailure>,
    items: Json<Vec<StockLine>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ReservationRow> for Reservation {
    fn from(r: ReservationRow) -> Reservation {
        Reservation {
            order_id: r.order_id,
            reservation_id: r.reservation_id,
            saga_id: r.saga_id,
            status: r.status,
            reason: r.reason,
            items: r.items.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const PRODUCT_COLUMNS: &str = "product_id, on_hand, reserved, on_hand - reserved AS available, \
    updated_at";

const RESERVATION_COLUMNS: &str =
    "order_id, reservation_id, saga_id, status, reason, items, created_at, updated_at";

pub async fn product(
    pool: &PgPool,
    product_id: &ProductId,
) -> Result<Option<Product>, sqlx::Error> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE product_id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(product_id)
        .fetch_optional(pool)
        .await
}

/// Products in id order, after `after`.
pub async fn products(
    pool: &PgPool,
    after: Option<&ProductId>,
    limit: i64,
) -> Result<Vec<Product>, sqlx::Error> {
    let mut select =
        QueryBuilder::<Postgres>::new(format!("SELECT {PRODUCT_COLUMNS} FROM products"));
    if let Some(after) = after {
        select.push(" WHERE product_id > ").push_bind(after);
    }
    select.push(" ORDER BY product_id LIMIT ").push_bind(limit);
    select.build_query_as().fetch_all(pool).await
}

/// A product's shelf, locked for this transaction; `None` for a product never stocked.
pub async fn lock_shelf(
    conn: &mut PgConnection,
    product_id: &ProductId,
) -> Result<Option<Shelf>, sqlx::Error> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT on_hand, reserved FROM products WHERE product_id = $1 FOR UPDATE")
            .bind(product_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(on_hand, reserved)| Shelf { on_hand, reserved }))
}

/// Writes a product's shelf (creating the product), and returns it as the API shows it.
pub async fn put_shelf(
    conn: &mut PgConnection,
    product_id: &ProductId,
    shelf: Shelf,
) -> Result<Product, sqlx::Error> {
    let sql = format!(
        "INSERT INTO products (product_id, on_hand, reserved) VALUES ($1, $2, $3) \
         ON CONFLICT (product_id) DO UPDATE SET on_hand = $2, reserved = $3, updated_at = now() \
         RETURNING {PRODUCT_COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(product_id)
        .bind(shelf.on_hand)
        .bind(shelf.reserved)
        .fetch_one(conn)
        .await
}

/// The reservations of `order_ids`, those that have one.
pub async fn reservations(
    pool: &sqlx::PgPool,
    order_ids: &[Uuid],
) -> Result<Vec<Reservation>, sqlx::Error> {
    let sql = format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE order_id = ANY($1) ORDER BY order_id"
    );
    let rows: Vec<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_ids)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(Reservation::from).collect())
}

pub async fn reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    let sql = format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE order_id = $1");
    let row: Option<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Reservation::from))
}

/// In a transaction serialised on the batch's orders (see `Reactions::serialise_on`): reads
/// where the orders stand, then locks every product they touch
/// (those `named` by new orders and those of their reservations), in product order: each
/// transaction takes its locks in the same global order (orders, then products), so concurrent
/// batches wait for each other instead of deadlocking. With `auto_provision`, a product named
/// for the first time is created with that much stock.
pub async fn load(
    conn: &mut PgConnection,
    order_ids: &[Uuid],
    named: &BTreeSet<ProductId>,
    auto_provision: i64,
) -> Result<Book, sqlx::Error> {
    // Each order's reservation, if any, and whether it was cancelled before it was seen.
    let known = participant::cancellations::load::<ReservationRow>(
        &mut *conn,
        "reservations",
        RESERVATION_COLUMNS,
        order_ids,
    )
    .await?;
    let reservations: HashMap<Uuid, Reservation> = known
        .rows
        .into_iter()
        .map(|(order, row)| (order, Reservation::from(row)))
        .collect();
    let mut products = named.clone();
    for r in reservations.values() {
        products.extend(r.items.iter().map(|l| l.product_id.clone()));
    }
    if auto_provision > 0 && !named.is_empty() {
        sqlx::query(
            "INSERT INTO products (product_id, on_hand) SELECT p, $2 FROM unnest($1::text[]) AS p \
             ON CONFLICT (product_id) DO NOTHING",
        )
        .bind(named.iter().collect::<Vec<_>>())
        .bind(auto_provision)
        .execute(&mut *conn)
        .await?;
    }
    let rows: Vec<ShelfRow> = sqlx::query_as(
        "SELECT product_id, on_hand, reserved FROM products WHERE product_id = ANY($1) \
         ORDER BY product_id FOR UPDATE",
    )
    .bind(products.iter().collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let stock: HashMap<ProductId, Shelf> = rows
        .into_iter()
        .map(|r| {
            let shelf = Shelf {
                on_hand: r.on_hand,
                reserved: r.reserved,
            };
            (r.product_id, shelf)
        })
        .collect();
    Ok(Book::new(reservations, known.cancelled_first, stock))
}

/// Writes what the book's decisions changed, in one statement: stock, new reservations,
/// reservation statuses, cancellations seen first. The table's checks still refuse any stock
/// below zero.
pub async fn save(conn: &mut PgConnection, book: &Book) -> Result<(), sqlx::Error> {
    if !book.is_changed() {
        return Ok(());
    }
    let changes = book.changes();
    let products: Vec<&ProductId> = changes.shelves.iter().map(|(p, _)| *p).collect();
    let on_hand: Vec<i64> = changes.shelves.iter().map(|(_, s)| s.on_hand).collect();
    let reserved: Vec<i64> = changes.shelves.iter().map(|(_, s)| s.reserved).collect();
    let new = &changes.created;
    let new_ids: Vec<Uuid> = new.iter().map(|r| r.reservation_id).collect();
    let new_orders: Vec<Uuid> = new.iter().map(|r| r.order_id).collect();
    let new_sagas: Vec<Uuid> = new.iter().map(|r| r.saga_id).collect();
    let new_statuses: Vec<ReservationStatus> = new.iter().map(|r| r.status).collect();
    let new_reasons: Vec<Option<ReservationFailure>> = new.iter().map(|r| r.reason).collect();
    let new_items: Vec<Json<&[StockLine]>> = new.iter().map(|r| Json(r.items.as_slice())).collect();
    let moved_ids: Vec<Uuid> = changes.moved.iter().map(|r| r.reservation_id).collect();
    let moved_statuses: Vec<ReservationStatus> = changes.moved.iter().map(|r| r.status).collect();
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
    .bind(changes.marked)
    .execute(conn)
    .await?;
    Ok(())
}
