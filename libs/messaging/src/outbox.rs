//! The transactional outbox and the relay that publishes it.
//!
//! A service writes its events with [`Outbox::add`] in the same transaction as the state change
//! that causes them, so both commit or neither does. The [`Relay`] publishes unsent rows to
//! JetStream with `Nats-Msg-Id` = event id, waits for every publish ack, and only then stamps the
//! rows sent. Crashing anywhere in between leaves the rows unsent, and they are published again:
//! JetStream drops the repeat within its duplicate window, and the consumers' inbox drops it after.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::future::IntoFuture;

use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::future::join_all;
use shared_events::{Envelope, Event};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::backoff;
use crate::metrics as m;
use crate::shutdown::Shutdown;

/// A service's handle on its outbox: builds its events and wakes its relay after a commit.
#[derive(Clone)]
pub struct Outbox {
    producer: Arc<str>,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(producer: &str) -> Outbox {
        Outbox {
            producer: producer.into(),
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn producer(&self) -> &str {
        &self.producer
    }

    /// A new event of this service, in saga `correlation_id`, caused by `causation_id`.
    pub fn event(
        &self,
        payload: impl Into<Event>,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
    ) -> Envelope {
        Envelope::new(payload, correlation_id, causation_id, &self.producer)
    }

    /// Queues `event` for publishing as part of the caller's transaction.
    pub async fn add(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO messaging_outbox (event_id, subject, body) VALUES ($1, $2, $3)")
            .bind(event.event_id)
            .bind(event.subject())
            .bind(event.to_bytes())
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Commits `tx` and wakes the relay, so that its events leave now rather than on the next poll.
    pub async fn commit(&self, tx: Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    /// Tells the relay there is something to publish.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Rows published per round trip; their acks are awaited together.
    pub batch_size: i64,
    /// How often to look for rows nobody woke us for (another instance's, or left by a crash).
    pub poll_interval: Duration,
    /// Published rows older than this are deleted, and inbox rows older than this plus the
    /// streams' maximum age (by then no redelivery of their event is possible).
    pub retention: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 256,
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(24 * 3600),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
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

/// Publishes a database's outbox. Several relays may run on one database (one per instance):
/// each round locks the rows it publishes with `FOR UPDATE SKIP LOCKED`, so no row is ever
/// published by two relays at the same time.
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
    #[error("publishing {subject}: {error}")]
    Publish { subject: String, error: String },
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

    /// Publishes until `shutdown`; a round in flight when it fires is finished first.
    pub async fn run(self, shutdown: Shutdown) {
        let mut failures = 0u32;
        let mut last_prune = tokio::time::Instant::now();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.publish_batch().await {
                Ok(n) if n as i64 >= self.config.batch_size => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    if failures > 0 {
                        tracing::info!(service = %self.outbox.producer, "outbox relay recovered");
                    }
                    failures = 0;
                    if let Err(e) = self.report_backlog().await {
                        tracing::debug!(error = %e, "reading outbox backlog");
                    }
                    if last_prune.elapsed() >= Duration::from_secs(60) {
                        last_prune = tokio::time::Instant::now();
                        if let Err(e) = self.prune().await {
                            tracing::warn!(error = %e, "pruning published outbox rows");
                        }
                    }
                    tokio::select! {
                        () = self.outbox.wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll_interval) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
                Err(e) => {
                    failures += 1;
                    self.stats.failed_rounds.fetch_add(1, Ordering::Relaxed);
                    let delay =
                        backoff::delay(failures, self.config.retry_base, self.config.retry_max);
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(service = %self.outbox.producer, error = %e, attempt = failures,
                            "outbox relay failed; rows kept, retrying in {delay:?}");
                    }
                    let _ = self.report_backlog().await;
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
        tracing::debug!(service = %self.outbox.producer, "outbox relay stopped");
    }

    /// One round: lock up to a batch of unsent rows, publish them all, await the acks, stamp the
    /// acknowledged ones sent, commit. Returns how many rows it found.
    pub async fn publish_batch(&self) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, Uuid, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, event_id, subject, body FROM messaging_outbox \
             WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.config.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }

        if self.js.client().connection_state() != async_nats::connection::State::Connected {
            tx.rollback().await?;
            return Err(RelayError::Publish {
                subject: rows[0].2.clone(),
                error: "not connected to NATS".into(),
            });
        }

        // Send every publish first and await all the acks together: a batch costs one round
        // trip, and (each ack's timeout starting when it is awaited) a dead server one timeout.
        let mut pending = Vec::with_capacity(rows.len());
        let mut failure = None;
        for (id, event_id, subject, body) in &rows {
            let publish = PublishMessage::build()
                .message_id(event_id.to_string())
                .payload(body.clone().into());
            match self.js.send_publish(subject.clone(), publish).await {
                Ok(ack) => pending.push((*id, subject.as_str(), ack.into_future())),
                Err(e) => {
                    failure = Some(RelayError::Publish {
                        subject: subject.clone(),
                        error: e.to_string(),
                    });
                    break;
                }
            }
        }
        let (keys, acks): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .map(|(id, subject, ack)| ((id, subject), ack))
            .unzip();
        let mut sent = Vec::with_capacity(keys.len());
        for ((id, subject), ack) in keys.into_iter().zip(join_all(acks).await) {
            match ack {
                Ok(ack) => {
                    if ack.duplicate {
                        self.stats.republished.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::EVENTS_REPUBLISHED).increment(1);
                    }
                    metrics::counter!(m::EVENTS_PUBLISHED, "subject" => subject.to_owned())
                        .increment(1);
                    sent.push(id);
                }
                Err(e) => {
                    failure.get_or_insert(RelayError::Publish {
                        subject: subject.to_owned(),
                        error: e.to_string(),
                    });
                }
            }
        }
        if !sent.is_empty() {
            sqlx::query("UPDATE messaging_outbox SET sent_at = now() WHERE id = ANY($1)")
                .bind(&sent)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.stats
            .published
            .fetch_add(sent.len() as u64, Ordering::Relaxed);
        match failure {
            Some(e) => Err(e),
            None => Ok(rows.len()),
        }
    }

    async fn report_backlog(&self) -> Result<(), sqlx::Error> {
        let (count, oldest_age): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8 \
             FROM messaging_outbox WHERE sent_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        let service = self.outbox.producer.to_string();
        metrics::gauge!(m::OUTBOX_BACKLOG, "service" => service.clone()).set(count as f64);
        metrics::gauge!(m::OUTBOX_OLDEST_AGE, "service" => service).set(oldest_age.unwrap_or(0.0));
        Ok(())
    }

    async fn prune(&self) -> Result<(), sqlx::Error> {
        let retention = self.config.retention.as_secs_f64();
        sqlx::query(
            "DELETE FROM messaging_outbox WHERE sent_at < now() - make_interval(secs => $1)",
        )
        .bind(retention)
        .execute(&self.pool)
        .await?;
        let redelivery_horizon = crate::nats::MAX_EVENT_AGE.as_secs_f64() + retention;
        sqlx::query(
            "DELETE FROM messaging_inbox WHERE handled_at < now() - make_interval(secs => $1)",
        )
        .bind(redelivery_horizon)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
