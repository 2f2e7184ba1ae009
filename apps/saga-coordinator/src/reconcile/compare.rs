//! The reconciliation's rules, without I/O: what the four services' records of one order say
//! together, which disagreements the events did not settle, and which events settle each.
//!
//! | kind | the records | re-sent |
//! | --- | --- | --- |
//! | `ORDER_WITHOUT_SAGA` | the order `PENDING` past its deadline, no saga (its `order.created` was lost) | `order.created` |
//! | `HELD_FOR_CANCELLED_ORDER` | the order cancelled, a charge `CONFIRMED` or stock `RESERVED`/`COMMITTED` (its `order.cancelled` did not reach them) | `order.cancelled` |
//! | `UNDO_NOT_HEARD` | the saga compensating (or `FAILED`), a participant `REFUNDED`/`RELEASED` the saga has not heard of | `payment.refunded`, `inventory.released` |
//! | `UNDONE_FOR_COMPLETED_SAGA` | the saga `COMPLETED`, the order cancelled and its participants undone (the coordinator missed the cancellation) | `order.cancelled`, and the undo events |
//! | `OUTCOME_NOT_HEARD` | the saga ended (or compensating), the order still `PENDING` past its deadline (its `saga.completed` or `saga.aborted` was lost) | `saga.completed` or `saga.aborted` (and, for a saga still compensating, the undo events it has not heard of) |
//!
//! A completed saga whose participant undid its part while the order stays `CONFIRMED` is
//! reported as `UNDONE_FOR_COMPLETED_SAGA` with nothing re-sent: no event of the contract puts
//! that right, an operator does. Lost events alone cannot make it (a participant undoes only on
//! `order.cancelled`), and runs do not list confirmed orders: it is reported when met among the
//! records a run compares.

// A new variant of a domain enum must be decided on wherever one is matched: no `_` arms.
#![deny(clippy::wildcard_enum_match_arm)]

use serde::Deserialize;
use shared_events::{
    AbortReason, Currency, CustomerId, Event, InventoryReleased, Money, OrderCancelled,
    OrderCreated, OrderLine, PaymentRefunded, SagaAborted, SagaCompleted, StockLine, text_enum,
};
use uuid::Uuid;

use crate::rules::{InventoryStatus, PaymentStatus, Saga, SagaStatus};

text_enum!(
    /// A disagreement between the services' records that the events did not settle.
    MismatchKind {
        OrderWithoutSaga = "ORDER_WITHOUT_SAGA",
        HeldForCancelledOrder = "HELD_FOR_CANCELLED_ORDER",
        UndoNotHeard = "UNDO_NOT_HEARD",
        UndoneForCompletedSaga = "UNDONE_FOR_COMPLETED_SAGA",
        OutcomeNotHeard = "OUTCOME_NOT_HEARD",
    }
);

text_enum!(OrderWord {
    Pending = "PENDING",
    Confirmed = "CONFIRMED",
    Cancelled = "CANCELLED",
});

text_enum!(PaymentWord {
    Confirmed = "CONFIRMED",
    Failed = "FAILED",
    Refunded = "REFUNDED",
});

text_enum!(ReservationWord {
    Reserved = "RESERVED",
    Committed = "COMMITTED",
    Released = "RELEASED",
    Failed = "FAILED",
});

/// An order as order-service's API shows it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub customer_id: CustomerId,
    pub items: Vec<OrderLine>,
    pub total_amount: Money,
    pub currency: Currency,
    pub status: OrderWord,
    pub cancellation_reason: Option<AbortReason>,
    pub cancellation_detail: Option<String>,
}

/// A payment as payment-service's API shows it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRecord {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount: Money,
    pub currency: Currency,
    pub status: PaymentWord,
}

/// A reservation as inventory-service's API shows it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRecord {
    pub order_id: Uuid,
    pub reservation_id: Uuid,
    pub status: ReservationWord,
    pub items: Vec<StockLine>,
}

