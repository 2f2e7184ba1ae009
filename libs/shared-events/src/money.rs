//! Exact money: a non-negative decimal with at most two fraction digits.
//!
//! On the wire money is a plain JSON number (`19.99`), as clients of the system expect. Inside it is
//! a [`Decimal`], never a float: a JSON number is read through its shortest round-trip decimal
//! text, so `19.99` is exactly 19.99 and `19.999` is rejected rather than rounded.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated amount of money; holding one proves it has at most two decimals and lies in range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must not be negative")]
    Negative,
    #[error("must have at most two decimal places")]
    TooManyDecimals,
    #[error("must not exceed {}", Money::MAX)]
    TooLarge,
    #[error("is not a number")]
    NotANumber,
}

impl Money {
    /// Ten thousand billion: far above any order, far below where a JSON number loses cents.
    pub const MAX: Decimal = Decimal::from_parts(1_316_134_912, 2_328, 0, false, 0); // 10^13
    pub const ZERO: Money = Money(Decimal::ZERO);

    pub fn parse(value: Decimal) -> Result<Money, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        let normalized = value.normalize();
        if normalized.scale() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        if normalized > Self::MAX {
            return Err(MoneyError::TooLarge);
        }
        let mut exact = normalized;
        exact.rescale(2);
        Ok(Money(exact))
    }

    pub fn from_cents(cents: u64) -> Result<Money, MoneyError> {
        Money::parse(Decimal::from(cents) / Decimal::ONE_HUNDRED)
    }

    pub fn amount(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        Money::parse(self.0.checked_add(other.0)?).ok()
    }

    pub fn checked_mul(self, factor: u32) -> Option<Money> {
        Money::parse(self.0.checked_mul(Decimal::from(factor))?).ok()
    }

    fn from_f64(value: f64) -> Result<Money, MoneyError> {
        if !value.is_finite() {
            return Err(MoneyError::NotANumber);
        }
        // `Display` for f64 prints the shortest text that reads back as the same f64, which for
        // any amount a person types is exactly what they typed.
        let text = value.to_string();
        let decimal = Decimal::from_str(&text).map_err(|_| MoneyError::TooLarge)?;
        Money::parse(decimal)
    }
}

/// For columns: `#[sqlx(try_from = "Decimal")]`.
impl TryFrom<Decimal> for Money {
    type Error = MoneyError;
    fn try_from(value: Decimal) -> Result<Money, MoneyError> {
        Money::parse(value)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(Decimal::from_str(s).map_err(|_| MoneyError::NotANumber)?)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let normalized = self.0.normalize();
        if normalized.scale() == 0
            && let Some(whole) = normalized.to_u64()
        {
            return serializer.serialize_u64(whole);
        }
        // At most 13 integer digits and two decimals: 15 significant digits, which an f64
        // carries exactly and prints back as the same shortest text.
        let float = normalized
            .to_f64()
            .ok_or_else(|| serde::ser::Error::custom("money out of range"))?;
        serializer.serialize_f64(float)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MoneyVisitor;
        impl Visitor<'_> for MoneyVisitor {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number with at most two decimals")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                Money::parse(Decimal::from(v)).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                Money::parse(Decimal::from(v)).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                Money::from_f64(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(MoneyVisitor)
    }
}

impl schemars::JsonSchema for Money {
    fn schema_name() -> Cow<'static, str> {
        "Money".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An exact amount of money: a JSON number, non-negative, at most two decimals.",
            "type": "number",
            "minimum": 0,
            "maximum": 10_000_000_000_000u64,
            "multipleOf": 0.01
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Money, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn typed_amounts_are_read_exactly() {
        assert_eq!(read("19.99").unwrap().amount(), Decimal::new(1999, 2));
        assert_eq!(read("0.1").unwrap().amount(), Decimal::new(10, 2));
        assert_eq!(read("40").unwrap().amount(), Decimal::new(4000, 2));
        assert_eq!(read("1e2").unwrap().amount(), Decimal::new(10000, 2));
    }

    #[test]
    fn three_decimals_negative_and_huge_amounts_are_rejected() {
        assert!(read("19.999").is_err());
        assert!(read("-1").is_err());
        assert!(read("-0.01").is_err());
        assert!(read("1e300").is_err());
        assert!(read("\"19.99\"").is_err());
    }

    #[test]
    fn amounts_are_written_as_plain_numbers() {
        let m = Money::from_str("39.98").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "39.98");
        assert_eq!(
            serde_json::to_string(&Money::from_str("40.00").unwrap()).unwrap(),
            "40"
        );
        assert_eq!(
            serde_json::to_string(&Money::from_str("0.10").unwrap()).unwrap(),
            "0.1"
        );
        let big = Money::from_str("9999999999999.99").unwrap();
        assert_eq!(serde_json::to_string(&big).unwrap(), "9999999999999.99");
    }

    #[test]
    fn arithmetic_is_exact_and_checked() {
        let price = Money::from_str("19.99").unwrap();
        assert_eq!(
            price.checked_mul(3).unwrap(),
            Money::from_str("59.97").unwrap()
        );
        assert_eq!(
            price.checked_add(Money::from_str("0.01").unwrap()).unwrap(),
            Money::from_str("20").unwrap()
        );
        assert!(
            Money::from_str("9999999999999")
                .unwrap()
                .checked_mul(2)
                .is_none()
        );
        assert_eq!(Money::MAX, Decimal::from(10_000_000_000_000u64));
    }
}
