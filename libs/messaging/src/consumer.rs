//! Durable JetStream consumers whose handlers run inside a database transaction with the inbox.
//!
//! Every instance of a service binds to the same durable pull consumer, so each event reaches one
//! instance (queue-group semantics). Deliveries are handled in batches: the consumer takes the
//! next delivery, and with it whatever else has already arrived (up to `max_batch`), so an idle
//! consumer handles each event at once and a busy one handles many per transaction.
//!
//! 1. decode each envelope; an undecodable message, an unknown major version or a subject that
//!    does not match its envelope goes to the `DLQ` stream with the reason, and is acked;
//! 2. begin a transaction and run the handler on the batch's events (its state changes); then, in
//!    one statement, record every handled `(consumer, eventId)` in the inbox and write the events
//!    it emits to the outbox; commit, and only then ack. An event the inbox already holds was
//!    handled before: that statement fails on the inbox's key, the batch is rolled back and run
//!    again without it, and it is acked, changing nothing;
//! 3. on a failure, roll back. While the database is unreachable every delivery is NAKed with a
//!    growing delay, indefinitely. Any other failure of a batch of several is retried one
//!    delivery at a time, so that one bad event cannot hold the others back; a single delivery
//!    that fails is NAKed with a growing delay, and dead-lettered after `max_attempts`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, message::PublishMessage};
use shared_events::{Envelope, Event, EventKind, Reaction, Stream};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::backoff;
use crate::db::{is_transient, is_unavailable, sqlx_error_in};
use crate::metrics as m;
use crate::nats::{ProvisionError, consumer_config, ensure_consumer};
use crate::outbox::{Outbox, is_inbox_conflict};
use crate::pull::{Batches, Pulling};
use crate::shutdown::Shutdown;
use crate::trace::{self, TraceParent};
use tracing::Instrument as _;

/// What one durable consumer of one service listens to, and how it batches and retries.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// The service name; with the subject it names the durable.
    pub service: String,
    /// The one event (subject) this consumer filters on.
    pub kind: EventKind,
    /// How long the server waits for an ack before it redelivers.
    pub ack_wait: Duration,
    pub max_ack_pending: i64,
    /// Batches handled at once by one instance.
    pub concurrency: usize,
    /// The most deliveries handled in one transaction.
    pub max_batch: usize,
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
            max_ack_pending: 2000,
            concurrency: 2,
            max_batch: 200,
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

/// Why a handler did not handle a batch.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// An event can never be handled (it contradicts the service's rules): dead-letter it now.
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl HandlerError {
    /// An event this consumer was not made for (a subject its filter should not have let in).
    pub fn not_handled(service: &str, event: &Envelope) -> HandlerError {
        HandlerError::Rejected(format!("{service} does not handle {}", event.subject()))
    }

    /// The database error behind this one, if any (also through added context).
    fn database(&self) -> Option<&sqlx::Error> {
        match self {
            HandlerError::Database(e) => Some(e),
            HandlerError::Other(e) => sqlx_error_in(e),
            HandlerError::Rejected(_) => None,
        }
    }

    fn is_unavailable(&self) -> bool {
        self.database().is_some_and(is_unavailable)
    }

    /// Worth retrying however often it happens: the database away, or a deadlock.
    fn is_transient(&self) -> bool {
        self.database().is_some_and(is_transient)
    }
}

/// The transaction a batch is handled in, and what the handler asks of it: events to emit
/// (written to the outbox in one statement before the commit) and events to retry later.
pub struct Batch<'a> {
    tx: &'a mut Transaction<'static, Postgres>,
    outbox: &'a Outbox,
    emitted: Vec<Envelope>,
    deferred: HashMap<Uuid, String>,
    /// The trace of the event being decided on (see [`Batch::enter`]): what it emits continues.
    current: Option<TraceParent>,
}

