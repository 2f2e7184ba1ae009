//! How saga-coordinator reacts: to each followed event (lock and read the batch's sagas, apply
//! the saga rules to each event in turn, save them with their history, publish the decisions),
//! and to time (the deadline sweep). Dead letters are indexed by `crate::dlq::index`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::Context as _;
use messaging::{Batch, Handler, HandlerError, Shutdown};
use service_kit::Infra;
use shared_events::{Envelope, Reaction, TraceParent};

use uuid::Uuid;

use crate::Timeouts;
use crate::rules::{Input, Saga, SagaStatus};
use crate::store;

/// Records each followed event in its saga and applies the saga rules to it.
#[derive(Clone)]
pub struct Reactions {
    pub timeouts: Timeouts,
}

/// What a batch's decisions work on: its sagas, which of them changed, and what their
/// histories saw.
type Sagas = (HashMap<Uuid, Saga>, BTreeSet<Uuid>, Vec<store::Seen>);

impl Handler for Reactions {
    /// A saga is changed by one transaction at a time. Taken before any row is touched, so two
    /// batches naming the same sagas wait for each other: without it, one batch creating a saga
    /// while locking another that a second batch holds, and the second doing the reverse,
    /// deadlocked (and waited a second for PostgreSQL to notice).
    fn serialise_on(&self, events: &[Envelope]) -> Vec<Uuid> {
        events.iter().map(|e| e.payload.saga_id()).collect()
    }

    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let keys: Vec<store::Key> = events
            .iter()
            .map(|e| {
                store::Key::new(e.payload.saga_id(), e.payload.order_id(), e.trace)
                    .likely_new(matches!(e.payload, shared_events::Event::OrderCreated(_)))
            })
            .collect();
        let sagas = store::lock(batch.conn(), &keys, self.timeouts.saga)
            .await
            .context("locking the batch's sagas")?;
        let start: Sagas = (sagas, BTreeSet::new(), Vec::with_capacity(events.len() * 2));
        let (sagas, changed, mut seen) = batch.decide_each(
            events,
            start,
            |(mut sagas, mut changed, mut seen), event| {
                let saga_id = event.payload.saga_id();
                let saga = sagas.remove(&saga_id).ok_or_else(|| {
                    HandlerError::Other(anyhow::anyhow!("saga {saga_id} vanished while locked"))
                })?;
                seen.push(store::Seen::of(event));
                let (next, reaction) = saga.clone().apply(Input::Event(&event.payload));
                if next != saga {
                    changed.insert(saga_id);
                }
                sagas.insert(saga_id, next);
                if let Reaction::Emit(decision) = &reaction {
                    // Within the span of the event it decides on, so the trace carries it.
                    log_decision(decision, event.trace);
                }
                Ok(((sagas, changed, seen), reaction))
            },
        )?;
        for emitted in batch.emitted() {
            seen.push(store::Seen::of(emitted));
        }
        let changed: Vec<&Saga> = changed.iter().filter_map(|id| sagas.get(id)).collect();
        let ends = store::save(batch.conn(), &changed, &seen)
            .await
            .context("saving the batch's sagas and their history")?;
        crate::metrics::ended(&ends);
        Ok(())
    }
}

/// Logs a decision of the coordinator, once, at info.
pub fn decided(event: &Envelope) {
    log_decision(&event.payload, event.trace);
}

/// Logs `decision`, an event the coordinator emits in the trace of `trace`, at info.
fn log_decision(decision: &shared_events::Event, trace: Option<TraceParent>) {
    let trace_id = trace.map(|t| t.trace_id_hex()).unwrap_or_default();
    match decision {
        shared_events::Event::SagaCompleted(d) => tracing::info!(saga_id = %d.saga_id,
            order_id = %d.order_id, trace_id, decision = "completed", "saga decided"),
        shared_events::Event::SagaAborted(d) => tracing::info!(saga_id = %d.saga_id,
            order_id = %d.order_id, trace_id, decision = "aborted", reason = %d.reason,
            "saga decided"),
        other => tracing::info!(saga_id = %other.saga_id(), order_id = %other.order_id(), trace_id,
            decision = other.name(), "saga decided"),
    }
}

