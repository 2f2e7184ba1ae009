//! Durable JetStream consumers whose handlers run inside a database transaction with the inbox.
//!
//! Every instance of a service binds to the same durable pull consumer, so each event reaches one
//! instance (queue-group semantics). A delivery is handled like this:
//!
//! 1. decode the envelope; an undecodable message, an unknown major version or a subject that does
//!    not match its envelope goes to the `DLQ` stream with the reason, and is acked;
//! 2. begin a transaction and insert `(consumer, eventId)` into the inbox; if the row exists the
//!    event was handled before: roll back and ack, changing nothing;
//! 3. run the handler in the same transaction (its state changes and the events it emits through
//!    the outbox), commit, and only then ack;
//! 4. on a failure, roll back and NAK with a growing delay so that any instance retries later;
//!    while the database is unreachable this goes on indefinitely, but a handler that keeps
//!    failing with the database up is dead-lettered after `max_attempts` deliveries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, message::PublishMessage};
use futures_util::StreamExt;
use shared_events::{Envelope, Event, EventKind, Stream};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::backoff;
use crate::db::is_unavailable;
use crate::metrics as m;
use crate::nats::{ProvisionError, consumer_config, ensure_consumer};
use crate::outbox::Outbox;
use crate::shutdown::Shutdown;

/// What one durable consumer of one service listens to, and how it retries.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// The service name; with the subject it names the durable.
    pub service: String,
    /// The one event (subject) this consumer filters on.
    pub kind: EventKind,
    /// How long the server waits for an ack before it redelivers.
    pub ack_wait: Duration,
    pub max_ack_pending: i64,
    /// Deliveries handled at once by one instance.
    pub concurrency: usize,
    /// Deliveries after which an event that keeps failing (with the database up) is dead-lettered.
    pub max_attempts: i64,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Idle heartbeat asked of the server while pulling.
    pub heartbeat: Duration,
}

impl ConsumerSpec {
    pub fn new(service: &str, kind: EventKind) -> ConsumerSpec {
        ConsumerSpec {
            service: service.into(),
            kind,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1000,
            concurrency: 16,
            max_attempts: 8,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
        }
    }

    /// `<service>-<subject with dashes>`, e.g. `payment-service-order-created-v1`.
    pub fn durable(&self) -> String {
        format!("{}-{}", self.service, self.kind.subject().replace('.', "-"))
    }

    pub fn stream(&self) -> Stream {
        self.kind.stream()
    }
}

/// Why a handler did not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event can never be handled (it contradicts the service's rules): dead-letter it now.
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl HandlerError {
    fn is_unavailable(&self) -> bool {
        matches!(self, HandlerError::Database(e) if is_unavailable(e))
    }
}

/// What a handler gets: the event, and the transaction its effects and emitted events go into.
pub struct Context<'a> {
    tx: &'a mut Transaction<'static, Postgres>,
    outbox: &'a Outbox,
    event: &'a Envelope,
    emitted: usize,
}

impl Context<'_> {
    pub fn event(&self) -> &Envelope {
        self.event
    }

    /// The transaction the handling commits in.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.tx
    }

    /// Emits an event caused by the one being handled, in the same saga; it is published once
    /// the handling commits.
    pub async fn emit(&mut self, payload: impl Into<Event>) -> Result<Uuid, sqlx::Error> {
        let event = self.outbox.event(
            payload,
            self.event.correlation_id,
            Some(self.event.event_id),
        );
        self.outbox.add(self.tx, &event).await?;
        self.emitted += 1;
        Ok(event.event_id)
    }
}

/// A service's reaction to one kind of event.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        ctx: &mut Context<'_>,
    ) -> impl std::future::Future<Output = Result<(), HandlerError>> + Send;
}

/// A provisioned durable consumer with its handler; [`Consumer::run`] drives it.
pub struct Consumer<H> {
    inner: Arc<Inner<H>>,
}

