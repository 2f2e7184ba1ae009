//! saga-coordinator: follows every order's saga, persists it with the history of its events,
//! decides its outcome ([`saga`] holds the rules), enforces deadlines from the database, and
//! answers `GET /sagas/{id}` and `GET /sagas`.

pub mod saga;
pub mod store;

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use messaging::db::Migration;
use messaging::{Context, Handler, HandlerError, Shutdown};
use serde::Deserialize;
use service_kit::extract::{Page, page_limit};
use service_kit::settings::env_or;
use service_kit::{
    ApiError, ApiPath, ApiQuery, CommonSettings, FieldError, Infra, Service, ServiceBuilder,
};
use shared_events::EventKind;
use uuid::Uuid;

use crate::saga::{Input, SagaStatus};
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
    async fn handle(&self, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let event = ctx.event();
        let (saga_id, order_id) = (event.payload.saga_id(), event.payload.order_id());
        let (event_id, event_type, occurred_at, payload) = (
            event.event_id,
            event.event_type.clone(),
            event.occurred_at,
            event.payload.clone(),
        );
        let saga = store::lock(ctx.conn(), saga_id, order_id, self.timeouts.saga).await?;
        store::record(ctx.conn(), saga_id, event_id, &event_type, occurred_at).await?;
        let (next, decision) = saga.apply(Input::Event(&payload));
        if next != saga {
            store::save(ctx.conn(), &next).await?;
        }
        if let Some(decision) = decision {
            let name = decision.kind().name();
            let id = ctx.emit(decision).await?;
            store::record(ctx.conn(), saga_id, id, name, Utc::now()).await?;
        }
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
    for (saga_id, order_id, started) in &due {
        let saga = store::lock(&mut tx, *saga_id, *order_id, timeouts.saga).await?;
        let input = if *started {
            Input::DeadlinePassed
        } else {
            Input::CompensationOverdue
        };
        let (next, decision) = saga.apply(input);
        if next.status == SagaStatus::Failed && saga.status != SagaStatus::Failed {
            tracing::error!(%saga_id, "compensation overdue: saga FAILED, needs an operator");
        }
        store::save(&mut tx, &next).await?;
        if let Some(decision) = decision {
            let name = decision.kind().name();
            let event = infra.outbox.event(decision, *saga_id, None);
            infra.outbox.add(&mut tx, &event).await?;
            store::record(&mut tx, *saga_id, event.event_id, name, event.occurred_at).await?;
        }
    }
    infra.outbox.commit(tx).await?;
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