/// Aborts sagas whose deadline passed and fails overdue compensations, on any instance: each
/// round locks what it takes with `SKIP LOCKED`. Between rounds it sleeps until the next deadline
/// (at most a second), so an idle coordinator costs one small query a second. Every ten seconds
/// it also folds the saga counts' deltas into their totals.
pub async fn sweep(infra: Infra, timeouts: Timeouts, shutdown: Shutdown) {
    const BATCH: i64 = 200;
    const FOLD_EVERY: Duration = Duration::from_secs(10);
    const PRUNE_EVERY: Duration = Duration::from_secs(60);
    let mut folded = tokio::time::Instant::now();
    // Settled dead letters are deleted at start, then once a minute.
    let mut next_prune = folded;
    loop {
        if folded.elapsed() >= FOLD_EVERY {
            folded = tokio::time::Instant::now();
            if let Err(e) = store::fold_counts(&infra.pool).await {
                tracing::warn!(error = %e, "folding saga counts failed; retrying later");
            }
        }
        if tokio::time::Instant::now() >= next_prune {
            next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
            match store::prune_dead_letters(&infra.pool, messaging::nats::DLQ_MAX_AGE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "settled dead letters past the DLQ's age deleted"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "deleting settled dead letters failed; retrying later")
                }
            }
        }
        let swept = sweep_once(&infra, &timeouts, BATCH).await;
        if let Err(e) = &swept {
            tracing::warn!(error = %format!("{e:#}"), "deadline sweep failed; retrying");
        }
        if matches!(swept, Ok(n) if n >= BATCH as usize) {
            continue;
        }
        let wait = match store::next_deadline(&infra.pool).await {
            Ok(Some(secs)) => Duration::from_secs_f64(secs.clamp(0.005, 1.0)),
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

async fn sweep_once(infra: &Infra, timeouts: &Timeouts, limit: i64) -> anyhow::Result<usize> {
    let mut tx = infra.pool.begin().await.context("beginning a sweep")?;
    let due = store::due(&mut tx, timeouts.compensation, limit)
        .await
        .context("finding sagas past their deadline")?;
    if due.is_empty() {
        tx.commit().await.context("ending an empty sweep")?;
        return Ok(0);
    }
    let keys: Vec<store::Key> = due
        .iter()
        .map(|d| store::Key::new(d.saga_id, d.order_id, None))
        .collect();
    let mut sagas = store::lock(&mut tx, &keys, timeouts.saga)
        .await
        .context("locking the sagas past their deadline")?;
    let mut changed = Vec::with_capacity(due.len());
    let mut emitted = Vec::new();
    for d in &due {
        let Some(saga) = sagas.remove(&d.saga_id) else {
            continue;
        };
        let input = if d.deadline {
            Input::DeadlinePassed
        } else {
            Input::CompensationOverdue
        };
        let was = saga.status;
        let (next, reaction) = saga.apply(input);
        if next.status == SagaStatus::Failed && was != SagaStatus::Failed {
            tracing::error!(saga_id = %d.saga_id, "compensation overdue: saga FAILED, needs an operator");
        }
        changed.push(next);
        if let Reaction::Emit(decision) = reaction {
            let mut event = infra.outbox.event(decision, d.saga_id, None);
            event.trace = d
                .trace_parent
                .as_deref()
                .and_then(|t| t.parse::<TraceParent>().ok())
                .map(TraceParent::child);
            decided(&event);
            emitted.push(event);
        }
    }
    let seen: Vec<store::Seen> = emitted.iter().map(store::Seen::of).collect();
    let ends = store::save(&mut tx, &changed.iter().collect::<Vec<_>>(), &seen)
        .await
        .context("saving swept sagas")?;
    let written = infra
        .outbox
        .add_all(&mut tx, emitted)
        .await
        .context("writing the sweep's decisions to the outbox")?;
    infra
        .outbox
        .commit(tx, written)
        .await
        .context("committing the sweep")?;
    crate::metrics::ended(&ends);
    Ok(due.len())
}
