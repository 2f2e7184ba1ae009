//! The transactional outbox and the relay that publishes it.
//!
//! A service writes its events with [`Outbox::add_all`] in the same transaction as the state change
//! that causes them, so both commit or neither does, and commits with [`Outbox::commit`], which
//! hands the committed events to the [`Relay`]. The relay publishes them to JetStream with
//! `Nats-Msg-Id` = event id, waits for every publish ack, and only then stamps the rows sent.
//! Crashing anywhere in between leaves the rows unsent, and they are published again: JetStream
//! drops the repeat within its duplicate window, and the consumers' inbox drops it after. Sent
//! rows are kept for the relay's retention (a day by default), so that events a NATS server
//! acknowledged and then lost can be published again (docs/operations.md), then deleted.
//!
//! Two paths lead to JetStream:
//!
//! - the **hand-off**: events committed by this process go straight to its relay, which needs no
//!   query to find them. Their `sent_at` stamps are written together, up to a second later (one
//!   statement for all the events of that second: at low rates a stamp per event cost more than
//!   the publish).
//! - the **poller**: once a second, the relay of every instance looks for unsent rows older than
//!   the hand-off lease (rows of a process that died before publishing them, or whose hand-off
//!   failed), locks them with `FOR UPDATE SKIP LOCKED`, publishes and stamps them in one
//!   transaction.
//!
//! A row is never published by both paths at once: the hand-off publishes a row from memory only
//! within a third of the lease after writing it (and a publish gives up after the ack timeout),
//! and the poller takes it only once the lease has passed. A handed row that grows older than
//! that third while its publish keeps failing (NATS down, its store full) is published by its
//! own relay from the table, locked like the poller's rows, as soon as publishing works again:
//! an outage of any length adds no wait for the lease to the recovery.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::future::join_all;
use shared_events::{Envelope, Event, EventKind, Majors};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use crate::backoff;
use crate::metrics as m;
use crate::shutdown::Shutdown;
use crate::trace::{self, TraceParent};

/// Events handed from committed transactions to the relay. Bounded: past the bound, events are
/// left to the poller.
struct Handoff {
    queue: Mutex<VecDeque<Handed>>,
    ready: Notify,
}

/// The most events waiting for the relay in memory.
const HANDOFF_BOUND: usize = 20_000;

struct Handed {
    /// When the event's row was written (no later than the database stamped it).
    written: Instant,
    row: Row,
}

/// An outbox row as it is published: the body exactly as stored. An event published in two
/// majors has a row for each, with the same event id.
#[derive(Clone)]
struct Row {
    /// The row's key, known once it is written.
    id: i64,
    event_id: Uuid,
    subject: String,
    body: bytes::Bytes,
    trace: Option<TraceParent>,
}

impl Row {
    /// The `Nats-Msg-Id` of this copy (see [`EventKind::message_id`]).
    fn message_id(&self) -> String {
        match EventKind::from_subject(&self.subject) {
            Some(kind) => kind.message_id(self.event_id),
            None => self.event_id.to_string(),
        }
    }
}

/// An unsent outbox row as the poller reads it.
#[derive(sqlx::FromRow)]
struct Stored {
    id: i64,
    event_id: Uuid,
    subject: String,
    body: Vec<u8>,
    traceparent: Option<String>,
}

/// What the outbox holds unsent.
#[derive(sqlx::FromRow)]
struct Backlog {
    rows: i64,
    oldest_age: Option<f64>,
}

/// Events written to the outbox in a transaction not yet committed; [`Outbox::commit`] takes it.
#[must_use = "pass it to Outbox::commit, or the events wait for the poller"]
pub struct Written {
    at: Instant,
    rows: Vec<Row>,
}

impl Written {
    /// Nothing written yet.
    pub fn none() -> Written {
        Written {
            at: Instant::now(),
            rows: Vec::new(),
        }
    }

    /// Adds what a later write of the same transaction wrote.
    pub fn extend(&mut self, other: Written) {
        if self.rows.is_empty() || other.at < self.at {
            self.at = other.at;
        }
        self.rows.extend(other.rows);
    }

    /// How many events were written.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A service's handle on its outbox: builds its events, writes them, and hands them to its relay.
#[derive(Clone)]
pub struct Outbox {
    producer: Arc<str>,
    /// The majors each event is written in (see [`Envelope::copies`]).
    majors: Arc<Majors>,
    handoff: Arc<Handoff>,
}

impl Outbox {
    /// The outbox of `producer`, which publishes every major it knows of each event.
    pub fn new(producer: &str) -> Outbox {
        Outbox {
            producer: producer.into(),
            majors: Arc::new(Majors::all()),
            handoff: Arc::new(Handoff {
                queue: Mutex::new(VecDeque::new()),
                ready: Notify::new(),
            }),
        }
    }

