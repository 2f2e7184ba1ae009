//! How order-service reacts to the saga's decision.

use messaging::{Context, Handler, HandlerError};
use shared_events::Event;

use crate::domain::Command;
use crate::store;

/// Applies `saga.completed.v1` and `saga.aborted.v1` to a still-pending order.
#[derive(Clone, Copy)]
pub struct SagaOutcome;

impl Handler for SagaOutcome {
    async fn handle(&self, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let (order_id, command) = match &ctx.event().payload {
            Event::SagaCompleted(e) => match (e.payment_id, e.reservation_id) {
                (Some(payment_id), Some(reservation_id)) => (
                    e.order_id,
                    Command::Complete {
                        payment_id,
                        reservation_id,
                    },
                ),
                _ => {
                    return Err(HandlerError::Rejected(
                        "saga.completed without paymentId and reservationId".into(),
                    ));
                }
            },
            Event::SagaAborted(e) => (e.order_id, Command::Abort { reason: e.reason }),
            other => {
                return Err(HandlerError::Rejected(format!(
                    "not a saga outcome: {}",
                    other.kind().subject()
                )));
            }
        };
        match store::apply(ctx.conn(), order_id, command).await? {
            None => Err(HandlerError::Rejected(format!("no order {order_id}"))),
            Some((_, Some(event))) => {
                ctx.emit(event).await?;
                Ok(())
            }
            Some((_, None)) => Ok(()),
        }
    }
}
