//! The order's rules, without I/O: what a valid order request is, and how an order's status may
//! change. Every decision has one shape: the order and an [`Input`] in, the order after it and
//! the [`Reaction`] (the event to publish) out; [`Decision`] is what the input decided. Nothing
//! here reads the clock or makes ids: they arrive with the input.
//!
//! ```text
//! PENDING --Complete--> CONFIRMED --CustomerCancel--> CANCELLED
//! PENDING --Abort | CustomerCancel--> CANCELLED
//! ```
//! A saga's decision applies only to a `PENDING` order: an order the customer already cancelled
//! stays cancelled (the saga then compensates), and a confirmed order is only cancelled by its
//! customer. A repeated or late decision changes nothing.

// A new variant of a domain enum must be decided on wherever one is matched: no `_` arms.
#![deny(clippy::wildcard_enum_match_arm)]

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared_events::{
    AbortReason, Currency, CustomerId, Money, OrderCancelled, OrderConfirmed, OrderCreated,
    OrderLine, ProductId, Quantity, Reaction,
};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub product_id: ProductId,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub total_price: Money,
}

/// A validated order request: holding one proves every rule of the API was met.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    pub customer_id: CustomerId,
    pub items: Vec<Line>,
    pub total_amount: Money,
    pub currency: Currency,
}

impl NewOrder {
    /// The `order.created` event that announces this order.
    pub fn created(&self, order_id: Uuid, saga_id: Uuid) -> OrderCreated {
        OrderCreated {
            order_id,
            saga_id,
            customer_id: self.customer_id.clone(),
            items: self
                .items
                .iter()
                .map(|l| OrderLine {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                })
                .collect(),
            total_amount: self.total_amount,
            currency: self.currency.clone(),
        }
    }
}

/// A new order's id, from `fresh`, a new UUIDv7 (time-ordered). With an `Idempotency-Key`, its
/// random half is a stable hash of the key, so an experiment that places the same keyed orders
/// again on fresh databases gets ids with the same random half, and so the same payment
/// decisions.
pub fn new_order_id(fresh: Uuid, idempotency_key: Option<&str>) -> Uuid {
    let Some(key) = idempotency_key else {
        return fresh;
    };
    // FNV-1a, then SplitMix64's finaliser to spread it.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    let (time_half, _) = fresh.as_u64_pair();
    // Keep the RFC 9562 variant bits (10) in the top of the random half.
    Uuid::from_u64_pair(time_half, (h >> 2) | 0x8000_0000_0000_0000)
}

shared_events::text_enum!(OrderStatus {
    Pending = "PENDING",
    Confirmed = "CONFIRMED",
    Cancelled = "CANCELLED",
});

/// An order: the state its rules decide on (the store reads and writes it as a row, the API
/// shows it as `routes::OrderView`).
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub customer_id: CustomerId,
    pub items: Vec<Line>,
    pub total_amount: Money,
    pub currency: Currency,
    pub status: OrderStatus,
    pub cancellation_reason: Option<AbortReason>,
    pub cancellation_detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The charge and the reservation the order was confirmed with.
    pub payment_id: Option<Uuid>,
    pub reservation_id: Option<Uuid>,
}

/// What can happen to an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The saga completed: payment confirmed and stock reserved.
    Complete {
        payment_id: Uuid,
        reservation_id: Uuid,
    },
    /// The saga aborted (an operator's abort carries their note).
    Abort {
        reason: AbortReason,
        detail: Option<String>,
    },
    /// The customer asked to cancel.
    CustomerCancel { detail: Option<String> },
}

/// What an input decides for an order, and so the event to emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Confirm {
        payment_id: Uuid,
        reservation_id: Uuid,
    },
    Cancel {
        reason: AbortReason,
        detail: Option<String>,
    },
}

impl Decision {
    pub fn status(&self) -> OrderStatus {
        match self {
            Decision::Confirm { .. } => OrderStatus::Confirmed,
            Decision::Cancel { .. } => OrderStatus::Cancelled,
        }
    }
}

