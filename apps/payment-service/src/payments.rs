//! The payment rules: charge an order once, refund a confirmed charge on cancellation, and never
//! charge an order that was cancelled before this service saw it created.
//!
//! ```text
//! (none) --order.created, approved--> CONFIRMED --order.cancelled--> REFUNDED
//! (none) --order.created, declined--> FAILED
//! (none) --order.cancelled--> cancelled mark --order.created--> FAILED (ORDER_CANCELLED, never charged)
//! ```

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use shared_events::{
    Event, Money, OrderCancelled, OrderCreated, PaymentConfirmed, PaymentFailed, PaymentRefunded,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::gateway::{Decision, SuccessRate, decide};

/// What the service knows of an order's payment before an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Neither created nor cancelled yet.
    Unknown,
    /// Cancelled before it was created here.
    CancelledFirst,
    Confirmed,
    Failed,
    Refunded,
}

/// The change an event makes to an order's payment.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Charge(Decision),
    /// Record a failure without asking the gateway: the order was cancelled first.
    Skip,
    Refund,
    MarkCancelled,
}

pub const ORDER_CANCELLED: &str = "ORDER_CANCELLED";

/// The rules, without I/O.
pub fn on_created(standing: Standing, decision: impl FnOnce() -> Decision) -> Option<Change> {
    match standing {
        Standing::Unknown => Some(Change::Charge(decision())),
        Standing::CancelledFirst => Some(Change::Skip),
        Standing::Confirmed | Standing::Failed | Standing::Refunded => None,
    }
}

pub fn on_cancelled(standing: Standing) -> Option<Change> {
    match standing {
        Standing::Unknown => Some(Change::MarkCancelled),
        Standing::Confirmed => Some(Change::Refund),
        Standing::CancelledFirst | Standing::Failed | Standing::Refunded => None,
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount: Money,
    pub currency: String,
    pub status: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub saga_id: Uuid,
}

type Row = (
    Uuid,
    Uuid,
    Uuid,
    Decimal,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);
const COLUMNS: &str =
    "payment_id, order_id, saga_id, amount, currency, status, reason, created_at, updated_at";

fn payment(row: Row) -> Result<Payment, sqlx::Error> {
    Ok(Payment {
        payment_id: row.0,
        order_id: row.1,
        saga_id: row.2,
        amount: Money::parse(row.3).map_err(|e| sqlx::Error::Decode(e.into()))?,
        currency: row.4,
        status: row.5,
        reason: row.6,
        created_at: row.7,
        updated_at: row.8,
    })
}

pub async fn by_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    lock: bool,
) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    row.map(payment).transpose()
}

pub async fn by_id(
    conn: &mut PgConnection,
    payment_id: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE payment_id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(payment_id)
        .fetch_optional(conn)
        .await?;
    row.map(payment).transpose()
}

/// Serialises everything this service does for one order (a transaction-scoped advisory lock
/// keyed by the order), then reads where the order stands.
async fn standing(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<(Standing, Option<Payment>), sqlx::Error> {
    messaging::db::lock_key(conn, order_id).await?;
    if let Some(p) = by_order(conn, order_id, true).await? {
        let standing = match p.status.as_str() {
            "CONFIRMED" => Standing::Confirmed,
            "REFUNDED" => Standing::Refunded,
            _ => Standing::Failed,
        };
        return Ok((standing, Some(p)));
    }
    let standing = if service_kit::cancellations::cancelled_first(conn, order_id).await? {
        Standing::CancelledFirst
    } else {
        Standing::Unknown
    };
    Ok((standing, None))
}

/// Handles `order.created.v1`: the event to emit, if any.
pub async fn created(
    conn: &mut PgConnection,
    order: &OrderCreated,
    seed: u64,
    rate: SuccessRate,
) -> Result<Option<Event>, sqlx::Error> {
    let (standing, _) = standing(conn, order.order_id).await?;
    let Some(change) = on_created(standing, || decide(seed, order.order_id, rate)) else {
        return Ok(None);
    };
    let payment_id = Uuid::now_v7();
    let (status, reason) = match change {
        Change::Charge(Decision::Approve) => ("CONFIRMED", None),
        Change::Charge(Decision::Decline(reason)) => ("FAILED", Some(reason)),
        _ => ("FAILED", Some(ORDER_CANCELLED)),
    };
    sqlx::query(
        "INSERT INTO payments (payment_id, order_id, saga_id, amount, currency, status, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(payment_id)
    .bind(order.order_id)
    .bind(order.saga_id)
    .bind(order.total_amount.amount())
    .bind(&order.currency)
    .bind(status)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(Some(match reason {
        None => PaymentConfirmed {
            order_id: order.order_id,
            saga_id: order.saga_id,
            payment_id,
            amount: order.total_amount,
            currency: order.currency.clone(),
        }
        .into(),
        Some(reason) => PaymentFailed {
            order_id: order.order_id,
            saga_id: order.saga_id,
            amount: order.total_amount,
            currency: order.currency.clone(),
            reason: reason.into(),
        }
        .into(),
    }))
}

/// Handles `order.cancelled.v1`: the event to emit, if any.
pub async fn cancelled(
    conn: &mut PgConnection,
    order: &OrderCancelled,
) -> Result<Option<Event>, sqlx::Error> {
    let (standing, existing) = standing(conn, order.order_id).await?;
    match (on_cancelled(standing), existing) {
        (Some(Change::Refund), Some(p)) => {
            sqlx::query(
                "UPDATE payments SET status = 'REFUNDED', updated_at = now() WHERE payment_id = $1",
            )
            .bind(p.payment_id)
            .execute(&mut *conn)
            .await?;
            Ok(Some(
                PaymentRefunded {
                    order_id: p.order_id,
                    saga_id: p.saga_id,
                    payment_id: p.payment_id,
                    amount: p.amount,
                    currency: p.currency,
                }
                .into(),
            ))
        }
        (Some(Change::MarkCancelled), _) => {
            service_kit::cancellations::remember(conn, order.order_id).await?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_charged_once_on_creation() {
        assert_eq!(
            on_created(Standing::Unknown, || Decision::Approve),
            Some(Change::Charge(Decision::Approve))
        );
        for charged in [Standing::Confirmed, Standing::Failed, Standing::Refunded] {
            assert_eq!(
                on_created(charged, || unreachable!("no second charge")),
                None
            );
        }
    }

    #[test]
    fn an_order_cancelled_before_it_is_seen_is_never_charged() {
        assert_eq!(on_cancelled(Standing::Unknown), Some(Change::MarkCancelled));
        assert_eq!(
            on_created(Standing::CancelledFirst, || unreachable!("no gateway call")),
            Some(Change::Skip)
        );
    }

    #[test]
    fn only_a_confirmed_charge_is_refunded_and_only_once() {
        assert_eq!(on_cancelled(Standing::Confirmed), Some(Change::Refund));
        for other in [
            Standing::Failed,
            Standing::Refunded,
            Standing::CancelledFirst,
        ] {
            assert_eq!(on_cancelled(other), None);
        }
    }
}
