//! Database columns (with the `sqlx` feature): every status, id and amount of the contract
//! reads from and binds to PostgreSQL as itself, checked on the way in, so a row decodes into
//! typed fields and a corrupt value is an error, not a guess. Statuses and ids are `TEXT`,
//! money is `NUMERIC`; each also binds as an array (`$1::text[]`) for set-based statements.

/// Makes `$name` (with `as_str()` and `FromStr`) a `TEXT` column. Without the `sqlx` feature of
/// shared-events it expands to nothing.
#[cfg(feature = "sqlx")]
#[doc(hidden)]
#[macro_export]
macro_rules! __text_column {
    ($name:ty) => {
        impl $crate::sql::sqlx::Type<$crate::sql::sqlx::Postgres> for $name {
            fn type_info() -> $crate::sql::sqlx::postgres::PgTypeInfo {
                <&str as $crate::sql::sqlx::Type<$crate::sql::sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &$crate::sql::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as $crate::sql::sqlx::Type<$crate::sql::sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> $crate::sql::sqlx::Decode<'r, $crate::sql::sqlx::Postgres> for $name {
            fn decode(
                value: $crate::sql::sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, $crate::sql::sqlx::error::BoxDynError> {
                let text =
                    <&str as $crate::sql::sqlx::Decode<$crate::sql::sqlx::Postgres>>::decode(
                        value,
                    )?;
                Ok(text.parse::<$name>()?)
            }
        }

        impl $crate::sql::sqlx::Encode<'_, $crate::sql::sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::sql::sqlx::postgres::PgArgumentBuffer,
            ) -> Result<$crate::sql::sqlx::encode::IsNull, $crate::sql::sqlx::error::BoxDynError>
            {
                <&str as $crate::sql::sqlx::Encode<$crate::sql::sqlx::Postgres>>::encode(
                    self.as_str(),
                    buf,
                )
            }
        }

        impl $crate::sql::sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> $crate::sql::sqlx::postgres::PgTypeInfo {
                <&str as $crate::sql::sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }
    };
}

#[cfg(not(feature = "sqlx"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __text_column {
    ($name:ty) => {};
}

#[cfg(feature = "sqlx")]
pub use sqlx;

#[cfg(feature = "sqlx")]
mod money {
    use rust_decimal::Decimal;
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
    use sqlx::{Decode, Encode, Postgres, Type};

    use crate::Money;

    impl Type<Postgres> for Money {
        fn type_info() -> PgTypeInfo {
            <Decimal as Type<Postgres>>::type_info()
        }
        fn compatible(ty: &PgTypeInfo) -> bool {
            <Decimal as Type<Postgres>>::compatible(ty)
        }
    }

    impl<'r> Decode<'r, Postgres> for Money {
        fn decode(value: PgValueRef<'r>) -> Result<Money, BoxDynError> {
            Ok(Money::parse(<Decimal as Decode<Postgres>>::decode(value)?)?)
        }
    }

    impl Encode<'_, Postgres> for Money {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            <Decimal as Encode<Postgres>>::encode(self.amount(), buf)
        }
    }

    impl PgHasArrayType for Money {
        fn array_type_info() -> PgTypeInfo {
            <Decimal as PgHasArrayType>::array_type_info()
        }
    }
}

crate::__text_column!(crate::ProductId);
crate::__text_column!(crate::CustomerId);
crate::__text_column!(crate::Currency);
