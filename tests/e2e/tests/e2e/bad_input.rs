//! Bad requests get a clear 4xx in the one error shape, and change nothing.

use crate::common::*;
use serde_json::{Value, json};

struct Case {
    what: &'static str,
    svc: Svc,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    svc: Svc,
    method: &'static str,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        svc,
        method,
        path: path.into(),
        content_type: body.as_ref().map(|_| "application/json"),
        body: body.map(|b| serde_json::to_vec(&b).expect("json")),
        status,
        code,
    }
}

fn item(quantity: Value, price: Value) -> Value {
    json!({"customerId": "c-1", "items": [{"productId": "p-1", "quantity": quantity, "unitPrice": price}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_in_the_error_shape_and_store_nothing() {
    let stack = Stack::start(Options {
        auto_provision: 100,
        ..Options::default()
    })
    .await;
    let one_item = json!({"productId": "p-1", "quantity": 1, "unitPrice": 1});
    let unknown = new_id();
    let mut cases = vec![
        case(
            "missing customerId",
            Svc::Order,
            "POST",
            "/orders",
            Some(json!({"items": [one_item]})),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "missing items",
            Svc::Order,
            "POST",
            "/orders",
            Some(json!({"customerId": "c-1"})),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "empty items",
            Svc::Order,
            "POST",
            "/orders",
            Some(json!({"customerId": "c-1", "items": []})),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "zero quantity",
            Svc::Order,
            "POST",
            "/orders",
            Some(item(json!(0), json!(1))),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "negative quantity",
            Svc::Order,
            "POST",
            "/orders",
            Some(item(json!(-3), json!(1))),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "fractional quantity",
            Svc::Order,
            "POST",
            "/orders",
            Some(item(json!(1.5), json!(1))),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "quantity over 10000",
            Svc::Order,
            "POST",
            "/orders",
            Some(item(json!(10001), json!(1))),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "zero price",
            Svc::Order,
            "POST",
            "/orders",
            Some(item(json!(1), json!(0))),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "negative price",
            Svc::Order,
            "POST",
            "/orders",
            Some(item(json!(1), json!(-1.5))),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "price with three decimals",
            Svc::Order,
            "POST",
            "/orders",
            Some(item(json!(1), json!(19.999))),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "price as a string",
            Svc::Order,
            "POST",
            "/orders",
            Some(item(json!(1), json!("19.99"))),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "101 items",
            Svc::Order,
            "POST",
            "/orders",
            Some(json!({"customerId": "c-1", "items": vec![one_item.clone(); 101]})),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "bad currency",
            Svc::Order,
            "POST",
            "/orders",
            Some(json!({"customerId": "c-1", "items": [one_item], "currency": "euro"})),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "body not an object",
            Svc::Order,
            "POST",
            "/orders",
            Some(json!([1, 2, 3])),
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "order id not a UUID",
            Svc::Order,
            "GET",
            "/orders/not-a-uuid",
            None,
            400,
            "INVALID_ID",
        ),
        case(
            "unknown order",
            Svc::Order,
            "GET",
            &format!("/orders/{unknown}"),
            None,
            404,
            "NOT_FOUND",
        ),
        case(
            "cancel unknown order",
            Svc::Order,
            "POST",
            &format!("/orders/{unknown}/cancel"),
            None,
            404,
            "NOT_FOUND",
        ),
        case(
            "cancel id not a UUID",
            Svc::Order,
            "POST",
            "/orders/42/cancel",
            None,
            400,
            "INVALID_ID",
        ),
        case(
            "bad status filter",
            Svc::Order,
            "GET",
            "/orders?status=SHIPPED",
            None,
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "limit over 100",
            Svc::Order,
            "GET",
            "/orders?limit=1000",
            None,
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "cursor not a UUID",
            Svc::Order,
            "GET",
            "/orders?cursor=abc",
            None,
            400,
            "INVALID_QUERY",
        ),
        case(
            "unknown route",
            Svc::Order,
            "GET",
            "/nothing-here",
            None,
            404,
            "NOT_FOUND",
        ),
        case(
            "wrong method",
            Svc::Order,
            "DELETE",
            "/orders",
            None,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        case(
            "payment id not a UUID",
            Svc::Payment,
            "GET",
            "/payments/xyz",
            None,
            400,
            "INVALID_ID",
        ),
        case(
            "unknown payment",
            Svc::Payment,
            "GET",
            &format!("/payments/{unknown}"),
            None,
            404,
            "NOT_FOUND",
        ),
        case(
            "payments without orderId",
            Svc::Payment,
            "GET",
            "/payments",
            None,
            422,
            "VALIDATION_FAILED",
        ),
        case(
            "reservation id not a UUID",
            Svc::Inventory,
            "GET",
            "/reservations/1",
            None,
            400,
            "INVALID_ID",
        ),
        case(
            "unknown product",
            Svc::Inventory,
            "GET",
            "/inventory/never-seen",
            None,
            404,
            "NOT_FOUND",
        ),
        case(
            "stock without token",
            Svc::Inventory,
            "PUT",
            "/inventory/p-1",
            Some(json!({"onHand": 5})),
            401,
            "UNAUTHORIZED",
        ),
        case(
            "saga id not a UUID",
            Svc::Saga,
            "GET",
            "/sagas/nope",
            None,
            400,
            "INVALID_ID",
        ),
        case(
            "unknown saga",
            Svc::Saga,
            "GET",
            &format!("/sagas/{unknown}"),
            None,
            404,
            "NOT_FOUND",
        ),
        case(
            "bad saga status filter",
            Svc::Saga,
            "GET",
            "/sagas?status=DONE",
            None,
            422,
            "VALIDATION_FAILED",
        ),
    ];
    cases.push(Case {
        what: "malformed JSON",
        svc: Svc::Order,
        method: "POST",
        path: "/orders".into(),
        content_type: Some("application/json"),
        body: Some(b"{\"customerId\": \"c-1\", \"items\": [".to_vec()),
        status: 400,
        code: "MALFORMED_JSON",
    });
    cases.push(Case {
        what: "wrong content type",
        svc: Svc::Order,
        method: "POST",
        path: "/orders".into(),
        content_type: Some("text/plain"),
        body: Some(serde_json::to_vec(&item(json!(1), json!(1))).unwrap()),
        status: 415,
        code: "UNSUPPORTED_MEDIA_TYPE",
    });
    cases.push(Case {
        what: "body over 64 KiB",
        svc: Svc::Order,
        method: "POST",
        path: "/orders".into(),
        content_type: Some("application/json"),
        body: Some(
            serde_json::to_vec(&json!({"customerId": "x".repeat(70 * 1024), "items": []})).unwrap(),
        ),
        status: 413,
        code: "PAYLOAD_TOO_LARGE",
    });
    cases.push(Case {
        what: "cancel with a non-JSON body",
        svc: Svc::Order,
        method: "POST",
        path: format!("/orders/{unknown}/cancel"),
        content_type: Some("text/plain"),
        body: Some(b"please".to_vec()),
        status: 415,
        code: "UNSUPPORTED_MEDIA_TYPE",
    });

    for case in &cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = stack.http.request(method, stack.url(case.svc, &case.path));
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        if let Some(body) = &case.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, case.status, "{}: {body}", case.what);
        assert_eq!(body["error"]["code"], case.code, "{}: {body}", case.what);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}: {body}",
            case.what
        );
        assert!(body["error"]["details"].is_array(), "{}: {body}", case.what);
    }

    // Nothing was stored anywhere.
    let (_, orders) = stack.get(Svc::Order, "/orders").await;
    assert_eq!(orders["items"], json!([]), "an order was stored");
    let (_, sagas) = stack.get(Svc::Saga, "/sagas").await;
    assert_eq!(sagas["items"], json!([]), "a saga was started");
    let (_, products) = stack.get(Svc::Inventory, "/inventory").await;
    assert_eq!(products["items"], json!([]), "stock was set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_error_names_every_bad_field() {
    let stack = Stack::start(Options::default()).await;
    let (status, body) = stack
        .post(
            Svc::Order,
            "/orders",
            &json!({"items": [{"productId": "", "quantity": 0, "unitPrice": 1.001}]}),
        )
        .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "customerId",
            "items[0].productId",
            "items[0].quantity",
            "items[0].unitPrice"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_need_the_configured_token() {
    let stack = Stack::start(Options::default()).await;
    let put = |token: Option<&'static str>| {
        let mut request = stack
            .http
            .put(stack.url(Svc::Inventory, "/inventory/p-7"))
            .json(&json!({"onHand": 3}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(put(Some("wrong")).await, 401);
    assert_eq!(put(None).await, 401);
    assert_eq!(put(Some(ADMIN)).await, 200);
    let (_, stock) = stack.get(Svc::Inventory, "/inventory/p-7").await;
    assert_eq!(stock["onHand"], 3);
    let (status, body) = {
        let r = stack
            .http
            .put(stack.url(Svc::Inventory, "/inventory/p-7"))
            .bearer_auth(ADMIN)
            .json(&json!({"onHand": -1}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("VALIDATION_FAILED"))
    );
}
