//! The saga rules, in one place and without I/O: how each event moves a saga's participants and
//! status, and which decision the coordinator emits. Every decision has one shape: the saga and
//! an input in, the saga after it and the [`Reaction`] (the decision to publish) out.
//!
//! ```text
//! STARTED --payment CONFIRMED and stock RESERVED--> COMPLETED            (emits saga.completed)
//! STARTED --payment FAILED | stock FAILED | deadline--> COMPENSATING      (emits saga.aborted)
//! STARTED | COMPLETED --order cancelled by its customer--> COMPENSATING
//! COMPENSATING --nothing left charged or held, every participant answered--> COMPENSATED
//! COMPENSATED --a late success (charge, reservation)--> COMPENSATING     (until it is undone too)
//! COMPENSATING --compensation deadline--> FAILED                          (needs an operator)
//! STARTED --operator abort--> COMPENSATING                                (emits saga.aborted, OPERATOR)
//! COMPENSATING | FAILED --operator retry--> COMPENSATING                  (emits order.cancelled again)
//! ```
//! Participants only move forward (a refund seen before its charge still counts as refunded), so
//! events in any order reach the same end. A participant that has not answered by the saga's
//! deadline is taken to hold nothing; if it answers later with a success, that is undone too.

// A new variant of a domain enum must be decided on wherever one is matched: no `_` arms.
#![deny(clippy::wildcard_enum_match_arm)]

use shared_events::{
    AbortReason, Event, OrderCancelled, Reaction, SagaAborted, SagaCompleted, text_enum,
};
use uuid::Uuid;

text_enum!(SagaStatus {
    Started = "STARTED",
    Completed = "COMPLETED",
    Compensating = "COMPENSATING",
    Compensated = "COMPENSATED",
    Failed = "FAILED",
});

text_enum!(PaymentStatus {
    Pending = "PENDING",
    Confirmed = "CONFIRMED",
    Failed = "FAILED",
    Refunded = "REFUNDED",
});

text_enum!(InventoryStatus {
    Pending = "PENDING",
    Reserved = "RESERVED",
    Failed = "FAILED",
    Committed = "COMMITTED",
    Released = "RELEASED",
});

/// A saga: the state its rules decide on (a row in the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saga {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    pub status: SagaStatus,
    pub reason: Option<AbortReason>,
    pub payment: PaymentStatus,
    pub payment_id: Option<Uuid>,
    pub inventory: InventoryStatus,
    pub reservation_id: Option<Uuid>,
    /// Why the order was cancelled, once order-service says it was.
    pub order_cancelled: Option<AbortReason>,
    /// Whether the saga's deadline has passed: from then on a participant that has not
    /// answered is taken to hold nothing (until it says otherwise).
    pub deadline_passed: bool,
}

/// What can happen to a saga.
pub enum Input<'a> {
    Event(&'a Event),
    /// The saga's deadline passed (while `STARTED`: it is aborted; while `COMPENSATING` with a
    /// participant that has not answered: that participant is taken to hold nothing).
    DeadlinePassed,
    /// Compensation has not finished within its own deadline.
    CompensationOverdue,
    /// An operator aborts a `STARTED` saga (see [`Saga::abortable`]), with a note.
    OperatorAbort {
        detail: Option<String>,
    },
    /// An operator asks for the compensation of a `COMPENSATING` or `FAILED` saga again (see
    /// [`Saga::retryable`]): every participant that still holds something undoes it.
    OperatorRetry,
}

/// The note an operator's retry puts on the cancellation it sends again.
pub const RETRY_DETAIL: &str = "compensation retried by an operator";

impl Saga {
    pub fn new(saga_id: Uuid, order_id: Uuid) -> Saga {
        Saga {
            saga_id,
            order_id,
            status: SagaStatus::Started,
            reason: None,
            payment: PaymentStatus::Pending,
            payment_id: None,
            inventory: InventoryStatus::Pending,
            reservation_id: None,
            order_cancelled: None,
            deadline_passed: false,
        }
    }

    /// Whether an operator may abort the saga: only while it is `STARTED`.
    pub fn abortable(&self) -> bool {
        self.status == SagaStatus::Started
    }

