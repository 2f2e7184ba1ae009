//! Orders cancelled before a participant saw them created. A participant that handles
//! `order.cancelled` for an order it does not know yet remembers it in its `cancelled_orders`
//! table, and never charges or reserves for the `order.created` that comes later.

use sqlx::PgConnection;
use uuid::Uuid;

pub async fn cancelled_first(conn: &mut PgConnection, order_id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM cancelled_orders WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

pub async fn remember(conn: &mut PgConnection, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO cancelled_orders (order_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}
