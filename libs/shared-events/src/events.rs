//! The events of the order saga: each payload type, and the one table that gives every event its
//! type name, major versions, subjects and stream.
//!
//! Two levels:
//! - an [`Event`] is what happened (an order was created), as every service's rules see it,
//!   whichever major it arrived in;
//! - an [`EventKind`] is one major of one event on the wire (`order.created.v1`,
//!   `order.created.v2`), with its own subject and payload type. A producer writes an event in
//!   each major it publishes ([`Majors`]); a consumer reads any major it knows into the same
//!   [`Event`].
//!
//! The payload of an event's first major is also its in-memory form (`OrderCreated` is both).
//! A later major is a payload type of its own (`OrderCreatedV2`) that converts from and to it
//! ([`EventPayload`]).

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Currency, CustomerId, ProductId, Quantity};
use crate::money::{MinorUnits, Money};
use crate::streams::Stream;

/// Why a payload is not a valid event of its major.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not the major's JSON shape.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An amount its major does not carry (v1: more than two decimals).
    #[error("{amount} has more than two decimals, which v1 does not carry")]
    Decimals { amount: Money },
    /// Minor units that make no amount of its currency.
    #[error("{units} minor units of {currency}: {error}")]
    MinorUnits {
        units: u64,
        currency: Currency,
        error: crate::money::MoneyError,
    },
}

/// Why a list of majors is not one (`PUBLISH_MAJORS`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MajorsError {
    #[error("{0:?} is not a major version (such as 1 or 2)")]
    NotANumber(String),
    #[error("no event has a major {major} in this build (known: {known})")]
    Unknown { major: u32, known: Majors },
}

/// Implemented by the payload type of every major of every event: ties the Rust type to its
/// row of the event table, and converts it from and to the [`Event`] it carries.
pub trait EventPayload: Serialize + DeserializeOwned + JsonSchema {
    const KIND: EventKind;

    /// The event this payload says happened; an error says why it is not a valid one.
    fn into_event(self) -> Result<Event, PayloadError>;

    /// `event` in this major, if it is this event and this major can carry it exactly (the
    /// first major holds amounts of at most two decimals).
    fn from_event(event: &Event) -> Option<Self>;
}

/// Code that needs each event's payload type (the JSON Schemas, say) implements this and is
/// called back with it by [`EventKind::visit`], so the event table stays the one list of events.
pub trait PayloadVisitor {
    type Output;
    fn visit<P: EventPayload>(self, kind: EventKind) -> Self::Output;
}

macro_rules! event_table {
    ($( $variant:ident => $name:literal, v $version:literal, $stream:ident; )*) => {
        /// One major of one event on the wire: the type name and major version together.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind { $($variant),* }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),*];

            /// The `eventType` of the envelope, e.g. `order.created`.
            pub const fn name(self) -> &'static str {
                match self { $(EventKind::$variant => $name),* }
            }

            /// The major version, `version` in the envelope.
            pub const fn version(self) -> u32 {
                match self { $(EventKind::$variant => $version),* }
            }

            /// `<domain>.<name>.v<major>`: the subject the event is published on.
            pub const fn subject(self) -> &'static str {
                match self { $(EventKind::$variant => concat!($name, ".v", $version)),* }
            }

            pub const fn stream(self) -> Stream {
                match self { $(EventKind::$variant => Stream::$stream),* }
            }

            /// Calls `visitor` with this kind's payload type.
            pub fn visit<V: PayloadVisitor>(self, visitor: V) -> V::Output {
                match self { $(EventKind::$variant => visitor.visit::<$variant>(self)),* }
            }

            /// Reads a payload of this kind into the event it carries.
            pub fn decode_payload(self, payload: &str) -> Result<Event, PayloadError> {
                match self {
                    $(EventKind::$variant => Major::into_event(
                        serde_json::from_str::<$variant>(payload)?,
                    )),*
                }
            }

            /// `event`'s payload in this kind, if it is a major of that event that can carry it.
            pub fn encode_payload(self, event: &Event) -> Option<serde_json::Value> {
                match self {
                    $(EventKind::$variant => <$variant as Major>::from_event(event)
                        .and_then(|p| serde_json::to_value(p).ok())),*
                }
            }
        }

        $(
            impl EventPayload for $variant {
                const KIND: EventKind = EventKind::$variant;
                fn into_event(self) -> Result<Event, PayloadError> {
                    Major::into_event(self)
                }
                fn from_event(event: &Event) -> Option<Self> {
                    Major::from_event(event)
                }
            }
        )*
    };
}

