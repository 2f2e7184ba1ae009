//! Admission (SPEC 12): past its bound order-service refuses new orders with 503 `OVERLOADED`
//! and `Retry-After`, writes nothing for them, never refuses the replay of an order it accepted,
//! and takes orders again once the queue is gone; a few orders held up alone stop nothing.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::eventually_ok;

use crate::common::*;

const SLACK: usize = order_service::admission::Admission::SLACK as usize;

/// POSTs an order under `key`: the status, the `Retry-After` header, the body.
async fn post(stack: &Stack, key: &str) -> (u16, Option<String>, Value) {
    let response = stack
        .http
        .post(stack.url(Svc::Order, "/orders"))
        .header("Idempotency-Key", key)
        .json(&json!({"customerId": "c-admission", "currency": "EUR",
                      "items": [{"productId": "p-1", "quantity": 1, "unitPrice": 2.5}]}))
        .send()
        .await
        .expect("POST /orders");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn orders_stored(stack: &Stack) -> i64 {
    let pool = sqlx::PgPool::connect(&stack.database_url(Svc::Order))
        .await
        .expect("orders db");
    let n = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_bound_new_orders_are_refused_with_retry_after_and_nothing_written() {
    let mut stack = Stack::start(Options {
        admission_max_age: Duration::from_millis(300),
        // The held orders must outlive the test's steps, however slow a loaded machine makes them.
        saga_timeout: Duration::from_secs(300),
        ..Options::default()
    })
    .await;
    stack.set_stock("p-1", 1000).await;
    // A participant down: every order placed now waits for it.
    stack.stop_service(Svc::Payment).await;
    let (status, _, first) = post(&stack, "held-0").await;
    assert_eq!(status, 201, "{first}");

    // One order held up alone is not a queue: more are taken, until enough wait past the bound.
    let mut n = 1;
    let refused = eventually_ok("a refusal", WAIT, || {
        n += 1;
        let key = format!("held-{n}");
        let stack = &stack;
        async move {
            match post(stack, &key).await {
                (201, ..) => Err(format!("order {key} accepted")),
                refused => Ok((key, refused)),
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (key, (status, retry_after, body)) = refused;
    assert!(
        n > SLACK,
        "refused after {n} orders, fewer than {SLACK} waiting"
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "OVERLOADED", "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let stored = orders_stored(&stack).await;
    assert_eq!(stored, n as i64 - 1, "the refused order {key} was written");

    // The replay of an accepted order is answered as always, overloaded or not.
    let (status, _, replayed) = post(&stack, "held-0").await;
    assert!(status == 200 || status == 201, "{status}: {replayed}");
    assert_eq!(replayed["orderId"], first["orderId"]);
    assert_eq!(orders_stored(&stack).await, stored);

    // The participant back, the queue drains and new orders are taken again.
    stack.start_service(Svc::Payment).await;
    eventually_ok("orders taken again", WAIT, || {
        let stack = &stack;
        async move {
            match post(stack, "after").await {
                (201, ..) => Ok(()),
                (status, ..) => Err(format!("{status}")),
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (order_id, _) = ids(&first);
    stack.order_becomes(&order_id, "CONFIRMED").await;
}
