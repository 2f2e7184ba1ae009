//! How order-service reacts to the saga's decision.

use std::collections::HashSet;

use messaging::{Batch, Handler, HandlerError};
use shared_events::{Envelope, Event};
use uuid::Uuid;

use crate::domain::Command;
use crate::store;

/// Applies `saga.completed.v1` and `saga.aborted.v1` to still-pending orders.
#[derive(Clone, Copy)]
pub struct SagaOutcome;

/// The order a decision is for, and what it asks of it.
fn command(event: &Envelope) -> Result<(Uuid, Command), HandlerError> {
    match &event.payload {
        Event::SagaCompleted(e) => match (e.payment_id, e.reservation_id) {
            (Some(payment_id), Some(reservation_id)) => Ok((
                e.order_id,
                Command::Complete {
                    payment_id,
                    reservation_id,
                },
            )),
            _ => Err(HandlerError::Rejected(
                "saga.completed without paymentId and reservationId".into(),
            )),
        },
        Event::SagaAborted(e) => Ok((e.order_id, Command::Abort { reason: e.reason })),
        other => Err(HandlerError::Rejected(format!(
            "not a saga outcome: {}",
            other.kind().subject()
        ))),
    }
}

impl Handler for SagaOutcome {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let commands = events.iter().map(command).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = commands.iter().map(|(id, _)| *id).collect();
        let mut orders = store::lock(batch.conn(), &ids).await?;
        let mut changed = HashSet::new();
        for (event, (order_id, command)) in events.iter().zip(commands) {
            let order = orders
                .get_mut(&order_id)
                .ok_or_else(|| HandlerError::Rejected(format!("no order {order_id}")))?;
            if let Some(emitted) = store::decide(order, command) {
                batch.emit(event, emitted);
                changed.insert(order_id);
            }
        }
        let mut changed: Vec<&mut store::Order> = orders
            .iter_mut()
            .filter(|(id, _)| changed.contains(id))
            .map(|(_, o)| o)
            .collect();
        store::save(batch.conn(), &mut changed).await?;
        Ok(())
    }
}
