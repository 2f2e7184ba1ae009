//! OpenAPI schemas (with the `openapi` feature) of the values the services' APIs show: exact
//! money, the checked ids, currencies and quantities, and every status word (`text_enum!`), each
//! described as the JSON Schema of the events describes it.

/// Makes `$name` (with `ALL` and `as_str()`) an OpenAPI string enum. Without the `openapi`
/// feature of shared-events it expands to nothing.
#[cfg(feature = "openapi")]
#[doc(hidden)]
#[macro_export]
macro_rules! __text_schema {
    ($name:ident) => {
        impl $crate::openapi::utoipa::PartialSchema for $name {
            fn schema() -> $crate::openapi::utoipa::openapi::RefOr<
                $crate::openapi::utoipa::openapi::schema::Schema,
            > {
                $crate::openapi::words($name::ALL.iter().map(|w| w.as_str()))
            }
        }
        impl $crate::openapi::utoipa::ToSchema for $name {}
    };
}

#[cfg(not(feature = "openapi"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __text_schema {
    ($name:ident) => {};
}

#[cfg(feature = "openapi")]
pub use utoipa;

#[cfg(feature = "openapi")]
mod schemas {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
    use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
    use utoipa::{PartialSchema, ToSchema};

    use crate::{Currency, CustomerId, Money, ProductId, Quantity};

    /// A string that is one of `words`.
    pub fn words<'a>(words: impl Iterator<Item = &'a str>) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(words.map(str::to_owned)))
            .into()
    }

    fn text(description: &str, pattern: Option<&str>, min: usize, max: usize) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some(description))
            .pattern(pattern)
            .min_length(Some(min))
            .max_length(Some(max))
            .into()
    }

    impl PartialSchema for Money {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Number))
                .description(Some(
                    "An exact amount of money: a JSON number, non-negative, with no more \
                     decimals than the currency's minor unit has (ISO 4217: JPY 0, EUR 2) and \
                     two at most.",
                ))
                .minimum(Some(0))
                .maximum(Some(10_000_000_000_000u64))
                .multiple_of(Some(0.01))
                .into()
        }
    }
    impl ToSchema for Money {}

    impl PartialSchema for ProductId {
        fn schema() -> RefOr<Schema> {
            text(
                "A product id: 1 to 64 letters, digits, '-', '_', '.' or ':'.",
                Some("^[A-Za-z0-9_.:-]{1,64}$"),
                1,
                ProductId::MAX_LEN,
            )
        }
    }
    impl ToSchema for ProductId {}

    impl PartialSchema for CustomerId {
        fn schema() -> RefOr<Schema> {
            text(
                "A customer id: 1 to 128 characters, not only spaces, no control characters.",
                None,
                1,
                CustomerId::MAX_CHARS,
            )
        }
    }
    impl ToSchema for CustomerId {}

    impl PartialSchema for Currency {
        fn schema() -> RefOr<Schema> {
            text(
                "An ISO 4217-shaped currency code: three capital letters.",
                Some("^[A-Z]{3}$"),
                3,
                3,
            )
        }
    }
    impl ToSchema for Currency {}

    impl PartialSchema for Quantity {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                .description(Some("Units of one product in one order line: 1 to 10000."))
                .minimum(Some(1))
                .maximum(Some(Quantity::MAX))
                .into()
        }
    }
    impl ToSchema for Quantity {}
}

#[cfg(feature = "openapi")]
pub use schemas::words;
