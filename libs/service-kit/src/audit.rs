//! The audit log: every admin call that changed something, written in the same transaction as
//! the change, in the database of the service that made it, and `GET /admin/audit` (an admin
//! call itself) to read it, newest first. Each entry is also logged once, at info.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use messaging::db::Migration;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Actor, AdminToken};
use crate::error::ApiError;
use crate::extract::{ApiQuery, Page, page_limit};

/// The audit table, in every service's database (between messaging's migrations and the
/// service's own).
pub const MIGRATIONS: &[Migration] = &[Migration::frozen(
    100,
    "admin audit log",
    include_str!("../migrations/0100_admin_audit.sql"),
)];

/// One admin action.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
    pub actor: String,
}

/// Records that `actor` did `action` to `target`, in the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO admin_audit (action, target, detail, actor) VALUES ($1, $2, $3, $4)")
        .bind(action)
        .bind(target)
        .bind(detail)
        .bind(actor.as_str())
        .execute(conn)
        .await?;
    tracing::info!(action, target, detail, actor = %actor, "admin action");
    Ok(())
}

/// Entries older than `before` (an id), newest first.
pub async fn list(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, at, action, target, detail, actor FROM admin_audit \
         WHERE id < COALESCE($1, 9223372036854775807) ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[derive(Clone)]
struct Audit {
    pool: PgPool,
    admin: AdminToken,
}

/// A page of the audit log.
pub type AuditPage = Page<AuditEntry, i64>;

fn api() -> OpenApiRouter<Audit> {
    OpenApiRouter::new().routes(routes!(read))
}

/// `GET /admin/audit?limit=&cursor=` (admin).
pub fn routes(pool: PgPool, admin: AdminToken) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(Audit { pool, admin })
}

/// The description of these routes.
pub fn document() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Entries per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The page after this id: the `nextCursor` of the previous page.
    cursor: Option<i64>,
}

/// The audit log of this service: every admin call that changed something, newest first.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", params(AuditQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        crate::api::Refused, crate::api::Invalid, crate::api::Errors))]
async fn read(
    State(audit): State<Audit>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    audit.admin.check(&headers)?;
    let limit = page_limit(query.limit)?;
    let items = list(&audit.pool, query.cursor, limit + 1).await?;
    Ok(Json(Page::from_fetched(items, limit, |e| e.id)))
}