/// What each service holds of one order (`None`: it has no record of it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Records<'a> {
    pub order: Option<&'a OrderRecord>,
    pub saga: Option<&'a Saga>,
    pub payment: Option<&'a PaymentRecord>,
    pub reservation: Option<&'a ReservationRecord>,
}

/// One disagreement, and the events that settle it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    pub kind: MismatchKind,
    pub order_id: Uuid,
    pub saga_id: Uuid,
    /// What the records say, for people.
    pub detail: String,
    /// The events to publish again (none: it needs an operator).
    pub resend: Vec<Event>,
}

/// The note a re-sent cancellation carries.
pub const RESENT: &str = "re-sent by the reconciliation";

/// The disagreement among one order's records, if any.
pub fn compare(r: Records<'_>) -> Option<Mismatch> {
    let order_id = r.order.map(|o| o.order_id).or(r.saga.map(|s| s.order_id))?;
    let saga_id = r.saga.map(|s| s.saga_id).or(r.order.map(|o| o.saga_id))?;
    let mismatch = |kind, detail: String, resend| {
        Some(Mismatch {
            kind,
            order_id,
            saga_id,
            detail,
            resend,
        })
    };
    if let (Some(order), None) = (r.order, r.saga)
        && order.status == OrderWord::Pending
    {
        return mismatch(
            MismatchKind::OrderWithoutSaga,
            "the order is PENDING past its deadline and no saga has seen it".into(),
            vec![created(order).into()],
        );
    }
    let cancelled = cancellation(&r);
    let charged = r
        .payment
        .is_some_and(|p| p.status == PaymentWord::Confirmed);
    let holding = r.reservation.is_some_and(|v| {
        matches!(
            v.status,
            ReservationWord::Reserved | ReservationWord::Committed
        )
    });
    if let Some(reason) = cancelled
        && (charged || holding)
    {
        let held = match (charged, holding) {
            (true, true) => "charged and holding stock",
            (true, false) => "charged",
            _ => "holding stock",
        };
        return mismatch(
            MismatchKind::HeldForCancelledOrder,
            format!("the order is cancelled ({reason}) but still {held}"),
            vec![cancel(order_id, saga_id, reason)],
        );
    }
    let saga = r.saga?;
    let mut undone = Vec::new();
    if let Some(p) = r.payment.filter(|p| p.status == PaymentWord::Refunded)
        && saga.payment != PaymentStatus::Refunded
    {
        undone.push(refunded(p, saga_id));
    }
    if let Some(v) = r
        .reservation
        .filter(|v| v.status == ReservationWord::Released)
        && saga.inventory != InventoryStatus::Released
    {
        undone.push(released(v, saga_id));
    }
    let heard = |events: &[Event]| {
        events
            .iter()
            .map(Event::name)
            .collect::<Vec<_>>()
            .join(" and ")
    };
    if r.order.is_some_and(|o| o.status == OrderWord::Pending)
        && let Some(outcome) = outcome(saga)
    {
        let mut resend = vec![outcome];
        if saga.status != SagaStatus::Completed {
            resend.extend(undone);
        }
        return mismatch(
            MismatchKind::OutcomeNotHeard,
            format!(
                "the saga is {} but the order is still PENDING past its deadline",
                saga.status
            ),
            resend,
        );
    }
    match saga.status {
        SagaStatus::Completed => {
            let order_cancelled = r.order.filter(|o| o.status == OrderWord::Cancelled);
            match (order_cancelled, undone.is_empty()) {
                (Some(order), _) => {
                    let reason = order.cancellation_reason.unwrap_or(AbortReason::Operator);
                    let mut resend = vec![cancel(order_id, saga_id, reason)];
                    resend.extend(undone);
                    mismatch(
                        MismatchKind::UndoneForCompletedSaga,
                        format!(
                            "the saga is COMPLETED but the order is cancelled ({reason}) and \
                             its participants undid their part"
                        ),
                        resend,
                    )
                }
                (None, false) => mismatch(
                    MismatchKind::UndoneForCompletedSaga,
                    format!(
                        "the saga is COMPLETED and the order not cancelled, but {} happened: \
                         needs an operator",
                        heard(&undone)
                    ),
                    Vec::new(),
                ),
                (None, true) => None,
            }
        }
        SagaStatus::Compensating | SagaStatus::Failed if !undone.is_empty() => mismatch(
            MismatchKind::UndoNotHeard,
            format!(
                "the saga is {} and never heard of {}",
                saga.status,
                heard(&undone)
            ),
            undone,
        ),
        SagaStatus::Started
        | SagaStatus::Compensating
        | SagaStatus::Failed
        | SagaStatus::Compensated => None,
    }
}

