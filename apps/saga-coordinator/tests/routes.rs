//! Every route's answers that need neither the database nor NATS, in-process (`oneshot`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use saga_coordinator::reconcile::{ReconcileSettings, Reconciler};
use saga_coordinator::routes::{ABOUT, Api, api};
use saga_coordinator::{SERVICE, Timeouts};
use service_kit::auth::AdminToken;
use service_kit::testing::call;
use service_kit::{CommonSettings, Infra};

async fn app() -> Router {
    let mut settings =
        CommonSettings::for_test(SERVICE, "postgres://x@127.0.0.1:1/x", "nats://127.0.0.1:1");
    settings.admin_token = Some("secret".into());
    let infra = Infra::offline(SERVICE).await.expect("offline infra");
    let timeouts = Timeouts {
        saga: Duration::from_secs(30),
        compensation: Duration::from_secs(300),
    };
    let reconciler = Reconciler::new(
        infra.clone(),
        None,
        ReconcileSettings {
            interval: Duration::ZERO,
            grace: Duration::from_secs(60),
            window: Duration::from_secs(3600),
            max_orders: 10_000,
            saga_timeout: timeouts.saga,
            keep: Duration::from_secs(3600),
        },
    );
    let routes = api().with_state(Api {
        infra: infra.clone(),
        admin: AdminToken::new(Some("secret")),
        timeouts,
        reconciler: Arc::new(reconciler),
    });
    service_kit::startup::app(&settings, &infra, routes, ABOUT, None)
}

const SAGA: &str = "0190d8a4-0000-7000-8000-000000000000";

#[tokio::test]
async fn bad_filters_and_windows_are_refused_with_the_parameter_named() {
    let app = app().await;
    for (query, field) in [
        ("status=LOST", "status"),
        ("reason=BORED", "reason"),
        ("createdAfter=yesterday", "createdAfter"),
        ("stuck=maybe", "stuck"),
        ("limit=0", "limit"),
    ] {
        let answer = call(&app, Method::GET, &format!("/sagas?{query}"), None, &[]).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(answer.fields().contains(&field), "{query}: {}", answer.body);
    }
    for window in ["1s", "25h", "15x", "m"] {
        let answer = call(
            &app,
            Method::GET,
            &format!("/sagas/stats?window={window}"),
            None,
            &[],
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{window}");
    }
    let answer = call(&app, Method::GET, "/sagas/not-a-uuid", None, &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = call(&app, Method::GET, "/dlq?status=GONE", None, &[]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn operator_actions_need_the_token_and_a_sane_note() {
    let app = app().await;
    for path in [
        format!("/sagas/{SAGA}/retry"),
        format!("/sagas/{SAGA}/abort"),
        "/dlq/1/replay".to_owned(),
        "/dlq/1/discard".to_owned(),
        "/dlq/replay".to_owned(),
        "/admin/reconcile".to_owned(),
    ] {
        let answer = call(&app, Method::POST, &path, Some("{}"), &[]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let admin = [("authorization", "Bearer secret")];
    let long = format!(r#"{{"detail": "{}"}}"#, "d".repeat(501));
    let answer = call(
        &app,
        Method::POST,
        &format!("/sagas/{SAGA}/abort"),
        Some(&long),
        &admin,
    )
    .await;
    assert_eq!(answer.fields(), ["detail"]);
    let answer = call(&app, Method::POST, "/dlq/replay", Some("{}"), &admin).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a bulk replay needs a filter"
    );
    let answer = call(
        &app,
        Method::POST,
        "/admin/reconcile",
        Some(r#"{"since": "yesterday"}"#),
        &admin,
    )
    .await;
    assert_eq!(answer.fields(), ["since"]);
    // With no peers configured, the reconciliation says so instead of guessing.
    let answer = call(&app, Method::POST, "/admin/reconcile", None, &admin).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::CONFLICT, "RECONCILE_NOT_CONFIGURED")
    );
}

#[tokio::test]
async fn the_dashboard_and_the_description_are_served_without_a_database() {
    let app = app().await;
    let answer = call(&app, Method::GET, "/ui", None, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let csp = answer
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let answer = call(&app, Method::GET, "/openapi.json", None, &[]).await;
    assert!(answer.body["paths"]["/admin/reconcile"].is_object());
}
