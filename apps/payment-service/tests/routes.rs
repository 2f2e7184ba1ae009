//! Every route's answers that need neither the database nor NATS, in-process (`oneshot`).

use axum::Router;
use axum::http::{Method, StatusCode};
use payment_service::SERVICE;
use payment_service::routes::{ABOUT, Api, api};
use service_kit::auth::AdminToken;
use service_kit::testing::call;
use service_kit::{CommonSettings, Infra};

async fn app_with(token: Option<&str>) -> Router {
    let mut settings =
        CommonSettings::for_test(SERVICE, "postgres://x@127.0.0.1:1/x", "nats://127.0.0.1:1");
    settings.admin_token = token.map(Into::into);
    let infra = Infra::offline(SERVICE).await.expect("offline infra");
    let routes = api().with_state(Api {
        infra: infra.clone(),
        admin: AdminToken::new(token),
    });
    service_kit::startup::app(&settings, &infra, routes, ABOUT, None)
}

#[tokio::test]
async fn lookups_without_or_with_bad_ids_are_refused() {
    let app = app_with(Some("t")).await;
    let answer = call(&app, Method::GET, "/payments", None, &[]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.fields(), ["orderId"]);
    let answer = call(&app, Method::GET, "/payments?orderId=nope", None, &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = call(
        &app,
        Method::GET,
        "/payments/search?orderIds=a,b",
        None,
        &[],
    )
    .await;
    assert_eq!(answer.fields(), ["orderIds"]);
    let many: Vec<String> = (0..101)
        .map(|i| format!("0190d8a4-0000-7000-8000-{i:012}"))
        .collect();
    let answer = call(
        &app,
        Method::GET,
        &format!("/payments/search?orderIds={}", many.join(",")),
        None,
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer = call(&app, Method::GET, "/payments/not-a-uuid", None, &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_simulation_is_for_admins_only() {
    let app = app_with(Some("secret")).await;
    for method in [Method::GET, Method::PUT] {
        let answer = call(&app, method.clone(), "/admin/simulation", Some("{}"), &[]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method}");
        let answer = call(
            &app,
            method.clone(),
            "/admin/simulation",
            Some("{}"),
            &[("authorization", "Bearer wrong")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method}");
    }
    let disabled = app_with(None).await;
    let answer = call(&disabled, Method::GET, "/admin/simulation", None, &[]).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "ADMIN_DISABLED")
    );
}