impl<H> Clone for Consumer<H> {
    fn clone(&self) -> Self {
        Consumer {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<H> {
    spec: ConsumerSpec,
    durable: String,
    pool: PgPool,
    js: jetstream::Context,
    outbox: Outbox,
    handler: H,
}

enum Outcome {
    Handled,
    Duplicate,
    Retried,
    DeadLettered,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Duplicate => "duplicate",
            Outcome::Retried => "retried",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

impl<H: Handler> Consumer<H> {
    /// Creates or checks the durable consumer on the server, then returns it ready to run.
    pub async fn provision(
        js: jetstream::Context,
        pool: PgPool,
        outbox: Outbox,
        spec: ConsumerSpec,
        handler: H,
    ) -> Result<Consumer<H>, ProvisionError> {
        let consumer = Consumer {
            inner: Arc::new(Inner {
                durable: spec.durable(),
                spec,
                pool,
                js,
                outbox,
                handler,
            }),
        };
        consumer.ensure().await?;
        Ok(consumer)
    }

    pub fn durable(&self) -> &str {
        &self.inner.durable
    }

    async fn ensure(&self) -> Result<jetstream::consumer::PullConsumer, ProvisionError> {
        let spec = &self.inner.spec;
        let asked = consumer_config(
            &self.inner.durable,
            spec.kind.subject(),
            spec.ack_wait,
            spec.max_ack_pending,
        );
        ensure_consumer(&self.inner.js, spec.stream(), asked).await
    }

    /// Pulls and handles deliveries until `shutdown`, then waits for those in flight. Survives
    /// missed heartbeats, reconnects, server restarts and a deleted consumer (it is recreated).
    pub async fn run(self, shutdown: Shutdown) {
        let spec = &self.inner.spec;
        let permits = Arc::new(Semaphore::new(spec.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut failures = 0u32;
        'session: while !shutdown.is_cancelled() {
            let pulled = match self.ensure().await {
                Ok(consumer) => {
                    consumer
                        .stream()
                        .max_messages_per_batch(spec.concurrency.max(1) * 2)
                        .heartbeat(spec.heartbeat)
                        .expires(spec.heartbeat * 4)
                        .messages()
                        .await
                }
                Err(e) => {
                    failures += 1;
                    self.pause(failures, &format!("{e}"), &shutdown).await;
                    continue;
                }
            };
            let mut messages = match pulled {
                Ok(messages) => messages,
                Err(e) => {
                    failures += 1;
                    self.pause(failures, &format!("{e}"), &shutdown).await;
                    continue;
                }
            };
            let mut errors_in_a_row = 0u32;
            loop {
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break 'session,
                    },
                    () = shutdown.cancelled() => break 'session,
                };
                let next = tokio::select! {
                    n = messages.next() => n,
                    () = shutdown.cancelled() => break 'session,
                };
                match next {
                    Some(Ok(message)) => {
                        errors_in_a_row = 0;
                        failures = 0;
                        let this = self.clone();
                        tasks.spawn(async move {
                            this.process(message).await;
                            drop(permit);
                        });
                    }
                    Some(Err(e)) => {
                        use jetstream::consumer::pull::MessagesErrorKind as K;
                        errors_in_a_row += 1;
                        let fatal = matches!(e.kind(), K::ConsumerDeleted | K::PushBasedConsumer);
                        tracing::debug!(consumer = %self.inner.durable, error = %e, "pull stream error");
                        if fatal || errors_in_a_row >= 3 {
                            failures += 1;
                            self.pause(failures, &format!("{e}"), &shutdown).await;
                            continue 'session;
                        }
                    }
                    None => {
                        failures += 1;
                        self.pause(failures, "pull stream ended", &shutdown).await;
                        continue 'session;
                    }
                }
                while tasks.try_join_next().is_some() {}
            }
        }
        while tasks.join_next().await.is_some() {}
        tracing::debug!(consumer = %self.inner.durable, "consumer stopped");
    }

    async fn pause(&self, failures: u32, why: &str, shutdown: &Shutdown) {
        let spec = &self.inner.spec;
        let delay = backoff::delay(failures, spec.retry_base, spec.retry_max);
        if failures == 1 || failures.is_multiple_of(10) {
            tracing::warn!(consumer = %self.inner.durable, attempt = failures,
                "consumer interrupted ({why}); resubscribing in {delay:?}");
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => {}
        }
    }

    async fn process(&self, message: jetstream::Message) {
        let started = Instant::now();
        let subject = message.subject.to_string();
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let outcome = match Envelope::decode(&message.payload) {
            Err(e) => {
                self.dead_letter(&message, e.code(), &e.to_string(), delivered)
                    .await
            }
            Ok(event) if event.subject() != subject => {
                let why = format!("an {} envelope on subject {subject}", event.subject());
                self.dead_letter(&message, "SUBJECT_MISMATCH", &why, delivered)
                    .await
            }
            Ok(event) => match self.handle(&event).await {
                Ok(true) => self.ack(&message, Outcome::Handled).await,
                Ok(false) => self.ack(&message, Outcome::Duplicate).await,
                Err(HandlerError::Rejected(why)) => {
                    self.dead_letter(&message, "REJECTED", &why, delivered)
                        .await
                }
                Err(e) if !e.is_unavailable() && delivered >= self.inner.spec.max_attempts => {
                    let why = format!("{delivered} attempts, last: {e}");
                    self.dead_letter(&message, "RETRIES_EXHAUSTED", &why, delivered)
                        .await
                }
                Err(e) => {
                    tracing::warn!(consumer = %self.inner.durable, event_id = %event.event_id,
                        attempt = delivered, error = %e, "handling failed; will retry");
                    self.retry_later(&message, delivered).await
                }
            },
        };
        metrics::histogram!(m::HANDLER_SECONDS, "consumer" => self.inner.durable.clone())
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(m::EVENTS_CONSUMED,
            "consumer" => self.inner.durable.clone(),
            "subject" => subject,
            "outcome" => outcome.label())
        .increment(1);
    }

    /// Runs the handler in a transaction with the inbox. `Ok(false)`: handled before, no effect.
    async fn handle(&self, event: &Envelope) -> Result<bool, HandlerError> {
        let mut tx = self.inner.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO messaging_inbox (consumer, event_id, subject) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&self.inner.durable)
        .bind(event.event_id)
        .bind(event.subject())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut ctx = Context {
            tx: &mut tx,
            outbox: &self.inner.outbox,
            event,
            emitted: 0,
        };
        self.inner.handler.handle(&mut ctx).await?;
        let emitted = ctx.emitted;
        tx.commit().await?;
        if emitted > 0 {
            self.inner.outbox.wake();
        }
        Ok(true)
    }

    async fn ack(&self, message: &jetstream::Message, outcome: Outcome) -> Outcome {
        // A lost ack means a redelivery, which the inbox turns into a no-op.
        if let Err(e) = message.ack().await {
            tracing::debug!(consumer = %self.inner.durable, error = %e, "ack not sent");
        }
        outcome
    }

    async fn retry_later(&self, message: &jetstream::Message, delivered: i64) -> Outcome {
        let spec = &self.inner.spec;
        let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
        let delay = backoff::delay(attempt, spec.retry_base, spec.retry_max);
        if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
            tracing::debug!(consumer = %self.inner.durable, error = %e, "nak not sent");
        }
        Outcome::Retried
    }

    /// Copies the message to `dlq.<durable>` with why, records that in the database, then acks
    /// it. If the DLQ or the database cannot take it, the message is retried later instead: it is
    /// never acked without landing somewhere. A message already dead-lettered (redelivered after a
    /// server lost its acks) is acked without a second copy.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        code: &str,
        detail: &str,
        delivered: i64,
    ) -> Outcome {
        let (stream, sequence) = message
            .info()
            .map(|i| (i.stream.to_owned(), i.stream_sequence))
            .unwrap_or_default();
        match self.dead_lettered_before(&stream, sequence).await {
            Ok(true) => return self.ack(message, Outcome::Duplicate).await,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(consumer = %self.inner.durable, error = %e, "could not check dead letters; retrying later");
                return self.retry_later(message, delivered).await;
            }
        }
        let detail: String = detail
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(1000)
            .collect();
        let publish = PublishMessage::build()
            .message_id(format!("dlq-{}-{stream}-{sequence}", self.inner.durable))
            .header("Dlq-Reason", code)
            .header("Dlq-Detail", detail.as_str())
            .header("Dlq-Consumer", self.inner.durable.as_str())
            .header("Dlq-Subject", message.subject.as_str())
            .header("Dlq-Stream", stream.as_str())
            .header("Dlq-Stream-Sequence", sequence.to_string().as_str())
            .header("Dlq-Delivered", delivered.to_string().as_str())
            .payload(message.payload.clone());
        let subject = format!("dlq.{}", self.inner.durable);
        let stored = match self.inner.js.send_publish(subject, publish).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let recorded = match stored {
            Ok(()) => sqlx::query(
                "INSERT INTO messaging_dead_letters (consumer, stream, stream_sequence, reason) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&self.inner.durable)
            .bind(&stream)
            .bind(sequence as i64)
            .bind(code)
            .execute(&self.inner.pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match recorded {
            Ok(()) => {
                tracing::warn!(consumer = %self.inner.durable, reason = code, %detail,
                    stream_sequence = sequence, "message dead-lettered");
                metrics::counter!(m::DEAD_LETTERED,
                    "consumer" => self.inner.durable.clone(), "reason" => code.to_owned())
                .increment(1);
                self.ack(message, Outcome::DeadLettered).await
            }
            Err(e) => {
                // A copy may already be in the DLQ: the retry republishes it under the same
                // Nats-Msg-Id, which JetStream drops within its window.
                tracing::warn!(consumer = %self.inner.durable, error = %e,
                    "could not dead-letter; retrying later");
                self.retry_later(message, delivered).await
            }
        }
    }

    async fn dead_lettered_before(&self, stream: &str, sequence: u64) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT stream_sequence FROM messaging_dead_letters \
             WHERE consumer = $1 AND stream = $2 AND stream_sequence = $3",
        )
        .bind(&self.inner.durable)
        .bind(stream)
        .bind(sequence as i64)
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(found.is_some())
    }
}