/// Why the order was cancelled, by its own record, or (without one) by its saga's while the
/// saga compensates.
fn cancellation(r: &Records<'_>) -> Option<AbortReason> {
    match r.order {
        Some(order) => (order.status == OrderWord::Cancelled)
            .then(|| order.cancellation_reason.unwrap_or(AbortReason::Operator)),
        None => r
            .saga
            .filter(|s| matches!(s.status, SagaStatus::Compensating | SagaStatus::Failed))
            .map(Saga::cancel_reason),
    }
}

/// How the saga ended, as order-service hears it: `saga.completed`, or `saga.aborted` for a saga
/// that aborted (compensating, compensated or failed); none while it still runs.
fn outcome(saga: &Saga) -> Option<Event> {
    match saga.status {
        SagaStatus::Started => None,
        SagaStatus::Completed => Some(
            SagaCompleted {
                saga_id: saga.saga_id,
                order_id: saga.order_id,
                payment_id: saga.payment_id,
                reservation_id: saga.reservation_id,
            }
            .into(),
        ),
        SagaStatus::Compensating | SagaStatus::Failed | SagaStatus::Compensated => Some(
            SagaAborted {
                saga_id: saga.saga_id,
                order_id: saga.order_id,
                reason: saga.cancel_reason(),
                detail: Some(RESENT.into()),
            }
            .into(),
        ),
    }
}

fn created(order: &OrderRecord) -> OrderCreated {
    OrderCreated {
        order_id: order.order_id,
        saga_id: order.saga_id,
        customer_id: order.customer_id.clone(),
        items: order.items.clone(),
        total_amount: order.total_amount,
        currency: order.currency.clone(),
    }
}

fn cancel(order_id: Uuid, saga_id: Uuid, reason: AbortReason) -> Event {
    OrderCancelled {
        order_id,
        saga_id,
        reason,
        detail: Some(RESENT.into()),
    }
    .into()
}

fn refunded(p: &PaymentRecord, saga_id: Uuid) -> Event {
    PaymentRefunded {
        order_id: p.order_id,
        saga_id,
        payment_id: p.payment_id,
        amount: p.amount,
        currency: p.currency.clone(),
    }
    .into()
}

fn released(v: &ReservationRecord, saga_id: Uuid) -> Event {
    InventoryReleased {
        order_id: v.order_id,
        saga_id,
        reservation_id: v.reservation_id,
        items: v.items.clone(),
    }
    .into()
}

#[cfg(test)]
#[allow(clippy::wildcard_enum_match_arm)] // a test may panic on whatever else it meets
mod tests {
    use super::*;

    fn order(status: OrderWord) -> OrderRecord {
        OrderRecord {
            order_id: Uuid::now_v7(),
            saga_id: Uuid::now_v7(),
            customer_id: "c-1".parse().unwrap(),
            items: Vec::new(),
            total_amount: "10".parse().unwrap(),
            currency: Currency::euro(),
            status,
            cancellation_reason: (status == OrderWord::Cancelled)
                .then_some(AbortReason::CustomerRequest),
            cancellation_detail: None,
        }
    }

    fn saga_of(o: &OrderRecord, status: SagaStatus) -> Saga {
        let mut s = Saga::new(o.saga_id, o.order_id);
        s.status = status;
        s
    }

    fn payment(o: &OrderRecord, status: PaymentWord) -> PaymentRecord {
        PaymentRecord {
            payment_id: Uuid::now_v7(),
            order_id: o.order_id,
            amount: o.total_amount,
            currency: o.currency.clone(),
            status,
        }
    }

