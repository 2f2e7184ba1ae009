//! The payment rules, without I/O: charge an order once, refund a confirmed charge on
//! cancellation, and never charge an order that was cancelled before this service saw it
//! created. Every decision has one shape: the book and an [`Input`] in, the book after it and
//! the [`Reaction`] out; [`Decision`] is what the input decided. The time and the new payment's
//! id arrive with the input.
//!
//! ```text
//! (none) --order.created, approved--> CONFIRMED --order.cancelled--> REFUNDED
//! (none) --order.created, declined--> FAILED
//! (none) --order.cancelled--> cancelled mark --order.created--> FAILED (ORDER_CANCELLED, never charged)
//! ```

// A new variant of a domain enum must be decided on wherever one is matched: no `_` arms.
#![deny(clippy::wildcard_enum_match_arm)]

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use shared_events::{
    Currency, Money, OrderCancelled, OrderCreated, PaymentConfirmed, PaymentFailed,
    PaymentRefunded, Reaction,
};
use uuid::Uuid;

use crate::gateway::{Decline, Gateway, Verdict};

shared_events::text_enum!(PaymentStatus {
    Confirmed = "CONFIRMED",
    Failed = "FAILED",
    Refunded = "REFUNDED",
});

shared_events::text_enum!(
    /// Why a payment failed: the gateway's answer, or an order cancelled before it was charged.
    PaymentFailure {
        CardDeclined = "CARD_DECLINED",
        InsufficientFunds = "INSUFFICIENT_FUNDS",
        ExpiredCard = "EXPIRED_CARD",
        FraudSuspected = "FRAUD_SUSPECTED",
        OrderCancelled = "ORDER_CANCELLED",
    }
);

impl From<Decline> for PaymentFailure {
    fn from(decline: Decline) -> PaymentFailure {
        match decline {
            Decline::CardDeclined => PaymentFailure::CardDeclined,
            Decline::InsufficientFunds => PaymentFailure::InsufficientFunds,
            Decline::ExpiredCard => PaymentFailure::ExpiredCard,
            Decline::FraudSuspected => PaymentFailure::FraudSuspected,
        }
    }
}

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

/// What an input decides for an order's payment.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Charge(Verdict),
    /// Record a failure without asking the gateway: the order was cancelled first.
    Skip,
    Refund,
    MarkCancelled,
}

/// The rules on standings alone.
pub fn on_created(standing: Standing, verdict: impl FnOnce() -> Verdict) -> Option<Decision> {
    match standing {
        Standing::Unknown => Some(Decision::Charge(verdict())),
        Standing::CancelledFirst => Some(Decision::Skip),
        Standing::Confirmed | Standing::Failed | Standing::Refunded => None,
    }
}

pub fn on_cancelled(standing: Standing) -> Option<Decision> {
    match standing {
        Standing::Unknown => Some(Decision::MarkCancelled),
        Standing::Confirmed => Some(Decision::Refund),
        Standing::CancelledFirst | Standing::Failed | Standing::Refunded => None,
    }
}

/// A payment: the state its rules decide on (a row in the store, `routes::PaymentView` in the
/// API).
#[derive(Clone, Debug, PartialEq)]
pub struct Payment {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount: Money,
    pub currency: Currency,
    pub status: PaymentStatus,
    pub reason: Option<PaymentFailure>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub saga_id: Uuid,
}

/// What can happen to a payment, with the time it happens.
pub enum Input<'a> {
    /// The order was created: charged through this gateway if it comes to a charge, as a new
    /// payment of this id.
    Created {
        order: &'a OrderCreated,
        gateway: &'a Gateway,
        payment_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The order was cancelled.
    Cancelled {
        order: &'a OrderCancelled,
        at: DateTime<Utc>,
    },
}

