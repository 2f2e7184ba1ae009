//! Orders cancelled before a participant saw them created. A participant that handles
//! `order.cancelled` for an order it does not know yet remembers it in its `cancelled_orders`
//! table, and never charges or reserves for the `order.created` that comes later. It forgets
//! them once no copy of that `order.created` can arrive any more ([`retention`], [`keep_pruned`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use messaging::db::Migration;
use messaging::{RelayConfig, Shutdown};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool, Row};
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

/// The migration that indexes `cancelled_orders` by age, for [`prune`]; both participants run it
/// as their migration 1002.
pub const BY_AGE: Migration = Migration::expand_outside_transaction(
    1002,
    "cancelled orders by age",
    include_str!("../migrations/cancelled_orders_by_age.sql"),
);

/// How often [`keep_pruned`] deletes what is past the retention.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Cancelled-first orders deleted once older than the retention.
pub const PRUNED: &str = "participant_cancelled_orders_pruned_total";

/// How long a cancelled-first order is remembered: as long as a copy of its `order.created`
/// can still arrive ([`RelayConfig::redelivery_horizon`], 8 days), after which no delivery,
/// redelivery or republish of it is possible. Should one arrive later all the same (an outbox
/// kept from NATS for longer than that), the reconciliation finds the charge or the held stock
/// of a cancelled order and undoes it.
pub fn retention() -> Duration {
    RelayConfig::default().redelivery_horizon()
}

/// Deletes cancelled-first orders older than `retention`, a batch of rows per statement, oldest
/// first by the `cancelled_orders_by_age` index; returns how many went.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let deleted = messaging::db::delete_in_batches(
        pool,
        "DELETE FROM cancelled_orders WHERE order_id IN ( \
             SELECT order_id FROM cancelled_orders \
             WHERE cancelled_at < now() - make_interval(secs => $1) \
             ORDER BY cancelled_at LIMIT $2)",
        retention.as_secs_f64(),
    )
    .await?;
    metrics::counter!(PRUNED).increment(deleted);
    Ok(deleted)
}

/// Runs [`prune`] with [`retention`] every [`PRUNE_INTERVAL`] until `shutdown` fires (a failed
/// round is logged and tried again at the next).
pub async fn keep_pruned(pool: PgPool, shutdown: Shutdown) {
    metrics::describe_counter!(
        PRUNED,
        "Cancelled-first orders deleted once no copy of their order.created can arrive"
    );
    let mut ticks = tokio::time::interval(PRUNE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(e) = prune(&pool, retention()).await {
            tracing::warn!(error = %e, "deleting old cancelled-first orders failed; retrying later");
        }
    }
}
