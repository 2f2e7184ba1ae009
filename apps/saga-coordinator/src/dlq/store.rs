//! The `dead_letters` table: every service's dead letters, copied from the DLQ stream, with
//! what operators did to them.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::DlqStatus;

const COLUMNS: &str = "id, consumer, subject, reason, detail, delivered, dead_lettered_at, \
    event_id, event_type, payload, headers, status, status_at, status_by, status_detail";

/// A dead letter as read from the DLQ stream.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Letter {
    /// The message's sequence in the DLQ stream.
    pub id: i64,
    pub consumer: String,
    pub subject: String,
    pub reason: String,
    pub detail: Option<String>,
    pub delivered: Option<i64>,
    pub dead_lettered_at: DateTime<Utc>,
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub payload: Vec<u8>,
    /// The original message's headers, name to value.
    pub headers: Json<Value>,
}

/// A dead letter, with where it stands.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeadLetter {
    #[sqlx(flatten)]
    pub letter: Letter,
    pub status: DlqStatus,
    pub status_at: Option<DateTime<Utc>>,
    pub status_by: Option<String>,
    pub status_detail: Option<String>,
}

/// Records dead letters (one statement); one recorded before is left as it is.
pub async fn insert(conn: &mut PgConnection, rows: &[Letter]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Letter) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO dead_letters (id, consumer, subject, reason, detail, delivered, \
             dead_lettered_at, event_id, event_type, payload, headers) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::bigint[], $7::timestamptz[], $8::uuid[], $9::text[], $10::bytea[], $11::jsonb[]) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(column(|r| Some(r.consumer.clone())))
    .bind(column(|r| Some(r.subject.clone())))
    .bind(column(|r| Some(r.reason.clone())))
    .bind(column(|r| r.detail.clone()))
    .bind(rows.iter().map(|r| r.delivered).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.dead_lettered_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind(column(|r| r.event_type.clone()))
    .bind(
        rows.iter()
            .map(|r| r.payload.as_slice())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| &r.headers).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Which dead letters a list or a bulk action takes. Every filter given must hold.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub consumer: Option<String>,
    pub subject: Option<String>,
    pub reason: Option<String>,
    pub status: Option<DlqStatus>,
    /// Entries after this id (the list runs oldest first).
    pub after: Option<i64>,
    pub limit: i64,
}

fn select(filter: &Filter) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM dead_letters WHERE true"));
    if let Some(consumer) = &filter.consumer {
        query.push(" AND consumer = ").push_bind(consumer);
    }
    if let Some(subject) = &filter.subject {
        query.push(" AND subject = ").push_bind(subject);
    }
    if let Some(reason) = &filter.reason {
        query.push(" AND reason = ").push_bind(reason);
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(after) = filter.after {
        query.push(" AND id > ").push_bind(after);
    }
    query
}

/// A page of dead letters, oldest first.
pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let mut query = select(filter);
    query.push(" ORDER BY id LIMIT ").push_bind(filter.limit);
    messaging::db::fetch_listing(pool, &mut query).await
}

/// The `DEAD` entries a filter takes (up to its limit, oldest first), locked for this
/// transaction; entries another transaction is acting on are skipped.
pub async fn lock_dead(
    conn: &mut PgConnection,
    filter: &Filter,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let dead = Filter {
        status: Some(DlqStatus::Dead),
        ..filter.clone()
    };
    let mut query = select(&dead);
    query
        .push(" ORDER BY id LIMIT ")
        .push_bind(dead.limit)
        .push(" FOR UPDATE SKIP LOCKED");
    query.build_query_as().fetch_all(conn).await
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<DeadLetter>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// One entry, locked for this transaction.
pub async fn lock(conn: &mut PgConnection, id: i64) -> Result<Option<DeadLetter>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1 FOR UPDATE");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Sets where entries stand after an operator's action, and returns them as they are now.
pub async fn mark(
    conn: &mut PgConnection,
    ids: &[i64],
    status: DlqStatus,
    by: &str,
    detail: Option<&str>,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let sql = format!(
        "UPDATE dead_letters SET status = $2, status_at = now(), status_by = $3, status_detail = $4 \
         WHERE id = ANY($1) RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .bind(status)
        .bind(by)
        .bind(detail)
        .fetch_all(conn)
        .await
}

/// How many entries stand in each status.
#[derive(sqlx::FromRow)]
pub struct Count {
    pub status: DlqStatus,
    pub n: i64,
}

pub async fn counts(pool: &PgPool) -> Result<Vec<Count>, sqlx::Error> {
    sqlx::query_as("SELECT status, count(*) AS n FROM dead_letters GROUP BY status")
        .fetch_all(pool)
        .await
}
