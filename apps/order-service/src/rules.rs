//! The order's rules, without I/O: what a valid order request is, and how an order's status may
//! change. Every decision has one shape: the order and a command in, the order after it and the
//! [`Reaction`] (the event to publish) out.
//!
//! ```text
//! PENDING --Complete--> CONFIRMED --CustomerCancel--> CANCELLED
//! PENDING --Abort | CustomerCancel--> CANCELLED
//! ```
//! A saga's decision applies only to a `PENDING` order: an order the customer already cancelled
//! stays cancelled (the saga then compensates), and a confirmed order is only cancelled by its
//! customer. A repeated or late decision changes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::FieldError;
use shared_events::{
    AbortReason, Currency, CustomerId, Money, OrderCancelled, OrderConfirmed, OrderCreated,
    OrderLine, ProductId, Quantity, Reaction,
};
use uuid::Uuid;

pub const MAX_ITEMS: usize = 100;

/// Reads a line quantity, telling a fraction or a string from a number out of range.
fn quantity(value: &Value) -> Result<Quantity, String> {
    match value.as_u64() {
        Some(n) => Quantity::new(n).map_err(|e| e.to_string()),
        None if value.is_number() => Err(format!(
            "must be a whole number between 1 and {}",
            Quantity::MAX
        )),
        None => Err("must be a number".into()),
    }
}

/// Reads a checked text value (an id, a currency) from JSON.
fn text<T: std::str::FromStr<Err = shared_events::Invalid>>(value: &Value) -> Result<T, String> {
    value
        .as_str()
        .ok_or_else(|| "must be a string".to_owned())?
        .parse()
        .map_err(|e: shared_events::Invalid| e.to_string())
}

/// The most decimals an amount may have in `currency`: its minor unit's (ISO 4217: JPY 0,
/// EUR 2), and two at most, which is what this release stores (BHD's third decimal waits for a
/// release whose columns hold it: docs/upgrading.md).
fn decimals_allowed(currency: &Currency) -> u32 {
    currency.exponent().min(Money::TWO_DECIMALS)
}

/// Reads a unit price in `currency` (when the currency itself is valid). Unit prices above a
/// million per unit are taken to be mistakes.
fn unit_price(value: &Value, currency: Option<&Currency>) -> Result<Money, String> {
    if !value.is_number() {
        return Err("must be a number".into());
    }
    let price: Money = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    if price.is_zero() {
        return Err("must be greater than 0".into());
    }
    if price > "1000000".parse::<Money>().map_err(|e| e.to_string())? {
        return Err("must not exceed 1000000".into());
    }
    if let Some(currency) = currency {
        price.in_currency(currency).map_err(|e| e.to_string())?;
    }
    if price.decimals() > currency.map_or(Money::TWO_DECIMALS, decimals_allowed) {
        return Err(match currency {
            Some(currency) => format!(
                "must have at most two decimal places (a third decimal of {currency} is not \
                 stored yet)"
            ),
            None => "must have at most two decimal places".into(),
        });
    }
    Ok(price)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Validates a `POST /orders` body, reporting every problem at once.
    pub fn parse(body: &Value) -> Result<NewOrder, Vec<FieldError>> {
        let Some(object) = body.as_object() else {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        };
        let mut errors = Vec::new();
        let customer = take(
            &mut errors,
            "customerId",
            required(object.get("customerId")).and_then(text::<CustomerId>),
        );
        let currency = match object.get("currency").filter(|v| !v.is_null()) {
            None => Some(Currency::euro()),
            Some(v) => take(&mut errors, "currency", text::<Currency>(v)),
        };
        let mut lines = Vec::new();
        let items = take(
            &mut errors,
            "items",
            required(object.get("items")).and_then(item_list),
        );
        for (i, item) in items.unwrap_or_default().iter().enumerate() {
            let at = |name: &str| format!("items[{i}].{name}");
            if !item.is_object() {
                errors.push(FieldError::new(format!("items[{i}]"), "must be an object"));
                continue;
            }
            let product = take(
                &mut errors,
                &at("productId"),
                required(item.get("productId")).and_then(text::<ProductId>),
            );
            let quantity = take(
                &mut errors,
                &at("quantity"),
                required(item.get("quantity")).and_then(quantity),
            );
            let price = take(
                &mut errors,
                &at("unitPrice"),
                required(item.get("unitPrice")).and_then(|v| unit_price(v, currency.as_ref())),
            );
            if let (Some(product_id), Some(quantity), Some(unit_price)) = (product, quantity, price)
            {
                match unit_price.checked_mul(quantity.get()) {
                    Some(total_price) => lines.push(Line {
                        product_id,
                        quantity,
                        unit_price,
                        total_price,
                    }),
                    None => errors.push(FieldError::new(
                        at("quantity"),
                        "quantity times unitPrice is too large",
                    )),
                }
            }
        }
        let total = lines
            .iter()
            .try_fold(Money::ZERO, |sum, line| sum.checked_add(line.total_price));
        if total.is_none() {
            errors.push(FieldError::new("items", "the order total is too large"));
        }
        match (customer, currency, total) {
            (Some(customer_id), Some(currency), Some(total_amount)) if errors.is_empty() => {
                Ok(NewOrder {
                    customer_id,
                    items: lines,
                    total_amount,
                    currency,
                })
            }
            _ => Err(errors),
        }
    }

    /// The `order.created.v1` that announces this order.
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

/// Keeps a field's value, or records its problem.
fn take<T>(errors: &mut Vec<FieldError>, field: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

fn required(value: Option<&Value>) -> Result<&Value, String> {
    value
        .filter(|v| !v.is_null())
        .ok_or_else(|| "is required".to_owned())
}

fn item_list(value: &Value) -> Result<Vec<Value>, String> {
    match value.as_array() {
        Some(items) if !items.is_empty() && items.len() <= MAX_ITEMS => Ok(items.clone()),
        Some(_) => Err(format!("must hold 1 to {MAX_ITEMS} items")),
        None => Err("must be an array".into()),
    }
}

/// A new order id: a UUIDv7 (time-ordered). With an `Idempotency-Key`, its random half is a stable
/// hash of the key, so an experiment that places the same keyed orders again on fresh databases
/// gets ids with the same random half, and so the same payment decisions.
pub fn new_order_id(idempotency_key: Option<&str>) -> Uuid {
    let fresh = Uuid::now_v7();
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

/// An order: what the API shows, and the state its rules decide on.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub customer_id: CustomerId,
    #[sqlx(json)]
    pub items: Vec<Line>,
    pub total_amount: Money,
    pub currency: Currency,
    pub status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<AbortReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The charge and the reservation the order was confirmed with.
    #[serde(skip)]
    pub payment_id: Option<Uuid>,
    #[serde(skip)]
    pub reservation_id: Option<Uuid>,
}

/// What can happen to an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
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

/// The change a command makes, and so the event to emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Confirm {
        payment_id: Uuid,
        reservation_id: Uuid,
    },
    Cancel {
        reason: AbortReason,
        detail: Option<String>,
    },
}