    /// The same outbox, publishing `majors` of each event from now on.
    pub fn with_majors(mut self, majors: Majors) -> Outbox {
        self.majors = Arc::new(majors);
        self
    }

    /// A new event of this service, in saga `correlation_id`, caused by `causation_id`. It
    /// continues the trace of the request being served, if any (see [`crate::trace::current`]).
    pub fn event(
        &self,
        payload: impl Into<Event>,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
    ) -> Envelope {
        let mut event = Envelope::new(payload, correlation_id, causation_id, &self.producer);
        event.trace = crate::trace::current();
        event
    }

    /// Queues `event` for publishing as part of the caller's transaction.
    pub async fn add(
        &self,
        conn: &mut PgConnection,
        event: Envelope,
    ) -> Result<Written, sqlx::Error> {
        self.add_all(conn, vec![event]).await
    }

    /// Queues `events`, in this order, as part of the caller's transaction, in one statement.
    pub async fn add_all(
        &self,
        conn: &mut PgConnection,
        events: Vec<Envelope>,
    ) -> Result<Written, sqlx::Error> {
        self.add_all_handled(conn, None, events).await
    }

    /// Like [`Outbox::add_all`], and in the same statement records the events `handled`
    /// in the inbox, as handled by `consumer`. An event the inbox holds already makes the statement
    /// fail on the inbox's key (see [`is_inbox_conflict`]).
    pub(crate) async fn add_all_handled(
        &self,
        conn: &mut PgConnection,
        handled: Option<(&str, &[Uuid])>,
        events: Vec<Envelope>,
    ) -> Result<Written, sqlx::Error> {
        let at = Instant::now();
        let mut rows: Vec<Row> = Vec::with_capacity(events.len());
        for event in &events {
            let copies = event
                .copies(&self.majors)
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            rows.extend(copies.into_iter().map(|(kind, body)| Row {
                id: 0,
                event_id: event.event_id,
                subject: kind.subject().to_owned(),
                body: body.into(),
                trace: event.trace,
            }));
        }
        let (consumer, handled) = handled.unwrap_or_default();
        if rows.is_empty() && handled.is_empty() {
            return Ok(Written { at, rows });
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
        let subjects: Vec<&str> = rows.iter().map(|r| r.subject.as_str()).collect();
        let bodies: Vec<&[u8]> = rows.iter().map(|r| r.body.as_ref()).collect();
        let traces: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.trace.map(|t| t.to_string()))
            .collect();
        // clock_timestamp(), not the transaction's start: the hand-off lease counts from the write.
        let keys: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "WITH inbox AS (INSERT INTO messaging_inbox (consumer, event_id) \
             SELECT $4, e FROM unnest($5::uuid[]) AS e) \
             INSERT INTO messaging_outbox (event_id, subject, body, traceparent, created_at) \
             SELECT e, s, b, tp, clock_timestamp() \
             FROM unnest($1::uuid[], $2::text[], $3::bytea[], $6::text[]) AS t(e, s, b, tp) \
             RETURNING event_id, subject, id",
        )
        .bind(&ids)
        .bind(&subjects)
        .bind(&bodies)
        .bind(consumer)
        .bind(handled)
        .bind(&traces)
        .fetch_all(conn)
        .await?;
        let keys: std::collections::HashMap<(Uuid, String), i64> =
            keys.into_iter().map(|(e, s, id)| ((e, s), id)).collect();
        for row in &mut rows {
            let key = (row.event_id, std::mem::take(&mut row.subject));
            row.id = keys.get(&key).copied().unwrap_or_default();
            row.subject = key.1;
        }
        // Only what the database stored is handed to the relay (a trigger may drop a row).
        rows.retain(|r| r.id != 0);
        Ok(Written { at, rows })
    }