    /// Whether an operator may retry its compensation: while it is `COMPENSATING` or `FAILED`.
    pub fn retryable(&self) -> bool {
        matches!(self.status, SagaStatus::Compensating | SagaStatus::Failed)
    }

    /// Whether no participant holds a success that compensation must undo: none holds one now,
    /// and each has answered, or the deadline has passed (a participant that has not answered
    /// by then is taken to hold nothing; if it answers later, it is undone then).
    pub fn settled(&self) -> bool {
        let answered =
            self.payment != PaymentStatus::Pending && self.inventory != InventoryStatus::Pending;
        self.payment != PaymentStatus::Confirmed
            && !matches!(
                self.inventory,
                InventoryStatus::Reserved | InventoryStatus::Committed
            )
            && (answered || self.deadline_passed)
    }

    fn observe(&mut self, event: &Event) {
        use InventoryStatus as I;
        use PaymentStatus as P;
        match event {
            Event::PaymentConfirmed(e) => {
                if self.payment == P::Pending {
                    self.payment = P::Confirmed;
                }
                self.payment_id = Some(e.payment_id);
            }
            Event::PaymentFailed(_) => {
                if self.payment == P::Pending {
                    self.payment = P::Failed;
                }
            }
            Event::PaymentRefunded(e) => {
                self.payment = P::Refunded;
                self.payment_id = Some(e.payment_id);
            }
            Event::InventoryReserved(e) => {
                if self.inventory == I::Pending {
                    self.inventory = I::Reserved;
                }
                self.reservation_id = Some(e.reservation_id);
            }
            Event::InventoryFailed(_) => {
                if self.inventory == I::Pending {
                    self.inventory = I::Failed;
                }
            }
            Event::InventoryCommitted(e) => {
                if matches!(self.inventory, I::Pending | I::Reserved) {
                    self.inventory = I::Committed;
                }
                self.reservation_id = Some(e.reservation_id);
            }
            Event::InventoryReleased(e) => {
                self.inventory = I::Released;
                self.reservation_id = Some(e.reservation_id);
            }
            Event::OrderCancelled(e) => {
                self.order_cancelled.get_or_insert(e.reason);
            }
            // What the saga records nothing of: its start (the saga exists by then), the
            // order's confirmation, and its own decisions.
            Event::OrderCreated(_)
            | Event::OrderConfirmed(_)
            | Event::SagaCompleted(_)
            | Event::SagaAborted(_) => {}
        }
    }

    /// The transition: the saga after `input`, and the decision to emit, if any. What the input
    /// says is recorded first ([`Saga::observe`]); then the saga's own step is decided and
    /// carried out ([`Saga::step`]), and then where its compensation stands
    /// ([`Saga::settlement`]).
    pub fn apply(self, input: Input<'_>) -> (Saga, Reaction) {
        let mut next = self;
        let signal = next.take(input);
        let mut announced = None;
        if let Some(step) = next.step(&signal) {
            announced = next.carry_out(step);
        }
        if let Some(settled) = next.settlement(signal.overdue) {
            next.carry_out(settled);
        }
        (next, announced.into())
    }

    /// Records what `input` says, and returns what it asks beyond that.
    fn take(&mut self, input: Input<'_>) -> Signal {
        let mut signal = Signal::default();
        match input {
            Input::Event(event) => self.observe(event),
            Input::DeadlinePassed => {
                signal.deadline_passed = true;
                self.deadline_passed = true;
            }
            Input::CompensationOverdue => signal.overdue = true,
            Input::OperatorAbort { detail } => signal.operator_abort = Some(detail),
            Input::OperatorRetry => signal.retry = true,
        }
        signal
    }

