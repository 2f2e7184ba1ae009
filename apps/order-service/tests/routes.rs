//! Every route's answers that need neither the database nor NATS, in-process (`oneshot`): bad
//! input of every kind, its status and the error shape, with no running stack.

use axum::Router;
use axum::http::{Method, StatusCode};
use order_service::SERVICE;
use order_service::admission::{Admission, AdmissionSettings};
use order_service::intake::Intake;
use order_service::routes::{ABOUT, Api, api};
use service_kit::testing::call;
use service_kit::{CommonSettings, Infra};

async fn app() -> Router {
    let settings =
        CommonSettings::for_test(SERVICE, "postgres://x@127.0.0.1:1/x", "nats://127.0.0.1:1");
    let infra = Infra::offline(SERVICE).await.expect("offline infra");
    // No writer runs: nothing here is ever written.
    let (intake, _writer) = Intake::new(infra.pool.clone(), infra.outbox.clone());
    let admission = std::sync::Arc::new(Admission::new(
        AdmissionSettings::default(),
        infra.pool.clone(),
    ));
    let routes = api().with_state(Api {
        infra: infra.clone(),
        intake,
        admission,
    });
    service_kit::startup::app(&settings, &infra, routes, ABOUT, None)
}

#[tokio::test]
async fn a_bad_order_is_refused_with_every_field_named() {
    let app = app().await;
    let body =
        r#"{"items": [{"productId": "", "quantity": 0, "unitPrice": 1.999}], "currency": "euro"}"#;
    let answer = call(&app, Method::POST, "/orders", Some(body), &[]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "VALIDATION_FAILED");
    for field in [
        "customerId",
        "currency",
        "items[0].productId",
        "items[0].quantity",
        "items[0].unitPrice",
    ] {
        assert!(answer.fields().contains(&field), "{field}: {}", answer.body);
    }
    let yen = r#"{"customerId": "c", "currency": "JPY", "items": [{"productId": "p", "quantity": 1, "unitPrice": 19.99}]}"#;
    let answer = call(&app, Method::POST, "/orders", Some(yen), &[]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.fields(), ["items[0].unitPrice"]);
}

#[tokio::test]
async fn malformed_unsupported_and_oversized_bodies_have_their_own_status() {
    let app = app().await;
    let answer = call(&app, Method::POST, "/orders", Some("{not json"), &[]).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "MALFORMED_JSON")
    );
    let answer = call(
        &app,
        Method::POST,
        "/orders",
        None,
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(r#"{{"customerId": "{}"}}"#, "x".repeat(70_000));
    let answer = call(&app, Method::POST, "/orders", Some(&huge), &[]).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = call(
        &app,
        Method::POST,
        "/orders",
        Some("{}"),
        &[("idempotency-key", "a b")],
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "INVALID_IDEMPOTENCY_KEY")
    );
}

#[tokio::test]
async fn bad_paths_queries_and_methods_are_refused_in_the_error_shape() {
    let app = app().await;
    let answer = call(&app, Method::GET, "/orders/not-a-uuid", None, &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body["error"]["message"].is_string(),
        "{}",
        answer.body
    );
    for query in [
        "limit=0",
        "limit=101",
        "status=LOST",
        "createdBefore=yesterday",
        "sort=oldest",
        "sort=updated&after=2026-12-07T17:00:00Z",
        "sort=updated&after=yesterday_0190d8a4-0000-7000-8000-000000000000",
    ] {
        let answer = call(&app, Method::GET, &format!("/orders?{query}"), None, &[]).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
    }
    // Each order's pages continue with their own token.
    let change = "2026-12-07T17:00:00.000001Z_0190d8a4-0000-7000-8000-000000000000";
    for (query, field) in [
        (format!("after={change}"), "after"),
        (format!("sort=newest&after={change}"), "after"),
        (
            "sort=updated&cursor=0190d8a4-0000-7000-8000-000000000000".to_owned(),
            "cursor",
        ),
    ] {
        let answer = call(&app, Method::GET, &format!("/orders?{query}"), None, &[]).await;
        assert_eq!(answer.fields(), [field], "{query}");
    }
    let answer = call(&app, Method::GET, "/no/such/route", None, &[]).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    let answer = call(&app, Method::DELETE, "/orders", None, &[]).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    let long = format!(r#"{{"reason": "{}"}}"#, "r".repeat(501));
    let id = "0190d8a4-0000-7000-8000-000000000000";
    let answer = call(
        &app,
        Method::POST,
        &format!("/orders/{id}/cancel"),
        Some(&long),
        &[],
    )
    .await;
    assert_eq!(answer.fields(), ["reason"]);
}

#[tokio::test]
async fn health_live_and_the_description_answer_without_a_database() {
    let app = app().await;
    assert_eq!(
        call(&app, Method::GET, "/health/live", None, &[])
            .await
            .status,
        StatusCode::OK
    );
    let answer = call(&app, Method::GET, "/openapi.json", None, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body["paths"]["/orders"].is_object());
    let answer = call(&app, Method::GET, "/admin/audit", None, &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}