/// How one major's payload converts from and to its event (see [`EventPayload`]).
trait Major: Sized {
    fn into_event(self) -> Result<Event, PayloadError>;
    fn from_event(event: &Event) -> Option<Self>;
}

macro_rules! events {
    ($( $variant:ident => $name:literal; )*) => {
        /// Any event of the system, as the services' rules see it, whichever major it came in.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Event { $($variant($variant)),* }

        impl Event {
            /// The event type, `eventType` in every envelope of it: `order.created`.
            pub fn name(&self) -> &'static str {
                match self { $(Event::$variant(_) => $name),* }
            }
        }

        $(
            impl From<$variant> for Event {
                fn from(p: $variant) -> Event { Event::$variant(p) }
            }
        )*
    };
}

events! {
    OrderCreated       => "order.created";
    OrderConfirmed     => "order.confirmed";
    OrderCancelled     => "order.cancelled";
    PaymentConfirmed   => "payment.confirmed";
    PaymentFailed      => "payment.failed";
    PaymentRefunded    => "payment.refunded";
    InventoryReserved  => "inventory.reserved";
    InventoryFailed    => "inventory.failed";
    InventoryCommitted => "inventory.committed";
    InventoryReleased  => "inventory.released";
    SagaCompleted      => "saga.completed";
    SagaAborted        => "saga.aborted";
}

event_table! {
    OrderCreated       => "order.created",       v 1, Orders;
    OrderCreatedV2     => "order.created",       v 2, Orders;
    OrderConfirmed     => "order.confirmed",     v 1, Orders;
    OrderCancelled     => "order.cancelled",     v 1, Orders;
    PaymentConfirmed   => "payment.confirmed",   v 1, Payments;
    PaymentConfirmedV2 => "payment.confirmed",   v 2, Payments;
    PaymentFailed      => "payment.failed",      v 1, Payments;
    PaymentFailedV2    => "payment.failed",      v 2, Payments;
    PaymentRefunded    => "payment.refunded",    v 1, Payments;
    PaymentRefundedV2  => "payment.refunded",    v 2, Payments;
    InventoryReserved  => "inventory.reserved",  v 1, Inventory;
    InventoryFailed    => "inventory.failed",    v 1, Inventory;
    InventoryCommitted => "inventory.committed", v 1, Inventory;
    InventoryReleased  => "inventory.released",  v 1, Inventory;
    SagaCompleted      => "saga.completed",      v 1, Sagas;
    SagaAborted        => "saga.aborted",        v 1, Sagas;
}

impl EventKind {
    pub fn from_subject(subject: &str) -> Option<EventKind> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.subject() == subject)
    }

    /// Whether any version of this event type name is known at all.
    pub fn is_known_name(name: &str) -> bool {
        EventKind::ALL.iter().any(|k| k.name() == name)
    }

    pub fn from_name_version(name: &str, version: u32) -> Option<EventKind> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name && k.version() == version)
    }

    /// Every major of this kind's event that this build knows, oldest first.
    pub fn majors(self) -> impl Iterator<Item = EventKind> {
        EventKind::ALL
            .iter()
            .copied()
            .filter(move |k| k.name() == self.name())
    }

    /// The `Nats-Msg-Id` of this major's copy of event `event_id`: the event id itself for the
    /// first major (as it always was), `<eventId>-v<major>` for the others, so that JetStream,
    /// which drops a repeated id within its window, keeps every major's copy.
    pub fn message_id(self, event_id: Uuid) -> String {
        match self.version() {
            1 => event_id.to_string(),
            major => format!("{event_id}-v{major}"),
        }
    }
}

/// The majors a producer publishes, e.g. `1,2` during a change-over and `2` once no consumer
/// needs the first (see [`crate::Envelope::copies`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Majors(BTreeSet<u32>);

