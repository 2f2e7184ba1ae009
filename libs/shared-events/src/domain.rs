//! The values of an order that every service shares: product and customer ids, currencies and
//! line quantities. Each is checked once, where it enters the system (a request, an event from
//! the wire, a database row); holding one proves it is valid, so no service checks it again.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value is not a valid id, currency or quantity: a message for the API's error details.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub Cow<'static, str>);

/// A text value checked by `$check`, carried on the wire and in columns as a plain string.
macro_rules! checked_text {
    ($(#[$meta:meta])* $name:ident, $check:path, $schema:tt) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<$name, Invalid> {
                $check(text)?;
                Ok($name(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;
            fn from_str(text: &str) -> Result<$name, Invalid> {
                $name::parse(text)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(text: String) -> Result<$name, Invalid> {
                $check(&text)?;
                Ok($name(text))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let text = String::deserialize(d)?;
                $name::try_from(text).map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}

fn product_id(text: &str) -> Result<(), Invalid> {
    if text.is_empty() || text.len() > ProductId::MAX_LEN {
        return Err(Invalid("must be 1 to 64 characters".into()));
    }
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err(Invalid(
            "may contain only letters, digits, '-', '_', '.' and ':'".into(),
        ));
    }
    Ok(())
}

checked_text!(
    /// A product id: 1 to 64 letters, digits, `-`, `_`, `.` or `:` (it appears in URLs).
    ProductId,
    product_id,
    {
        "description": "A product id: 1 to 64 letters, digits, '-', '_', '.' or ':'.",
        "type": "string",
        "pattern": "^[A-Za-z0-9_.:-]{1,64}$"
    }
);

impl ProductId {
    pub const MAX_LEN: usize = 64;
}

fn customer_id(text: &str) -> Result<(), Invalid> {
    if text.trim().is_empty() || text.chars().count() > CustomerId::MAX_CHARS {
        return Err(Invalid("must be 1 to 128 characters".into()));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid("must not contain control characters".into()));
    }
    Ok(())
}

checked_text!(
    /// A customer id: 1 to 128 characters, not only spaces, no control characters.
    CustomerId,
    customer_id,
    {
        "description": "A customer id: 1 to 128 characters, not only spaces, no control characters.",
        "type": "string",
        "minLength": 1,
        "maxLength": 128
    }
);

impl CustomerId {
    pub const MAX_CHARS: usize = 128;
}

fn currency(text: &str) -> Result<(), Invalid> {
    if text.len() == 3 && text.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Invalid(
            "must be a three-letter currency code such as EUR".into(),
        ))
    }
}

checked_text!(
    /// An ISO 4217-shaped currency code: three capital letters.
    Currency,
    currency,
    {
        "description": "An ISO 4217-shaped currency code: three capital letters.",
        "type": "string",
        "pattern": "^[A-Z]{3}$"
    }
);

impl Currency {
    /// The currency of an order that names none.
    pub fn euro() -> Currency {
        Currency("EUR".into())
    }

    /// How many decimals its minor unit has: the ISO 4217 exponent (JPY 0, EUR 2, BHD 3). A code
    /// ISO 4217 gives another exponent than 2 is listed here; every other code has cents.
    pub fn exponent(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }
}

/// How many units of a product one order line asks for: 1 to 10,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 10_000;

    pub fn new(units: u64) -> Result<Quantity, Invalid> {
        match u32::try_from(units) {
            Ok(n @ 1..=Quantity::MAX) => Ok(Quantity(n)),
            _ => Err(Invalid("must be between 1 and 10000".into())),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Quantity, D::Error> {
        Quantity::new(u64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Units of one product in one order line: 1 to 10000.",
            "type": "integer",
            "minimum": 1,
            "maximum": Quantity::MAX
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids_are_url_safe_and_short() {
        assert!(ProductId::parse("p-1.a_b:c").is_ok());
        for bad in ["", "p/1", "p 1", "é", &"x".repeat(65)] {
            assert!(ProductId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<ProductId>("\"p/1\"").is_err());
        assert_eq!(
            serde_json::to_string(&ProductId::parse("p-1").unwrap()).unwrap(),
            "\"p-1\""
        );
    }

    #[test]
    fn customer_ids_refuse_blank_long_and_control_text() {
        assert!(CustomerId::parse("Kundin Ä 1").is_ok());
        for bad in ["", "   ", "a\u{0}b", "line\nbreak", &"é".repeat(129)] {
            assert!(CustomerId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CustomerId::parse(&"é".repeat(128)).is_ok());
    }

    #[test]
    fn currencies_know_the_exponent_of_their_minor_unit() {
        let exponent = |code: &str| Currency::parse(code).unwrap().exponent();
        assert_eq!(exponent("JPY"), 0);
        assert_eq!(exponent("EUR"), 2);
        assert_eq!(exponent("USD"), 2);
        assert_eq!(exponent("BHD"), 3);
        assert_eq!(exponent("KWD"), 3);
        assert_eq!(exponent("CLF"), 4);
    }

    #[test]
    fn currencies_are_three_capitals() {
        assert_eq!(Currency::euro().as_str(), "EUR");
        for bad in ["eur", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quantities_are_one_to_ten_thousand() {
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(10_000).unwrap().get(), 10_000);
        for bad in [0, 10_001, u64::MAX] {
            assert!(Quantity::new(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("2.5").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("7").unwrap().get(), 7);
    }
}