    fn reservation(o: &OrderRecord, status: ReservationWord) -> ReservationRecord {
        ReservationRecord {
            order_id: o.order_id,
            reservation_id: Uuid::now_v7(),
            status,
            items: Vec::new(),
        }
    }

    fn names(m: &Mismatch) -> Vec<&'static str> {
        m.resend.iter().map(Event::name).collect()
    }

    #[test]
    fn a_pending_order_without_a_saga_gets_its_creation_again() {
        let o = order(OrderWord::Pending);
        let m = compare(Records {
            order: Some(&o),
            ..Records::default()
        })
        .unwrap();
        assert_eq!(m.kind, MismatchKind::OrderWithoutSaga);
        assert_eq!(names(&m), ["order.created"]);
        assert_eq!(m.saga_id, o.saga_id);
    }

    #[test]
    fn a_charge_or_hold_left_for_a_cancelled_order_gets_the_cancellation_again() {
        let o = order(OrderWord::Cancelled);
        let mut s = saga_of(&o, SagaStatus::Completed);
        s.payment = PaymentStatus::Confirmed;
        let p = payment(&o, PaymentWord::Confirmed);
        let v = reservation(&o, ReservationWord::Committed);
        let m = compare(Records {
            order: Some(&o),
            saga: Some(&s),
            payment: Some(&p),
            reservation: Some(&v),
        })
        .unwrap();
        assert_eq!(m.kind, MismatchKind::HeldForCancelledOrder);
        assert_eq!(names(&m), ["order.cancelled"]);
        assert!(
            m.detail.contains("charged and holding stock"),
            "{}",
            m.detail
        );
        // Known from the saga alone, when the order's record is not read.
        let mut failed = saga_of(&o, SagaStatus::Failed);
        failed.reason = Some(AbortReason::InventoryUnavailable);
        let m = compare(Records {
            saga: Some(&failed),
            payment: Some(&p),
            ..Records::default()
        })
        .unwrap();
        assert_eq!(m.kind, MismatchKind::HeldForCancelledOrder);
        assert!(
            matches!(&m.resend[0], Event::OrderCancelled(c) if c.reason == AbortReason::InventoryUnavailable)
        );
    }

    #[test]
    fn an_undo_the_saga_never_heard_of_is_sent_again() {
        let o = order(OrderWord::Cancelled);
        let mut s = saga_of(&o, SagaStatus::Compensating);
        s.payment = PaymentStatus::Confirmed;
        s.inventory = InventoryStatus::Released;
        let p = payment(&o, PaymentWord::Refunded);
        let v = reservation(&o, ReservationWord::Released);
        let m = compare(Records {
            order: Some(&o),
            saga: Some(&s),
            payment: Some(&p),
            reservation: Some(&v),
        })
        .unwrap();
        assert_eq!(m.kind, MismatchKind::UndoNotHeard);
        assert_eq!(names(&m), ["payment.refunded"]);
        assert!(
            matches!(&m.resend[0], Event::PaymentRefunded(r) if r.payment_id == p.payment_id && r.amount == p.amount)
        );
    }

    #[test]
    fn a_completed_saga_whose_order_was_cancelled_and_undone_hears_all_of_it_again() {
        let o = order(OrderWord::Cancelled);
        let mut s = saga_of(&o, SagaStatus::Completed);
        s.payment = PaymentStatus::Confirmed;
        s.inventory = InventoryStatus::Committed;
        let p = payment(&o, PaymentWord::Refunded);
        let v = reservation(&o, ReservationWord::Released);
        let m = compare(Records {
            order: Some(&o),
            saga: Some(&s),
            payment: Some(&p),
            reservation: Some(&v),
        })
        .unwrap();
        assert_eq!(m.kind, MismatchKind::UndoneForCompletedSaga);
        assert_eq!(
            names(&m),
            ["order.cancelled", "payment.refunded", "inventory.released"]
        );
        // With the order still confirmed, nothing of the contract puts it right.
        let confirmed = order(OrderWord::Confirmed);
        let s = saga_of(&confirmed, SagaStatus::Completed);
        let v = reservation(&confirmed, ReservationWord::Released);
        let m = compare(Records {
            order: Some(&confirmed),
            saga: Some(&s),
            reservation: Some(&v),
            ..Records::default()
        })
        .unwrap();
        assert_eq!(m.kind, MismatchKind::UndoneForCompletedSaga);
        assert!(m.resend.is_empty());
    }

    #[test]
    fn a_pending_order_whose_saga_ended_hears_how_it_ended_again() {
        let o = order(OrderWord::Pending);
        let mut s = saga_of(&o, SagaStatus::Completed);
        s.payment = PaymentStatus::Confirmed;
        s.payment_id = Some(Uuid::now_v7());
        s.inventory = InventoryStatus::Reserved;
        s.reservation_id = Some(Uuid::now_v7());
        let p = payment(&o, PaymentWord::Confirmed);
        let v = reservation(&o, ReservationWord::Reserved);
        let m = compare(Records {
            order: Some(&o),
            saga: Some(&s),
            payment: Some(&p),
            reservation: Some(&v),
        })
        .unwrap();
        assert_eq!(m.kind, MismatchKind::OutcomeNotHeard);
        assert!(
            matches!(&m.resend[..], [Event::SagaCompleted(c)]
                if c.payment_id == s.payment_id && c.reservation_id == s.reservation_id
                    && c.order_id == o.order_id),
            "{:?}",
            m.resend
        );
        // Aborted: saga.aborted with the saga's reason, and the undo it has not heard of.
        let mut s = saga_of(&o, SagaStatus::Compensating);
        s.reason = Some(AbortReason::PaymentFailed);
        s.inventory = InventoryStatus::Reserved;
        let v = reservation(&o, ReservationWord::Released);
        let m = compare(Records {
            order: Some(&o),
            saga: Some(&s),
            reservation: Some(&v),
            ..Records::default()
        })
        .unwrap();
        assert_eq!(m.kind, MismatchKind::OutcomeNotHeard);
        assert_eq!(names(&m), ["saga.aborted", "inventory.released"]);
        assert!(
            matches!(&m.resend[0], Event::SagaAborted(a) if a.reason == AbortReason::PaymentFailed)
        );
        for status in [SagaStatus::Compensated, SagaStatus::Failed] {
            let mut s = saga_of(&o, status);
            s.reason = Some(AbortReason::Timeout);
            let m = compare(Records {
                order: Some(&o),
                saga: Some(&s),
                ..Records::default()
            })
            .unwrap();
            assert_eq!(m.kind, MismatchKind::OutcomeNotHeard);
            assert_eq!(names(&m), ["saga.aborted"]);
        }
        // A saga still running is left to its deadline.
        let s = saga_of(&o, SagaStatus::Started);
        assert_eq!(
            compare(Records {
                order: Some(&o),
                saga: Some(&s),
                ..Records::default()
            }),
            None
        );
    }

    #[test]
    fn records_that_agree_are_no_mismatch() {
        let o = order(OrderWord::Confirmed);
        let mut s = saga_of(&o, SagaStatus::Completed);
        s.payment = PaymentStatus::Confirmed;
        s.inventory = InventoryStatus::Committed;
        let p = payment(&o, PaymentWord::Confirmed);
        let v = reservation(&o, ReservationWord::Committed);
        let all = Records {
            order: Some(&o),
            saga: Some(&s),
            payment: Some(&p),
            reservation: Some(&v),
        };
        assert_eq!(compare(all), None);
        let c = order(OrderWord::Cancelled);
        let mut s = saga_of(&c, SagaStatus::Compensated);
        s.payment = PaymentStatus::Refunded;
        s.inventory = InventoryStatus::Released;
        let p = payment(&c, PaymentWord::Refunded);
        let v = reservation(&c, ReservationWord::Released);
        assert_eq!(
            compare(Records {
                order: Some(&c),
                saga: Some(&s),
                payment: Some(&p),
                reservation: Some(&v),
            }),
            None
        );
        assert_eq!(compare(Records::default()), None);
    }
}