    /// Commits `tx`, in which `written` was written, and hands those events to the relay.
    pub async fn commit(
        &self,
        tx: Transaction<'_, Postgres>,
        written: Written,
    ) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.hand_off(written);
        Ok(())
    }

    fn hand_off(&self, written: Written) {
        if written.rows.is_empty() {
            return;
        }
        {
            let mut queue = self
                .handoff
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let room = HANDOFF_BOUND.saturating_sub(queue.len());
            queue.extend(written.rows.into_iter().take(room).map(|row| Handed {
                written: written.at,
                row,
            }));
        }
        self.handoff.ready.notify_one();
    }

    /// Takes up to `max` handed-off events still young enough to publish. Those written more
    /// than `young` ago are taken off the queue too, and their row ids added to `stale`: the
    /// relay publishes those rows from the table, under a row lock ([`Relay::publish_locked`]).
    fn take_handed(&self, max: usize, young: Duration, stale: &mut Vec<i64>) -> Vec<Handed> {
        let mut queue = self
            .handoff
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::with_capacity(max.min(queue.len()));
        while out.len() < max {
            match queue.pop_front() {
                Some(h) if h.written.elapsed() < young => out.push(h),
                Some(h) => stale.push(h.row.id),
                None => break,
            }
        }
        out
    }

    /// Puts events whose publish failed back at the front, to be tried again.
    fn put_back(&self, handed: Vec<Handed>) {
        let mut queue = self
            .handoff
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for h in handed.into_iter().rev() {
            queue.push_front(h);
        }
    }
}

/// Whether `error` is an inbox insert refused because the event was handled before.
pub(crate) fn is_inbox_conflict(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("23505") && db.constraint() == Some("messaging_inbox_pkey"))
}

#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Rows published per round trip; their acks are awaited together.
    pub batch_size: usize,
    /// How often to look for rows the hand-off did not publish.
    pub poll_interval: Duration,
    /// How long a row belongs to the hand-off of the process that wrote it; after that the
    /// poller of any instance publishes it.
    pub handoff_lease: Duration,
    /// How long `sent_at` stamps are gathered before they are written together. At most a third
    /// of the hand-off lease is used: an unstamped row is safe from the poller only while its
    /// lease runs.
    pub mark_delay: Duration,
    /// Sent rows are deleted once this old, and inbox and dead-letter records once older than
    /// the streams' maximum age plus this (by then no redelivery of their event is possible;
    /// docs/messaging.md, "Retention").
    pub retention: Duration,
    /// How often the rows past retention are deleted.
    pub prune_interval: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl RelayConfig {
    /// How long after an event was handled a copy of it can still arrive: JetStream keeps an
    /// event [`MAX_EVENT_AGE`](crate::nats::MAX_EVENT_AGE), and a sent row can be published again
    /// for [`retention`](Self::retention). Records that exist to recognise a late copy (the inbox,
    /// dead-letter records, a participant's cancelled-first orders) are kept this long.
    pub fn redelivery_horizon(&self) -> Duration {
        crate::nats::MAX_EVENT_AGE + self.retention
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 256,
            poll_interval: Duration::from_secs(1),
            handoff_lease: Duration::from_secs(15),
            mark_delay: Duration::from_secs(1),
            retention: Duration::from_secs(24 * 3600),
            prune_interval: Duration::from_secs(60),
            retry_base: Duration::from_millis(100),
            // A publish refused for a while (NATS down, its store full) is tried again within a
            // second of the refusal ending.
            retry_max: Duration::from_secs(1),
        }
    }
}

/// Counters a relay keeps across restarts of its task (clones share them).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Rows stamped sent.
    pub published: AtomicU64,
    /// Publishes JetStream reported as duplicates: rows published before, whose stamp was lost.
    pub republished: AtomicU64,
    /// Rounds that failed (NATS or the database away) and were retried after a backoff.
    pub failed_rounds: AtomicU64,
}

/// Publishes a database's outbox. Several relays may run on one database (one per instance): the
/// poller locks the rows it publishes with `FOR UPDATE SKIP LOCKED`, and leaves alone rows still
/// within their hand-off lease, so no row is ever published by two relays at the same time.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    outbox: Outbox,
    config: RelayConfig,
    stats: Arc<RelayStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// JetStream refused or did not acknowledge a publish; the kind says how
    /// (`PublishErrorKind`: timed out, stream not found, ...).
    #[error("publishing {subject}: {source}")]
    Publish {
        subject: String,
        #[source]
        source: jetstream::context::PublishError,
    },
    /// The client is not connected to NATS: nothing was sent.
    #[error("publishing {subject}: not connected to NATS")]
    NotConnected { subject: String },
}

/// When the poller comes next, and how its rounds have gone.
struct Poller {
    failures: u32,
    next: Instant,
    last_prune: Instant,
}