/// The order lifecycle on statuses alone. `None`: the input changes nothing (it came too late,
/// or twice).
pub fn transition(status: OrderStatus, input: Input) -> Option<Decision> {
    use OrderStatus::*;
    match (status, input) {
        (
            Pending,
            Input::Complete {
                payment_id,
                reservation_id,
            },
        ) => Some(Decision::Confirm {
            payment_id,
            reservation_id,
        }),
        (Pending, Input::Abort { reason, detail }) => Some(Decision::Cancel { reason, detail }),
        (Pending | Confirmed, Input::CustomerCancel { detail }) => Some(Decision::Cancel {
            reason: AbortReason::CustomerRequest,
            detail,
        }),
        (Confirmed, Input::Complete { .. } | Input::Abort { .. })
        | (
            Cancelled,
            Input::Complete { .. } | Input::Abort { .. } | Input::CustomerCancel { .. },
        ) => None,
    }
}

impl Order {
    /// The order after `input`, and the event the decision causes (nothing when the input
    /// changes nothing: the caller then has nothing to save).
    pub fn apply(mut self, input: Input) -> (Order, Reaction) {
        let Some(decision) = transition(self.status, input) else {
            return (self, Reaction::Nothing);
        };
        self.status = decision.status();
        let event = match decision {
            Decision::Confirm {
                payment_id,
                reservation_id,
            } => {
                self.payment_id = Some(payment_id);
                self.reservation_id = Some(reservation_id);
                OrderConfirmed {
                    order_id: self.order_id,
                    saga_id: self.saga_id,
                    payment_id,
                    reservation_id,
                }
                .into()
            }
            Decision::Cancel { reason, detail } => {
                self.cancellation_reason = Some(reason);
                self.cancellation_detail.clone_from(&detail);
                OrderCancelled {
                    order_id: self.order_id,
                    saga_id: self.saga_id,
                    reason,
                    detail,
                }
                .into()
            }
        };
        (self, Reaction::Emit(event))
    }
}

#[cfg(test)]
#[allow(clippy::wildcard_enum_match_arm)] // a test may panic on whatever else it meets
mod tests {
    use super::*;

    fn ids() -> (Uuid, Uuid) {
        (Uuid::now_v7(), Uuid::now_v7())
    }

    #[test]
    fn a_pending_order_is_confirmed_by_completion_and_cancelled_by_abort() {
        let (payment_id, reservation_id) = ids();
        let change = transition(
            OrderStatus::Pending,
            Input::Complete {
                payment_id,
                reservation_id,
            },
        );
        assert_eq!(
            change,
            Some(Decision::Confirm {
                payment_id,
                reservation_id
            })
        );
        let change = transition(
            OrderStatus::Pending,
            Input::Abort {
                reason: AbortReason::Timeout,
                detail: None,
            },
        );
        assert_eq!(change.map(|c| c.status()), Some(OrderStatus::Cancelled));
    }

    #[test]
    fn the_customer_may_cancel_pending_and_confirmed_orders_only() {
        for status in [OrderStatus::Pending, OrderStatus::Confirmed] {
            let change = transition(
                status,
                Input::CustomerCancel {
                    detail: Some("changed mind".into()),
                },
            );
            assert_eq!(
                change,
                Some(Decision::Cancel {
                    reason: AbortReason::CustomerRequest,
                    detail: Some("changed mind".into())
                })
            );
        }
        assert_eq!(
            transition(
                OrderStatus::Cancelled,
                Input::CustomerCancel { detail: None }
            ),
            None
        );
    }

    #[test]
    fn late_or_repeated_saga_decisions_change_nothing() {
        let (payment_id, reservation_id) = ids();
        assert_eq!(
            transition(
                OrderStatus::Confirmed,
                Input::Complete {
                    payment_id,
                    reservation_id
                }
            ),
            None
        );
        assert_eq!(
            transition(
                OrderStatus::Confirmed,
                Input::Abort {
                    reason: AbortReason::Timeout,
                    detail: None
                }
            ),
            None
        );
        assert_eq!(
            transition(
                OrderStatus::Cancelled,
                Input::Complete {
                    payment_id,
                    reservation_id
                }
            ),
            None
        );
        assert_eq!(
            transition(
                OrderStatus::Cancelled,
                Input::Abort {
                    reason: AbortReason::PaymentFailed,
                    detail: None
                }
            ),
            None
        );
    }

