//! Reconciliation: on a schedule and on demand, the coordinator compares what the four services
//! record of each order and re-sends, through its outbox, the events that settle every
//! disagreement the events left (a message NATS lost, an outbox row gone before it was sent).
//! It reads the other services through their HTTP APIs only ([`peers`]) and never writes to
//! their databases; [`compare`] holds the rules. See docs/operations.md, "Reconciliation".
//!
//! A run compares three sets of orders:
//! - orders still `PENDING` longer than the saga deadline and the grace: one without a saga
//!   lost its `order.created`, one whose saga ended lost its `saga.completed` or `saga.aborted`;
//! - orders cancelled since the last run (less the grace, so that compensations still under way
//!   are left to finish): each with its saga, payment and reservation;
//! - sagas compensating longer than the grace, and `FAILED` ones: each with its payment and
//!   reservation.
//!
//! One run at a time, on any instance (an advisory lock); a run that finds the lock taken is
//! skipped, or answered 409 when an operator asked for it.

pub mod compare;
pub mod peers;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use messaging::Shutdown;
use service_kit::Infra;
use shared_events::Envelope;
use uuid::Uuid;

use crate::metrics;
use crate::rules::Saga;
use crate::store::reconcile::{self as store, Found, RunView};
use compare::{Mismatch, MismatchKind, OrderRecord, Records, compare};
use peers::{BATCH, Peers};

/// How reconciliation runs (`RECONCILE_*`, and the saga deadline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// Between scheduled runs; zero: only when an operator asks.
    pub interval: Duration,
    /// Records younger than this are left alone: their events may still be on their way.
    pub grace: Duration,
    /// How far back the first run (and an operator's run without `since`) looks.
    pub window: Duration,
    /// The most orders of one list (stuck `PENDING`, cancelled in the window) a run compares.
    pub max_orders: usize,
    /// The saga deadline: an order `PENDING` longer than this plus the grace is stuck.
    pub saga_timeout: Duration,
    /// Runs are kept this long.
    pub keep: Duration,
}

/// Who asked for a run.
#[derive(Clone, Debug)]
pub enum Trigger {
    Schedule,
    /// An operator, by the fingerprint of their token.
    Operator(String),
}

impl Trigger {
    fn word(&self) -> &'static str {
        match self {
            Trigger::Schedule => "SCHEDULE",
            Trigger::Operator(_) => "OPERATOR",
        }
    }

    fn actor(&self) -> Option<&str> {
        match self {
            Trigger::Schedule => None,
            Trigger::Operator(actor) => Some(actor),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("a reconciliation is running already")]
    Busy,
    #[error(
        "the reconciliation is off: set ORDER_SERVICE_URL, PAYMENT_SERVICE_URL and \
         INVENTORY_SERVICE_URL"
    )]
    NotConfigured,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The key of the advisory lock a run holds.
const RUN_LOCK: i64 = 0x5245_434f_4e43; // "RECONC"

#[derive(Clone)]
pub struct Reconciler {
    infra: Infra,
    /// `None`: the other services' URLs are not all set, and nothing runs.
    peers: Option<Peers>,
    settings: ReconcileSettings,
}

impl Reconciler {
    pub fn new(infra: Infra, peers: Option<Peers>, settings: ReconcileSettings) -> Reconciler {
        Reconciler {
            infra,
            peers,
            settings,
        }
    }

