//! `GET /health/live`, `GET /health/ready` (database and NATS reachable) and `GET /metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;

#[derive(Clone)]
struct Probes {
    pool: PgPool,
    client: async_nats::Client,
}

pub fn routes(pool: PgPool, client: async_nats::Client) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Probes { pool, client })
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

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        messaging::metrics::prometheus().render(),
    )
}
