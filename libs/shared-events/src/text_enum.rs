//! [`text_enum!`](crate::text_enum): one definition for every status and reason of the system
//! that is a fixed word on the wire and in the database (`"CONFIRMED"`, `"TIMEOUT"`).
//!
//! The enum it makes reads and writes that word in JSON (serde), in text (`Display`, `FromStr`,
//! `as_str`, `parse`) and as a `TEXT` column (with the `sqlx` feature, see [`crate::sql`]), and
//! lists every value (`ALL`), so no code spells a status as a string literal of its own.

/// Why a word is not one of an enum's values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not one of {expected}")]
pub struct UnknownWord {
    pub value: String,
    pub expected: &'static str,
}

/// Defines an enum whose values are fixed words. Attributes before the name (docs, extra
/// derives such as `schemars::JsonSchema`) are kept; the caller's crate needs `serde`.
///
/// ```
/// shared_events::text_enum!(
///     /// How a light is.
///     Light { On = "ON", Off = "OFF" }
/// );
/// assert_eq!(Light::On.as_str(), "ON");
/// assert_eq!("OFF".parse::<Light>().unwrap(), Light::Off);
/// assert_eq!(Light::ALL.len(), 2);
/// ```
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($(#[$vmeta])* #[serde(rename = $text)] $variant),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The values as the API and error messages spell them: `A, B or C`.
            pub const EXPECTED: &'static str = $crate::__join_words!($($text),*);

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::text_enum::UnknownWord;
            fn from_str(text: &str) -> Result<$name, Self::Err> {
                $name::parse(text).ok_or_else(|| $crate::text_enum::UnknownWord {
                    value: text.to_owned(),
                    expected: $name::EXPECTED,
                })
            }
        }

        impl ::std::convert::TryFrom<String> for $name {
            type Error = $crate::text_enum::UnknownWord;
            fn try_from(text: String) -> Result<$name, Self::Error> {
                text.parse()
            }
        }

        $crate::__text_column!($name);
        $crate::__text_schema!($name);
    };
}

/// `"A, B or C"` from the words `"A", "B", "C"`, at compile time.
#[doc(hidden)]
#[macro_export]
macro_rules! __join_words {
    ($only:literal) => { $only };
    ($first:literal, $last:literal) => { concat!($first, " or ", $last) };
    ($first:literal, $($rest:literal),+) => { concat!($first, ", ", $crate::__join_words!($($rest),+)) };
}

#[cfg(test)]
mod tests {
    crate::text_enum!(Colour {
        Red = "RED",
        Green = "GREEN",
        Blue = "BLUE"
    });

    #[test]
    fn words_round_trip_through_text_json_and_columns() {
        for colour in Colour::ALL {
            assert_eq!(colour.as_str().parse::<Colour>().unwrap(), *colour);
            let json = serde_json::to_string(colour).unwrap();
            assert_eq!(json, format!("\"{colour}\""));
            assert_eq!(serde_json::from_str::<Colour>(&json).unwrap(), *colour);
            assert_eq!(Colour::try_from(colour.to_string()).unwrap(), *colour);
        }
    }

    #[test]
    fn an_unknown_word_names_the_values_it_may_be() {
        let err = "PINK".parse::<Colour>().unwrap_err();
        assert_eq!(err.to_string(), "\"PINK\" is not one of RED, GREEN or BLUE");
        assert!(serde_json::from_str::<Colour>("\"red\"").is_err());
    }
}
