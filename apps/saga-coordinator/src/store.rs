//! Every SQL statement of saga-coordinator: the `sagas`, `saga_history` and `saga_counts`
//! tables here, the dead letters in [`dlq`].

pub mod reconcile;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared_events::{AbortReason, Envelope, TraceParent};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::rules::{InventoryStatus, PaymentStatus, Saga, SagaStatus};

const COLUMNS: &str = "saga_id, order_id, status, reason, payment_status, payment_id, inventory_status, \
    reservation_id, order_cancelled, deadline_passed, deadline, compensating_since, ended_at, \
    created_at, updated_at, trace_parent";

/// A saga's state as its row holds it.
#[derive(sqlx::FromRow)]
struct SagaRow {
    saga_id: Uuid,
    order_id: Uuid,
    status: SagaStatus,
    reason: Option<AbortReason>,
    payment_status: PaymentStatus,
    payment_id: Option<Uuid>,
    inventory_status: InventoryStatus,
    reservation_id: Option<Uuid>,
    order_cancelled: Option<AbortReason>,
    deadline_passed: bool,
}

impl From<SagaRow> for Saga {
    fn from(r: SagaRow) -> Saga {
        Saga {
            saga_id: r.saga_id,
            order_id: r.order_id,
            status: r.status,
            reason: r.reason,
            payment: r.payment_status,
            payment_id: r.payment_id,
            inventory: r.inventory_status,
            reservation_id: r.reservation_id,
            order_cancelled: r.order_cancelled,
            deadline_passed: r.deadline_passed,
        }
    }
}

/// A saga's row: its state and when things happen to it.
#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    state: SagaRow,
    deadline: DateTime<Utc>,
    compensating_since: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    trace_parent: Option<String>,
}

impl Row {
    fn saga(self) -> Saga {
        Saga::from(self.state)
    }

    fn trace(&self) -> Option<TraceParent> {
        self.trace_parent.as_deref().and_then(|t| t.parse().ok())
    }
}

/// A saga to lock: its id, its order, and the trace of the event that names it.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    pub trace: Option<TraceParent>,
    /// Whether the saga is likely new (the event is the order's creation): then it is inserted
    /// first, else looked up first.
    pub likely_new: bool,
}

impl Key {
    pub fn new(saga_id: Uuid, order_id: Uuid, trace: Option<TraceParent>) -> Key {
        Key {
            saga_id,
            order_id,
            trace,
            likely_new: false,
        }
    }

    /// The key of a saga the event likely starts.
    pub fn likely_new(self, likely_new: bool) -> Key {
        Key { likely_new, ..self }
    }
}

