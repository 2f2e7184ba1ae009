//! The pull loop every durable consumer of this library runs: subscribe, gather what has arrived
//! into batches, hand each batch to the consumer (a few at once), and keep going through missed
//! heartbeats, reconnects, server restarts and a deleted consumer (it is recreated).
//!
//! [`crate::Consumer`] (events with the inbox) and [`RawConsumer`] (messages as they are) both
//! run it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::backoff;
use crate::nats::ProvisionError;
use crate::shutdown::Shutdown;

/// A durable consumer, as the pull loop drives it.
pub(crate) trait Batches: Clone + Send + Sync + 'static {
    fn durable(&self) -> &str;
    /// Creates or checks the durable consumer on the server.
    fn ensure(&self) -> impl Future<Output = Result<PullConsumer, ProvisionError>> + Send;
    /// Handles a batch of deliveries, acking (or not) each.
    fn process(&self, messages: Vec<jetstream::Message>) -> impl Future<Output = ()> + Send;
}

/// How the loop pulls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pulling {
    /// The most deliveries in one batch.
    pub max_batch: usize,
    /// Batches handled at once.
    pub concurrency: usize,
    /// Idle heartbeat asked of the server.
    pub heartbeat: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

/// The longest a consumer waits before it subscribes again after an interruption (NATS down,
/// its consumer gone): short, so that a server back after a long outage costs at most this much
/// more; an attempt against a server that is down costs next to nothing.
pub(crate) const RESUBSCRIBE_MAX: Duration = Duration::from_secs(1);

/// Pulls and processes batches until `shutdown`, then waits for those in flight.
pub(crate) async fn run<B: Batches>(consumer: B, pulling: Pulling, shutdown: Shutdown) {
    use jetstream::consumer::pull::MessagesErrorKind as K;
    let max_batch = pulling.max_batch.max(1);
    let permits = Arc::new(Semaphore::new(pulling.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut failures = 0u32;
    'session: while !shutdown.is_cancelled() {
        let pulled = match consumer.ensure().await {
            Ok(pull) => pull
                .stream()
                .max_messages_per_batch(max_batch * 2)
                .heartbeat(pulling.heartbeat)
                .expires(pulling.heartbeat * 4)
                .messages()
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match pulled {
            Ok(messages) => messages,
            Err(e) => {
                failures += 1;
                pause(&consumer, &pulling, failures, &e, &shutdown).await;
                continue;
            }
        };
        let mut errors_in_a_row = 0u32;
        // An error met while gathering a batch, dealt with before pulling again.
        let mut held_back = None;
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break 'session,
                },
                () = shutdown.cancelled() => break 'session,
            };
            let next = match held_back.take() {
                Some(error) => Some(Err(error)),
                None => tokio::select! {
                    n = messages.next() => n,
                    () = shutdown.cancelled() => break 'session,
                },
            };
            match next {
                Some(Ok(message)) => {
                    errors_in_a_row = 0;
                    failures = 0;
                    let mut batch = vec![message];
                    while batch.len() < max_batch {
                        match messages.next().now_or_never() {
                            Some(Some(Ok(message))) => batch.push(message),
                            Some(Some(Err(error))) => {
                                held_back = Some(error);
                                break;
                            }
                            Some(None) | None => break,
                        }
                    }
                    let this = consumer.clone();
                    tasks.spawn(async move {
                        this.process(batch).await;
                        drop(permit);
                    });
                }
                Some(Err(e)) => {
                    errors_in_a_row += 1;
                    let fatal = matches!(e.kind(), K::ConsumerDeleted | K::PushBasedConsumer);
                    tracing::debug!(consumer = %consumer.durable(), error = %e, "pull stream error");
                    if fatal || errors_in_a_row >= 3 {
                        failures += 1;
                        pause(&consumer, &pulling, failures, &e.to_string(), &shutdown).await;
                        continue 'session;
                    }
                }
                None => {
                    failures += 1;
                    pause(
                        &consumer,
                        &pulling,
                        failures,
                        "pull stream ended",
                        &shutdown,
                    )
                    .await;
                    continue 'session;
                }
            }
            while tasks.try_join_next().is_some() {}
        }
    }
    while tasks.join_next().await.is_some() {}
    tracing::debug!(consumer = %consumer.durable(), "consumer stopped");
}

