//! The JetStream streams of the system and the subjects each one holds.

/// A stream of the system. Every event subject belongs to exactly one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Orders,
    Payments,
    Inventory,
    Sagas,
    /// Dead letters: events a consumer could not handle, with the reason in a header.
    Dlq,
}

impl Stream {
    pub const ALL: [Stream; 5] = [
        Stream::Orders,
        Stream::Payments,
        Stream::Inventory,
        Stream::Sagas,
        Stream::Dlq,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Stream::Orders => "ORDERS",
            Stream::Payments => "PAYMENTS",
            Stream::Inventory => "INVENTORY",
            Stream::Sagas => "SAGAS",
            Stream::Dlq => "DLQ",
        }
    }

    /// The one subject filter the stream captures.
    pub const fn subjects(self) -> &'static str {
        match self {
            Stream::Orders => "order.>",
            Stream::Payments => "payment.>",
            Stream::Inventory => "inventory.>",
            Stream::Sagas => "saga.>",
            Stream::Dlq => "dlq.>",
        }
    }
}
