//! Group commit for new orders. Each `POST /orders` hands its validated order to the intake,
//! which writes whatever orders are waiting in one transaction: one statement for the orders, one
//! for their `order.created` events. An idle intake writes each order as it comes; a busy one
//! writes many per commit, so the database's work per order falls as the load rises.

use std::collections::HashMap;
use std::sync::Arc;

use messaging::Outbox;
use shared_events::Envelope;
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use uuid::Uuid;

use anyhow::Context as _;

use crate::rules::Order;
use crate::store::{self, NewRow};

/// The most orders written in one transaction.
const MAX_BATCH: usize = 256;
/// Transactions in flight at once.
const WRITERS: usize = 2;
/// Orders waiting for a writer; a full queue holds requests back.
const QUEUE: usize = 4096;

/// The order written, or `None` when another order already holds its idempotency key.
type Reply = Result<Option<Order>, IntakeError>;

/// Why an order was not written.
#[derive(Clone, Debug, thiserror::Error)]
pub enum IntakeError {
    /// The service is stopping and takes no more orders.
    #[error("the service is stopping")]
    Stopping,
    /// The database could not be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Writing failed for another reason.
    #[error("{0}")]
    Failed(String),
}

impl IntakeError {
    fn of(error: &anyhow::Error) -> IntakeError {
        if messaging::db::is_unavailable_in(error) {
            IntakeError::Unavailable(format!("{error:#}"))
        } else {
            IntakeError::Failed(format!("{error:#}"))
        }
    }
}

struct Submission {
    row: NewRow,
    event: Envelope,
    reply: oneshot::Sender<Reply>,
}

/// Where `POST /orders` sends its orders to be written.
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Submission>,
    /// Orders submitted and not answered yet.
    writing: Arc<std::sync::atomic::AtomicUsize>,
}

impl Intake {
    /// The intake, and the writer task to run beside the server. The writer stops once every
    /// clone of the intake is dropped and what was submitted is written.
    pub fn new(pool: PgPool, outbox: Outbox) -> (Intake, impl Future<Output = ()> + Send) {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let intake = Intake {
            queue,
            writing: Arc::default(),
        };
        (intake, write_all(waiting, pool, outbox))
    }

    /// How many orders are being written or wait to be.
    pub fn writing(&self) -> usize {
        self.writing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes `row` and its `order.created` event, committed together with other orders.
    pub async fn submit(&self, row: NewRow, event: Envelope) -> Reply {
        use std::sync::atomic::Ordering;
        let (reply, answer) = oneshot::channel();
        let submission = Submission { row, event, reply };
        self.writing.fetch_add(1, Ordering::Relaxed);
        let answered = async {
            if self.queue.send(submission).await.is_err() {
                return Err(IntakeError::Stopping);
            }
            answer.await.unwrap_or(Err(IntakeError::Stopping))
        }
        .await;
        self.writing.fetch_sub(1, Ordering::Relaxed);
        answered
    }
}

async fn write_all(mut waiting: mpsc::Receiver<Submission>, pool: PgPool, outbox: Outbox) {
    let permits = Arc::new(Semaphore::new(WRITERS));
    let mut writers = JoinSet::new();
    loop {
        // A writer is free before the batch is gathered, so it holds all that waited meanwhile.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let Some(first) = waiting.recv().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (pool, outbox) = (pool.clone(), outbox.clone());
        writers.spawn(async move {
            write(batch, &pool, &outbox).await;
            drop(permit);
        });
        while writers.try_join_next().is_some() {}
    }
    while writers.join_next().await.is_some() {}
}

/// Writes a batch and answers each request; if the batch fails for another reason than the
/// database being away, each order is written on its own, so that one cannot fail the others.
async fn write(batch: Vec<Submission>, pool: &PgPool, outbox: &Outbox) {
    match insert(&batch, pool, outbox).await {
        Ok(mut written) => {
            for s in batch {
                let _ = s.reply.send(Ok(written.remove(&s.row.order_id)));
            }
        }
        Err(e) if batch.len() > 1 && !messaging::db::is_unavailable_in(&e) => {
            for s in batch {
                let one = insert(std::slice::from_ref(&s), pool, outbox).await;
                let answer = one
                    .map(|mut written| written.remove(&s.row.order_id))
                    .map_err(|e| IntakeError::of(&e));
                let _ = s.reply.send(answer);
            }
        }
        Err(e) => {
            let error = IntakeError::of(&e);
            for s in batch {
                let _ = s.reply.send(Err(error.clone()));
            }
        }
    }
}

async fn insert(
    batch: &[Submission],
    pool: &PgPool,
    outbox: &Outbox,
) -> anyhow::Result<HashMap<Uuid, Order>> {
    let rows: Vec<&NewRow> = batch.iter().map(|s| &s.row).collect();
    let mut tx = pool.begin().await.context("beginning the intake")?;
    let written: HashMap<Uuid, Order> = store::insert(&mut tx, &rows)
        .await
        .context("inserting new orders")?
        .into_iter()
        .map(|o| (o.order_id, o))
        .collect();
    let events: Vec<Envelope> = batch
        .iter()
        .filter(|s| written.contains_key(&s.row.order_id))
        .map(|s| s.event.clone())
        .collect();
    let events = outbox
        .add_all(&mut tx, events)
        .await
        .context("writing order.created to the outbox")?;
    outbox
        .commit(tx, events)
        .await
        .context("committing new orders")?;
    Ok(written)
}
