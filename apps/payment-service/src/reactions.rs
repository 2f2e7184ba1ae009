//! How payment-service reacts to orders: lock and read the batch's payments, apply the payment
//! rules to each event, write what changed, publish what the rules announce.

use anyhow::Context as _;
use chrono::Utc;
use messaging::{Batch, Handler, HandlerError};
use shared_events::{Envelope, Event};
use uuid::Uuid;

use crate::rules::{Input, Standing};
use crate::store;

/// Reacts to `order.created` (charge) and `order.cancelled` (refund, or never charge),
/// charging through the gateway as the simulation settings in force say.
#[derive(Clone, Copy)]
pub struct Reactions;

impl Handler for Reactions {
    /// Everything this service does for one order happens one transaction at a time.
    fn serialise_on(&self, events: &[Envelope]) -> Vec<Uuid> {
        events.iter().map(|e| e.payload.order_id()).collect()
    }

    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.payload.order_id()).collect();
        let book = store::load(batch.conn(), &ids)
            .await
            .context("locking and reading the batch's payments")?;
        let asks_gateway = events.iter().any(|e| {
            matches!(&e.payload, Event::OrderCreated(o) if book.standing(o.order_id) == Standing::Unknown)
        });
        // The settings in force when the charges are made, shared by every instance.
        let simulation = if asks_gateway {
            store::simulation(batch.conn())
                .await
                .context("reading the simulation settings")?
                .simulation
        } else {
            crate::Simulation::default()
        };
        if !simulation.latency.is_zero() {
            // The gateway answers the charges of a batch together, after its latency.
            tokio::time::sleep(simulation.latency).await;
        }
        let gateway = simulation.gateway();
        let book = batch.decide_each(events, book, |book, event| {
            let at = Utc::now();
            let input = match &event.payload {
                Event::OrderCreated(order) => Input::Created {
                    order,
                    gateway: &gateway,
                    payment_id: Uuid::now_v7(),
                    at,
                },
                Event::OrderCancelled(order) => Input::Cancelled { order, at },
                _ => return Err(HandlerError::not_handled(crate::SERVICE, event)),
            };
            Ok(book.apply(input))
        })?;
        store::save(batch.conn(), &book)
            .await
            .context("saving the batch's payments")?;
        Ok(())
    }
}
