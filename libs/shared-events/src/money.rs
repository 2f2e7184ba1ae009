//! Exact money: a non-negative decimal, and its currency's minor unit.
//!
//! Over HTTP, and in the first major of the events, money is a plain JSON number (`19.99`), as
//! clients of the system expect. Inside it is a [`Decimal`], never a float: a JSON number is read
//! through its shortest round-trip decimal text, so `19.99` is exactly 19.99 and `19.999` is
//! exactly 19.999, never rounded.
//!
//! How many decimals an amount may have depends on its currency: ISO 4217 gives each currency
//! the exponent of its minor unit ([`Currency::exponent`]: JPY 0, EUR 2, BHD 3).
//! [`Money::in_currency`] checks an amount against it where an amount enters the system, and
//! [`MinorUnits`] is the same amount as an integer count of minor units, as the events of the
//! second major carry it (`order.created.v2`: 1999 for EUR 19.99, 1999 for JPY 1999).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::Currency;

/// A validated amount of money; holding one proves it is exact, non-negative, has at most
/// [`Money::MAX_DECIMALS`] decimals and lies in range. Whether it suits its currency is
/// [`Money::in_currency`]'s question.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must not be negative")]
    Negative,
    #[error("must have at most {} decimal places", spell(*.0))]
    TooManyDecimals(u32),
    #[error("must have at most {} decimal places in {currency}", spell(*.decimals))]
    TooManyDecimalsFor { decimals: u32, currency: String },
    #[error("must not exceed {}", Money::MAX)]
    TooLarge,
    #[error("must not exceed {} minor units of {currency}", MinorUnits::MAX)]
    TooLargeFor { currency: String },
    #[error("is not a number")]
    NotANumber,
}

/// `0` as "no", the rest as words, for messages people read.
fn spell(n: u32) -> Cow<'static, str> {
    match n {
        0 => "0".into(),
        1 => "one".into(),
        2 => "two".into(),
        3 => "three".into(),
        4 => "four".into(),
        n => n.to_string().into(),
    }
}

impl Money {
    /// Ten thousand billion: far above any order, far below where a JSON number loses cents.
    pub const MAX: Decimal = Decimal::from_parts(1_316_134_912, 2_328, 0, false, 0); // 10^13
    pub const ZERO: Money = Money(Decimal::ZERO);
    /// The largest minor-unit exponent of any ISO 4217 currency (CLF, UYW).
    pub const MAX_DECIMALS: u32 = 4;
    /// Decimals every currency with cents may use; the first major of the events carries no more.
    pub const TWO_DECIMALS: u32 = 2;