/// The sagas of `keys`, locked for this transaction; each is created (`STARTED`, with its
/// deadline) by whichever of its events arrives first.
///
/// Nothing is written to a saga that exists (an upsert would write a new row version each
/// time). When no key is likely new, one statement locks the sagas; otherwise, or for those it did
/// not find, one statement inserts the sagas not there yet and locks the others (and counts the
/// new ones). A saga created by a concurrent transaction after that statement's snapshot is
/// neither inserted nor seen; the next round locks it.
pub async fn lock(
    conn: &mut PgConnection,
    keys: &[Key],
    timeout: Duration,
) -> Result<HashMap<Uuid, Saga>, sqlx::Error> {
    let mut keys = keys.to_vec();
    keys.sort_by_key(|k| k.saga_id);
    keys.dedup_by_key(|k| k.saga_id);
    let mut found = HashMap::with_capacity(keys.len());
    if !keys.iter().any(|k| k.likely_new) {
        let saga_ids: Vec<Uuid> = keys.iter().map(|k| k.saga_id).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM sagas WHERE saga_id = ANY($1) ORDER BY saga_id FOR UPDATE"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&saga_ids)
            .fetch_all(&mut *conn)
            .await?;
        found.extend(
            rows.into_iter()
                .map(|r| (r.state.saga_id, Saga::from(r.state))),
        );
        keys.retain(|k| !found.contains_key(&k.saga_id));
    }
    for _ in 0..3 {
        if keys.is_empty() {
            break;
        }
        let saga_ids: Vec<Uuid> = keys.iter().map(|k| k.saga_id).collect();
        let order_ids: Vec<Uuid> = keys.iter().map(|k| k.order_id).collect();
        let traces: Vec<Option<String>> = keys
            .iter()
            .map(|k| k.trace.map(|t| t.to_string()))
            .collect();
        let sql = format!(
            "WITH created AS ( \
                 INSERT INTO sagas (saga_id, order_id, status, payment_status, inventory_status, \
                     deadline, trace_parent) \
                 SELECT s, o, 'STARTED', 'PENDING', 'PENDING', now() + make_interval(secs => $3), \
                     tp \
                 FROM unnest($1::uuid[], $2::uuid[], $4::text[]) AS t(s, o, tp) \
                 ON CONFLICT (saga_id) DO NOTHING RETURNING {COLUMNS}), \
             counted AS ( \
                 INSERT INTO saga_count_deltas (status, reason, d) \
                 SELECT 'STARTED', '', count(*) FROM created HAVING count(*) > 0), \
             existing AS ( \
                 SELECT {COLUMNS} FROM sagas WHERE saga_id = ANY($1) ORDER BY saga_id FOR UPDATE) \
             SELECT * FROM created UNION ALL SELECT * FROM existing"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&saga_ids)
            .bind(&order_ids)
            .bind(timeout.as_secs_f64())
            .bind(&traces)
            .fetch_all(&mut *conn)
            .await?;
        found.extend(
            rows.into_iter()
                .map(|r| (r.state.saga_id, Saga::from(r.state))),
        );
        keys.retain(|k| !found.contains_key(&k.saga_id));
    }
    Ok(found)
}

/// One event a saga saw or emitted, or an operator's action on it, for its history.
pub struct Seen {
    pub saga_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// Who acted, for an operator's action.
    pub actor: Option<String>,
    pub detail: Option<String>,
}

impl Seen {
    pub fn of(event: &Envelope) -> Seen {
        Seen {
            saga_id: event.payload.saga_id(),
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            occurred_at: event.occurred_at,
            actor: None,
            detail: None,
        }
    }

    /// An operator's action (`operator.retry`, `operator.abort`) on a saga, now.
    pub fn operator(saga_id: Uuid, action: &str, actor: &str, detail: Option<String>) -> Seen {
        Seen {
            saga_id,
            event_id: Uuid::now_v7(),
            event_type: format!("operator.{action}"),
            occurred_at: Utc::now(),
            actor: Some(actor.to_owned()),
            detail,
        }
    }
}

/// A saga that reached `COMPLETED` or `COMPENSATED` in a save, and how long it took.
#[derive(sqlx::FromRow)]
pub struct Ended {
    pub status: SagaStatus,
    pub seconds: f64,
}

