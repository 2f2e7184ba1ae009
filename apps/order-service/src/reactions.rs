//! How order-service reacts to the saga's decision: lock the batch's orders, apply the order
//! rules to each, save what changed, publish what the rules announce.

use std::collections::HashSet;

use anyhow::Context as _;
use messaging::{Batch, Handler, HandlerError};
use shared_events::{Envelope, Event, Reaction};
use uuid::Uuid;

use crate::rules::{Input, Order};
use crate::store;

/// Applies the saga's decisions (`saga.completed`, `saga.aborted`) to still-pending orders.
#[derive(Clone, Copy)]
pub struct Reactions;

/// The order a decision is for, and what it asks of it.
fn input(event: &Envelope) -> Result<(Uuid, Input), HandlerError> {
    match &event.payload {
        Event::SagaCompleted(e) => match (e.payment_id, e.reservation_id) {
            (Some(payment_id), Some(reservation_id)) => Ok((
                e.order_id,
                Input::Complete {
                    payment_id,
                    reservation_id,
                },
            )),
            _ => Err(HandlerError::Rejected(
                "saga.completed without paymentId and reservationId".into(),
            )),
        },
        Event::SagaAborted(e) => Ok((
            e.order_id,
            Input::Abort {
                reason: e.reason,
                detail: e.detail.clone(),
            },
        )),
        _ => Err(HandlerError::not_handled(crate::SERVICE, event)),
    }
}

impl Handler for Reactions {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.payload.order_id()).collect();
        let orders = store::lock(batch.conn(), &ids)
            .await
            .context("locking the batch's orders")?;
        let (mut orders, changed) = batch.decide_each(
            events,
            (orders, HashSet::new()),
            |(mut orders, mut changed), event| {
                let (order_id, input) = input(event)?;
                let order = orders
                    .remove(&order_id)
                    .ok_or_else(|| HandlerError::Rejected(format!("no order {order_id}")))?;
                let (order, reaction) = order.apply(input);
                if reaction != Reaction::Nothing {
                    changed.insert(order_id);
                }
                orders.insert(order_id, order);
                Ok(((orders, changed), reaction))
            },
        )?;
        let mut changed: Vec<&mut Order> = orders
            .iter_mut()
            .filter(|(id, _)| changed.contains(id))
            .map(|(_, o)| o)
            .collect();
        store::save(batch.conn(), &mut changed)
            .await
            .context("saving the decided orders")?;
        Ok(())
    }
}