impl Majors {
    /// Every major this build knows: what a producer publishes unless told otherwise.
    pub fn all() -> Majors {
        Majors(EventKind::ALL.iter().map(|k| k.version()).collect())
    }

    pub fn contains(&self, major: u32) -> bool {
        self.0.contains(&major)
    }

    /// Reads `1,2`: majors this build knows, at least one.
    pub fn parse(text: &str) -> Result<Majors, MajorsError> {
        let known = Majors::all();
        let mut majors = BTreeSet::new();
        for part in text.split(',').map(str::trim) {
            let major = part
                .trim_start_matches('v')
                .parse::<u32>()
                .map_err(|_| MajorsError::NotANumber(part.to_owned()))?;
            if !known.contains(major) {
                return Err(MajorsError::Unknown { major, known });
            }
            majors.insert(major);
        }
        Ok(Majors(majors))
    }
}

impl fmt::Display for Majors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&list.join(","))
    }
}

impl std::str::FromStr for Majors {
    type Err = MajorsError;
    fn from_str(text: &str) -> Result<Majors, MajorsError> {
        Majors::parse(text)
    }
}

impl Event {
    /// Every major of this event that this build knows, oldest first.
    pub fn kinds(&self) -> impl Iterator<Item = EventKind> + use<> {
        let name = self.name();
        EventKind::ALL
            .iter()
            .copied()
            .filter(move |k| k.name() == name)
    }

    /// The newest major of this event that this build knows.
    pub fn newest(&self) -> EventKind {
        self.kinds()
            .last()
            .unwrap_or_else(|| unreachable!("every event has a major"))
    }

    /// The order every event of the saga is about.
    pub fn order_id(&self) -> Uuid {
        match self {
            Event::OrderCreated(e) => e.order_id,
            Event::OrderConfirmed(e) => e.order_id,
            Event::OrderCancelled(e) => e.order_id,
            Event::PaymentConfirmed(e) => e.order_id,
            Event::PaymentFailed(e) => e.order_id,
            Event::PaymentRefunded(e) => e.order_id,
            Event::InventoryReserved(e) => e.order_id,
            Event::InventoryFailed(e) => e.order_id,
            Event::InventoryCommitted(e) => e.order_id,
            Event::InventoryReleased(e) => e.order_id,
            Event::SagaCompleted(e) => e.order_id,
            Event::SagaAborted(e) => e.order_id,
        }
    }

    /// The saga every event belongs to.
    pub fn saga_id(&self) -> Uuid {
        match self {
            Event::OrderCreated(e) => e.saga_id,
            Event::OrderConfirmed(e) => e.saga_id,
            Event::OrderCancelled(e) => e.saga_id,
            Event::PaymentConfirmed(e) => e.saga_id,
            Event::PaymentFailed(e) => e.saga_id,
            Event::PaymentRefunded(e) => e.saga_id,
            Event::InventoryReserved(e) => e.saga_id,
            Event::InventoryFailed(e) => e.saga_id,
            Event::InventoryCommitted(e) => e.saga_id,
            Event::InventoryReleased(e) => e.saga_id,
            Event::SagaCompleted(e) => e.saga_id,
            Event::SagaAborted(e) => e.saga_id,
        }
    }
}

crate::text_enum!(
    /// Why a saga was aborted, and so why its order was cancelled.
    #[derive(JsonSchema)]
    AbortReason {
        PaymentFailed = "PAYMENT_FAILED",
        InventoryUnavailable = "INVENTORY_UNAVAILABLE",
        Timeout = "TIMEOUT",
        CustomerRequest = "CUSTOMER_REQUEST",
        // An operator aborted the saga (added within v1).
        Operator = "OPERATOR",
    }
);

crate::text_enum!(
    /// Why a reservation could not be made.
    #[derive(JsonSchema)]
    InventoryFailureReason {
        InsufficientStock = "INSUFFICIENT_STOCK",
        UnknownProduct = "UNKNOWN_PRODUCT",
    }
);

/// One line of an order as the order service took it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
    pub unit_price: Money,
}

/// A quantity of one product, as inventory holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StockLine {
    pub product_id: ProductId,
    pub quantity: u32,
}

