//! `GET /health/live`, `GET /health/ready` (database and NATS reachable) and `GET /metrics`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde::Serialize;
use sqlx::PgPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Brings a service's gauges up to date just before `/metrics` is read (say, counts from its
/// database), so that they cost nothing between scrapes.
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Clone)]
struct Probes {
    pool: PgPool,
    client: async_nats::Client,
    refresh: Option<Refresh>,
}

fn api() -> OpenApiRouter<Probes> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

pub fn routes(pool: PgPool, client: async_nats::Client, refresh: Option<Refresh>) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(Probes {
        pool,
        client,
        refresh,
    })
}

/// The description of these routes.
pub fn document() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// What a health check answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when a dependency is.
    status: &'static str,
    /// Each dependency's state (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Checks>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Checks {
    database: &'static str,
    nats: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "service",
    responses((status = 200, description = "Alive", body = Health)))]
async fn live() -> Json<Health> {
    Json(Health {
        status: "ok",
        checks: None,
    })
}

/// The service can work: its database and NATS are reachable.
#[utoipa::path(get, path = "/health/ready", tag = "service",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database or NATS is unreachable", body = Health)))]
async fn ready(State(probes): State<Probes>) -> (StatusCode, Json<Health>) {
    let database = tokio::time::timeout(
        Duration::from_secs(1),
        sqlx::query("SELECT 1").execute(&probes.pool),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let nats = probes.client.connection_state() == async_nats::connection::State::Connected;
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let status = if database && nats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: word(database && nats),
            checks: Some(Checks {
                database: word(database),
                nats: word(nats),
            }),
        }),
    )
}

/// Prometheus metrics of this process (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain; version=0.0.4")))]
async fn metrics(State(probes): State<Probes>) -> impl IntoResponse {
    if let Some(refresh) = &probes.refresh {
        // A gauge that cannot be refreshed in time keeps its last value.
        let _ = tokio::time::timeout(Duration::from_secs(2), refresh()).await;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        messaging::metrics::prometheus().render(),
    )
}