    /// Runs on the schedule until `shutdown`.
    pub async fn every(self, shutdown: Shutdown) {
        if self.peers.is_none() {
            tracing::info!(
                "reconciliation off: ORDER_SERVICE_URL, PAYMENT_SERVICE_URL and \
                 INVENTORY_SERVICE_URL are not all set"
            );
        }
        if self.settings.interval.is_zero() || self.peers.is_none() {
            shutdown.cancelled().await;
            return;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.interval) => {}
                () = shutdown.cancelled() => return,
            }
            match self.run(Trigger::Schedule, None).await {
                Ok(run) if !run.mismatches.is_empty() => tracing::warn!(
                    run = run.id,
                    mismatches = run.mismatches.len(),
                    "reconciliation found records that disagree; events re-sent"
                ),
                Ok(_) | Err(RunError::Busy | RunError::NotConfigured) => {}
                Err(RunError::Failed(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "reconciliation failed; trying again next time");
                }
            }
            if let Err(e) = store::prune(&self.infra.pool, self.settings.keep).await {
                tracing::warn!(error = %e, "deleting old reconciliation runs failed");
            }
        }
    }

    /// One run: compares the records that changed since `since` (by default since the last
    /// run began, less the grace; the first run looks back over the window), re-sends what
    /// settles each disagreement, and records it all.
    pub async fn run(
        &self,
        trigger: Trigger,
        since: Option<DateTime<Utc>>,
    ) -> Result<RunView, RunError> {
        let Some(peers) = &self.peers else {
            return Err(RunError::NotConfigured);
        };
        let pool = &self.infra.pool;
        let mut lock = pool.acquire().await.context("reaching the database")?;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RUN_LOCK)
            .fetch_one(&mut *lock)
            .await
            .context("taking the reconciliation's lock")?;
        if !taken {
            return Err(RunError::Busy);
        }
        let result = self.locked_run(peers, &trigger, since).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(RUN_LOCK)
            .execute(&mut *lock)
            .await;
        result.map_err(RunError::Failed)
    }

    async fn locked_run(
        &self,
        peers: &Peers,
        trigger: &Trigger,
        since: Option<DateTime<Utc>>,
    ) -> anyhow::Result<RunView> {
        let pool = &self.infra.pool;
        let now = store::now(pool).await?;
        // Each run compares the orders cancelled after `since` and before `now - grace`, both
        // bounds exclusive, and records how far it reached: the window's end, or the last change
        // it compared when the window held more than it compares in one run. The next one begins
        // there (a microsecond earlier, for orders stamped on that instant): no order falls
        // between two runs.
        let since = match since {
            Some(since) => since,
            None => match store::resume_point(pool, self.settings.grace).await? {
                Some(reached) => reached - chrono::Duration::microseconds(1),
                None => now - chrono::Duration::from_std(self.settings.window)?,
            },
        };
        let run = store::begin(pool, trigger.word(), trigger.actor(), since, now)
            .await
            .context("recording the run")?;
        let mut checked = 0;
        let outcome = self.compare_all(peers, now, since, &mut checked, run).await;
        let error = outcome.as_ref().err().map(|e| format!("{e:#}"));
        let reached = outcome.as_ref().ok().copied();
        store::finish(pool, run, checked, reached, error.as_deref())
            .await
            .context("ending the run's record")?;
        let view = store::runs(pool, Some(run + 1), 1)
            .await?
            .into_iter()
            .next()
            .context("the run's record vanished")?;
        let mut by_kind: HashMap<&str, usize> = HashMap::new();
        for m in &view.mismatches {
            *by_kind.entry(m.kind.as_str()).or_default() += 1;
        }
        for kind in MismatchKind::ALL {
            ::metrics::gauge!(metrics::RECONCILE_MISMATCHES, "kind" => kind.as_str())
                .set(by_kind.get(kind.as_str()).copied().unwrap_or(0) as f64);
        }
        let outcome_label = if error.is_some() {
            "failed"
        } else {
            "finished"
        };
        ::metrics::counter!(metrics::RECONCILE_RUNS, "outcome" => outcome_label).increment(1);
        outcome?;
        Ok(view)
    }

    /// Compares the three sets of orders, settling what disagrees as it goes; returns how far
    /// it compared the window's cancellations.
    async fn compare_all(
        &self,
        peers: &Peers,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
        checked: &mut usize,
        run: i64,
    ) -> anyhow::Result<DateTime<Utc>> {
        let grace = chrono::Duration::from_std(self.settings.grace)?;
        let stuck = now - chrono::Duration::from_std(self.settings.saga_timeout)? - grace;
        let most = self.settings.max_orders;
        let pending = peers
            .orders("PENDING", Some(stuck), None, most)
            .await
            .context("listing orders stuck PENDING")?
            .orders;
        let end = now - grace;
        let cancelled = peers
            .orders("CANCELLED", None, Some((since, end)), most)
            .await
            .context("listing orders cancelled since the last run")?;
        let reached = cancelled.reached(end);
        let cancelled = cancelled.orders;
        let mut seen: HashSet<Uuid> = HashSet::new();
        for orders in pending.chunks(BATCH).chain(cancelled.chunks(BATCH)) {
            seen.extend(orders.iter().map(|o| o.order_id));
            *checked += orders.len();
            self.compare_orders(peers, orders, run).await?;
        }
        let unsettled: Vec<Saga> = store::unsettled(&self.infra.pool, self.settings.grace, 10_000)
            .await
            .context("reading unsettled sagas")?
            .into_iter()
            .filter(|s| !seen.contains(&s.order_id))
            .collect();
        for sagas in unsettled.chunks(BATCH) {
            *checked += sagas.len();
            self.compare_sagas(peers, sagas, run).await?;
        }
        Ok(reached)
    }

    /// Orders with their sagas, payments and reservations.
    async fn compare_orders(
        &self,
        peers: &Peers,
        orders: &[OrderRecord],
        run: i64,
    ) -> anyhow::Result<()> {
        let ids: Vec<Uuid> = orders.iter().map(|o| o.order_id).collect();
        let sagas = store::sagas_of_orders(&self.infra.pool, &ids)
            .await
            .context("reading the orders' sagas")?;
        let (payments, reservations) =
            futures_util::try_join!(peers.payments(&ids), peers.reservations(&ids))?;
        let found: Vec<Mismatch> = orders
            .iter()
            .filter_map(|o| {
                compare(Records {
                    order: Some(o),
                    saga: sagas.get(&o.order_id),
                    payment: payments.get(&o.order_id),
                    reservation: reservations.get(&o.order_id),
                })
            })
            .collect();
        self.settle(run, found).await
    }

    /// Sagas with their payments and reservations.
    async fn compare_sagas(&self, peers: &Peers, sagas: &[Saga], run: i64) -> anyhow::Result<()> {
        let ids: Vec<Uuid> = sagas.iter().map(|s| s.order_id).collect();
        let (payments, reservations) =
            futures_util::try_join!(peers.payments(&ids), peers.reservations(&ids))?;
        let found: Vec<Mismatch> = sagas
            .iter()
            .filter_map(|s| {
                compare(Records {
                    order: None,
                    saga: Some(s),
                    payment: payments.get(&s.order_id),
                    reservation: reservations.get(&s.order_id),
                })
            })
            .collect();
        self.settle(run, found).await
    }

    /// Records what was found and re-sends what settles it, in one transaction.
    async fn settle(&self, run: i64, found: Vec<Mismatch>) -> anyhow::Result<()> {
        if found.is_empty() {
            return Ok(());
        }
        let actions: Vec<String> = found.iter().map(action).collect();
        let kinds: Vec<&str> = found.iter().map(|m| m.kind.as_str()).collect();
        let rows: Vec<Found<'_>> = found
            .iter()
            .zip(&actions)
            .zip(&kinds)
            .map(|((m, action), kind)| Found {
                kind,
                order_id: m.order_id,
                saga_id: m.saga_id,
                detail: &m.detail,
                action,
            })
            .collect();
        let events: Vec<Envelope> = found
            .iter()
            .flat_map(|m| {
                m.resend
                    .iter()
                    .map(|e| self.infra.outbox.event(e.clone(), m.saga_id, None))
            })
            .collect();
        let mut tx = self.infra.pool.begin().await?;
        store::record(&mut tx, run, &rows)
            .await
            .context("recording the mismatches")?;
        let written = self
            .infra
            .outbox
            .add_all(&mut tx, events)
            .await
            .context("writing the events that settle them")?;
        self.infra
            .outbox
            .commit(tx, written)
            .await
            .context("committing the repair")?;
        for (m, action) in found.iter().zip(&actions) {
            tracing::warn!(kind = m.kind.as_str(), order_id = %m.order_id, saga_id = %m.saga_id,
                detail = %m.detail, action = %action, "reconciliation: records disagree");
        }
        Ok(())
    }
}

/// What was done about a mismatch, in words.
fn action(m: &Mismatch) -> String {
    if m.resend.is_empty() {
        "none: needs an operator".into()
    } else {
        let names: Vec<&str> = m.resend.iter().map(shared_events::Event::name).collect();
        format!("re-sent {}", names.join(", "))
    }
}
