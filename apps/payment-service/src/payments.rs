//! The payment rules: charge an order once, refund a confirmed charge on cancellation, and never
//! charge an order that was cancelled before this service saw it created.
//!
//! ```text
//! (none) --order.created, approved--> CONFIRMED --order.cancelled--> REFUNDED
//! (none) --order.created, declined--> FAILED
//! (none) --order.cancelled--> cancelled mark --order.created--> FAILED (ORDER_CANCELLED, never charged)
//! ```

use std::collections::{HashMap, HashSet};

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

fn standing_of(payment: Option<&Payment>, cancelled_first: bool) -> Standing {
    match payment.map(|p| p.status.as_str()) {
        Some("CONFIRMED") => Standing::Confirmed,
        Some("REFUNDED") => Standing::Refunded,
        Some(_) => Standing::Failed,
        None if cancelled_first => Standing::CancelledFirst,
        None => Standing::Unknown,
    }
}

/// The payments of a batch's orders: read once, changed in memory by the rules, written back
/// with one statement per kind of change.
pub struct Book {
    payments: HashMap<Uuid, Payment>,
    cancelled_first: HashSet<Uuid>,
    charged: Vec<Uuid>,
    refunded: Vec<Uuid>,
    marked: Vec<Uuid>,
}

impl Book {
    /// Serialises everything this service does for `order_ids` (transaction-scoped advisory
    /// locks keyed by the orders), then reads where they stand.
    pub async fn load(conn: &mut PgConnection, order_ids: &[Uuid]) -> Result<Book, sqlx::Error> {
        messaging::db::lock_keys(conn, order_ids).await?;
        let known =
            service_kit::cancellations::load::<Row>(conn, "payments", COLUMNS, order_ids).await?;
        let payments = known
            .rows
            .into_iter()
            .map(|(order_id, row)| Ok((order_id, payment(row)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let cancelled_first = known.cancelled_first;
        Ok(Book {
            payments,
            cancelled_first,
            charged: Vec::new(),
            refunded: Vec::new(),
            marked: Vec::new(),
        })
    }

    pub fn standing(&self, order_id: Uuid) -> Standing {
        standing_of(
            self.payments.get(&order_id),
            self.cancelled_first.contains(&order_id),
        )
    }

    /// `order.created.v1`: the event to emit, if any.
    pub fn created(&mut self, order: &OrderCreated, seed: u64, rate: SuccessRate) -> Option<Event> {
        let change = on_created(self.standing(order.order_id), || {
            decide(seed, order.order_id, rate)
        })?;
        let (status, reason) = match change {
            Change::Charge(Decision::Approve) => ("CONFIRMED", None),
            Change::Charge(Decision::Decline(reason)) => ("FAILED", Some(reason)),
            _ => ("FAILED", Some(ORDER_CANCELLED)),
        };
        let now = Utc::now();
        let payment = Payment {
            payment_id: Uuid::now_v7(),
            order_id: order.order_id,
            amount: order.total_amount,
            currency: order.currency.clone(),
            status: status.into(),
            reason: reason.map(Into::into),
            created_at: now,
            updated_at: now,
            saga_id: order.saga_id,
        };
        let event = match reason {
            None => PaymentConfirmed {
                order_id: order.order_id,
                saga_id: order.saga_id,
                payment_id: payment.payment_id,
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
        };
        self.charged.push(order.order_id);
        self.payments.insert(order.order_id, payment);
        Some(event)
    }

    /// `order.cancelled.v1`: the event to emit, if any.
    pub fn cancelled(&mut self, order: &OrderCancelled) -> Option<Event> {
        match on_cancelled(self.standing(order.order_id))? {
            Change::MarkCancelled => {
                self.cancelled_first.insert(order.order_id);
                self.marked.push(order.order_id);
                None
            }
            _ => {
                let p = self.payments.get_mut(&order.order_id)?;
                p.status = "REFUNDED".into();
                self.refunded.push(order.order_id);
                Some(
                    PaymentRefunded {
                        order_id: p.order_id,
                        saga_id: p.saga_id,
                        payment_id: p.payment_id,
                        amount: p.amount,
                        currency: p.currency.clone(),
                    }
                    .into(),
                )
            }
        }
    }

    /// Writes what changed, in one statement: new charges, refunds, and cancellations seen first.
    pub async fn save(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.charged.is_empty() && self.refunded.is_empty() && self.marked.is_empty() {
            return Ok(());
        }
        let charged: Vec<&Payment> = self
            .charged
            .iter()
            .filter_map(|id| self.payments.get(id))
            .collect();
        let ids: Vec<Uuid> = charged.iter().map(|p| p.payment_id).collect();
        let orders: Vec<Uuid> = charged.iter().map(|p| p.order_id).collect();
        let sagas: Vec<Uuid> = charged.iter().map(|p| p.saga_id).collect();
        let amounts: Vec<Decimal> = charged.iter().map(|p| p.amount.amount()).collect();
        let currencies: Vec<&str> = charged.iter().map(|p| p.currency.as_str()).collect();
        let statuses: Vec<&str> = charged.iter().map(|p| p.status.as_str()).collect();
        let reasons: Vec<Option<&str>> = charged.iter().map(|p| p.reason.as_deref()).collect();
        // A charge made and refunded in one batch is inserted as refunded already.
        let refunded: Vec<Uuid> = self
            .refunded
            .iter()
            .filter(|id| !self.charged.contains(id))
            .filter_map(|id| self.payments.get(id).map(|p| p.payment_id))
            .collect();
        sqlx::query(
            "WITH charged AS ( \
                 INSERT INTO payments (payment_id, order_id, saga_id, amount, currency, status, reason) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::numeric[], $5::text[], \
                                      $6::text[], $7::text[])), \
             refunded AS ( \
                 UPDATE payments SET status = 'REFUNDED', updated_at = now() \
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
        .bind(&refunded)
        .bind(&self.marked)
        .execute(conn)
        .await?;
        Ok(())
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
