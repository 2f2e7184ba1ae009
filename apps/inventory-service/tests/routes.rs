//! Every route's answers that need neither the database nor NATS, in-process (`oneshot`).

use axum::Router;
use axum::http::{Method, StatusCode};
use inventory_service::SERVICE;
use inventory_service::routes::{ABOUT, Api, api};
use service_kit::auth::AdminToken;
use service_kit::testing::call;
use service_kit::{CommonSettings, Infra};

async fn app() -> Router {
    let mut settings =
        CommonSettings::for_test(SERVICE, "postgres://x@127.0.0.1:1/x", "nats://127.0.0.1:1");
    settings.admin_token = Some("secret".into());
    let infra = Infra::offline(SERVICE).await.expect("offline infra");
    let routes = api().with_state(Api {
        infra: infra.clone(),
        admin: AdminToken::new(Some("secret")),
    });
    service_kit::startup::app(&settings, &infra, routes, ABOUT, None)
}

#[tokio::test]
async fn setting_stock_needs_the_token_a_valid_product_and_a_count() {
    let app = app().await;
    let answer = call(
        &app,
        Method::PUT,
        "/inventory/p-1",
        Some(r#"{"onHand": 5}"#),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let admin = [("authorization", "Bearer secret")];
    let answer = call(
        &app,
        Method::PUT,
        "/inventory/p%2F1",
        Some(r#"{"onHand": 5}"#),
        &admin,
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "INVALID_ID")
    );
    for body in [r#"{"onHand": "5"}"#, r#"{"onHand": 1.5}"#, r#"{}"#] {
        let answer = call(&app, Method::PUT, "/inventory/p-1", Some(body), &admin).await;
        assert!(
            answer.status == StatusCode::UNPROCESSABLE_ENTITY
                || answer.status == StatusCode::BAD_REQUEST,
            "{body}: {} {}",
            answer.status,
            answer.body
        );
    }
}

#[tokio::test]
async fn lookups_with_bad_ids_or_pages_are_refused() {
    let app = app().await;
    let answer = call(&app, Method::GET, "/reservations/not-a-uuid", None, &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = call(&app, Method::GET, "/reservations/search", None, &[]).await;
    assert_eq!(answer.fields(), ["orderIds"]);
    let answer = call(&app, Method::GET, "/inventory?limit=0", None, &[]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer = call(&app, Method::GET, "/inventory?cursor=a%20b", None, &[]).await;
    assert_eq!(answer.fields(), ["cursor"]);
}