/// Writes `sagas` back and adds `seen`, in this order, to their histories: one statement.
/// Returns the sagas that ended with it.
pub async fn save(
    conn: &mut PgConnection,
    sagas: &[&Saga],
    seen: &[Seen],
) -> Result<Vec<Ended>, sqlx::Error> {
    if sagas.is_empty() && seen.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = sagas.iter().map(|s| s.saga_id).collect();
    let statuses: Vec<SagaStatus> = sagas.iter().map(|s| s.status).collect();
    let reasons: Vec<Option<AbortReason>> = sagas.iter().map(|s| s.reason).collect();
    let payments: Vec<PaymentStatus> = sagas.iter().map(|s| s.payment).collect();
    let inventories: Vec<InventoryStatus> = sagas.iter().map(|s| s.inventory).collect();
    let cancels: Vec<Option<AbortReason>> = sagas.iter().map(|s| s.order_cancelled).collect();
    let deadlines_passed: Vec<bool> = sagas.iter().map(|s| s.deadline_passed).collect();
    let payment_ids: Vec<Option<Uuid>> = sagas.iter().map(|s| s.payment_id).collect();
    let reservation_ids: Vec<Option<Uuid>> = sagas.iter().map(|s| s.reservation_id).collect();
    let seen_sagas: Vec<Uuid> = seen.iter().map(|s| s.saga_id).collect();
    let seen_events: Vec<Uuid> = seen.iter().map(|s| s.event_id).collect();
    let seen_types: Vec<&str> = seen.iter().map(|s| s.event_type.as_str()).collect();
    let seen_times: Vec<DateTime<Utc>> = seen.iter().map(|s| s.occurred_at).collect();
    let seen_actors: Vec<Option<&str>> = seen.iter().map(|s| s.actor.as_deref()).collect();
    let seen_details: Vec<Option<&str>> = seen.iter().map(|s| s.detail.as_deref()).collect();
    // In SET, `sagas.status` is the status before this update: a saga ends when it becomes
    // COMPLETED or COMPENSATED from another status. RETURNING sees the row after it, `before`
    // (the same snapshot as the update's) the row before it: their difference goes to the counts.
    sqlx::query_as(
        "WITH history AS ( \
             INSERT INTO saga_history (saga_id, event_id, event_type, occurred_at, actor, detail) \
             SELECT * FROM unnest($9::uuid[], $10::uuid[], $11::text[], $12::timestamptz[], \
                                  $13::text[], $14::text[]) \
             ON CONFLICT DO NOTHING), \
         before AS (SELECT saga_id, status, COALESCE(reason, '') AS reason FROM sagas \
                    WHERE saga_id = ANY($1)), \
         saved AS ( \
         UPDATE sagas SET status = x.status, reason = x.reason, payment_status = x.payment, \
         payment_id = x.payment_id, inventory_status = x.inventory, reservation_id = x.reservation_id, \
         order_cancelled = x.order_cancelled, deadline_passed = x.deadline_passed, \
         updated_at = now(), compensating_since = CASE WHEN x.status <> 'COMPENSATING' THEN NULL \
                                   ELSE COALESCE(sagas.compensating_since, now()) END, \
         ended_at = CASE WHEN x.status IN ('COMPLETED', 'COMPENSATED') \
                          AND sagas.status NOT IN ('COMPLETED', 'COMPENSATED') THEN now() \
                         WHEN x.status IN ('COMPLETED', 'COMPENSATED') THEN sagas.ended_at END \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], \
                     $7::uuid[], $8::text[], $15::bool[]) \
              AS x(saga_id, status, reason, payment, payment_id, inventory, reservation_id, \
                   order_cancelled, deadline_passed) \
         WHERE sagas.saga_id = x.saga_id \
         RETURNING sagas.saga_id, sagas.status, COALESCE(sagas.reason, '') AS reason, \
             CASE WHEN sagas.ended_at = now() \
                  THEN EXTRACT(EPOCH FROM sagas.ended_at - sagas.created_at)::float8 END AS seconds), \
         counted AS ( \
             INSERT INTO saga_count_deltas (status, reason, d) \
             SELECT status, reason, sum(d) FROM ( \
                 SELECT status, reason, 1 AS d FROM saved \
                 UNION ALL SELECT b.status, b.reason, -1 FROM before b \
                     JOIN saved USING (saga_id)) c \
             GROUP BY 1, 2 HAVING sum(d) <> 0) \
         SELECT status, seconds FROM saved",
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
    .bind(&seen_actors)
    .bind(&seen_details)
    .bind(&deadlines_passed)
    .fetch_all(conn)
    .await
    .map(|rows: Vec<EndedRow>| {
        rows.into_iter()
            .filter_map(|r| {
                r.seconds.map(|seconds| Ended {
                    status: r.status,
                    seconds,
                })
            })
            .collect()
    })
}

/// A saved saga's status, and how long it took if it ended with the save.
#[derive(sqlx::FromRow)]
struct EndedRow {
    status: SagaStatus,
    seconds: Option<f64>,
}

/// One saga, locked for this transaction, with its trace; `None` for an unknown saga.
pub async fn lock_one(
    conn: &mut PgConnection,
    saga_id: Uuid,
) -> Result<Option<(Saga, Option<TraceParent>)>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE saga_id = $1 FOR UPDATE");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(saga_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| {
        let trace = r.trace();
        (Saga::from(r.state), trace)
    }))
}

