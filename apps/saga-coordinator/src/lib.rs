//! saga-coordinator: follows every order's saga, persists it with the history of its events,
//! decides its outcome ([`saga`] holds the rules), enforces deadlines from the database, and
//! answers `GET /sagas/{id}` and `GET /sagas`.

pub mod saga;
pub mod store;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use messaging::db::Migration;
use messaging::{Batch, Handler, HandlerError, Shutdown};
use serde::Deserialize;
use service_kit::extract::{Page, page_limit};
use service_kit::settings::env_or;
use service_kit::{
    ApiError, ApiPath, ApiQuery, CommonSettings, FieldError, Infra, Service, ServiceBuilder,
};
use shared_events::{Envelope, EventKind};
use uuid::Uuid;

use crate::saga::{Input, Saga, SagaStatus};
use crate::store::SagaView;

pub const SERVICE: &str = "saga-coordinator";
pub const DEFAULT_PORT: u16 = 3008;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1000,
    description: "sagas",
    sql: include_str!("../migrations/1000_sagas.sql"),
}];

/// Every event of a saga that the coordinator follows.
pub const FOLLOWED: [EventKind; 10] = [
    EventKind::OrderCreated,
    EventKind::OrderConfirmed,
    EventKind::OrderCancelled,
    EventKind::PaymentConfirmed,
    EventKind::PaymentFailed,
    EventKind::PaymentRefunded,
    EventKind::InventoryReserved,
    EventKind::InventoryFailed,
    EventKind::InventoryCommitted,
    EventKind::InventoryReleased,
];

#[derive(Clone, Debug)]
pub struct Timeouts {
    /// `SAGA_TIMEOUT_MS` (default 30000): a saga still `STARTED` this long after the coordinator
    /// first saw it is aborted with `TIMEOUT`.
    pub saga: Duration,
    /// `SAGA_COMPENSATION_TIMEOUT_MS` (default 300000): a compensation unfinished this long
    /// marks the saga `FAILED`, for an operator.
    pub compensation: Duration,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonSettings,
    pub timeouts: Timeouts,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        let saga: u64 = env_or("SAGA_TIMEOUT_MS", 30_000)?;
        let compensation: u64 = env_or("SAGA_COMPENSATION_TIMEOUT_MS", 300_000)?;
        if saga == 0 || compensation == 0 {
            anyhow::bail!("SAGA_TIMEOUT_MS and SAGA_COMPENSATION_TIMEOUT_MS must be at least 1");
        }
        Ok(Settings {
            common: CommonSettings::from_env(SERVICE, DEFAULT_PORT, "sagas")?,
            timeouts: Timeouts {
                saga: Duration::from_millis(saga),
                compensation: Duration::from_millis(compensation),
            },
        })
    }
}

/// Records each followed event in its saga and applies the saga rules to it.
#[derive(Clone)]
pub struct Coordinator {
    timeouts: Timeouts,
}

impl Handler for Coordinator {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let keys: Vec<(Uuid, Uuid)> = events
            .iter()
            .map(|e| (e.payload.saga_id(), e.payload.order_id()))
            .collect();
        let mut sagas = store::lock(batch.conn(), &keys, self.timeouts.saga).await?;
        let mut changed = BTreeSet::new();
        let mut seen = Vec::with_capacity(events.len() * 2);
        for event in events {
            let saga_id = event.payload.saga_id();
            let saga = sagas
                .get_mut(&saga_id)
                .ok_or_else(|| anyhow::anyhow!("saga {saga_id} vanished while locked"))?;
            seen.push(store::Seen::of(event));
            let (next, decision) = saga.apply(Input::Event(&event.payload));
            if next != *saga {
                *saga = next;
                changed.insert(saga_id);
            }
            if let Some(decision) = decision {
                seen.push(store::Seen::of(batch.emit(event, decision)));
            }
        }
        let changed: Vec<&Saga> = changed.iter().filter_map(|id| sagas.get(id)).collect();
        store::save(batch.conn(), &changed, &seen).await?;
        Ok(())
    }
}

/// Aborts sagas whose deadline passed and fails overdue compensations, on any instance: each
/// round locks what it takes with `SKIP LOCKED`. Between rounds it sleeps until the next deadline
/// (at most a second), so an idle coordinator costs one small query a second.
async fn sweep(infra: Infra, timeouts: Timeouts, shutdown: Shutdown) {
    const BATCH: i64 = 200;
    loop {
        let swept = sweep_once(&infra, &timeouts, BATCH).await;
        if let Err(e) = &swept {
            tracing::warn!(error = %e, "deadline sweep failed; retrying");
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

async fn sweep_once(infra: &Infra, timeouts: &Timeouts, limit: i64) -> Result<usize, sqlx::Error> {
    let mut tx = infra.pool.begin().await?;
    let due = store::due(&mut tx, timeouts.compensation, limit).await?;
    if due.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let keys: Vec<(Uuid, Uuid)> = due.iter().map(|(s, o, _)| (*s, *o)).collect();
    let sagas = store::lock(&mut tx, &keys, timeouts.saga).await?;
    let mut changed = Vec::with_capacity(due.len());
    let mut emitted = Vec::new();
    for (saga_id, _, started) in &due {
        let Some(saga) = sagas.get(saga_id) else {
            continue;
        };
        let input = if *started {
            Input::DeadlinePassed
        } else {
            Input::CompensationOverdue
        };
        let (next, decision) = saga.apply(input);
        if next.status == SagaStatus::Failed && saga.status != SagaStatus::Failed {
            tracing::error!(%saga_id, "compensation overdue: saga FAILED, needs an operator");
        }
        changed.push(next);
        if let Some(decision) = decision {
            emitted.push(infra.outbox.event(decision, *saga_id, None));
        }
    }
    let seen: Vec<store::Seen> = emitted.iter().map(store::Seen::of).collect();
    store::save(&mut tx, &changed.iter().collect::<Vec<_>>(), &seen).await?;
    let written = infra.outbox.add_all(&mut tx, emitted).await?;
    infra.outbox.commit(tx, written).await?;
    Ok(due.len())
}

pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Service> {
    let infra = Infra::connect(&settings.common, MIGRATIONS).await?;
    let mut builder = ServiceBuilder::new(settings.common, infra.clone(), shutdown.clone());
    let coordinator = Coordinator {
        timeouts: settings.timeouts.clone(),
    };
    for kind in FOLLOWED {
        builder.consume(kind, coordinator.clone()).await?;
    }
    builder.spawn(sweep(infra.clone(), settings.timeouts, shutdown));
    let routes = Router::new()
        .route("/sagas", get(list))
        .route("/sagas/{saga_id}", get(get_one))
        .with_state(infra);
    builder.serve(routes).await
}

async fn get_one(
    State(infra): State<Infra>,
    ApiPath(saga_id): ApiPath<Uuid>,
) -> Result<Json<SagaView>, ApiError> {
    store::get(&infra.pool, saga_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no saga {saga_id}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    status: Option<String>,
    order_id: Option<Uuid>,
    limit: Option<u32>,
    cursor: Option<Uuid>,
}

async fn list(
    State(infra): State<Infra>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<SagaView, Uuid>>, ApiError> {
    let limit = page_limit(query.limit)?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(SagaStatus::parse(s).ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                "status",
                "must be STARTED, COMPLETED, COMPENSATING, COMPENSATED or FAILED",
            )])
        })?),
    };
    let mut items =
        store::list(&infra.pool, status, query.order_id, query.cursor, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|s| s.saga_id)
    } else {
        None
    };
    Ok(Json(Page { items, next_cursor }))
}
