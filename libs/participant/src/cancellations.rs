//! Orders cancelled before a participant saw them created. A participant that handles
//! `order.cancelled` for an order it does not know yet remembers it in its `cancelled_orders`
//! table, and never charges or reserves for the `order.created` that comes later.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Row};
use uuid::Uuid;

/// What a participant knows of a batch's orders.
pub struct Known<R> {
    /// Each order's row in the participant's table, for the orders that have one.
    pub rows: HashMap<Uuid, R>,
    /// The orders whose cancellation was seen before their creation.
    pub cancelled_first: HashSet<Uuid>,
}

/// Reads, in one statement, each of `order_ids`' row of `table` (keyed by `order_id`, decoded as
/// the typed row `R` from `columns`, by name) and whether its cancellation came first.
///
/// `table` and `columns` are the caller's constants, never request content.
pub async fn load<R>(
    conn: &mut PgConnection,
    table: &'static str,
    columns: &'static str,
    order_ids: &[Uuid],
) -> Result<Known<R>, sqlx::Error>
where
    R: for<'r> FromRow<'r, PgRow>,
{
    // Each look-up is a lateral subquery by key: evaluated for each order id with the key as a
    // parameter, so it is an index probe whatever plan the statement gets. (An `EXISTS` here was
    // planned, under the pools' generic plans, as a hashed subplan that read the whole table on
    // every call.)
    let sql = format!(
        "SELECT t.*, o.id AS looked_up, c.cancelled_first IS NOT NULL AS cancelled_first \
         FROM unnest($1::uuid[]) AS o(id) \
         LEFT JOIN LATERAL (SELECT {columns}, true AS found FROM {table} WHERE order_id = o.id) t \
         ON true \
         LEFT JOIN LATERAL (SELECT true AS cancelled_first FROM cancelled_orders \
             WHERE order_id = o.id) c ON true"
    );
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_ids)
        .fetch_all(conn)
        .await?;
    let mut known = Known {
        rows: HashMap::new(),
        cancelled_first: HashSet::new(),
    };
    for row in found {
        let order_id: Uuid = row.try_get("looked_up")?;
        if row.try_get("cancelled_first")? {
            known.cancelled_first.insert(order_id);
        }
        if row.try_get::<Option<bool>, _>("found")?.is_some() {
            known.rows.insert(order_id, R::from_row(&row)?);
        }
    }
    Ok(known)
}