/// The payments of a batch's orders: read once, changed in memory by the rules, written back
/// in one statement ([`Book::changes`] says what to write).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Book {
    payments: HashMap<Uuid, Payment>,
    cancelled_first: HashSet<Uuid>,
    charged: Vec<Uuid>,
    refunded: Vec<Uuid>,
    marked: Vec<Uuid>,
}

/// What a book's decisions changed, for the store to write.
pub struct Changes<'a> {
    /// New payments (confirmed, failed, or already refunded).
    pub charged: Vec<&'a Payment>,
    /// Payments stored before that are now refunded.
    pub refunded: Vec<Uuid>,
    /// Orders whose cancellation came before their creation.
    pub marked: &'a [Uuid],
}

impl Book {
    /// The book of what is stored: each order's payment, and the orders cancelled first.
    pub fn new(payments: HashMap<Uuid, Payment>, cancelled_first: HashSet<Uuid>) -> Book {
        Book {
            payments,
            cancelled_first,
            ..Book::default()
        }
    }

    pub fn standing(&self, order_id: Uuid) -> Standing {
        match self.payments.get(&order_id).map(|p| p.status) {
            Some(PaymentStatus::Confirmed) => Standing::Confirmed,
            Some(PaymentStatus::Refunded) => Standing::Refunded,
            Some(PaymentStatus::Failed) => Standing::Failed,
            None if self.cancelled_first.contains(&order_id) => Standing::CancelledFirst,
            None => Standing::Unknown,
        }
    }

    pub fn payment(&self, order_id: Uuid) -> Option<&Payment> {
        self.payments.get(&order_id)
    }

    /// The book after `input`, and the event to publish.
    pub fn apply(mut self, input: Input<'_>) -> (Book, Reaction) {
        let reaction = match input {
            Input::Created {
                order,
                gateway,
                payment_id,
                at,
            } => self.created(order, gateway, payment_id, at),
            Input::Cancelled { order, at } => self.cancelled(order, at),
        };
        (self, reaction)
    }

    fn created(
        &mut self,
        order: &OrderCreated,
        gateway: &Gateway,
        payment_id: Uuid,
        at: DateTime<Utc>,
    ) -> Reaction {
        let Some(decision) = on_created(self.standing(order.order_id), || {
            gateway.decide(order.order_id)
        }) else {
            return Reaction::Nothing;
        };
        let (status, reason) = match decision {
            Decision::Charge(Verdict::Approve) => (PaymentStatus::Confirmed, None),
            Decision::Charge(Verdict::Decline(decline)) => {
                (PaymentStatus::Failed, Some(PaymentFailure::from(decline)))
            }
            Decision::Skip => (PaymentStatus::Failed, Some(PaymentFailure::OrderCancelled)),
            // Not what a creation decides.
            Decision::Refund | Decision::MarkCancelled => return Reaction::Nothing,
        };
        let payment = Payment {
            payment_id,
            order_id: order.order_id,
            amount: order.total_amount,
            currency: order.currency.clone(),
            status,
            reason,
            created_at: at,
            updated_at: at,
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
                reason: reason.as_str().into(),
            }
            .into(),
        };
        self.charged.push(order.order_id);
        self.payments.insert(order.order_id, payment);
        Reaction::Emit(event)
    }

    fn cancelled(&mut self, order: &OrderCancelled, at: DateTime<Utc>) -> Reaction {
        match on_cancelled(self.standing(order.order_id)) {
            Some(Decision::MarkCancelled) => {
                self.cancelled_first.insert(order.order_id);
                self.marked.push(order.order_id);
                Reaction::Nothing
            }
            Some(Decision::Refund) => {
                let Some(p) = self.payments.get_mut(&order.order_id) else {
                    return Reaction::Nothing;
                };
                p.status = PaymentStatus::Refunded;
                p.updated_at = at;
                self.refunded.push(order.order_id);
                Reaction::Emit(
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
            // Not what a cancellation decides, or nothing to do.
            Some(Decision::Charge(_) | Decision::Skip) | None => Reaction::Nothing,
        }
    }

    /// What the decisions so far changed.
    pub fn changes(&self) -> Changes<'_> {
        Changes {
            charged: self
                .charged
                .iter()
                .filter_map(|id| self.payments.get(id))
                .collect(),
            // A charge made and refunded in one batch is inserted as refunded already.
            refunded: self
                .refunded
                .iter()
                .filter(|id| !self.charged.contains(id))
                .filter_map(|id| self.payments.get(id).map(|p| p.payment_id))
                .collect(),
            marked: &self.marked,
        }
    }

    /// Whether the decisions so far changed anything to write.
    pub fn is_changed(&self) -> bool {
        !(self.charged.is_empty() && self.refunded.is_empty() && self.marked.is_empty())
    }
}