/// A line inventory could not reserve, with what it had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnavailableItem {
    pub product_id: ProductId,
    pub requested: u32,
    pub available: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub customer_id: CustomerId,
    pub items: Vec<OrderLine>,
    pub total_amount: Money,
    pub currency: Currency,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderConfirmed {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub payment_id: Uuid,
    pub reservation_id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub reason: AbortReason,
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentConfirmed {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
    pub currency: Currency,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFailed {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub amount: Money,
    pub currency: Currency,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
    pub currency: Currency,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReserved {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub reservation_id: Uuid,
    pub items: Vec<StockLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryFailed {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub reason: InventoryFailureReason,
    pub unavailable_items: Vec<UnavailableItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryCommitted {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub reservation_id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReleased {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub reservation_id: Uuid,
    pub items: Vec<StockLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SagaCompleted {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    /// The confirmed charge (added within v1: readers of the first v1 ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<Uuid>,
    /// The reservation to commit (added within v1: readers of the first v1 ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SagaAborted {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    pub reason: AbortReason,
    /// The operator's note on an `OPERATOR` abort (added within v1: readers of the first v1
    /// ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A line of `order.created.v2`: its unit price in minor units of the order's currency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineV2 {
    pub product_id: ProductId,
    pub quantity: Quantity,
    pub unit_price: MinorUnits,
}

/// `order.created.v2`: as v1, with every amount an integer of the currency's minor unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreatedV2 {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub customer_id: CustomerId,
    pub items: Vec<OrderLineV2>,
    pub total_amount: MinorUnits,
    pub currency: Currency,
}

/// `payment.confirmed.v2`: as v1, the amount in minor units of the currency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentConfirmedV2 {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub payment_id: Uuid,
    pub amount: MinorUnits,
    pub currency: Currency,
}

/// `payment.failed.v2`: as v1, the amount in minor units of the currency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFailedV2 {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub amount: MinorUnits,
    pub currency: Currency,
    pub reason: String,
}

/// `payment.refunded.v2`: as v1, the amount in minor units of the currency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefundedV2 {
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub payment_id: Uuid,
    pub amount: MinorUnits,
    pub currency: Currency,
}

/// The events whose first major carries no money: payload and event are one.
macro_rules! same_as_event {
    ($($variant:ident),*) => {$(
        impl Major for $variant {
            fn into_event(self) -> Result<Event, PayloadError> {
                Ok(Event::$variant(self))
            }
            fn from_event(event: &Event) -> Option<Self> {
                match event {
                    Event::$variant(e) => Some(e.clone()),
                    _ => None,
                }
            }
        }
    )*};
}

same_as_event!(
    OrderConfirmed,
    OrderCancelled,
    InventoryReserved,
    InventoryFailed,
    InventoryCommitted,
    InventoryReleased,
    SagaCompleted,
    SagaAborted
);

/// The first major's rule for money: two decimals at most, whatever the currency.
fn v1_amount(amount: Money) -> Result<Money, PayloadError> {
    if amount.decimals() > Money::TWO_DECIMALS {
        return Err(PayloadError::Decimals { amount });
    }
    Ok(amount)
}

/// The events whose first major carries money: payload and event are one, with amounts of at
/// most two decimals.
macro_rules! v1_with_money {
    ($($variant:ident => |$e:ident| $amounts:expr;)*) => {$(
        impl Major for $variant {
            fn into_event(self) -> Result<Event, PayloadError> {
                let $e = &self;
                for amount in $amounts {
                    v1_amount(amount)?;
                }
                Ok(Event::$variant(self))
            }
            fn from_event(event: &Event) -> Option<Self> {
                match event {
                    Event::$variant($e) => {
                        let fits = $amounts.into_iter().all(|a| v1_amount(a).is_ok());
                        fits.then(|| $e.clone())
                    }
                    _ => None,
                }
            }
        }
    )*};
}

v1_with_money! {
    OrderCreated => |e| e.items.iter().map(|l| l.unit_price).chain([e.total_amount]).collect::<Vec<_>>();
    PaymentConfirmed => |e| [e.amount];
    PaymentFailed => |e| [e.amount];
    PaymentRefunded => |e| [e.amount];
}

/// An amount of the second major in the currency's money.
fn from_minor(units: MinorUnits, currency: &Currency) -> Result<Money, PayloadError> {
    Money::from_minor(units, currency.exponent()).map_err(|error| PayloadError::MinorUnits {
        units: units.get(),
        currency: currency.clone(),
        error,
    })
}

/// An amount in minor units of the currency, if it is a whole number of them.
fn to_minor(amount: Money, currency: &Currency) -> Option<MinorUnits> {
    amount.to_minor(currency.exponent())
}

impl Major for OrderCreatedV2 {
    fn into_event(self) -> Result<Event, PayloadError> {
        let currency = &self.currency;
        let items = self
            .items
            .into_iter()
            .map(|l| {
                Ok(OrderLine {
                    product_id: l.product_id,
                    quantity: l.quantity,
                    unit_price: from_minor(l.unit_price, currency)?,
                })
            })
            .collect::<Result<Vec<_>, PayloadError>>()?;
        Ok(Event::OrderCreated(OrderCreated {
            order_id: self.order_id,
            saga_id: self.saga_id,
            customer_id: self.customer_id,
            items,
            total_amount: from_minor(self.total_amount, currency)?,
            currency: self.currency,
        }))
    }

    fn from_event(event: &Event) -> Option<Self> {
        let Event::OrderCreated(e) = event else {
            return None;
        };
        let items = e
            .items
            .iter()
            .map(|l| {
                Some(OrderLineV2 {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                    unit_price: to_minor(l.unit_price, &e.currency)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(OrderCreatedV2 {
            order_id: e.order_id,
            saga_id: e.saga_id,
            customer_id: e.customer_id.clone(),
            items,
            total_amount: to_minor(e.total_amount, &e.currency)?,
            currency: e.currency.clone(),
        })
    }
}

impl Major for PaymentConfirmedV2 {
    fn into_event(self) -> Result<Event, PayloadError> {
        Ok(Event::PaymentConfirmed(PaymentConfirmed {
            amount: from_minor(self.amount, &self.currency)?,
            order_id: self.order_id,
            saga_id: self.saga_id,
            payment_id: self.payment_id,
            currency: self.currency,
        }))
    }

    fn from_event(event: &Event) -> Option<Self> {
        let Event::PaymentConfirmed(e) = event else {
            return None;
        };
        Some(PaymentConfirmedV2 {
            order_id: e.order_id,
            saga_id: e.saga_id,
            payment_id: e.payment_id,
            amount: to_minor(e.amount, &e.currency)?,
            currency: e.currency.clone(),
        })
    }
}

impl Major for PaymentFailedV2 {
    fn into_event(self) -> Result<Event, PayloadError> {
        Ok(Event::PaymentFailed(PaymentFailed {
            amount: from_minor(self.amount, &self.currency)?,
            order_id: self.order_id,
            saga_id: self.saga_id,
            currency: self.currency,
            reason: self.reason,
        }))
    }

    fn from_event(event: &Event) -> Option<Self> {
        let Event::PaymentFailed(e) = event else {
            return None;
        };
        Some(PaymentFailedV2 {
            order_id: e.order_id,
            saga_id: e.saga_id,
            amount: to_minor(e.amount, &e.currency)?,
            currency: e.currency.clone(),
            reason: e.reason.clone(),
        })
    }
}

impl Major for PaymentRefundedV2 {
    fn into_event(self) -> Result<Event, PayloadError> {
        Ok(Event::PaymentRefunded(PaymentRefunded {
            amount: from_minor(self.amount, &self.currency)?,
            order_id: self.order_id,
            saga_id: self.saga_id,
            payment_id: self.payment_id,
            currency: self.currency,
        }))
    }

    fn from_event(event: &Event) -> Option<Self> {
        let Event::PaymentRefunded(e) = event else {
            return None;
        };
        Some(PaymentRefundedV2 {
            order_id: e.order_id,
            saga_id: e.saga_id,
            payment_id: e.payment_id,
            amount: to_minor(e.amount, &e.currency)?,
            currency: e.currency.clone(),
        })
    }
}
