//! How inventory-service reacts to orders: lock and read the batch's reservations and the
//! shelves they touch, apply the stock rules to each event, write what changed, publish what
//! the rules announce.

use std::collections::BTreeSet;

use anyhow::Context as _;
use chrono::Utc;
use messaging::{Batch, Handler, HandlerError};
use shared_events::{Envelope, Event};
use uuid::Uuid;

use crate::rules::Input;
use crate::store;

/// Reacts to `order.created.v1`, `order.confirmed.v1` and `order.cancelled.v1`.
#[derive(Clone)]
pub struct Reactions {
    /// `INVENTORY_AUTO_PROVISION`: stock given to a product the first time an order names it.
    pub auto_provision: i64,
}

impl Handler for Reactions {
    /// Everything this service does for one order happens one transaction at a time.
    fn serialise_on(&self, events: &[Envelope]) -> Vec<Uuid> {
        events.iter().map(|e| e.payload.order_id()).collect()
    }

    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let order_ids: Vec<Uuid> = events.iter().map(|e| e.payload.order_id()).collect();
        let named: BTreeSet<_> = events
            .iter()
            .filter_map(|e| match &e.payload {
                Event::OrderCreated(order) => {
                    Some(order.items.iter().map(|l| l.product_id.clone()))
                }
                _ => None,
            })
            .flatten()
            .collect();
        let book = store::load(batch.conn(), &order_ids, &named, self.auto_provision)
            .await
            .context("locking and reading the batch's reservations and stock")?;
        let book = batch.decide_each(events, book, |book, event| {
            let at = Utc::now();
            let input = match &event.payload {
                Event::OrderCreated(order) => Input::Created {
                    order,
                    reservation_id: Uuid::now_v7(),
                    at,
                },
                Event::OrderConfirmed(e) => Input::Confirmed {
                    order_id: e.order_id,
                    at,
                },
                Event::OrderCancelled(e) => Input::Cancelled {
                    order_id: e.order_id,
                    at,
                },
                _ => return Err(HandlerError::not_handled(crate::SERVICE, event)),
            };
            Ok(book.apply(input))
        })?;
        store::save(batch.conn(), &book)
            .await
            .context("saving the batch's reservations and stock")?;
        Ok(())
    }
}