/// What one publish round achieved: the events JetStream acknowledged, and the first failure.
struct Published {
    /// Row ids.
    acked: Vec<i64>,
    failure: Option<RelayError>,
}

impl Relay {
    pub fn new(pool: PgPool, js: jetstream::Context, outbox: Outbox, config: RelayConfig) -> Relay {
        Relay {
            pool,
            js,
            outbox,
            config,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// Publishes until `shutdown`; what was handed off by then is published, and the stamps
    /// gathered are written, before it returns.
    pub async fn run(self, shutdown: Shutdown) {
        let young = self.config.handoff_lease / 3;
        // A published row is stamped within a third of the lease too, so the poller never finds
        // a row the hand-off published.
        let mark_delay = self.config.mark_delay.min(young);
        let mut marks: Vec<i64> = Vec::new();
        let mut marks_due = Instant::now();
        let mut handoff_failures = 0u32;
        // Rows of this process's hand-off that grew too old to publish from memory (their
        // publish kept failing: NATS down, its store full). They are published from the table
        // as soon as publishing works again, rather than when their lease lets the poller.
        let mut stale: Vec<i64> = Vec::new();
        let mut poller = Poller {
            failures: 0,
            next: Instant::now(),
            last_prune: Instant::now(),
        };
        loop {
            let stopping = shutdown.is_cancelled();
            let handed = self
                .outbox
                .take_handed(self.config.batch_size, young, &mut stale);
            if stale.len() > HANDOFF_BOUND {
                // A long outage: the oldest are left to the poller, like rows past the bound.
                stale.drain(..stale.len() - HANDOFF_BOUND);
            }
            let busy = !handed.is_empty();
            if busy {
                let rows: Vec<&Row> = handed.iter().map(|h| &h.row).collect();
                let published = self.publish(&rows).await;
                if marks.is_empty() {
                    marks_due = Instant::now() + mark_delay;
                }
                let acked: std::collections::HashSet<i64> =
                    published.acked.iter().copied().collect();
                marks.extend(published.acked);
                let failure = published.failure;
                if failure.is_some()
                    || marks.len() >= self.config.batch_size
                    || Instant::now() >= marks_due
                {
                    self.flush_marks(&mut marks).await;
                }
                if let Some(e) = failure {
                    handoff_failures += 1;
                    let unacked: Vec<Handed> = handed
                        .into_iter()
                        .filter(|h| !acked.contains(&h.row.id))
                        .collect();
                    self.outbox.put_back(unacked);
                    if stopping {
                        // The rest waits for the poller of the next start, or of another instance.
                        break;
                    }
                    self.back_off(handoff_failures, &e, &shutdown).await;
                } else {
                    handoff_failures = 0;
                }
            } else {
                if !marks.is_empty() && (stopping || Instant::now() >= marks_due) {
                    self.flush_marks(&mut marks).await;
                }
                if stopping {
                    break;
                }
            }
            // The poll comes once a second whatever the hand-off is doing: rows of a process
            // that died, and the backlog gauge, must not wait for the hand-off's queue to empty.
            if !stopping && Instant::now() >= poller.next {
                self.poll_round(&mut poller).await;
                continue;
            }
            if !stale.is_empty() && !stopping {
                let batch: Vec<i64> = stale
                    .drain(..stale.len().min(self.config.batch_size))
                    .collect();
                match self.publish_locked(Some(&batch)).await {
                    Ok(_) => handoff_failures = 0,
                    Err(e) => {
                        stale.splice(0..0, batch);
                        handoff_failures += 1;
                        self.back_off(handoff_failures, &e, &shutdown).await;
                    }
                }
                continue;
            }
            if busy {
                continue;
            }
            let wake_at = if marks.is_empty() {
                poller.next
            } else {
                poller.next.min(marks_due)
            };
            tokio::select! {
                () = self.outbox.handoff.ready.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
                () = shutdown.cancelled() => {}
            }
        }
        tracing::debug!(service = %self.outbox.producer, "outbox relay stopped");
    }

    /// One round of the poller: publish rows past their lease and report the backlog; delete
    /// what is past its retention when that is due. Sets when the next round comes.
    async fn poll_round(&self, poller: &mut Poller) {
        match self.poll().await {
            Ok(()) => {
                if poller.failures > 0 {
                    tracing::info!(service = %self.outbox.producer, "outbox relay recovered");
                }
                poller.failures = 0;
                poller.next = Instant::now() + self.config.poll_interval;
            }
            Err(e) => {
                poller.failures += 1;
                self.stats.failed_rounds.fetch_add(1, Ordering::Relaxed);
                let delay = backoff::delay(
                    poller.failures,
                    self.config.retry_base,
                    self.config.retry_max,
                );
                if poller.failures == 1 || poller.failures.is_multiple_of(20) {
                    tracing::warn!(service = %self.outbox.producer, error = %e, attempt = poller.failures,
                        "outbox relay failed; rows kept, retrying in {delay:?}");
                }
                poller.next = Instant::now() + delay;
            }
        }
        if poller.last_prune.elapsed() >= self.config.prune_interval {
            poller.last_prune = Instant::now();
            if let Err(e) = self.prune().await {
                tracing::warn!(error = %e, "deleting rows past their retention failed; retrying later");
            }
        }
    }

    async fn back_off(&self, failures: u32, error: &RelayError, shutdown: &Shutdown) {
        self.stats.failed_rounds.fetch_add(1, Ordering::Relaxed);
        let delay = backoff::delay(failures, self.config.retry_base, self.config.retry_max);
        if failures == 1 || failures.is_multiple_of(20) {
            tracing::warn!(service = %self.outbox.producer, error = %error, attempt = failures,
                "publishing handed-off events failed; retrying in {delay:?}");
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => {}
        }
    }

    /// Stamps the rows `marks` sent, in one statement. A lost stamp only means a later
    /// republish, which JetStream and the inbox drop.
    async fn flush_marks(&self, marks: &mut Vec<i64>) {
        let result = sqlx::query(
            "UPDATE messaging_outbox SET sent_at = now() WHERE id = ANY($1) AND sent_at IS NULL",
        )
        .bind(&*marks)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => {
                self.stats
                    .published
                    .fetch_add(marks.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(service = %self.outbox.producer, error = %e, count = marks.len(),
                    "stamping published rows failed; the poller publishes them again");
            }
        }
        marks.clear();
    }

    /// Sends every publish first and awaits all the acks together: a batch costs one round
    /// trip, and (each ack's timeout starting when it is awaited) a dead server one timeout.
    async fn publish(&self, rows: &[&Row]) -> Published {
        if self.js.client().connection_state() != async_nats::connection::State::Connected {
            return Published {
                acked: Vec::new(),
                failure: rows.first().map(|r| RelayError::NotConnected {
                    subject: r.subject.clone(),
                }),
            };
        }
        let mut pending = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in rows {
            let mut publish = PublishMessage::build().message_id(row.message_id());
            if let Some(trace) = row.trace {
                let span = crate::traced_span!(Some(trace), "publish", subject = %row.subject,
                    event_id = %row.event_id);
                let sent = trace::current_of(&span).unwrap_or(trace);
                publish = publish.header(trace::HEADER, sent.to_string().as_str());
            }
            let publish = publish.payload(row.body.clone());
            match self.js.send_publish(row.subject.clone(), publish).await {
                Ok(ack) => pending.push((row.id, row.subject.as_str(), ack.into_future())),
                Err(source) => {
                    failure = Some(RelayError::Publish {
                        subject: row.subject.clone(),
                        source,
                    });
                    break;
                }
            }
        }
        let (keys, acks): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .map(|(id, subject, ack)| ((id, subject), ack))
            .unzip();
        let mut acked = Vec::with_capacity(keys.len());
        for ((id, subject), ack) in keys.into_iter().zip(join_all(acks).await) {
            match ack {
                Ok(ack) => {
                    if ack.duplicate {
                        self.stats.republished.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::EVENTS_REPUBLISHED).increment(1);
                    }
                    metrics::counter!(m::EVENTS_PUBLISHED, "subject" => subject.to_owned())
                        .increment(1);
                    acked.push(id);
                }
                Err(source) => {
                    failure.get_or_insert(RelayError::Publish {
                        subject: subject.into(),
                        source,
                    });
                }
            }
        }
        Published { acked, failure }
    }

    /// Reports the backlog, and publishes rows past their hand-off lease, round after round
    /// while full rounds come. When no row is past its lease (the usual case), that is one
    /// statement.
    async fn poll(&self) -> Result<(), RelayError> {
        let backlog = self.report_backlog().await?;
        let lease = self.config.handoff_lease.as_secs_f64();
        if backlog.oldest_age.is_some_and(|age| age >= lease) {
            while self.publish_batch().await? >= self.config.batch_size {}
        }
        Ok(())
    }

    /// One poller round: lock up to a batch of unsent rows past their lease, publish them all,
    /// await the acks, stamp the acknowledged ones sent, commit. Returns how many rows it found.
    pub async fn publish_batch(&self) -> Result<usize, RelayError> {
        self.publish_locked(None).await
    }

    /// Locks unsent rows, publishes them, stamps the acknowledged ones sent, commits: the rows
    /// past their lease (up to a batch) or, given `ids`, those of them still unsent. Returns how
    /// many rows it found.
    async fn publish_locked(&self, ids: Option<&[i64]>) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        let found: Vec<Stored> = match ids {
            None => {
                sqlx::query_as(
                    "SELECT id, event_id, subject, body, traceparent FROM messaging_outbox \
                     WHERE sent_at IS NULL AND created_at <= now() - make_interval(secs => $2) \
                     ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                )
                .bind(self.config.batch_size as i64)
                .bind(self.config.handoff_lease.as_secs_f64())
                .fetch_all(&mut *tx)
                .await?
            }
            Some(ids) => {
                sqlx::query_as(
                    "SELECT id, event_id, subject, body, traceparent FROM messaging_outbox \
                     WHERE id = ANY($1) AND sent_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED",
                )
                .bind(ids)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        if found.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let rows: Vec<Row> = found
            .into_iter()
            .map(|r| Row {
                id: r.id,
                event_id: r.event_id,
                subject: r.subject,
                body: r.body.into(),
                trace: r.traceparent.and_then(|t| t.parse().ok()),
            })
            .collect();
        let refs: Vec<&Row> = rows.iter().collect();
        let published = self.publish(&refs).await;
        if !published.acked.is_empty() {
            sqlx::query("UPDATE messaging_outbox SET sent_at = now() WHERE id = ANY($1)")
                .bind(&published.acked)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.stats
            .published
            .fetch_add(published.acked.len() as u64, Ordering::Relaxed);
        match published.failure {
            Some(e) => Err(e),
            None => Ok(rows.len()),
        }
    }

    async fn report_backlog(&self) -> Result<Backlog, sqlx::Error> {
        let backlog: Backlog = sqlx::query_as(
            "SELECT count(*) AS rows, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest_age \
             FROM messaging_outbox WHERE sent_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        let service = self.outbox.producer.to_string();
        metrics::gauge!(m::OUTBOX_BACKLOG, "service" => service.clone()).set(backlog.rows as f64);
        metrics::gauge!(m::OUTBOX_OLDEST_AGE, "service" => service)
            .set(backlog.oldest_age.unwrap_or(0.0));
        Ok(backlog)
    }

    /// Deletes sent rows past the retention, and inbox and dead-letter records past the
    /// redelivery horizon, a bounded batch per statement, so that a large backlog of old rows
    /// never holds one long transaction. Sent rows are taken from the oldest by key (ids grow
    /// with time), so no index on `sent_at` is kept up on every stamp, and a round reads at most
    /// a batch; each round reads the oldest rows only, so none of them old enough means none is.
    async fn prune(&self) -> Result<(), sqlx::Error> {
        let retention = self.config.retention.as_secs_f64();
        let horizon = self.config.redelivery_horizon().as_secs_f64();
        let rounds = [
            (
                "DELETE FROM messaging_outbox WHERE id IN ( \
                     SELECT id FROM ( \
                         SELECT id, sent_at FROM messaging_outbox ORDER BY id LIMIT $2) oldest \
                     WHERE sent_at < now() - make_interval(secs => $1))",
                retention,
                m::OUTBOX_PRUNED,
            ),
            (
                "DELETE FROM messaging_inbox WHERE event_id IN ( \
                     SELECT event_id FROM messaging_inbox \
                     WHERE handled_at < now() - make_interval(secs => $1) \
                     ORDER BY handled_at LIMIT $2)",
                horizon,
                m::INBOX_PRUNED,
            ),
            (
                "DELETE FROM messaging_dead_letters WHERE (consumer, stream, stream_sequence) IN ( \
                     SELECT consumer, stream, stream_sequence FROM messaging_dead_letters \
                     WHERE dead_at < now() - make_interval(secs => $1) \
                     ORDER BY dead_at LIMIT $2)",
                horizon,
                m::DEAD_LETTERS_PRUNED,
            ),
        ];
        for (sql, age, counter) in rounds {
            crate::db::delete_in_batches(&self.pool, sql, age)
                .await
                .map(|n| {
                    metrics::counter!(counter).increment(n);
                })?;
        }
        Ok(())
    }
}