    pub fn parse(value: Decimal) -> Result<Money, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        let normalized = value.normalize();
        if normalized.scale() > Self::MAX_DECIMALS {
            return Err(MoneyError::TooManyDecimals(Self::MAX_DECIMALS));
        }
        if normalized > Self::MAX {
            return Err(MoneyError::TooLarge);
        }
        // Two decimals at least, as amounts have always been written ("40.00"); more only when
        // the amount has them.
        let mut exact = normalized;
        exact.rescale(normalized.scale().max(Self::TWO_DECIMALS));
        Ok(Money(exact))
    }

    pub fn amount(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// The decimals the amount needs: 0 for 40, 1 for 0.1, 2 for 19.99.
    pub fn decimals(self) -> u32 {
        self.0.normalize().scale()
    }

    /// This amount, checked against `currency`: no more decimals than its minor unit has, and
    /// no more minor units than [`MinorUnits::MAX`].
    pub fn in_currency(self, currency: &Currency) -> Result<Money, MoneyError> {
        let exponent = currency.exponent();
        if self.decimals() > exponent {
            return Err(MoneyError::TooManyDecimalsFor {
                decimals: exponent,
                currency: currency.to_string(),
            });
        }
        self.to_minor(exponent)
            .map(|_| self)
            .ok_or_else(|| MoneyError::TooLargeFor {
                currency: currency.to_string(),
            })
    }

    /// The amount in minor units of a currency with this exponent, if it is a whole number of
    /// them within [`MinorUnits::MAX`].
    pub fn to_minor(self, exponent: u32) -> Option<MinorUnits> {
        let scaled = self
            .0
            .checked_mul(Decimal::from(10u64.checked_pow(exponent)?))?;
        if !scaled.fract().is_zero() {
            return None;
        }
        MinorUnits::new(scaled.to_u64()?)
    }

    /// The amount of `units` minor units of a currency with this exponent.
    pub fn from_minor(units: MinorUnits, exponent: u32) -> Result<Money, MoneyError> {
        if exponent > Self::MAX_DECIMALS {
            return Err(MoneyError::TooManyDecimals(Self::MAX_DECIMALS));
        }
        Money::parse(Decimal::from_i128_with_scale(i128::from(units.0), exponent))
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
        // At most 15 significant digits (13 integer digits and two decimals, or fewer integer
        // digits where a currency has more decimals: see `MinorUnits::MAX`), which an f64
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
                f.write_str("a non-negative number")
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

/// The JSON Schema of money in the first major of the events, which carries two decimals at
/// most (its producers write no more, and its consumers read no more).
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

/// An amount as a whole number of its currency's minor units (cents for EUR, yen for JPY, fils
/// for BHD): how the second major of the events carries money, exactly and in any currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct MinorUnits(u64);

impl MinorUnits {
    /// 10^15: below 2^53, so a JSON number of minor units is exact in any reader, and any amount
    /// of at most 15 digits fits.
    pub const MAX: u64 = 1_000_000_000_000_000;

    pub fn new(units: u64) -> Option<MinorUnits> {
        (units <= Self::MAX).then_some(MinorUnits(units))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for MinorUnits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MinorUnits, D::Error> {
        let units = u64::deserialize(d)?;
        MinorUnits::new(units).ok_or_else(|| {
            de::Error::custom(format!(
                "{units} minor units is more than {}",
                MinorUnits::MAX
            ))
        })
    }
}

impl schemars::JsonSchema for MinorUnits {
    fn schema_name() -> Cow<'static, str> {
        "MinorUnits".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An exact amount as a whole number of the currency's minor unit (ISO 4217 exponent: 1999 is 19.99 EUR, 1999 JPY, 1.999 BHD).",
            "type": "integer",
            "minimum": 0,
            "maximum": MinorUnits::MAX
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Money, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn money(text: &str) -> Money {
        Money::from_str(text).unwrap()
    }

    fn currency(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn typed_amounts_are_read_exactly() {
        assert_eq!(read("19.99").unwrap().amount(), Decimal::new(1999, 2));
        assert_eq!(read("0.1").unwrap().amount(), Decimal::new(10, 2));
        assert_eq!(read("40").unwrap().amount(), Decimal::new(4000, 2));
        assert_eq!(read("1e2").unwrap().amount(), Decimal::new(10000, 2));
        assert_eq!(read("1.234").unwrap().amount(), Decimal::new(1234, 3));
    }

    #[test]
    fn five_decimals_negative_and_huge_amounts_are_rejected() {
        assert!(read("19.99999").is_err());
        assert!(read("-1").is_err());
        assert!(read("-0.01").is_err());
        assert!(read("1e300").is_err());
        assert!(read("\"19.99\"").is_err());
    }

    #[test]
    fn amounts_are_written_as_plain_numbers() {
        assert_eq!(serde_json::to_string(&money("39.98")).unwrap(), "39.98");
        assert_eq!(serde_json::to_string(&money("40.00")).unwrap(), "40");
        assert_eq!(serde_json::to_string(&money("0.10")).unwrap(), "0.1");
        assert_eq!(serde_json::to_string(&money("1.234")).unwrap(), "1.234");
        let big = money("9999999999999.99");
        assert_eq!(serde_json::to_string(&big).unwrap(), "9999999999999.99");
        assert_eq!(money("40").to_string(), "40.00");
        assert_eq!(money("1.5").to_string(), "1.50");
        assert_eq!(money("1.234").to_string(), "1.234");
    }

    #[test]
    fn arithmetic_is_exact_and_checked() {
        let price = money("19.99");
        assert_eq!(price.checked_mul(3).unwrap(), money("59.97"));
        assert_eq!(price.checked_add(money("0.01")).unwrap(), money("20"));
        assert!(money("9999999999999").checked_mul(2).is_none());
        assert_eq!(Money::MAX, Decimal::from(10_000_000_000_000u64));
        assert_eq!(money("0.001").checked_mul(3).unwrap(), money("0.003"));
    }

    #[test]
    fn each_currency_allows_the_decimals_of_its_minor_unit() {
        assert!(money("19.99").in_currency(&currency("EUR")).is_ok());
        assert!(money("1999").in_currency(&currency("JPY")).is_ok());
        let err = money("19.99").in_currency(&currency("JPY")).unwrap_err();
        assert_eq!(err.to_string(), "must have at most 0 decimal places in JPY");
        assert!(money("1.234").in_currency(&currency("BHD")).is_ok());
        assert!(money("1.234").in_currency(&currency("KWD")).is_ok());
        let err = money("1.234").in_currency(&currency("EUR")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "must have at most two decimal places in EUR"
        );
        assert!(money("1.2345").in_currency(&currency("BHD")).is_err());
        // 10^13 BHD is 10^16 fils: more than an exact JSON number holds.
        assert!(
            money("9999999999999")
                .in_currency(&currency("BHD"))
                .is_err()
        );
        assert!(money("999999999999").in_currency(&currency("BHD")).is_ok());
    }

    #[test]
    fn minor_units_convert_exactly_both_ways() {
        let eur = currency("EUR").exponent();
        assert_eq!(money("19.99").to_minor(eur).unwrap().get(), 1999);
        assert_eq!(money("40").to_minor(eur).unwrap().get(), 4000);
        assert_eq!(money("19.99").to_minor(0), None);
        assert_eq!(money("1.234").to_minor(3).unwrap().get(), 1234);
        let units = MinorUnits::new(1999).unwrap();
        assert_eq!(Money::from_minor(units, 2).unwrap(), money("19.99"));
        assert_eq!(Money::from_minor(units, 0).unwrap(), money("1999"));
        assert_eq!(Money::from_minor(units, 3).unwrap(), money("1.999"));
        assert_eq!(MinorUnits::new(MinorUnits::MAX + 1), None);
        assert!(serde_json::from_str::<MinorUnits>("1000000000000001").is_err());
        assert!(serde_json::from_str::<MinorUnits>("-1").is_err());
        assert!(serde_json::from_str::<MinorUnits>("19.5").is_err());
        assert_eq!(serde_json::to_string(&units).unwrap(), "1999");
    }
}