impl Change {
    pub fn status(&self) -> OrderStatus {
        match self {
            Change::Confirm { .. } => OrderStatus::Confirmed,
            Change::Cancel { .. } => OrderStatus::Cancelled,
        }
    }
}

/// The order lifecycle on statuses alone. `None`: the command changes nothing (it came too
/// late, or twice).
pub fn transition(status: OrderStatus, command: Command) -> Option<Change> {
    use OrderStatus::*;
    match (status, command) {
        (
            Pending,
            Command::Complete {
                payment_id,
                reservation_id,
            },
        ) => Some(Change::Confirm {
            payment_id,
            reservation_id,
        }),
        (Pending, Command::Abort { reason, detail }) => Some(Change::Cancel { reason, detail }),
        (Pending | Confirmed, Command::CustomerCancel { detail }) => Some(Change::Cancel {
            reason: AbortReason::CustomerRequest,
            detail,
        }),
        (Confirmed, Command::Complete { .. } | Command::Abort { .. }) | (Cancelled, _) => None,
    }
}

impl Order {
    /// The order after `command`, and the event the change causes (nothing when the command
    /// changes nothing: the caller then has nothing to save).
    pub fn apply(mut self, command: Command) -> (Order, Reaction) {
        let Some(change) = transition(self.status, command) else {
            return (self, Reaction::Nothing);
        };
        self.status = change.status();
        let event = match change {
            Change::Confirm {
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
            Change::Cancel { reason, detail } => {
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
mod tests {
    use super::*;
    use serde_json::json;

    fn ids() -> (Uuid, Uuid) {
        (Uuid::now_v7(), Uuid::now_v7())
    }

    #[test]
    fn a_pending_order_is_confirmed_by_completion_and_cancelled_by_abort() {
        let (payment_id, reservation_id) = ids();
        let change = transition(
            OrderStatus::Pending,
            Command::Complete {
                payment_id,
                reservation_id,
            },
        );
        assert_eq!(
            change,
            Some(Change::Confirm {
                payment_id,
                reservation_id
            })
        );
        let change = transition(
            OrderStatus::Pending,
            Command::Abort {
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
                Command::CustomerCancel {
                    detail: Some("changed mind".into()),
                },
            );
            assert_eq!(
                change,
                Some(Change::Cancel {
                    reason: AbortReason::CustomerRequest,
                    detail: Some("changed mind".into())
                })
            );
        }
        assert_eq!(
            transition(
                OrderStatus::Cancelled,
                Command::CustomerCancel { detail: None }
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
                Command::Complete {
                    payment_id,
                    reservation_id
                }
            ),
            None
        );
        assert_eq!(
            transition(
                OrderStatus::Confirmed,
                Command::Abort {
                    reason: AbortReason::Timeout,
                    detail: None
                }
            ),
            None
        );
        assert_eq!(
            transition(
                OrderStatus::Cancelled,
                Command::Complete {
                    payment_id,
                    reservation_id
                }
            ),
            None
        );
        assert_eq!(
            transition(
                OrderStatus::Cancelled,
                Command::Abort {
                    reason: AbortReason::PaymentFailed,
                    detail: None
                }
            ),
            None
        );
    }

    fn pending() -> Order {
        let new = NewOrder::parse(&json!({
            "customerId": "c-1",
            "items": [{"productId": "p-1", "quantity": 2, "unitPrice": 5}]
        }))
        .unwrap();
        let now = Utc::now();
        Order {
            order_id: Uuid::now_v7(),
            saga_id: Uuid::now_v7(),
            customer_id: new.customer_id,
            items: new.items,
            total_amount: new.total_amount,
            currency: new.currency,
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
        let (after, reaction) = order.clone().apply(Command::Complete {
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
        let (after, reaction) = order.clone().apply(Command::Abort {
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
        let (confirmed, _) = pending().apply(Command::Complete {
            payment_id,
            reservation_id,
        });
        let (after, reaction) = confirmed.apply(Command::CustomerCancel {
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
        let (cancelled, _) = pending().apply(Command::CustomerCancel { detail: None });
        let (payment_id, reservation_id) = ids();
        for late in [
            Command::Complete {
                payment_id,
                reservation_id,
            },
            Command::Abort {
                reason: AbortReason::Timeout,
                detail: None,
            },
            Command::CustomerCancel { detail: None },
        ] {
            let (after, reaction) = cancelled.clone().apply(late);
            assert_eq!(after, cancelled);
            assert_eq!(reaction, Reaction::Nothing);
        }
    }

    #[test]
    fn a_valid_request_gets_line_and_order_totals_and_default_currency() {
        let order = NewOrder::parse(&json!({
            "customerId": "c-1",
            "items": [{"productId": "p-1", "quantity": 2, "unitPrice": 19.99},
                      {"productId": "p-2", "quantity": 1, "unitPrice": 0.01}]
        }))
        .unwrap();
        assert_eq!(order.currency.as_str(), "EUR");
        assert_eq!(order.items[0].total_price, "39.98".parse().unwrap());
        assert_eq!(order.total_amount, "39.99".parse().unwrap());
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let errors = NewOrder::parse(&json!({
            "items": [{"productId": "", "quantity": 0, "unitPrice": 1.999},
                      {"productId": "p/1", "quantity": 2.5, "unitPrice": -1},
                      {"quantity": 10001, "unitPrice": 0}],
            "currency": "euro"
        }))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for expected in [
            "customerId",
            "currency",
            "items[0].productId",
            "items[0].quantity",
            "items[0].unitPrice",
            "items[1].productId",
            "items[1].quantity",
            "items[1].unitPrice",
            "items[2].productId",
            "items[2].quantity",
            "items[2].unitPrice",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn unit_prices_have_at_most_the_decimals_of_the_currency() {
        let order = |price: f64, currency: &str| {
            NewOrder::parse(&json!({"customerId": "c-1", "currency": currency,
                "items": [{"productId": "p-1", "quantity": 2, "unitPrice": price}]}))
        };
        let yen = order(1999.0, "JPY").unwrap();
        assert_eq!(yen.total_amount, "3998".parse().unwrap());
        let errors = order(19.99, "JPY").unwrap_err();
        assert_eq!(errors[0].field, "items[0].unitPrice");
        assert_eq!(
            errors[0].message,
            "must have at most 0 decimal places in JPY"
        );
        assert!(order(19.99, "EUR").is_ok());
        assert_eq!(
            order(19.999, "EUR").unwrap_err()[0].message,
            "must have at most two decimal places in EUR"
        );
        assert!(order(1.23, "BHD").is_ok());
        let errors = order(1.234, "BHD").unwrap_err();
        assert_eq!(errors[0].field, "items[0].unitPrice");
        assert!(errors[0].message.contains("BHD"), "{}", errors[0].message);
    }

    #[test]
    fn keyed_order_ids_are_v7_with_a_random_half_fixed_by_the_key() {
        let a = new_order_id(Some("exp-42-1"));
        let b = new_order_id(Some("exp-42-1"));
        let c = new_order_id(Some("exp-42-2"));
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a.as_u64_pair().1, b.as_u64_pair().1);
        assert_ne!(a.as_u64_pair().1, c.as_u64_pair().1);
        let plain = new_order_id(None);
        assert_eq!(plain.get_version_num(), 7);
    }

    #[test]
    fn item_count_is_bounded() {
        let item = json!({"productId": "p", "quantity": 1, "unitPrice": 1});
        let too_many = json!({"customerId": "c", "items": vec![item.clone(); 101]});
        assert_eq!(NewOrder::parse(&too_many).unwrap_err()[0].field, "items");
        let none = json!({"customerId": "c", "items": []});
        assert_eq!(NewOrder::parse(&none).unwrap_err()[0].field, "items");
        let hundred = json!({"customerId": "c", "items": vec![item; 100]});
        assert!(NewOrder::parse(&hundred).is_ok());
        assert!(NewOrder::parse(&json!([1, 2])).is_err());
    }
}
