//! `GET /health/live`, `GET /health/ready` (database and NATS reachable) and `GET /metrics`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;

/// Brings a service's gauges up to date just before `/metrics` is read (say, counts from its
/// database), so that they cost nothing between scrapes.
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Clone)]
struct Probes {
    pool: PgPool,
    client: async_nats::Client,
    refresh: Option<Refresh>,
}

pub fn routes(pool: PgPool, client: async_nats::Client, refresh: Option<Refresh>) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Probes {
            pool,
            client,
            refresh,
        })
}

async fn ready(State(probes): State<Probes>) -> impl IntoResponse {
    let database = tokio::time::timeout(
        Duration::from_secs(2),
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
        Json(json!({
            "status": word(database && nats),
            "checks": {"database": word(database), "nats": word(nats)},
        })),
    )
}

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