    /// What the saga's own state decides after a signal, if anything.
    pub fn step(&self, signal: &Signal) -> Option<Decision> {
        match self.status {
            SagaStatus::Started => {
                // The order's own cancellation (by its customer) needs no announcement: only a
                // decision the coordinator makes is announced with saga.aborted.
                let abort = if let Some(reason) = self.order_cancelled {
                    Some((reason, false, None))
                } else if let Some(detail) = &signal.operator_abort {
                    Some((AbortReason::Operator, true, detail.clone()))
                } else if self.payment == PaymentStatus::Failed {
                    Some((AbortReason::PaymentFailed, true, None))
                } else if self.inventory == InventoryStatus::Failed {
                    Some((AbortReason::InventoryUnavailable, true, None))
                } else if signal.deadline_passed {
                    Some((AbortReason::Timeout, true, None))
                } else {
                    None
                };
                match abort {
                    Some((reason, announce, detail)) => Some(Decision::Abort {
                        reason,
                        announce,
                        detail,
                    }),
                    None if self.payment == PaymentStatus::Confirmed
                        && matches!(
                            self.inventory,
                            InventoryStatus::Reserved | InventoryStatus::Committed
                        ) =>
                    {
                        Some(Decision::Complete)
                    }
                    None => None,
                }
            }
            SagaStatus::Completed => self
                .order_cancelled
                .map(|reason| Decision::Compensate { reason }),
            SagaStatus::Compensating | SagaStatus::Failed => {
                signal.retry.then_some(Decision::Retry)
            }
            SagaStatus::Compensated => None,
        }
    }

    /// Where a compensation stands: settled once nothing is held, open again when a late
    /// success arrives, failed when it is overdue.
    pub fn settlement(&self, overdue: bool) -> Option<Decision> {
        match self.status {
            SagaStatus::Started | SagaStatus::Completed => None,
            SagaStatus::Compensating | SagaStatus::Failed if self.settled() => {
                Some(Decision::Settle)
            }
            SagaStatus::Compensated if self.settled() => None,
            SagaStatus::Compensated => Some(Decision::Reopen),
            SagaStatus::Compensating if overdue => Some(Decision::Fail),
            SagaStatus::Compensating | SagaStatus::Failed => None,
        }
    }

    /// Why the saga's order is cancelled: order-service's own reason once it said so, else the
    /// saga's abort reason, else an operator's.
    pub fn cancel_reason(&self) -> AbortReason {
        self.order_cancelled
            .or(self.reason)
            .unwrap_or(AbortReason::Operator)
    }

    /// Carries a decision out: the saga's new status, and the event that announces it.
    fn carry_out(&mut self, decision: Decision) -> Option<Event> {
        match decision {
            Decision::Complete => {
                self.status = SagaStatus::Completed;
                Some(
                    SagaCompleted {
                        saga_id: self.saga_id,
                        order_id: self.order_id,
                        payment_id: self.payment_id,
                        reservation_id: self.reservation_id,
                    }
                    .into(),
                )
            }
            Decision::Abort {
                reason,
                announce,
                detail,
            } => {
                self.status = SagaStatus::Compensating;
                self.reason = Some(reason);
                announce.then(|| {
                    SagaAborted {
                        saga_id: self.saga_id,
                        order_id: self.order_id,
                        reason,
                        detail,
                    }
                    .into()
                })
            }
            Decision::Compensate { reason } => {
                self.status = SagaStatus::Compensating;
                self.reason = Some(reason);
                None
            }
            Decision::Retry => {
                self.status = SagaStatus::Compensating;
                // The cancellation every participant undoes its part on, sent again: each
                // undoes what it still holds, and one that holds nothing changes nothing.
                Some(
                    OrderCancelled {
                        order_id: self.order_id,
                        saga_id: self.saga_id,
                        reason: self.cancel_reason(),
                        detail: Some(RETRY_DETAIL.into()),
                    }
                    .into(),
                )
            }
            Decision::Settle => {
                self.status = SagaStatus::Compensated;
                None
            }
            Decision::Reopen => {
                self.status = SagaStatus::Compensating;
                None
            }
            Decision::Fail => {
                self.status = SagaStatus::Failed;
                None
            }
        }
    }
}

/// What an input asks of a saga beyond what it records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signal {
    /// The saga's deadline passed now.
    pub deadline_passed: bool,
    /// Its compensation's deadline passed.
    pub overdue: bool,
    /// An operator aborts it, with this note.
    pub operator_abort: Option<Option<String>>,
    /// An operator retries its compensation.
    pub retry: bool,
}