impl Batch<'_> {
    /// The transaction the batch commits in.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.tx
    }

    /// Emits an event caused by `cause`, in its saga; it is published once the batch commits.
    pub fn emit(&mut self, cause: &Envelope, payload: impl Into<Event>) -> &Envelope {
        let mut event = self
            .outbox
            .event(payload, cause.correlation_id, Some(cause.event_id));
        event.trace = self.current.or(cause.trace.map(TraceParent::child));
        self.emitted.push(event);
        &self.emitted[self.emitted.len() - 1]
    }

    /// The events emitted so far in this batch, in order.
    pub fn emitted(&self) -> &[Envelope] {
        &self.emitted
    }

    /// Starts deciding on `event`: until the next call, what is emitted continues its trace, in a
    /// span of its own (a child in that trace, when spans are made). Keep the span while deciding.
    pub fn enter(&mut self, event: &Envelope) -> tracing::span::EnteredSpan {
        let span = crate::traced_span!(event.trace, "decide", event_id = %event.event_id,
            subject = event.subject(), saga_id = %event.correlation_id);
        self.current = event.trace.map(|t| trace::within(t, &span));
        span.entered()
    }

    /// Runs a service's rules over the batch's events in delivery order: `decide` takes the
    /// state and an event to the state after it and a reaction, which is carried out. Returns the
    /// state after the last event, for the caller to save.
    pub fn decide_each<S>(
        &mut self,
        events: &[Envelope],
        mut state: S,
        mut decide: impl FnMut(S, &Envelope) -> Result<(S, Reaction), HandlerError>,
    ) -> Result<S, HandlerError> {
        for event in events {
            let _span = self.enter(event);
            let (next, reaction) = decide(state, event)?;
            state = next;
            self.react(event, reaction);
        }
        Ok(state)
    }

    /// Carries out what the rules decided for `cause`: emit the event, or leave `cause` for
    /// later.
    pub fn react(&mut self, cause: &Envelope, reaction: Reaction) {
        match reaction {
            Reaction::Nothing => {}
            Reaction::Emit(event) => {
                self.emit(cause, event);
            }
            Reaction::NotYet(why) => self.retry_later(cause, why),
        }
    }

    /// Leaves `event` unhandled (its inbox row is taken back) and has it delivered again later:
    /// it arrived before something it depends on. It counts as an attempt.
    pub fn retry_later(&mut self, event: &Envelope, why: impl Into<String>) {
        self.deferred.insert(event.event_id, why.into());
    }
}

/// A service's reaction to one kind of event.
pub trait Handler: Send + Sync + 'static {
    /// Keys (for example the orders the events name) on which the batch's transaction is
    /// serialised with every other transaction naming one of them, on any instance; taken with
    /// the transaction's first statement (see [`crate::db::begin_serialised`]). None by default.
    fn serialise_on(&self, events: &[Envelope]) -> Vec<Uuid> {
        let _ = events;
        Vec::new()
    }

    /// Handles `events`, each new to this consumer, in delivery order, inside `batch`'s
    /// transaction. An error rolls back the whole batch.
    fn handle(
        &self,
        events: &[Envelope],
        batch: &mut Batch<'_>,
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
    /// A dead letter replayed for another consumer of the same subject.
    NotForUs,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Duplicate => "duplicate",
            Outcome::Retried => "retried",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::NotForUs => "not_for_us",
        }
    }
}

/// On a message replayed from the DLQ: the durable consumer it is replayed for. Every other
/// consumer of its subject acks it untouched: they handled the event, or dead-lettered it
/// themselves (with an entry of their own to replay).
pub const REPLAY_FOR: &str = "Dlq-Replay-For";
/// On a message replayed from the DLQ: the id (DLQ stream sequence) of the entry replayed.
pub const REPLAY_OF: &str = "Dlq-Replay-Of";

/// Headers a replay sends again: all but NATS's own (the replay gets a `Nats-Msg-Id` of its
/// own) and those of a dead-lettering or an earlier replay.
pub fn kept_header(name: &str) -> bool {
    !name.starts_with("Nats-") && !name.starts_with("Dlq-")
}

/// How a DLQ copy carries the original message's own `Nats-*` and `Dlq-*` headers (the copy
/// needs a `Nats-Msg-Id` and `Dlq-*` headers of its own): `Dlq-Original-Nats-Msg-Id`,
/// `Dlq-Original-Dlq-Replay-For` (a replay that was dead-lettered again).
pub const ORIGINAL: &str = "Dlq-Original-";

