//! What the saga's participants (payment-service, inventory-service) share of their domain.
//!
//! - [`cancellations`]: orders cancelled before the participant saw them created, which it then
//!   never charges or reserves for.

pub mod cancellations;