/// What an input decides for a saga.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Payment confirmed and stock reserved: `COMPLETED`, announced with `saga.completed`.
    Complete,
    /// `COMPENSATING` for `reason`, announced with `saga.aborted` unless the order's own
    /// cancellation started it.
    Abort {
        reason: AbortReason,
        announce: bool,
        detail: Option<String>,
    },
    /// A completed saga's order was cancelled by its customer: `COMPENSATING`.
    Compensate { reason: AbortReason },
    /// An operator's retry: `COMPENSATING` again, the order's cancellation sent again.
    Retry,
    /// Nothing is held any more: `COMPENSATED`.
    Settle,
    /// A late success after `COMPENSATED`: `COMPENSATING` until it is undone too.
    Reopen,
    /// The compensation did not finish in time: `FAILED`, for an operator.
    Fail,
}

#[cfg(test)]
#[allow(clippy::wildcard_enum_match_arm)] // a test may panic on whatever else it meets
mod tests {
    use super::*;
    use shared_events::*;

    fn saga() -> Saga {
        Saga::new(Uuid::now_v7(), Uuid::now_v7())
    }

    fn money() -> Money {
        "10".parse().unwrap()
    }

    fn paid(s: &Saga) -> Event {
        PaymentConfirmed {
            order_id: s.order_id,
            saga_id: s.saga_id,
            payment_id: Uuid::from_u128(1),
            amount: money(),
            currency: Currency::euro(),
        }
        .into()
    }
    fn declined(s: &Saga) -> Event {
        PaymentFailed {
            order_id: s.order_id,
            saga_id: s.saga_id,
            amount: money(),
            currency: Currency::euro(),
            reason: "CARD_DECLINED".into(),
        }
        .into()
    }
    fn refunded(s: &Saga) -> Event {
        PaymentRefunded {
            order_id: s.order_id,
            saga_id: s.saga_id,
            payment_id: Uuid::from_u128(1),
            amount: money(),
            currency: Currency::euro(),
        }
        .into()
    }
    fn reserved(s: &Saga) -> Event {
        InventoryReserved {
            order_id: s.order_id,
            saga_id: s.saga_id,
            reservation_id: Uuid::from_u128(2),
            items: vec![],
        }
        .into()
    }
    fn out_of_stock(s: &Saga) -> Event {
        InventoryFailed {
            order_id: s.order_id,
            saga_id: s.saga_id,
            reason: InventoryFailureReason::InsufficientStock,
            unavailable_items: vec![],
        }
        .into()
    }
    fn committed(s: &Saga) -> Event {
        InventoryCommitted {
            order_id: s.order_id,
            saga_id: s.saga_id,
            reservation_id: Uuid::from_u128(2),
        }
        .into()
    }
    fn released(s: &Saga) -> Event {
        InventoryReleased {
            order_id: s.order_id,
            saga_id: s.saga_id,
            reservation_id: Uuid::from_u128(2),
            items: vec![],
        }
        .into()
    }
    fn cancelled(s: &Saga, reason: AbortReason) -> Event {
        OrderCancelled {
            order_id: s.order_id,
            saga_id: s.saga_id,
            reason,
            detail: None,
        }
        .into()
    }

    /// Applies events in order, collecting decisions.
    fn run(start: &Saga, events: &[Event]) -> (Saga, Vec<Event>) {
        let mut s = start.clone();
        let mut out = Vec::new();
        for e in events {
            let (next, reaction) = s.apply(Input::Event(e));
            s = next;
            out.extend(reaction.event().cloned());
        }
        (s, out)
    }

