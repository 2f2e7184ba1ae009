//! The events of the order saga: each payload type, and the one table that gives every event its
//! type name, major version, subject and stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Currency, CustomerId, ProductId, Quantity};
use crate::money::Money;
use crate::streams::Stream;

/// Implemented by every payload: ties the Rust type to its row of the event table.
pub trait EventPayload: Serialize + JsonSchema + Into<Event> {
    const KIND: EventKind;
}

/// Code that needs each event's payload type (the JSON Schemas, say) implements this and is
/// called back with it by [`EventKind::visit`], so the event table stays the one list of events.
pub trait PayloadVisitor {
    type Output;
    fn visit<P: EventPayload>(self, kind: EventKind) -> Self::Output;
}

macro_rules! event_table {
    ($( $variant:ident => $name:literal, v $version:literal, $stream:ident; )*) => {
        /// Which event a message is: the type name and major version together.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

            pub fn from_subject(subject: &str) -> Option<EventKind> {
                EventKind::ALL.iter().copied().find(|k| k.subject() == subject)
            }

            /// Whether any version of this event type name is known at all.
            pub fn is_known_name(name: &str) -> bool {
                EventKind::ALL.iter().any(|k| k.name() == name)
            }

            pub fn from_name_version(name: &str, version: u32) -> Option<EventKind> {
                EventKind::ALL.iter().copied().find(|k| k.name() == name && k.version() == version)
            }

            /// Calls `visitor` with this kind's payload type.
            pub fn visit<V: PayloadVisitor>(self, visitor: V) -> V::Output {
                match self { $(EventKind::$variant => visitor.visit::<$variant>(self)),* }
            }
        }

        /// Any event of the system, with its typed payload.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Event { $($variant($variant)),* }

        impl Event {
            pub fn kind(&self) -> EventKind {
                match self { $(Event::$variant(_) => EventKind::$variant),* }
            }

            /// Reads the payload of an event of the given kind.
            pub fn from_payload(kind: EventKind, payload: &str) -> Result<Event, serde_json::Error> {
                Ok(match kind {
                    $(EventKind::$variant => Event::$variant(serde_json::from_str(payload)?)),*
                })
            }
        }

        impl Serialize for Event {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self { $(Event::$variant(p) => p.serialize(s)),* }
            }
        }

        $(
            impl EventPayload for $variant {
                const KIND: EventKind = EventKind::$variant;
            }
            impl From<$variant> for Event {
                fn from(p: $variant) -> Event { Event::$variant(p) }
            }
        )*
    };
}

event_table! {
    OrderCreated       => "order.created",       v 1, Orders;
    OrderConfirmed     => "order.confirmed",     v 1, Orders;
    OrderCancelled     => "order.cancelled",     v 1, Orders;
    PaymentConfirmed   => "payment.confirmed",   v 1, Payments;
    PaymentFailed      => "payment.failed",      v 1, Payments;
    PaymentRefunded    => "payment.refunded",    v 1, Payments;
    InventoryReserved  => "inventory.reserved",  v 1, Inventory;
    InventoryFailed    => "inventory.failed",    v 1, Inventory;
    InventoryCommitted => "inventory.committed", v 1, Inventory;
    InventoryReleased  => "inventory.released",  v 1, Inventory;
    SagaCompleted      => "saga.completed",      v 1, Sagas;
    SagaAborted        => "saga.aborted",        v 1, Sagas;
}

impl Event {
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
