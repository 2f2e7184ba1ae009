//! The reconciliation over HTTP: `POST /admin/reconcile` (admin) runs it now, `GET
//! /admin/reconcile` lists the last runs with the disagreements each found and what it did.

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use service_kit::api::{BodyErrors, Conflict, Errors, Invalid, Refused};
use service_kit::extract::{OptionalJson, Page, Time, page_limit, query_value};
use service_kit::{ApiError, ApiQuery};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Api;
use crate::reconcile::{RunError, Trigger};
use crate::store::reconcile::{self as store, RunView};

pub fn api() -> OpenApiRouter<Api> {
    OpenApiRouter::new().routes(routes!(run_now, list))
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// Compare the records that changed from this time on (RFC 3339) [default: where the last
    /// run reached; the first run looks back RECONCILE_WINDOW_MS].
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    since: Option<String>,
}

/// `POST /admin/reconcile` `{"since"}` (admin): compares the four services' records now and
/// re-sends the events that settle each disagreement; answers the run.
#[utoipa::path(post, path = "/admin/reconcile", tag = "operations",
    request_body(content = Option<RunBody>, description = "Optional"),
    security(("admin_token" = [])),
    responses((status = 200, description = "The run, with what it found and did", body = RunView),
        Refused, Conflict, Invalid, BodyErrors, Errors))]
async fn run_now(
    State(api): State<Api>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RunBody>,
) -> Result<Json<RunView>, ApiError> {
    let actor = api.admin.check(&headers)?;
    let since = query_value::<Time>("since", body.since.as_deref())?.map(|t| t.0);
    let run = api
        .reconciler
        .run(Trigger::Operator(actor.as_str().to_owned()), since)
        .await
        .map_err(|e| match e {
            RunError::Busy => ApiError::conflict(
                "RECONCILE_RUNNING",
                "a reconciliation is running already; try again when it has finished",
            ),
            RunError::NotConfigured => {
                ApiError::conflict("RECONCILE_NOT_CONFIGURED", e.to_string())
            }
            RunError::Failed(e) => ApiError::from(e),
        })?;
    let mut tx = api.infra.pool.begin().await?;
    let detail = format!(
        "{} orders compared, {} mismatches",
        run.checked,
        run.mismatches.len()
    );
    service_kit::audit::record(&mut tx, &actor, "reconcile", "records", Some(&detail))
        .await
        .context("auditing the run")?;
    tx.commit().await.context("committing the audit entry")?;
    Ok(Json(run))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Runs per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The page after this run: the `nextCursor` of the previous page.
    cursor: Option<i64>,
}

/// A page of reconciliation runs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RunPage {
    items: Vec<RunView>,
    next_cursor: Option<i64>,
}

/// `GET /admin/reconcile`: the reconciliation runs, newest first, each with the disagreements it
/// found and what it re-sent.
#[utoipa::path(get, path = "/admin/reconcile", tag = "operations", params(ListQuery),
    responses((status = 200, description = "A page of runs", body = RunPage), Invalid, Errors))]
async fn list(
    State(api): State<Api>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let limit = page_limit(query.limit)?;
    let runs = store::runs(&api.infra.pool, query.cursor, limit + 1)
        .await
        .context("listing reconciliation runs")?;
    let page = Page::from_fetched(runs, limit, |r| r.id);
    Ok(Json(RunPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}