    #[test]
    fn payment_and_reservation_complete_the_saga_in_either_order() {
        let s = saga();
        for events in [vec![paid(&s), reserved(&s)], vec![reserved(&s), paid(&s)]] {
            let (end, decisions) = run(&s, &events);
            assert_eq!(end.status, SagaStatus::Completed);
            assert_eq!(decisions.len(), 1);
            match &decisions[0] {
                Event::SagaCompleted(c) => {
                    assert_eq!(c.payment_id, Some(Uuid::from_u128(1)));
                    assert_eq!(c.reservation_id, Some(Uuid::from_u128(2)));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_declined_payment_aborts_and_compensation_ends_when_stock_is_released() {
        let s = saga();
        let (mid, decisions) = run(&s, &[reserved(&s), declined(&s)]);
        assert_eq!(mid.status, SagaStatus::Compensating);
        assert_eq!(mid.reason, Some(AbortReason::PaymentFailed));
        assert!(
            matches!(&decisions[..], [Event::SagaAborted(a)] if a.reason == AbortReason::PaymentFailed)
        );
        let (end, more) = run(
            &mid,
            &[cancelled(&s, AbortReason::PaymentFailed), released(&s)],
        );
        assert_eq!(end.status, SagaStatus::Compensated);
        assert!(more.is_empty());
    }

    #[test]
    fn missing_stock_aborts_and_the_charge_must_be_refunded() {
        let s = saga();
        let (mid, decisions) = run(&s, &[paid(&s), out_of_stock(&s)]);
        assert_eq!(mid.status, SagaStatus::Compensating);
        assert!(
            matches!(&decisions[..], [Event::SagaAborted(a)] if a.reason == AbortReason::InventoryUnavailable)
        );
        let (end, _) = run(&mid, &[refunded(&s)]);
        assert_eq!(end.status, SagaStatus::Compensated);
    }

    #[test]
    fn a_saga_where_nothing_succeeded_is_compensated_at_once() {
        let s = saga();
        let (end, _) = run(&s, &[declined(&s), out_of_stock(&s)]);
        assert_eq!(end.status, SagaStatus::Compensated);
        assert_eq!(end.reason, Some(AbortReason::PaymentFailed));
    }

    #[test]
    fn the_deadline_aborts_only_a_started_saga() {
        let s = saga();
        let (timed_out, decision) = s.clone().apply(Input::DeadlinePassed);
        assert_eq!(timed_out.status, SagaStatus::Compensated);
        assert!(
            matches!(decision, Reaction::Emit(Event::SagaAborted(a)) if a.reason == AbortReason::Timeout)
        );
        let (done, _) = run(&s, &[paid(&s), reserved(&s)]);
        let (after, none) = done.apply(Input::DeadlinePassed);
        let none = none.event().cloned();
        assert_eq!(after.status, SagaStatus::Completed);
        assert!(none.is_none());
    }

    #[test]
    fn a_charge_after_the_timeout_reopens_compensation_until_refunded() {
        let s = saga();
        let (timed_out, _) = s.clone().apply(Input::DeadlinePassed);
        let (late, decisions) = run(&timed_out, &[paid(&s)]);
        assert_eq!(late.status, SagaStatus::Compensating);
        assert!(
            decisions.is_empty(),
            "a late success is undone, not decided on again"
        );
        let (end, _) = run(&late, &[refunded(&s)]);
        assert_eq!(end.status, SagaStatus::Compensated);
    }

    #[test]
    fn a_customer_cancel_compensates_a_completed_saga_without_a_new_decision() {
        let s = saga();
        let (done, _) = run(&s, &[paid(&s), reserved(&s), committed(&s)]);
        assert_eq!(done.status, SagaStatus::Completed);
        let (comp, decisions) = run(&done, &[cancelled(&s, AbortReason::CustomerRequest)]);
        assert_eq!(comp.status, SagaStatus::Compensating);
        assert_eq!(comp.reason, Some(AbortReason::CustomerRequest));
        assert!(decisions.is_empty());
        let (end, _) = run(&comp, &[released(&s), refunded(&s)]);
        assert_eq!(end.status, SagaStatus::Compensated);
    }

    #[test]
    fn events_in_any_order_reach_the_same_end() {
        let s = saga();
        let events = [
            paid(&s),
            reserved(&s),
            cancelled(&s, AbortReason::CustomerRequest),
            released(&s),
            refunded(&s),
        ];
        let forward = run(&s, &events).0;
        let mut backward = events.to_vec();
        backward.reverse();
        let reversed = run(&s, &backward).0;
        assert_eq!(forward.status, SagaStatus::Compensated);
        assert_eq!(reversed.status, SagaStatus::Compensated);
        assert_eq!(forward.payment, reversed.payment);
        assert_eq!(forward.inventory, reversed.inventory);
    }

    #[test]
    fn an_operator_aborts_only_a_started_saga_and_announces_it_with_the_note() {
        let s = saga();
        assert!(s.abortable());
        let (aborted, reaction) = s.clone().apply(Input::OperatorAbort {
            detail: Some("suspected fraud".into()),
        });
        assert_eq!(
            aborted.status,
            SagaStatus::Compensating,
            "the participants answer first"
        );
        assert_eq!(aborted.reason, Some(AbortReason::Operator));
        assert_eq!(
            reaction,
            Reaction::Emit(
                SagaAborted {
                    saga_id: s.saga_id,
                    order_id: s.order_id,
                    reason: AbortReason::Operator,
                    detail: Some("suspected fraud".into()),
                }
                .into()
            )
        );
        let (paid_first, _) = run(&s, &[paid(&s)]);
        let (aborted, _) = paid_first.apply(Input::OperatorAbort { detail: None });
        assert_eq!(
            aborted.status,
            SagaStatus::Compensating,
            "the charge is undone first"
        );
        let (done, _) = run(&s, &[paid(&s), reserved(&s)]);
        assert!(!done.abortable());
        let (after, reaction) = done.clone().apply(Input::OperatorAbort { detail: None });
        assert_eq!((after, reaction), (done, Reaction::Nothing));
    }

    #[test]
    fn an_operator_retry_sends_the_cancellation_again_with_a_fresh_compensation() {
        let s = saga();
        let (done, _) = run(&s, &[paid(&s), reserved(&s)]);
        assert!(!done.retryable());
        let (comp, _) = run(
            &done,
            &[cancelled(&s, AbortReason::CustomerRequest), released(&s)],
        );
        let (failed, _) = comp.apply(Input::CompensationOverdue);
        assert_eq!(failed.status, SagaStatus::Failed);
        assert!(failed.retryable());
        let (retried, reaction) = failed.apply(Input::OperatorRetry);
        assert_eq!(retried.status, SagaStatus::Compensating);
        assert_eq!(
            reaction,
            Reaction::Emit(
                OrderCancelled {
                    order_id: s.order_id,
                    saga_id: s.saga_id,
                    reason: AbortReason::CustomerRequest,
                    detail: Some(RETRY_DETAIL.into()),
                }
                .into()
            )
        );
        // Retrying again is harmless: the same cancellation, the same status.
        let (again, reaction) = retried.clone().apply(Input::OperatorRetry);
        assert_eq!(again.status, SagaStatus::Compensating);
        assert!(matches!(reaction, Reaction::Emit(Event::OrderCancelled(_))));
        let (end, _) = run(&again, &[refunded(&s)]);
        assert_eq!(end.status, SagaStatus::Compensated);
        let (after, reaction) = end.clone().apply(Input::OperatorRetry);
        assert_eq!((after, reaction), (end, Reaction::Nothing));
    }

    #[test]
    fn an_aborted_saga_waits_for_a_participant_that_has_not_answered_until_its_deadline() {
        let s = saga();
        let (aborted, _) = run(&s, &[out_of_stock(&s)]);
        assert_eq!(aborted.status, SagaStatus::Compensating);
        assert_eq!(aborted.reason, Some(AbortReason::InventoryUnavailable));
        // The charge arrives, then its refund: only then is the saga compensated.
        let (charged, _) = run(&aborted, &[paid(&s)]);
        assert_eq!(charged.status, SagaStatus::Compensating);
        let (end, _) = run(&charged, &[refunded(&s)]);
        assert_eq!(end.status, SagaStatus::Compensated);
        // A payment-service that never answers holds nothing once the deadline has passed.
        let (end, decision) = aborted.apply(Input::DeadlinePassed);
        assert_eq!(end.status, SagaStatus::Compensated);
        assert_eq!(
            decision,
            Reaction::Nothing,
            "the abort was announced before"
        );
    }

    #[test]
    fn overdue_compensation_fails_and_a_late_undo_still_settles_it() {
        let s = saga();
        let (comp, _) = run(&s, &[paid(&s), out_of_stock(&s)]);
        let (failed, _) = comp.clone().apply(Input::CompensationOverdue);
        assert_eq!(failed.status, SagaStatus::Failed);
        let (end, _) = run(&failed, &[refunded(&s)]);
        assert_eq!(end.status, SagaStatus::Compensated);
    }
}
