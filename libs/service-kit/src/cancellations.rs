//! Orders cancelled before a participant saw them created. A participant that handles
//! `order.cancelled` for an order it does not know yet remembers it in its `cancelled_orders`
//! table, and never charges or reserves for the `order.created` that comes later.

use std::collections::HashSet;

use sqlx::PgConnection;
use uuid::Uuid;

/// Which of `order_ids` were cancelled before they were created here.
pub async fn cancelled_first(
    conn: &mut PgConnection,
    order_ids: &[Uuid],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let found: Vec<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM cancelled_orders WHERE order_id = ANY($1)")
            .bind(order_ids)
            .fetch_all(conn)
            .await?;
    Ok(found.into_iter().collect())
}

/// Remembers that `order_ids` were cancelled before they were created here.
pub async fn remember(conn: &mut PgConnection, order_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if order_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO cancelled_orders (order_id) SELECT * FROM unnest($1::uuid[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(order_ids)
    .execute(conn)
    .await?;
    Ok(())
}
