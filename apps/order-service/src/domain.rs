//! The order: what a valid request is, and how an order's status may change.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::FieldError;
use shared_events::{AbortReason, Money};
use uuid::Uuid;

pub const MAX_ITEMS: usize = 100;
pub const MAX_QUANTITY: u64 = 10_000;

/// A quantity of 1 to 10,000 units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(value: &Value) -> Result<Quantity, String> {
        match value.as_u64() {
            Some(n @ 1..=MAX_QUANTITY) => Ok(Quantity(n as u32)),
            Some(_) => Err(format!("must be between 1 and {MAX_QUANTITY}")),
            None if value.is_number() => Err(format!(
                "must be a whole number between 1 and {MAX_QUANTITY}"
            )),
            None => Err("must be a number".into()),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A product id: 1 to 64 letters, digits, `-`, `_`, `.` or `:` (it appears in URLs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductId(String);

impl ProductId {
    pub fn parse(value: &Value) -> Result<ProductId, String> {
        let text = value.as_str().ok_or("must be a string")?;
        if text.is_empty() || text.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err("may contain only letters, digits, '-', '_', '.' and ':'".into());
        }
        Ok(ProductId(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A customer id: 1 to 128 characters, no control characters.
fn customer_id(value: &Value) -> Result<String, String> {
    let text = value.as_str().ok_or("must be a string")?;
    if text.trim().is_empty() || text.chars().count() > 128 {
        return Err("must be 1 to 128 characters".into());
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(text.into())
}

/// An ISO 4217-shaped currency code: three capital letters.
fn currency(value: &Value) -> Result<String, String> {
    match value.as_str() {
        Some(code) if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) => {
            Ok(code.into())
        }
        _ => Err("must be a three-letter currency code such as EUR".into()),
    }
}

/// Unit prices above a million per unit are taken to be mistakes.
fn unit_price(value: &Value) -> Result<Money, String> {
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
    Ok(price)
}

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
    pub customer_id: String,
    pub items: Vec<Line>,
    pub total_amount: Money,
    pub currency: String,
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
            required(object.get("customerId")).and_then(customer_id),
        );
        let currency = match object.get("currency").filter(|v| !v.is_null()) {
            None => Some("EUR".to_owned()),
            Some(v) => take(&mut errors, "currency", currency(v)),
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
                required(item.get("productId")).and_then(ProductId::parse),
            );
            let quantity = take(
                &mut errors,
                &at("quantity"),
                required(item.get("quantity")).and_then(Quantity::parse),
            );
            let price = take(
                &mut errors,
                &at("unitPrice"),
                required(item.get("unitPrice")).and_then(unit_price),
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        match text {
            "PENDING" => Some(OrderStatus::Pending),
            "CONFIRMED" => Some(OrderStatus::Confirmed),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

/// What can happen to an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The saga completed: payment confirmed and stock reserved.
    Complete {
        payment_id: Uuid,
        reservation_id: Uuid,
    },
    /// The saga aborted.
    Abort { reason: AbortReason },
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

/// The order lifecycle. `None`: the command changes nothing (it came too late, or twice).
///
/// ```text
/// PENDING --Complete--> CONFIRMED --CustomerCancel--> CANCELLED
/// PENDING --Abort | CustomerCancel--> CANCELLED
/// ```
/// A saga's decision applies only to a `PENDING` order: an order the customer already cancelled
/// stays cancelled (the saga then compensates), and a confirmed order is only cancelled by its
/// customer.
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
        (Pending, Command::Abort { reason }) => Some(Change::Cancel {
            reason,
            detail: None,
        }),
        (Pending | Confirmed, Command::CustomerCancel { detail }) => Some(Change::Cancel {
            reason: AbortReason::CustomerRequest,
            detail,
        }),
        (Confirmed, Command::Complete { .. } | Command::Abort { .. }) | (Cancelled, _) => None,
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
                    reason: AbortReason::Timeout
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
                    reason: AbortReason::PaymentFailed
                }
            ),
            None
        );
    }

    #[test]
    fn a_valid_request_gets_line_and_order_totals_and_default_currency() {
        let order = NewOrder::parse(&json!({
            "customerId": "c-1",
            "items": [{"productId": "p-1", "quantity": 2, "unitPrice": 19.99},
                      {"productId": "p-2", "quantity": 1, "unitPrice": 0.01}]
        }))
        .unwrap();
        assert_eq!(order.currency, "EUR");
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
