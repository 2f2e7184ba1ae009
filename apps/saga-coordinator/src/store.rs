//! Every SQL statement of saga-coordinator: the `sagas` and `saga_history` tables.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared_events::{AbortReason, Envelope};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::rules::{InventoryStatus, PaymentStatus, Saga, SagaStatus};

const COLUMNS: &str = "saga_id, order_id, status, reason, payment_status, payment_id, inventory_status, \
    reservation_id, order_cancelled, deadline, created_at, updated_at";

/// A saga's row: its state and when things happen to it.
#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    saga: Saga,
    deadline: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The sagas `(saga_id, order_id)`, locked for this transaction in saga id order; each is created
/// (`STARTED`, deadline `timeout` from now) by whichever of its events arrives first. One
/// statement: a conflicting insert locks the existing row and returns it unchanged.
pub async fn lock(
    conn: &mut PgConnection,
    keys: &[(Uuid, Uuid)],
    timeout: Duration,
) -> Result<HashMap<Uuid, Saga>, sqlx::Error> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup_by_key(|(saga_id, _)| *saga_id);
    let (saga_ids, order_ids): (Vec<Uuid>, Vec<Uuid>) = keys.into_iter().unzip();
    let sql = format!(
        "INSERT INTO sagas (saga_id, order_id, status, payment_status, inventory_status, deadline) \
         SELECT s, o, 'STARTED', 'PENDING', 'PENDING', now() + make_interval(secs => $3) \
         FROM unnest($1::uuid[], $2::uuid[]) AS t(s, o) \
         ON CONFLICT (saga_id) DO UPDATE SET saga_id = EXCLUDED.saga_id RETURNING {COLUMNS}"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&saga_ids)
        .bind(&order_ids)
        .bind(timeout.as_secs_f64())
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.saga.saga_id, r.saga)).collect())
}

/// One event a saga saw or emitted, for its history.
pub struct Seen {
    pub saga_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
}

impl Seen {
    pub fn of(event: &Envelope) -> Seen {
        Seen {
            saga_id: event.payload.saga_id(),
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            occurred_at: event.occurred_at,
        }
    }
}

/// Writes `sagas` back and adds `seen`, in this order, to their histories: one statement.
pub async fn save(
    conn: &mut PgConnection,
    sagas: &[&Saga],
    seen: &[Seen],
) -> Result<(), sqlx::Error> {
    if sagas.is_empty() && seen.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = sagas.iter().map(|s| s.saga_id).collect();
    let statuses: Vec<SagaStatus> = sagas.iter().map(|s| s.status).collect();
    let reasons: Vec<Option<AbortReason>> = sagas.iter().map(|s| s.reason).collect();
    let payments: Vec<PaymentStatus> = sagas.iter().map(|s| s.payment).collect();
    let inventories: Vec<InventoryStatus> = sagas.iter().map(|s| s.inventory).collect();
    let cancels: Vec<Option<AbortReason>> = sagas.iter().map(|s| s.order_cancelled).collect();
    let payment_ids: Vec<Option<Uuid>> = sagas.iter().map(|s| s.payment_id).collect();
    let reservation_ids: Vec<Option<Uuid>> = sagas.iter().map(|s| s.reservation_id).collect();
    let seen_sagas: Vec<Uuid> = seen.iter().map(|s| s.saga_id).collect();
    let seen_events: Vec<Uuid> = seen.iter().map(|s| s.event_id).collect();
    let seen_types: Vec<&str> = seen.iter().map(|s| s.event_type.as_str()).collect();
    let seen_times: Vec<DateTime<Utc>> = seen.iter().map(|s| s.occurred_at).collect();
    sqlx::query(
        "WITH history AS ( \
             INSERT INTO saga_history (saga_id, event_id, event_type, occurred_at) \
             SELECT * FROM unnest($9::uuid[], $10::uuid[], $11::text[], $12::timestamptz[]) \
             ON CONFLICT DO NOTHING) \
         UPDATE sagas SET status = x.status, reason = x.reason, payment_status = x.payment, \
         payment_id = x.payment_id, inventory_status = x.inventory, reservation_id = x.reservation_id, \
         order_cancelled = x.order_cancelled, updated_at = now(), \
         compensating_since = CASE WHEN x.status <> 'COMPENSATING' THEN NULL \
                                   ELSE COALESCE(sagas.compensating_since, now()) END \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], \
                     $7::uuid[], $8::text[]) \
              AS x(saga_id, status, reason, payment, payment_id, inventory, reservation_id, order_cancelled) \
         WHERE sagas.saga_id = x.saga_id",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&reasons)
    .bind(&payments)
    .bind(&payment_ids)
    .bind(&inventories)
    .bind(&reservation_ids)
    .bind(&cancels)
    .bind(&seen_sagas)
    .bind(&seen_events)
    .bind(&seen_types)
    .bind(&seen_times)
    .execute(conn)
    .await?;
    Ok(())
}

