//! A `POST /orders` body, read at the edge: every field checked with the domain's own types
//! (`ProductId`, `Quantity`, `Money` in its currency), every problem reported at once with its
//! field, and a [`NewOrder`] only when all is well.

use serde_json::Value;
use service_kit::FieldError;
use shared_events::{Currency, CustomerId, Money, ProductId, Quantity};

use crate::rules::{Line, NewOrder};

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
        if let (Some(product_id), Some(quantity), Some(unit_price)) = (product, quantity, price) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_request_gets_line_and_order_totals_and_default_currency() {
        let order = parse(&json!({
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
        let errors = parse(&json!({
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
            parse(&json!({"customerId": "c-1", "currency": currency,
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
    fn item_count_is_bounded() {
        let item = json!({"productId": "p", "quantity": 1, "unitPrice": 1});
        let too_many = json!({"customerId": "c", "items": vec![item.clone(); 101]});
        assert_eq!(parse(&too_many).unwrap_err()[0].field, "items");
        let none = json!({"customerId": "c", "items": []});
        assert_eq!(parse(&none).unwrap_err()[0].field, "items");
        let hundred = json!({"customerId": "c", "items": vec![item; 100]});
        assert!(parse(&hundred).is_ok());
        assert!(parse(&json!([1, 2])).is_err());
    }
}
