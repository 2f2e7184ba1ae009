//! The reconciliation's tables (`reconcile_runs`, `reconcile_mismatches`), and the sagas it reads.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{COLUMNS, Row};
use crate::rules::Saga;

/// The sagas of `order_ids`, by order.
pub async fn sagas_of_orders(
    pool: &PgPool,
    order_ids: &[Uuid],
) -> Result<HashMap<Uuid, Saga>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM sagas WHERE order_id = ANY($1)");
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_ids)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.state.order_id, r.saga()))
        .collect())
}

/// Sagas whose compensation has run longer than `grace`, and `FAILED` ones: up to `limit`.
pub async fn unsettled(
    pool: &PgPool,
    grace: Duration,
    limit: i64,
) -> Result<Vec<Saga>, sqlx::Error> {
    let sql = format!(
        "(SELECT {COLUMNS} FROM sagas WHERE status = 'COMPENSATING' \
             AND compensating_since < now() - make_interval(secs => $1) LIMIT $2) \
         UNION ALL (SELECT {COLUMNS} FROM sagas WHERE status = 'FAILED' LIMIT $2)"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(grace.as_secs_f64())
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(Row::saga).collect())
}

/// The database's clock.
pub async fn now(pool: &PgPool) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar("SELECT now()").fetch_one(pool).await
}

/// Where the last run that finished without an error stopped comparing cancellations: how far
/// it reached, or (a run of an earlier release, which compared its whole window) its start less
/// the grace.
pub async fn resume_point(
    pool: &PgPool,
    grace: Duration,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(reached, started_at - make_interval(secs => $1)) FROM reconcile_runs \
         WHERE finished_at IS NOT NULL AND error IS NULL ORDER BY started_at DESC LIMIT 1",
    )
    .bind(grace.as_secs_f64())
    .fetch_optional(pool)
    .await
}

/// Starts a run's record, begun at `now` (the clock the run compares by); returns its id.
pub async fn begin(
    pool: &PgPool,
    trigger: &str,
    actor: Option<&str>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO reconcile_runs (trigger, actor, since, started_at) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(trigger)
    .bind(actor)
    .bind(since)
    .bind(now)
    .fetch_one(pool)
    .await
}

/// A disagreement found, with what was done about it.
pub struct Found<'a> {
    pub kind: &'a str,
    pub order_id: Uuid,
    pub saga_id: Uuid,
    pub detail: &'a str,
    pub action: &'a str,
}

/// Records what run `run` found, in the caller's transaction (with the events it re-sends).
pub async fn record(
    conn: &mut PgConnection,
    run: i64,
    found: &[Found<'_>],
) -> Result<(), sqlx::Error> {
    if found.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Found<'_>) -> String| found.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO reconcile_mismatches (run_id, kind, order_id, saga_id, detail, action) \
         SELECT $1, * FROM unnest($2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[]) \
         ON CONFLICT (run_id, order_id) DO NOTHING",
    )
    .bind(run)
    .bind(column(|f| f.kind.to_owned()))
    .bind(found.iter().map(|f| f.order_id).collect::<Vec<_>>())
    .bind(found.iter().map(|f| f.saga_id).collect::<Vec<_>>())
    .bind(column(|f| f.detail.to_owned()))
    .bind(column(|f| f.action.to_owned()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends run `run`: how many orders it compared, how far it reached in its window, and the error
/// that stopped it, if one did.
pub async fn finish(
    pool: &PgPool,
    run: i64,
    checked: usize,
    reached: Option<DateTime<Utc>>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reconcile_runs SET finished_at = now(), checked = $2, error = $3, reached = $4 \
         WHERE id = $1",
    )
    .bind(run)
    .bind(checked as i64)
    .bind(error)
    .bind(reached)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes runs older than `age`, with what they found.
pub async fn prune(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM reconcile_runs WHERE started_at < now() - make_interval(secs => $1)",
    )
    .bind(age.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}

/// A disagreement as the API shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MismatchView {
    /// ORDER_WITHOUT_SAGA, HELD_FOR_CANCELLED_ORDER, UNDO_NOT_HEARD, UNDONE_FOR_COMPLETED_SAGA or
    /// OUTCOME_NOT_HEARD (docs/operations.md, "The reconciliation finds mismatches").
    pub kind: String,
    pub order_id: Uuid,
    pub saga_id: Uuid,
    /// What the records say.
    pub detail: String,
    /// What was done: the events re-sent, or that it needs an operator.
    pub action: String,
    #[serde(skip)]
    pub run_id: i64,
}

/// A run as the API shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: i64,
    /// SCHEDULE or OPERATOR.
    pub trigger: String,
    /// The fingerprint of the operator's token, for a run an operator asked for.
    pub actor: Option<String>,
    /// Records that changed from this time on were compared.
    pub since: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The cancelled orders that changed up to this time were compared: the window's end, or
    /// where a window with more than `RECONCILE_MAX_ORDERS` was cut (the next run goes on
    /// from there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached: Option<DateTime<Utc>>,
    /// Orders compared.
    pub checked: i64,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    #[sqlx(skip)]
    pub mismatches: Vec<MismatchView>,
}

/// The runs before run `before` (newest first), each with what it found.
pub async fn runs(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<RunView>, sqlx::Error> {
    let mut runs: Vec<RunView> = sqlx::query_as(
        "SELECT id, trigger, actor, since, started_at, finished_at, reached, checked, error \
         FROM reconcile_runs WHERE id < COALESCE($1, 9223372036854775807) \
         ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let found: Vec<MismatchView> = sqlx::query_as(
        "SELECT run_id, kind, order_id, saga_id, detail, action FROM reconcile_mismatches \
         WHERE run_id = ANY($1) ORDER BY run_id, kind, order_id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for m in found {
        if let Some(run) = runs.iter_mut().find(|r| r.id == m.run_id) {
            run.mismatches.push(m);
        }
    }
    Ok(runs)
}