/// The name under which a DLQ copy keeps the original header `name`: NATS's own and those of an
/// earlier dead-lettering or replay under [`ORIGINAL`], the rest as they are.
pub fn dead_letter_header(name: &str) -> String {
    if name.starts_with("Nats-") || name.starts_with("Dlq-") {
        format!("{ORIGINAL}{name}")
    } else {
        name.to_owned()
    }
}

/// The original message's headers, read back from its DLQ copy's: every header as it was
/// published, `Nats-Msg-Id` included, without the copy's own.
pub fn original_headers<'a>(
    copy: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    copy.filter_map(|(name, value)| match name.strip_prefix(ORIGINAL) {
        Some(original) => Some((original.to_owned(), value.to_owned())),
        None if kept_header(name) => Some((name.to_owned(), value.to_owned())),
        None => None,
    })
    .collect()
}

/// A delivery whose envelope decoded.
struct Delivery {
    message: jetstream::Message,
    event: Envelope,
    delivered: i64,
}

/// What a committed batch did with each of its events.
struct Committed {
    /// Events handled now (the rest of the batch were duplicates).
    handled: HashSet<Uuid>,
    /// Events the handler left for later, with why.
    deferred: HashMap<Uuid, String>,
}

impl<H: Handler> Batches for Consumer<H> {
    fn durable(&self) -> &str {
        &self.inner.durable
    }

    async fn ensure(&self) -> Result<jetstream::consumer::PullConsumer, ProvisionError> {
        self.ensure_durable().await
    }

    async fn process(&self, messages: Vec<jetstream::Message>) {
        self.process_batch(messages).await
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
        consumer.ensure_durable().await?;
        Ok(consumer)
    }

    pub fn durable(&self) -> &str {
        &self.inner.durable
    }

    async fn ensure_durable(&self) -> Result<jetstream::consumer::PullConsumer, ProvisionError> {
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
        let pulling = Pulling {
            max_batch: spec.max_batch,
            concurrency: spec.concurrency,
            heartbeat: spec.heartbeat,
            retry_base: spec.retry_base,
            retry_max: spec.retry_max.min(crate::pull::RESUBSCRIBE_MAX),
        };
        crate::pull::run(self, pulling, shutdown).await;
    }

    fn count(&self, subject: &str, outcome: Outcome) {
        metrics::counter!(m::EVENTS_CONSUMED,
            "consumer" => self.inner.durable.clone(),
            "subject" => subject.to_owned(),
            "outcome" => outcome.label())
        .increment(1);
    }