#[cfg(test)]
#[allow(clippy::wildcard_enum_match_arm)] // a test may panic on whatever else it meets
mod tests {
    use super::*;

    #[test]
    fn an_order_is_charged_once_on_creation() {
        assert_eq!(
            on_created(Standing::Unknown, || Verdict::Approve),
            Some(Decision::Charge(Verdict::Approve))
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
        assert_eq!(
            on_cancelled(Standing::Unknown),
            Some(Decision::MarkCancelled)
        );
        assert_eq!(
            on_created(Standing::CancelledFirst, || unreachable!("no gateway call")),
            Some(Decision::Skip)
        );
    }

    use shared_events::{AbortReason, Event};

    use crate::gateway::{DECLINE_REASONS, SuccessRate};

    fn gateway(rate: f64) -> Gateway {
        Gateway {
            seed: 1,
            rate: SuccessRate::new(rate).unwrap(),
        }
    }

    fn order() -> OrderCreated {
        OrderCreated {
            order_id: Uuid::now_v7(),
            saga_id: Uuid::now_v7(),
            customer_id: "c-1".parse().unwrap(),
            items: Vec::new(),
            total_amount: "12.50".parse().unwrap(),
            currency: Currency::euro(),
        }
    }

    fn created<'a>(o: &'a OrderCreated, gateway: &'a Gateway) -> Input<'a> {
        Input::Created {
            order: o,
            gateway,
            payment_id: Uuid::now_v7(),
            at: Utc::now(),
        }
    }

    fn cancel(o: &OrderCreated) -> OrderCancelled {
        OrderCancelled {
            order_id: o.order_id,
            saga_id: o.saga_id,
            reason: AbortReason::CustomerRequest,
            detail: None,
        }
    }

    #[test]
    fn an_approved_charge_is_confirmed_and_announced_with_its_amount() {
        let o = order();
        let (book, reaction) = Book::default().apply(created(&o, &gateway(1.0)));
        let payment = book.payment(o.order_id).unwrap().clone();
        assert_eq!(payment.status, PaymentStatus::Confirmed);
        assert_eq!(payment.amount, o.total_amount);
        assert_eq!(
            reaction,
            Reaction::Emit(
                PaymentConfirmed {
                    order_id: o.order_id,
                    saga_id: o.saga_id,
                    payment_id: payment.payment_id,
                    amount: o.total_amount,
                    currency: Currency::euro(),
                }
                .into()
            )
        );
        assert_eq!(book.changes().charged, vec![&payment]);
    }

    #[test]
    fn a_declined_charge_fails_with_the_gateway_reason() {
        let o = order();
        let (book, reaction) = Book::default().apply(created(&o, &gateway(0.0)));
        let payment = book.payment(o.order_id).unwrap();
        assert_eq!(payment.status, PaymentStatus::Failed);
        let reason = payment.reason.unwrap();
        assert!(
            DECLINE_REASONS
                .iter()
                .any(|d| PaymentFailure::from(*d) == reason),
            "{reason}"
        );
        assert!(
            matches!(reaction, Reaction::Emit(Event::PaymentFailed(f)) if f.reason == reason.as_str())
        );
    }

    #[test]
    fn a_redelivered_creation_charges_nothing_more() {
        let o = order();
        let (book, _) = Book::default().apply(created(&o, &gateway(1.0)));
        let stored = Book::new(
            [(o.order_id, book.payment(o.order_id).unwrap().clone())].into(),
            HashSet::new(),
        );
        let (after, reaction) = stored.clone().apply(created(&o, &gateway(1.0)));
        assert_eq!(reaction, Reaction::Nothing);
        assert!(!after.is_changed());
        assert_eq!(after, stored);
    }

    #[test]
    fn a_cancellation_before_the_creation_means_a_failure_without_a_charge() {
        let o = order();
        let (book, reaction) = Book::default().apply(Input::Cancelled {
            order: &cancel(&o),
            at: Utc::now(),
        });
        assert_eq!(reaction, Reaction::Nothing);
        assert_eq!(book.standing(o.order_id), Standing::CancelledFirst);
        assert_eq!(book.changes().marked, &[o.order_id]);
        // The gateway would approve; the order is never charged all the same.
        let (book, reaction) = book.apply(created(&o, &gateway(1.0)));
        let payment = book.payment(o.order_id).unwrap();
        assert_eq!(payment.status, PaymentStatus::Failed);
        assert_eq!(payment.reason, Some(PaymentFailure::OrderCancelled));
        assert!(
            matches!(reaction, Reaction::Emit(Event::PaymentFailed(f)) if f.reason == "ORDER_CANCELLED")
        );
    }

    #[test]
    fn a_confirmed_charge_is_refunded_once() {
        let o = order();
        let (charged, _) = Book::default().apply(created(&o, &gateway(1.0)));
        let stored = Book::new(
            [(o.order_id, charged.payment(o.order_id).unwrap().clone())].into(),
            HashSet::new(),
        );
        let (book, reaction) = stored.apply(Input::Cancelled {
            order: &cancel(&o),
            at: Utc::now(),
        });
        assert!(
            matches!(reaction, Reaction::Emit(Event::PaymentRefunded(r)) if r.amount == o.total_amount)
        );
        assert_eq!(book.standing(o.order_id), Standing::Refunded);
        let refunded_id = book.payment(o.order_id).unwrap().payment_id;
        assert_eq!(book.changes().refunded, vec![refunded_id]);
        let (book, again) = book.apply(Input::Cancelled {
            order: &cancel(&o),
            at: Utc::now(),
        });
        assert_eq!(again, Reaction::Nothing);
        assert_eq!(book.changes().refunded, vec![refunded_id]);
    }

    #[test]
    fn a_charge_and_its_refund_in_one_batch_are_written_as_one_refunded_payment() {
        let o = order();
        let (book, _) = Book::default().apply(created(&o, &gateway(1.0)));
        let (book, _) = book.apply(Input::Cancelled {
            order: &cancel(&o),
            at: Utc::now(),
        });
        let changes = book.changes();
        assert_eq!(changes.charged.len(), 1);
        assert_eq!(changes.charged[0].status, PaymentStatus::Refunded);
        assert!(changes.refunded.is_empty());
    }

    #[test]
    fn a_failed_payment_is_not_refunded() {
        let o = order();
        let (book, _) = Book::default().apply(created(&o, &gateway(0.0)));
        let (_, reaction) = book.apply(Input::Cancelled {
            order: &cancel(&o),
            at: Utc::now(),
        });
        assert_eq!(reaction, Reaction::Nothing);
    }

    #[test]
    fn only_a_confirmed_charge_is_refunded_and_only_once() {
        assert_eq!(on_cancelled(Standing::Confirmed), Some(Decision::Refund));
        for other in [
            Standing::Failed,
            Standing::Refunded,
            Standing::CancelledFirst,
        ] {
            assert_eq!(on_cancelled(other), None);
        }
    }
}