async fn pause<B: Batches>(
    consumer: &B,
    pulling: &Pulling,
    failures: u32,
    why: &str,
    shutdown: &Shutdown,
) {
    let delay = backoff::delay(failures, pulling.retry_base, pulling.retry_max);
    if failures == 1 || failures.is_multiple_of(10) {
        tracing::warn!(consumer = %consumer.durable(), attempt = failures,
            "consumer interrupted ({why}); resubscribing in {delay:?}");
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shutdown.cancelled() => {}
    }
}

/// What a [`RawConsumer`] does with its messages.
pub trait RawHandler: Send + Sync + 'static {
    /// Handles a batch of messages, all or none: `Ok` acks them all, an error has them all
    /// delivered again after a backoff.
    fn handle(
        &self,
        messages: &[jetstream::Message],
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// A durable consumer of raw messages (no envelope, no inbox): for streams whose messages are
/// not events, such as the dead letters, where the handler is idempotent by itself.
pub struct RawConsumer<H> {
    inner: Arc<RawInner<H>>,
}

impl<H> Clone for RawConsumer<H> {
    fn clone(&self) -> Self {
        RawConsumer {
            inner: self.inner.clone(),
        }
    }
}

struct RawInner<H> {
    js: jetstream::Context,
    stream: shared_events::Stream,
    config: jetstream::consumer::pull::Config,
    durable: String,
    pulling: Pulling,
    handler: H,
}

impl<H: RawHandler> RawConsumer<H> {
    /// Creates or checks the durable `durable` on `stream`, filtering on `filter_subject`.
    pub async fn provision(
        js: jetstream::Context,
        stream: shared_events::Stream,
        durable: &str,
        filter_subject: &str,
        handler: H,
    ) -> Result<RawConsumer<H>, ProvisionError> {
        let config =
            crate::nats::consumer_config(durable, filter_subject, Duration::from_secs(30), 1000);
        let consumer = RawConsumer {
            inner: Arc::new(RawInner {
                js,
                stream,
                config,
                durable: durable.to_owned(),
                pulling: Pulling {
                    max_batch: 100,
                    concurrency: 1,
                    heartbeat: Duration::from_secs(5),
                    retry_base: Duration::from_millis(200),
                    retry_max: RESUBSCRIBE_MAX,
                },
                handler,
            }),
        };
        Batches::ensure(&consumer).await?;
        Ok(consumer)
    }

    pub fn durable(&self) -> &str {
        &self.inner.durable
    }

    /// Pulls and handles messages until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let pulling = self.inner.pulling;
        run(self, pulling, shutdown).await;
    }
}

impl<H: RawHandler> Batches for RawConsumer<H> {
    fn durable(&self) -> &str {
        &self.inner.durable
    }

    async fn ensure(&self) -> Result<PullConsumer, ProvisionError> {
        crate::nats::ensure_consumer(&self.inner.js, self.inner.stream, self.inner.config.clone())
            .await
    }

    async fn process(&self, messages: Vec<jetstream::Message>) {
        match self.inner.handler.handle(&messages).await {
            Ok(()) => {
                for message in &messages {
                    // A lost ack means a redelivery, which the handler takes as it is.
                    if let Err(e) = message.ack().await {
                        tracing::debug!(consumer = %self.inner.durable, error = %e, "ack not sent");
                    }
                }
            }
            Err(e) => {
                let attempt = messages
                    .first()
                    .and_then(|m| m.info().ok())
                    .map_or(1, |i| u32::try_from(i.delivered).unwrap_or(u32::MAX));
                let delay = backoff::delay(
                    attempt,
                    self.inner.pulling.retry_base,
                    self.inner.pulling.retry_max,
                );
                tracing::warn!(consumer = %self.inner.durable, error = %format!("{e:#}"),
                    attempt, "handling failed; retrying in {delay:?}");
                for message in &messages {
                    let nak = jetstream::AckKind::Nak(Some(delay));
                    if let Err(e) = message.ack_with(nak).await {
                        tracing::debug!(consumer = %self.inner.durable, error = %e, "nak not sent");
                    }
                }
            }
        }
    }
}
