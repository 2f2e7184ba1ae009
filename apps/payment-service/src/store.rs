//! Every SQL statement of payment-service: the `payments` and `cancelled_orders` tables.

use shared_events::{Currency, Money};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::rules::{Book, Payment, PaymentFailure, PaymentStatus};

const COLUMNS: &str =
    "payment_id, order_id, saga_id, amount, currency, status, reason, created_at, updated_at";

/// The payment of an order, if it was charged.
pub async fn by_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(conn)
        .await
}

pub async fn by_id(
    conn: &mut PgConnection,
    payment_id: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE payment_id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(payment_id)
        .fetch_optional(conn)
        .await
}

/// Serialises everything this service does for `order_ids` (transaction-scoped advisory locks
/// keyed by the orders), then reads where their payments stand.
pub async fn load(conn: &mut PgConnection, order_ids: &[Uuid]) -> Result<Book, sqlx::Error> {
    messaging::db::lock_keys(conn, order_ids).await?;
    let known =
        service_kit::cancellations::load::<Payment>(conn, "payments", COLUMNS, order_ids).await?;
    Ok(Book::new(known.rows, known.cancelled_first))
}

/// Writes what the book's decisions changed, in one statement: new charges, refunds, and
/// cancellations seen first.
pub async fn save(conn: &mut PgConnection, book: &Book) -> Result<(), sqlx::Error> {
    if !book.is_changed() {
        return Ok(());
    }
    let changes = book.changes();
    let charged = &changes.charged;
    let ids: Vec<Uuid> = charged.iter().map(|p| p.payment_id).collect();
    let orders: Vec<Uuid> = charged.iter().map(|p| p.order_id).collect();
    let sagas: Vec<Uuid> = charged.iter().map(|p| p.saga_id).collect();
    let amounts: Vec<Money> = charged.iter().map(|p| p.amount).collect();
    let currencies: Vec<&Currency> = charged.iter().map(|p| &p.currency).collect();
    let statuses: Vec<PaymentStatus> = charged.iter().map(|p| p.status).collect();
    let reasons: Vec<Option<PaymentFailure>> = charged.iter().map(|p| p.reason).collect();
    sqlx::query(
        "WITH charged AS ( \
             INSERT INTO payments (payment_id, order_id, saga_id, amount, currency, status, reason) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::numeric[], $5::text[], \
                                  $6::text[], $7::text[])), \
         refunded AS ( \
             UPDATE payments SET status = $10, updated_at = now() \
             WHERE payment_id = ANY($8)) \
         INSERT INTO cancelled_orders (order_id) SELECT * FROM unnest($9::uuid[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&orders)
    .bind(&sagas)
    .bind(&amounts)
    .bind(&currencies)
    .bind(&statuses)
    .bind(&reasons)
    .bind(&changes.refunded)
    .bind(changes.marked)
    .bind(PaymentStatus::Refunded)
    .execute(conn)
    .await?;
    Ok(())
}
