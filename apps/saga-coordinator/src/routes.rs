//! The HTTP API of saga-coordinator: `GET /sagas/{sagaId}` and `GET /sagas`.

use anyhow::Context as _;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use service_kit::extract::{Page, page_limit, query_value};
use service_kit::{ApiError, ApiPath, ApiQuery, Infra};
use uuid::Uuid;

use crate::store::{self, SagaView};

pub fn router(infra: Infra) -> Router {
    Router::new()
        .route("/sagas", get(list))
        .route("/sagas/{saga_id}", get(get_one))
        .with_state(infra)
}

async fn get_one(
    State(infra): State<Infra>,
    ApiPath(saga_id): ApiPath<Uuid>,
) -> Result<Json<SagaView>, ApiError> {
    store::get(&infra.pool, saga_id)
        .await
        .context("reading a saga")?
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
    let status = query_value("status", query.status.as_deref())?;
    let items = store::list(&infra.pool, status, query.order_id, query.cursor, limit + 1)
        .await
        .context("listing sagas")?;
    Ok(Json(Page::from_fetched(items, limit, |s| s.saga_id)))
}