/// A saga whose deadline passed.
#[derive(sqlx::FromRow)]
pub struct Due {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    /// `STARTED` (its deadline passed), else `COMPENSATING` (its compensation is overdue).
    pub started: bool,
}

/// Sagas whose deadline passed while `STARTED`, and compensations overdue since `overdue`,
/// locked for this transaction and skipped by any other instance sweeping at the same time.
pub async fn due(
    conn: &mut PgConnection,
    overdue: Duration,
    limit: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(
        // Each half reads its own partial index; the outer query locks what they found.
        "SELECT saga_id, order_id, status = 'STARTED' AS started FROM sagas WHERE saga_id IN ( \
             (SELECT saga_id FROM sagas WHERE status = 'STARTED' AND deadline <= now() \
              ORDER BY deadline LIMIT $2) \
             UNION ALL \
             (SELECT saga_id FROM sagas WHERE status = 'COMPENSATING' \
              AND compensating_since <= now() - make_interval(secs => $1) \
              ORDER BY compensating_since LIMIT $2)) \
         AND (status = 'STARTED' OR status = 'COMPENSATING') \
         LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(overdue.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Seconds until the next `STARTED` deadline, if there is one.
pub async fn next_deadline(pool: &PgPool) -> Result<Option<f64>, sqlx::Error> {
    sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM min(deadline) - now())::float8 FROM sagas WHERE status = 'STARTED'")
        .fetch_one(pool)
        .await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant<S> {
    pub status: S,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<Uuid>,
}

#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// A saga as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaView {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    pub status: SagaStatus,
    pub reason: Option<AbortReason>,
    pub payment: Participant<PaymentStatus>,
    pub inventory: Participant<InventoryStatus>,
    pub deadline: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
}

fn view(row: Row) -> SagaView {
    let Row {
        saga,
        deadline,
        created_at,
        updated_at,
    } = row;
    SagaView {
        saga_id: saga.saga_id,
        order_id: saga.order_id,
        status: saga.status,
        reason: saga.reason,
        payment: Participant {
            status: saga.payment,
            payment_id: saga.payment_id,
            reservation_id: None,
        },
        inventory: Participant {
            status: saga.inventory,
            payment_id: None,
            reservation_id: saga.reservation_id,
        },
        deadline,
        created_at,
        updated_at,
        history: None,
    }
}

pub async fn get(pool: &PgPool, saga_id: Uuid) -> Result<Option<SagaView>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE saga_id = $1");
    let Some(row) = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(saga_id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let history: Vec<HistoryEntry> = sqlx::query_as(
        "SELECT event_id, event_type, occurred_at, received_at FROM saga_history WHERE saga_id = $1 \
         ORDER BY received_at, occurred_at",
    )
    .bind(saga_id)
    .fetch_all(pool)
    .await?;
    let mut saga = view(row);
    saga.history = Some(history);
    Ok(Some(saga))
}

pub async fn list(
    pool: &PgPool,
    status: Option<SagaStatus>,
    order_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<SagaView>, sqlx::Error> {
    // Only the filters given, so that each query plans well whatever the plan cache does.
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM sagas WHERE true"));
    if let Some(status) = status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(order_id) = order_id {
        query.push(" AND order_id = ").push_bind(order_id);
    }
    if let Some(before) = before {
        query.push(" AND saga_id < ").push_bind(before);
    }
    query.push(" ORDER BY saga_id DESC LIMIT ").push_bind(limit);
    let rows: Vec<Row> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(view).collect())
}