/// Starts a saga's compensation deadline again from now (an operator retried it).
pub async fn restart_compensation(
    conn: &mut PgConnection,
    saga_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sagas SET compensating_since = now() WHERE saga_id = $1 AND status = 'COMPENSATING'",
    )
    .bind(saga_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A saga with a deadline that has passed.
#[derive(sqlx::FromRow)]
pub struct Due {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    /// The saga's trace, which the sweep's decision continues.
    pub trace_parent: Option<String>,
    /// Its own deadline passed (`STARTED`, or `COMPENSATING` waiting for a participant's answer);
    /// else its compensation is overdue.
    pub deadline: bool,
}

/// A `COMPENSATING` saga still waiting for a participant's first answer.
const WAITING: &str = "status = 'COMPENSATING' AND NOT deadline_passed \
    AND (payment_status = 'PENDING' OR inventory_status = 'PENDING')";

/// Sagas whose deadline passed while `STARTED` or while waiting for an answer, and compensations
/// overdue since `overdue`, locked for this transaction and skipped by any other instance
/// sweeping at the same time.
pub async fn due(
    conn: &mut PgConnection,
    overdue: Duration,
    limit: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    // Each part reads its own partial index; the outer query locks what they found. The outer
    // conditions repeat the parts': a row changed by a commit while this query waited for its
    // lock is checked again in its new version (a saga aborted a moment ago has a fresh
    // compensating_since, and is not overdue).
    let sql = format!(
        "SELECT saga_id, order_id, trace_parent, \
             (status = 'STARTED' OR ({WAITING} AND deadline <= now())) AS deadline \
         FROM sagas WHERE saga_id IN ( \
             (SELECT saga_id FROM sagas WHERE status = 'STARTED' AND deadline <= now() \
              ORDER BY deadline LIMIT $2) \
             UNION ALL \
             (SELECT saga_id FROM sagas WHERE {WAITING} AND deadline <= now() \
              ORDER BY deadline LIMIT $2) \
             UNION ALL \
             (SELECT saga_id FROM sagas WHERE status = 'COMPENSATING' \
              AND compensating_since <= now() - make_interval(secs => $1) \
              ORDER BY compensating_since LIMIT $2)) \
         AND ((status = 'STARTED' AND deadline <= now()) \
              OR ({WAITING} AND deadline <= now()) \
              OR (status = 'COMPENSATING' \
                  AND compensating_since <= now() - make_interval(secs => $1))) \
         LIMIT $2 FOR UPDATE SKIP LOCKED"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(overdue.as_secs_f64())
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Seconds until the next saga deadline the sweep acts on, if there is one.
pub async fn next_deadline(pool: &PgPool) -> Result<Option<f64>, sqlx::Error> {
    let sql = format!(
        "SELECT EXTRACT(EPOCH FROM min(d) - now())::float8 FROM ( \
             (SELECT min(deadline) AS d FROM sagas WHERE status = 'STARTED') \
             UNION ALL (SELECT min(deadline) FROM sagas WHERE {WAITING})) n"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
}

/// An event the saga saw or emitted, or an operator's action on it, as the history holds it.
#[derive(sqlx::FromRow)]
pub struct HistoryRecord {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// Who acted, on an operator's action.
    pub actor: Option<String>,
    /// The operator's note.
    pub detail: Option<String>,
}

/// A saga as stored: its state, its deadlines and times, its trace, and (read alone) its
/// history.
pub struct SagaRecord {
    pub saga: Saga,
    pub deadline: DateTime<Utc>,
    /// When a `COMPENSATING` saga becomes `FAILED` unless its compensation finishes.
    pub compensation_deadline: Option<DateTime<Utc>>,
    /// When it last reached `COMPLETED` or `COMPENSATED`.
    pub ended_at: Option<DateTime<Utc>>,
    /// The trace of everything its order caused (32 hex digits).
    pub trace_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub history: Option<Vec<HistoryRecord>>,
}

fn record(row: Row, compensation_timeout: Duration) -> SagaRecord {
    let trace_id = row.trace().map(|t| t.trace_id_hex());
    let Row {
        state,
        deadline,
        compensating_since,
        ended_at,
        created_at,
        updated_at,
        trace_parent: _,
    } = row;
    SagaRecord {
        saga: Saga::from(state),
        deadline,
        compensation_deadline: compensating_since.and_then(|since| {
            chrono::Duration::from_std(compensation_timeout)
                .ok()
                .map(|t| since + t)
        }),
        ended_at,
        trace_id,
        created_at,
        updated_at,
        history: None,
    }
}

/// One saga with its history, oldest entry first.
pub async fn get(
    pool: &PgPool,
    saga_id: Uuid,
    compensation_timeout: Duration,
) -> Result<Option<SagaRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE saga_id = $1");
    let Some(row) = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(saga_id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let history: Vec<HistoryRecord> = sqlx::query_as(
        "SELECT event_id, event_type, occurred_at, received_at, actor, detail FROM saga_history \
         WHERE saga_id = $1 ORDER BY received_at, occurred_at",
    )
    .bind(saga_id)
    .fetch_all(pool)
    .await?;
    let mut saga = record(row, compensation_timeout);
    saga.history = Some(history);
    Ok(Some(saga))
}

/// Which sagas a list shows. Every filter given must hold.
#[derive(Default)]
pub struct ListFilter {
    pub status: Option<SagaStatus>,
    pub order_id: Option<Uuid>,
    pub reason: Option<AbortReason>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// `true`: only stuck sagas (see [`STUCK_BEFORE`]); `false`: only the others.
    pub stuck: Option<bool>,
    /// Sagas older than this one (ids are time-ordered UUIDv7).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// A saga past a deadline that the sweep has not dealt with yet: `STARTED` past its deadline,
/// or `COMPENSATING` past its compensation deadline. The compensation timeout, in seconds, goes
/// between [`STUCK_BEFORE`] and [`STUCK_AFTER`].
const STUCK_BEFORE: &str = "((status = 'STARTED' AND deadline <= now()) OR (status = 'COMPENSATING' \
    AND compensating_since <= now() - make_interval(secs => ";
const STUCK_AFTER: &str = ")))";

/// A page of sagas, newest first.
pub async fn list(
    pool: &PgPool,
    filter: &ListFilter,
    compensation_timeout: Duration,
) -> Result<Vec<SagaRecord>, sqlx::Error> {
    // Only the filters given, planned for their values (`fetch_listing`).
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM sagas WHERE true"));
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(order_id) = filter.order_id {
        query.push(" AND order_id = ").push_bind(order_id);
    }
    if let Some(reason) = filter.reason {
        query.push(" AND reason = ").push_bind(reason);
    }
    if let Some(after) = filter.created_after {
        query.push(" AND created_at >= ").push_bind(after);
    }
    if let Some(before) = filter.created_before {
        query.push(" AND created_at < ").push_bind(before);
    }
    if let Some(stuck) = filter.stuck {
        query
            .push(if stuck { " AND " } else { " AND NOT COALESCE(" })
            .push(STUCK_BEFORE)
            .push_bind(compensation_timeout.as_secs_f64())
            .push(STUCK_AFTER)
            .push(if stuck { "" } else { ", false)" });
    }
    if let Some(before) = filter.before {
        query.push(" AND saga_id < ").push_bind(before);
    }
    query
        .push(" ORDER BY saga_id DESC LIMIT ")
        .push_bind(filter.limit);
    let rows: Vec<Row> = messaging::db::fetch_listing(pool, &mut query).await?;
    Ok(rows
        .into_iter()
        .map(|r| record(r, compensation_timeout))
        .collect())
}

/// How many sagas there are of one status and reason.
#[derive(sqlx::FromRow)]
pub struct Count {
    pub status: SagaStatus,
    pub reason: Option<AbortReason>,
    pub n: i64,
}

/// Every saga counted by status and reason: the folded totals and the deltas not yet folded,
/// read in one snapshot.
pub async fn counts(db: impl sqlx::PgExecutor<'_>) -> Result<Vec<Count>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, NULLIF(reason, '') AS reason, sum(n)::bigint AS n FROM ( \
             SELECT status, reason, n FROM saga_counts \
             UNION ALL SELECT status, reason, d FROM saga_count_deltas) c \
         GROUP BY status, reason HAVING sum(n) <> 0",
    )
    .fetch_all(db)
    .await
}

/// Deletes dead letters replayed or discarded longer ago than `age` (the DLQ stream's own
/// retention: by then it no longer holds their message), a bounded batch per statement; those
/// still `DEAD` are kept until an operator acts. Returns how many went.
pub async fn prune_dead_letters(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    messaging::db::delete_in_batches(
        pool,
        "DELETE FROM dead_letters WHERE id IN ( \
             SELECT id FROM dead_letters \
             WHERE status <> 'DEAD' AND status_at < now() - make_interval(secs => $1) \
             ORDER BY status_at LIMIT $2)",
        age.as_secs_f64(),
    )
    .await
}

/// Folds the counted deltas into the totals (any instance, any time: each delta is taken once).
pub async fn fold_counts(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH taken AS (DELETE FROM saga_count_deltas RETURNING status, reason, d) \
         INSERT INTO saga_counts (status, reason, n) \
         SELECT status, reason, sum(d) FROM taken GROUP BY status, reason \
         ON CONFLICT (status, reason) DO UPDATE SET n = saga_counts.n + EXCLUDED.n",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// How many sagas are stuck (see [`STUCK_BEFORE`]).
pub async fn stuck(
    db: impl sqlx::PgExecutor<'_>,
    compensation_timeout: Duration,
) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT count(*) FROM sagas WHERE {STUCK_BEFORE}$1{STUCK_AFTER}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(compensation_timeout.as_secs_f64())
        .fetch_one(db)
        .await
}

/// The sagas that ended within a window: how many, and percentiles of their durations.
#[derive(sqlx::FromRow)]
pub struct Ends {
    pub ended: i64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// The sagas that reached `COMPLETED` or `COMPENSATED` in the last `window`.
pub async fn ends(db: impl sqlx::PgExecutor<'_>, window: Duration) -> Result<Ends, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) AS ended, \
             percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50_ms, \
             percentile_cont(0.9) WITHIN GROUP (ORDER BY ms) AS p90_ms, \
             percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99_ms, \
             max(ms) AS max_ms \
         FROM (SELECT EXTRACT(EPOCH FROM ended_at - created_at)::float8 * 1000 AS ms FROM sagas \
               WHERE ended_at >= now() - make_interval(secs => $1) \
                 AND status IN ('COMPLETED', 'COMPENSATED')) e",
    )
    .bind(window.as_secs_f64())
    .fetch_one(db)
    .await
}

/// Sagas ended per minute, by outcome, over the last `minutes` minutes (oldest first).
#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Minute {
    pub minute: DateTime<Utc>,
    pub completed: i64,
    pub compensated: i64,
}

pub async fn ended_per_minute(
    db: impl sqlx::PgExecutor<'_>,
    minutes: i64,
) -> Result<Vec<Minute>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.minute, \
             count(*) FILTER (WHERE s.status = 'COMPLETED') AS completed, \
             count(*) FILTER (WHERE s.status = 'COMPENSATED') AS compensated \
         FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1), \
                              date_trunc('minute', now()), interval '1 minute') AS m(minute) \
         LEFT JOIN sagas s ON s.ended_at >= m.minute AND s.ended_at < m.minute + interval '1 minute' \
              AND s.status IN ('COMPLETED', 'COMPENSATED') \
         GROUP BY m.minute ORDER BY m.minute",
    )
    .bind(minutes as i32)
    .fetch_all(db)
    .await
}