    /// Dead-letters what does not decode, then handles the rest as one batch.
    async fn process_batch(&self, messages: Vec<jetstream::Message>) {
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            let subject = message.subject.to_string();
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
            let replayed_for = message
                .headers
                .as_ref()
                .and_then(|h| h.get(REPLAY_FOR))
                .map(async_nats::HeaderValue::as_str);
            if replayed_for.is_some_and(|durable| durable != self.inner.durable) {
                let outcome = self.ack(&message, Outcome::NotForUs).await;
                self.count(&subject, outcome);
                continue;
            }
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
                Ok(mut event) => {
                    event.trace = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(trace::HEADER))
                        .and_then(|v| v.as_str().parse().ok());
                    deliveries.push(Delivery {
                        message,
                        event,
                        delivered,
                    });
                    continue;
                }
            };
            self.count(&subject, outcome);
        }
        if !deliveries.is_empty() {
            metrics::histogram!(m::BATCH_SIZE, "consumer" => self.inner.durable.clone())
                .record(deliveries.len() as f64);
            // One span for the batch (its transaction and acks), linked to each event's trace;
            // each event is decided on in a span of its own trace (see Batch::enter).
            let span = crate::traced_span!(None::<TraceParent>, "consume", consumer = %self.inner.durable,
                events = deliveries.len());
            for d in &deliveries {
                if let Some(t) = d.event.trace {
                    trace::link(&span, t);
                }
            }
            self.handle_batch(deliveries).instrument(span).await;
        }
        metrics::histogram!(m::HANDLER_SECONDS, "consumer" => self.inner.durable.clone())
            .record(started.elapsed().as_secs_f64());
    }

    /// Handles `deliveries` in one transaction; if that fails for any reason but the database
    /// being away, handles each on its own instead.
    async fn handle_batch(&self, deliveries: Vec<Delivery>) {
        match self.transact(&deliveries).await {
            Ok(committed) => {
                for d in &deliveries {
                    let outcome = match committed.deferred.get(&d.event.event_id) {
                        Some(why) => self.failed(d, why).await,
                        None if committed.handled.contains(&d.event.event_id) => {
                            self.ack(&d.message, Outcome::Handled).await
                        }
                        None => self.ack(&d.message, Outcome::Duplicate).await,
                    };
                    self.count(&d.message.subject, outcome);
                }
            }
            Err(e) if deliveries.len() > 1 && !e.is_unavailable() => {
                tracing::debug!(consumer = %self.inner.durable, error = %e, size = deliveries.len(),
                    "batch failed; handling its deliveries one by one");
                for d in deliveries {
                    Box::pin(self.handle_batch(vec![d])).await;
                }
            }
            Err(e) => {
                for d in &deliveries {
                    let outcome = match &e {
                        HandlerError::Rejected(why) => {
                            self.dead_letter(&d.message, "REJECTED", why, d.delivered)
                                .await
                        }
                        e if e.is_transient() => {
                            tracing::debug!(consumer = %self.inner.durable, error = %e,
                                attempt = d.delivered, "database unavailable; will retry");
                            self.retry_later(&d.message, d.delivered).await
                        }
                        e => self.failed(d, &e.to_string()).await,
                    };
                    self.count(&d.message.subject, outcome);
                }
            }
        }
    }

    /// A delivery that could not be handled now: retried later, or dead-lettered once it has
    /// used its attempts (while the database is reachable).
    async fn failed(&self, d: &Delivery, why: &str) -> Outcome {
        if d.delivered >= self.inner.spec.max_attempts {
            let why = format!("{} attempts, last: {why}", d.delivered);
            return self
                .dead_letter(&d.message, "RETRIES_EXHAUSTED", &why, d.delivered)
                .await;
        }
        tracing::warn!(consumer = %self.inner.durable, event_id = %d.event.event_id,
            attempt = d.delivered, error = %why, "handling failed; will retry");
        self.retry_later(&d.message, d.delivered).await
    }

    /// Runs the handler on the batch's new events in one transaction with the inbox. The inbox
    /// rows are written last, with the outbox rows, in one statement: an event handled before
    /// (a redelivery, or a copy) makes that statement fail on the inbox's key, and the batch is
    /// then run again without the events the inbox holds. A copy being handled by another
    /// instance at the same moment waits on that key until the other commits or rolls back.
    async fn transact(&self, deliveries: &[Delivery]) -> Result<Committed, HandlerError> {
        let mut before: HashSet<Uuid> = HashSet::new();
        loop {
            match self.attempt(deliveries, &before).await {
                Err(HandlerError::Database(e)) if is_inbox_conflict(&e) => {
                    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.event.event_id).collect();
                    let known: Vec<Uuid> = sqlx::query_scalar(
                        "SELECT event_id FROM messaging_inbox WHERE event_id = ANY($1)",
                    )
                    .bind(&ids)
                    .fetch_all(&self.inner.pool)
                    .await?;
                    let count = before.len();
                    before.extend(known);
                    if before.len() == count {
                        // The conflicting row is gone again (its transaction rolled back).
                        return Err(HandlerError::Database(e));
                    }
                }
                other => return other,
            }
        }
    }

    /// One try at a batch, leaving out the events known to be handled `before`.
    async fn attempt(
        &self,
        deliveries: &[Delivery],
        before: &HashSet<Uuid>,
    ) -> Result<Committed, HandlerError> {
        // Each new event once, in delivery order.
        let mut seen = HashSet::with_capacity(deliveries.len());
        let events: Vec<Envelope> = deliveries
            .iter()
            .filter(|d| !before.contains(&d.event.event_id) && seen.insert(d.event.event_id))
            .map(|d| d.event.clone())
            .collect();
        if events.is_empty() {
            return Ok(Committed {
                handled: HashSet::new(),
                deferred: HashMap::new(),
            });
        }
        let keys = self.inner.handler.serialise_on(&events);
        let mut tx = crate::db::begin_serialised(&self.inner.pool, &keys).await?;
        // An event published in several majors reaches this service once through each of its
        // consumers, and the second copy usually comes while the first is being handled or
        // soon after. Asking the inbox first (once the batch's locks are held, so a copy being
        // handled elsewhere has committed) turns that copy into one lookup, instead of the
        // handler's whole work, a rollback, and a second attempt without it.
        let mut events = events;
        if self.inner.spec.kind.majors().nth(1).is_some() {
            let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
            let known: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(
                "SELECT event_id FROM messaging_inbox WHERE event_id = ANY($1)",
            )
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            if !known.is_empty() {
                events.retain(|e| !known.contains(&e.event_id));
                if events.is_empty() {
                    tx.rollback().await?;
                    return Ok(Committed {
                        handled: HashSet::new(),
                        deferred: HashMap::new(),
                    });
                }
            }
        }
        let mut batch = Batch {
            tx: &mut tx,
            outbox: &self.inner.outbox,
            emitted: Vec::new(),
            deferred: HashMap::new(),
            current: None,
        };
        self.inner.handler.handle(&events, &mut batch).await?;
        let Batch {
            emitted, deferred, ..
        } = batch;
        // In event id order, so that two instances holding overlapping batches wait for each
        // other instead of deadlocking.
        let mut handled: Vec<Uuid> = events
            .iter()
            .filter(|e| !deferred.contains_key(&e.event_id))
            .map(|e| e.event_id)
            .collect();
        handled.sort_unstable();
        let written = self
            .inner
            .outbox
            .add_all_handled(&mut tx, Some((&self.inner.durable, &handled)), emitted)
            .await?;
        self.inner.outbox.commit(tx, written).await?;
        Ok(Committed {
            handled: handled.into_iter().collect(),
            deferred,
        })
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
        // Where the message sits in its stream: the key that makes a redelivered message land
        // in the DLQ once. A message without that (not a JetStream delivery) has no such key:
        // each such message is dead-lettered as itself.
        let place = message
            .info()
            .ok()
            .map(|i| (i.stream.to_owned(), i.stream_sequence));
        if let Some((stream, sequence)) = &place {
            match self.dead_lettered_before(stream, *sequence).await {
                Ok(true) => return self.ack(message, Outcome::Duplicate).await,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(consumer = %self.inner.durable, error = %e, "could not check dead letters; retrying later");
                    return self.retry_later(message, delivered).await;
                }
            }
        }
        let (stream, sequence) = place.clone().unwrap_or_default();
        let detail: String = detail
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(1000)
            .collect();
        let message_id = match &place {
            Some((stream, sequence)) => format!("dlq-{}-{stream}-{sequence}", self.inner.durable),
            None => format!("dlq-{}-{}", self.inner.durable, Uuid::now_v7()),
        };
        let mut publish = PublishMessage::build().message_id(message_id);
        for (name, values) in message.headers.iter().flat_map(|h| h.iter()) {
            let kept = dead_letter_header(name.as_ref());
            for value in values {
                publish = publish.header(kept.as_str(), value.as_str());
            }
        }
        let publish = publish
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
            Ok(()) if place.is_none() => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_keeps_every_original_header_and_gives_them_back() {
        // A replay (with the replay's own headers) dead-lettered again.
        let original = [
            ("Nats-Msg-Id", "replay-7-0190"),
            ("traceparent", "00-1-2-01"),
            ("Dlq-Replay-For", "payment-service"),
        ];
        let copy: Vec<(String, &str)> = original
            .iter()
            .map(|(n, v)| (dead_letter_header(n), *v))
            .chain([
                ("Nats-Msg-Id".to_owned(), "dlq-x-ORDERS-7"),
                ("Dlq-Reason".to_owned(), "MALFORMED"),
            ])
            .collect();
        assert!(
            copy.iter()
                .any(|(n, v)| n == "Dlq-Original-Nats-Msg-Id" && *v == "replay-7-0190")
        );
        let back = original_headers(copy.iter().map(|(n, v)| (n.as_str(), *v)));
        assert_eq!(
            back,
            [
                ("Nats-Msg-Id".to_owned(), "replay-7-0190".to_owned()),
                ("traceparent".to_owned(), "00-1-2-01".to_owned()),
                ("Dlq-Replay-For".to_owned(), "payment-service".to_owned()),
            ]
        );
    }
}