    fn pending() -> Order {
        let price: Money = "5".parse().unwrap();
        let now = Utc::now();
        Order {
            order_id: Uuid::now_v7(),
            saga_id: Uuid::now_v7(),
            customer_id: "c-1".parse().unwrap(),
            items: vec![Line {
                product_id: "p-1".parse().unwrap(),
                quantity: Quantity::new(2).unwrap(),
                unit_price: price,
                total_price: price.checked_mul(2).unwrap(),
            }],
            total_amount: price.checked_mul(2).unwrap(),
            currency: Currency::euro(),
            status: OrderStatus::Pending,
            cancellation_reason: None,
            cancellation_detail: None,
            created_at: now,
            updated_at: now,
            payment_id: None,
            reservation_id: None,
        }
    }

    #[test]
    fn completion_confirms_a_pending_order_and_announces_it_with_both_ids() {
        let order = pending();
        let (payment_id, reservation_id) = ids();
        let (after, reaction) = order.clone().apply(Input::Complete {
            payment_id,
            reservation_id,
        });
        assert_eq!(after.status, OrderStatus::Confirmed);
        assert_eq!(
            (after.payment_id, after.reservation_id),
            (Some(payment_id), Some(reservation_id))
        );
        assert_eq!(
            reaction,
            Reaction::Emit(
                OrderConfirmed {
                    order_id: order.order_id,
                    saga_id: order.saga_id,
                    payment_id,
                    reservation_id
                }
                .into()
            )
        );
    }

    #[test]
    fn an_abort_cancels_a_pending_order_with_the_saga_reason_and_note() {
        let order = pending();
        let (after, reaction) = order.clone().apply(Input::Abort {
            reason: AbortReason::Operator,
            detail: Some("suspected fraud".into()),
        });
        assert_eq!(after.status, OrderStatus::Cancelled);
        assert_eq!(after.cancellation_reason, Some(AbortReason::Operator));
        assert_eq!(
            after.cancellation_detail.as_deref(),
            Some("suspected fraud")
        );
        assert_eq!(
            reaction,
            Reaction::Emit(
                OrderCancelled {
                    order_id: order.order_id,
                    saga_id: order.saga_id,
                    reason: AbortReason::Operator,
                    detail: Some("suspected fraud".into())
                }
                .into()
            )
        );
    }

    #[test]
    fn the_customer_cancels_a_confirmed_order_with_a_detail() {
        let (payment_id, reservation_id) = ids();
        let (confirmed, _) = pending().apply(Input::Complete {
            payment_id,
            reservation_id,
        });
        let (after, reaction) = confirmed.apply(Input::CustomerCancel {
            detail: Some("too late".into()),
        });
        assert_eq!(after.status, OrderStatus::Cancelled);
        assert_eq!(
            after.cancellation_reason,
            Some(AbortReason::CustomerRequest)
        );
        assert_eq!(after.cancellation_detail.as_deref(), Some("too late"));
        assert!(
            matches!(reaction, Reaction::Emit(shared_events::Event::OrderCancelled(c))
            if c.reason == AbortReason::CustomerRequest)
        );
    }

    #[test]
    fn a_late_decision_leaves_a_cancelled_order_as_it_is_and_announces_nothing() {
        let (cancelled, _) = pending().apply(Input::CustomerCancel { detail: None });
        let (payment_id, reservation_id) = ids();
        for late in [
            Input::Complete {
                payment_id,
                reservation_id,
            },
            Input::Abort {
                reason: AbortReason::Timeout,
                detail: None,
            },
            Input::CustomerCancel { detail: None },
        ] {
            let (after, reaction) = cancelled.clone().apply(late);
            assert_eq!(after, cancelled);
            assert_eq!(reaction, Reaction::Nothing);
        }
    }

    #[test]
    fn keyed_order_ids_are_v7_with_a_random_half_fixed_by_the_key() {
        let a = new_order_id(Uuid::now_v7(), Some("exp-42-1"));
        let b = new_order_id(Uuid::now_v7(), Some("exp-42-1"));
        let c = new_order_id(Uuid::now_v7(), Some("exp-42-2"));
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a.as_u64_pair().1, b.as_u64_pair().1);
        assert_ne!(a.as_u64_pair().1, c.as_u64_pair().1);
        let plain = new_order_id(Uuid::now_v7(), None);
        assert_eq!(plain.get_version_num(), 7);
    }
}
