//! What an operator does when something goes wrong (SPEC section 8): retry a failed saga's
//! compensation, abort a saga, act on dead letters, change the payment simulation at run time,
//! read the stats and the audit log. Each test ends with the invariants of the contract.

use std::time::Duration;

use crate::common::*;
use async_nats::jetstream::message::PublishMessage;
use reqwest::Method;
use serde_json::{Value, json};

/// The audit entries of a service, newest first.
async fn audit(stack: &Stack, svc: Svc) -> Vec<Value> {
    let (status, page) = stack
        .admin(
            svc,
            Method::GET,
            "/admin/audit?limit=100",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_saga_retried_with_sagactl_refunds_and_restocks_and_a_second_retry_is_409() {
    let mut stack = Stack::start(Options {
        compensation_timeout: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    stack.set_stock("p-1", 10).await;
    // payment-service is down while the customer cancels, and the cancellation it would have
    // refunded on is lost: the compensation cannot finish, and the saga fails.
    let (order_id, saga_id) = stack.failed_saga().await;

    let out = stack
        .sagactl(&["sagas", "retry", &saga_id])
        .await
        .expect("sagactl sagas retry");
    assert!(out.contains("COMPENSATING"), "{out}");
    let saga = stack.saga_becomes(&saga_id, "COMPENSATED").await;
    let history = event_types(&saga);
    assert!(history.contains(&"operator.retry".into()), "{history:?}");
    let retry = saga["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["eventType"] == "operator.retry")
        .unwrap();
    assert!(retry["actor"].as_str().unwrap().starts_with("token:"));

    let (_, payment) = stack
        .get(Svc::Payment, &format!("/payments?orderId={order_id}"))
        .await;
    assert_eq!(payment["status"], "REFUNDED");
    let (_, stock) = stack.get(Svc::Inventory, "/inventory/p-1").await;
    assert_eq!(
        (stock["onHand"].as_i64(), stock["available"].as_i64()),
        (Some(10), Some(10))
    );

    let again = stack.sagactl(&["sagas", "retry", &saga_id]).await;
    let error = again.expect_err("a second retry of a COMPENSATED saga");
    assert!(error.contains("409 SAGA_NOT_RETRYABLE"), "{error}");
    let (status, body) = stack
        .admin(
            Svc::Saga,
            Method::POST,
            &format!("/sagas/{saga_id}/retry"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("SAGA_NOT_RETRYABLE"))
    );
    let retries: Vec<Value> = audit(&stack, Svc::Saga)
        .await
        .into_iter()
        .filter(|e| e["action"] == "saga.retry" && e["target"] == saga_id.as_str())
        .collect();
    assert_eq!(
        retries.len(),
        1,
        "only the accepted retry is audited: {retries:?}"
    );
    stack.invariants_hold(&[order_id], &[("p-1", 10)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_abort_cancels_a_started_saga_and_its_order_with_reason_operator() {
    let mut stack = Stack::start(Options::default()).await;
    stack.set_stock("p-1", 5).await;
    // With payment-service down the saga waits in STARTED.
    stack.stop_service(Svc::Payment).await;
    let (order_id, saga_id) = ids(&stack.order(&[("p-1", 1, "25")]).await);
    stack
        .until(
            Svc::Inventory,
            &format!("/reservations/{order_id}"),
            "reserved",
            |r| r["status"] == "RESERVED",
        )
        .await;
    let saga = stack
        .until(
            Svc::Saga,
            &format!("/sagas/{saga_id}"),
            "stock reserved",
            |s| s["inventory"]["status"] == "RESERVED",
        )
        .await;
    assert_eq!(saga["status"], "STARTED");

    let (status, saga) = stack
        .admin(
            Svc::Saga,
            Method::POST,
            &format!("/sagas/{saga_id}/abort"),
            Some(json!({"detail": "suspected fraud"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 202, "{saga}");
    assert_eq!(saga["reason"], "OPERATOR");
    assert_eq!(saga["status"], "COMPENSATING");
    let order = stack.order_becomes(&order_id, "CANCELLED").await;
    assert_eq!(order["cancellationReason"], "OPERATOR");
    assert_eq!(order["cancellationDetail"], "suspected fraud");

    stack.start_service(Svc::Payment).await;
    let saga = stack.saga_becomes(&saga_id, "COMPENSATED").await;
    let history = event_types(&saga);
    for expected in [
        "operator.abort",
        "saga.aborted",
        "order.cancelled",
        "inventory.released",
    ] {
        assert!(
            history.contains(&expected.into()),
            "{expected} missing: {history:?}"
        );
    }
    let (status, body) = stack
        .admin(
            Svc::Saga,
            Method::POST,
            &format!("/sagas/{saga_id}/abort"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("SAGA_NOT_ABORTABLE"))
    );
    stack.invariants_hold(&[order_id], &[("p-1", 5)]).await;
}

/// An admin `POST` on saga-coordinator's dead letters.
async fn dlq_action(stack: &Stack, path: &str, body: Option<Value>) -> (u16, Value) {
    stack
        .admin(Svc::Saga, Method::POST, path, body, Some(ADMIN))
        .await
}

/// The DLQ entries of `consumer` in `status`.
async fn entries(stack: &Stack, consumer: &str, status: &str) -> Vec<Value> {
    let (_, page) = stack
        .get(
            Svc::Saga,
            &format!("/dlq?consumer={consumer}&status={status}&limit=100"),
        )
        .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

/// How many deliveries `consumer` finished with `outcome`, by its counter.
fn consumed(metrics: &str, consumer: &str, outcome: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("messaging_events_consumed_total{")
                && l.contains(&format!("consumer=\"{consumer}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_once_per_consumer_and_discarded_or_replayed_without_loops() {
    const PAYMENT: &str = "payment-service-order-created-v1";
    const INVENTORY: &str = "inventory-service-order-created-v1";
    const SAGA: &str = "saga-coordinator-order-created-v1";
    let stack = Stack::start(Options::default()).await;
    stack.set_stock("p-1", 3).await;
    let js = stack.jetstream().await;

    // A message handled before, dead-lettered (a copy payment-service gave up on): its replay
    // changes nothing.
    let (order_id, _) = ids(&stack.order(&[("p-1", 1, "9.5")]).await);
    stack.order_becomes(&order_id, "CONFIRMED").await;
    let (_, charged) = stack
        .get(Svc::Payment, &format!("/payments?orderId={order_id}"))
        .await;
    let created = js
        .get_stream("ORDERS")
        .await
        .expect("ORDERS")
        .get_last_raw_message_by_subject("order.created.v1")
        .await
        .expect("the order's creation");
    assert!(String::from_utf8_lossy(&created.payload).contains(&order_id));
    let copy = PublishMessage::build()
        .header("Dlq-Consumer", PAYMENT)
        .header("Dlq-Subject", "order.created.v1")
        .header("Dlq-Reason", "RETRIES_EXHAUSTED")
        .header("Dlq-Detail", "8 attempts, last: database timeout")
        .payload(created.payload.clone());
    stack.publish(&format!("dlq.{PAYMENT}"), copy).await;
    let handled = stack
        .until(
            Svc::Saga,
            &format!("/dlq?consumer={PAYMENT}"),
            "the copy listed",
            |p| p["items"].as_array().is_some_and(|i| i.len() == 1),
        )
        .await["items"][0]
        .clone();
    assert_eq!(handled["eventId"], created_event_id(&created.payload));
    assert_eq!(handled["status"], "DEAD");
    let duplicates = consumed(&stack.metrics().await, PAYMENT, "duplicate");
    let out = stack
        .sagactl(&["dlq", "replay", &handled["id"].to_string()])
        .await
        .expect("sagactl dlq replay");
    assert!(out.contains("status         REPLAYED"), "{out}");
    test_support::eventually(
        "the replay reaches payment-service's inbox",
        WAIT,
        || async {
            let now = consumed(&stack.metrics().await, PAYMENT, "duplicate");
            if now > duplicates {
                Ok(())
            } else {
                Err(format!("{now} duplicates"))
            }
        },
    )
    .await;
    let (_, after) = stack
        .get(Svc::Payment, &format!("/payments?orderId={order_id}"))
        .await;
    assert_eq!(
        after, charged,
        "a replay of a handled event changes nothing"
    );

    // Poison: once per consumer of its subject.
    stack
        .publish(
            "order.created.v1",
            PublishMessage::build()
                .message_id("poison-1")
                .payload("{not an event".into()),
        )
        .await;
    for consumer in [PAYMENT, INVENTORY, SAGA] {
        stack
            .until(
                Svc::Saga,
                &format!("/dlq?consumer={consumer}&reason=MALFORMED"),
                "the poison dead-lettered",
                |p| p["items"].as_array().is_some_and(|i| i.len() == 1),
            )
            .await;
    }
    let (_, page) = stack.get(Svc::Saga, "/dlq?reason=MALFORMED").await;
    let poison = page["items"].as_array().expect("items").clone();
    assert_eq!(poison.len(), 3, "{page}");
    assert!(poison.iter().all(|d| d["payload"] == "{not an event"));
    let id_of = |consumer: &str| {
        poison
            .iter()
            .find(|d| d["consumer"] == consumer)
            .map(|d| d["id"].as_i64().unwrap())
            .unwrap()
    };

    // Discard payment's: DISCARDED, and not again.
    let discard = format!("/dlq/{}/discard", id_of(PAYMENT));
    let note = json!({"detail": "garbage from a test tool"});
    let (status, d) = dlq_action(&stack, &discard, Some(note)).await;
    assert_eq!(
        (status, d["status"].as_str()),
        (200, Some("DISCARDED")),
        "{d}"
    );
    let (status, d) = dlq_action(&stack, &discard, None).await;
    assert_eq!(
        (status, d["error"]["code"].as_str()),
        (409, Some("DLQ_ENTRY_NOT_DEAD"))
    );

    // Replay inventory's: REPLAYED, and the poison comes back as a new DEAD entry of
    // inventory's only; nothing replays by itself.
    let replay = format!("/dlq/{}/replay", id_of(INVENTORY));
    let (status, d) = dlq_action(&stack, &replay, None).await;
    assert_eq!(
        (status, d["status"].as_str()),
        (202, Some("REPLAYED")),
        "{d}"
    );
    let again = stack
        .until(
            Svc::Saga,
            &format!("/dlq?consumer={INVENTORY}&status=DEAD"),
            "the replayed poison dead-lettered again",
            |p| p["items"].as_array().is_some_and(|i| i.len() == 1),
        )
        .await;
    assert!(again["items"][0]["id"].as_i64() > Some(id_of(INVENTORY)));
    let (status, d) = dlq_action(&stack, &replay, None).await;
    assert_eq!(
        (status, d["error"]["code"].as_str()),
        (409, Some("DLQ_ENTRY_NOT_DEAD"))
    );

    // A bulk replay by filter replays exactly the DEAD entries that match: saga-coordinator's.
    let dead_before: Vec<i64> = entries(&stack, SAGA, "DEAD")
        .await
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(dead_before, vec![id_of(SAGA)]);
    let (status, body) = stack
        .admin(
            Svc::Saga,
            Method::POST,
            "/dlq/replay",
            Some(json!({"consumer": SAGA, "reason": "MALFORMED"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (status, body["replayed"].as_u64()),
        (202, Some(1)),
        "{body}"
    );
    stack
        .until(
            Svc::Saga,
            &format!("/dlq?consumer={SAGA}&status=DEAD"),
            "saga-coordinator's replayed poison dead-lettered again",
            |p| {
                p["items"]
                    .as_array()
                    .is_some_and(|i| i.len() == 1 && i[0]["id"].as_i64() > Some(id_of(SAGA)))
            },
        )
        .await;
    assert_eq!(entries(&stack, PAYMENT, "DEAD").await.len(), 0);
    assert_eq!(entries(&stack, INVENTORY, "DEAD").await.len(), 1);
    let (status, body) = stack
        .admin(
            Svc::Saga,
            Method::POST,
            "/dlq/replay",
            Some(json!({})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 422, "a bulk replay needs a filter: {body}");

    let (_, shown) = stack
        .get(Svc::Saga, &format!("/dlq/{}", id_of(PAYMENT)))
        .await;
    assert_eq!(shown["statusDetail"], "garbage from a test tool");
    assert!(shown["headers"].is_object(), "{shown}");
    // Every header of the original message, NATS's own under their own names (SPEC 12).
    let (_, poison) = stack
        .get(Svc::Saga, &format!("/dlq/{}", id_of(INVENTORY)))
        .await;
    assert_eq!(poison["headers"]["Nats-Msg-Id"], "poison-1", "{poison}");
    let actions: Vec<String> = audit(&stack, Svc::Saga)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        actions,
        vec!["dlq.replay", "dlq.replay", "dlq.discard", "dlq.replay"],
        "every accepted admin call, newest first"
    );
    stack.invariants_hold(&[order_id], &[("p-1", 3)]).await;
}

/// Retention: a dead letter an operator settled (replayed or discarded) is deleted once the DLQ
/// stream no longer holds its message; one still DEAD is kept, however old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_dead_letters_past_the_dlq_age_are_deleted_and_dead_ones_kept() {
    const PAYMENT: &str = "payment-service-order-created-v1";
    let mut stack = Stack::start(Options::default()).await;
    for n in 0..2 {
        let copy = PublishMessage::build()
            .header("Dlq-Consumer", PAYMENT)
            .header("Dlq-Subject", "order.created.v1")
            .header("Dlq-Reason", "MALFORMED")
            .payload(format!("{{not an event {n}").into());
        stack.publish(&format!("dlq.{PAYMENT}"), copy).await;
    }
    let listed = stack
        .until(
            Svc::Saga,
            &format!("/dlq?consumer={PAYMENT}"),
            "both dead letters listed",
            |p| p["items"].as_array().is_some_and(|i| i.len() == 2),
        )
        .await;
    let ids: Vec<i64> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["id"].as_i64().expect("id"))
        .collect();
    let (discarded, dead) = (ids[0], ids[1]);
    let (status, _) = dlq_action(&stack, &format!("/dlq/{discarded}/discard"), None).await;
    assert_eq!(status, 200);

    // Both are made older than the DLQ's age; the coordinator deletes at start.
    stack.stop_service(Svc::Saga).await;
    let pool = sqlx::PgPool::connect(&stack.database_url(Svc::Saga))
        .await
        .expect("sagas database");
    sqlx::query(
        "UPDATE dead_letters SET dead_lettered_at = dead_lettered_at - interval '60 days', \
                status_at = status_at - interval '60 days'",
    )
    .execute(&pool)
    .await
    .expect("backdate");
    pool.close().await;
    stack.start_service(Svc::Saga).await;
    stack
        .until(
            Svc::Saga,
            &format!("/dlq?consumer={PAYMENT}"),
            "the discarded dead letter deleted",
            |p| p["items"].as_array().is_some_and(|i| i.len() == 1),
        )
        .await;
    let (status, _) = stack.get(Svc::Saga, &format!("/dlq/{discarded}")).await;
    assert_eq!(status, 404, "the settled dead letter is gone");
    let (status, kept) = stack.get(Svc::Saga, &format!("/dlq/{dead}")).await;
    assert_eq!(
        (status, kept["status"].as_str()),
        (200, Some("DEAD")),
        "{kept}"
    );
}

fn created_event_id(payload: &[u8]) -> Value {
    serde_json::from_slice::<Value>(payload).expect("an envelope")["eventId"].clone()
}

/// Places `n` orders and waits until each has `status`.
async fn orders_become(stack: &Stack, n: usize, status: &str) -> Vec<String> {
    let mut placed = Vec::new();
    for _ in 0..n {
        let (order_id, _) = ids(&stack.order(&[("p-1", 1, "3")]).await);
        placed.push(order_id);
    }
    for order_id in &placed {
        let order = stack.order_becomes(order_id, status).await;
        if status == "CANCELLED" {
            assert_eq!(order["cancellationReason"], "PAYMENT_FAILED");
        }
    }
    placed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_success_rate_set_at_run_time_decides_the_next_orders_on_every_payment_instance() {
    let mut stack = Stack::start(Options::default()).await;
    stack.set_stock("p-1", 1000).await;
    let mut all = Vec::new();

    let (status, settings) = stack.set_simulation(json!({"successRate": 0})).await;
    assert_eq!(
        (status, settings["successRate"].as_f64()),
        (200, Some(0.0)),
        "{settings}"
    );
    // Instance B alone, then instance A alone: both decline.
    let second = stack.start_instance(Svc::Payment).await;
    stack.stop_service(Svc::Payment).await;
    all.extend(orders_become(&stack, 3, "CANCELLED").await);
    stack.start_service(Svc::Payment).await;
    second.stop().await;
    all.extend(orders_become(&stack, 3, "CANCELLED").await);

    let (status, _) = stack.set_simulation(json!({"successRate": 1})).await;
    assert_eq!(status, 200);
    all.extend(orders_become(&stack, 3, "CONFIRMED").await);
    let second = stack.start_instance(Svc::Payment).await;
    stack.stop_service(Svc::Payment).await;
    all.extend(orders_become(&stack, 3, "CONFIRMED").await);
    stack.start_service(Svc::Payment).await;
    second.stop().await;

    // Bad values are refused and change nothing.
    for bad in [
        json!({"successRate": 1.5}),
        json!({"successRate": "high"}),
        json!({"latencyMs": -1}),
        json!({"seed": 1.5}),
        json!({"successRate": 0, "rate": 1}),
        json!({}),
        json!([1]),
    ] {
        let (status, body) = stack.set_simulation(bad.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("VALIDATION_FAILED")),
            "{bad} -> {body}"
        );
    }
    let (status, now) = stack
        .admin(
            Svc::Payment,
            Method::GET,
            "/admin/simulation",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (status, now["successRate"].as_f64()),
        (200, Some(1.0)),
        "{now}"
    );
    let changes: Vec<Value> = audit(&stack, Svc::Payment).await;
    assert_eq!(
        changes.len(),
        2,
        "the two accepted changes only: {changes:?}"
    );
    assert!(changes.iter().all(|c| c["action"] == "simulation.set"));
    assert!(
        changes[0]["detail"]
            .as_str()
            .unwrap()
            .contains("successRate 0 -> 1")
    );
    let stock_set = [("p-1", 1000)];
    stack.invariants_hold(&all, &stock_set).await;
}

/// Every saga of one status (or other filter), reading every page.
async fn all_pages(stack: &Stack, filter: &str) -> usize {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/sagas?{filter}&limit=2&cursor={c}"),
            None => format!("/sagas?{filter}&limit=2"),
        };
        let (status, page) = stack.get(Svc::Saga, &path).await;
        assert_eq!(status, 200, "{path}: {page}");
        count += page["items"].as_array().map_or(0, Vec::len);
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return count,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_what_the_list_shows_and_admin_calls_need_the_token_and_are_audited() {
    let stack = Stack::start(Options::default()).await;
    stack.set_stock("p-1", 100).await;
    let mut orders = Vec::new();
    for _ in 0..4 {
        orders.push(ids(&stack.order(&[("p-1", 1, "5")]).await).0);
    }
    for _ in 0..2 {
        orders.push(ids(&stack.order(&[("no-such-product", 1, "5")]).await).0);
    }
    for order_id in &orders[..4] {
        stack.order_becomes(order_id, "CONFIRMED").await;
    }
    for order_id in &orders[4..] {
        stack.order_becomes(order_id, "CANCELLED").await;
    }
    let stats = stack
        .until(
            Svc::Saga,
            "/sagas/stats?window=15m",
            "six sagas ended",
            |s| s["ended"] == 6,
        )
        .await;
    assert_eq!(stats["window"], "15m");
    for status in [
        "STARTED",
        "COMPLETED",
        "COMPENSATING",
        "COMPENSATED",
        "FAILED",
    ] {
        let listed = all_pages(&stack, &format!("status={status}")).await;
        assert_eq!(stats["byStatus"][status], listed, "{status}: {stats}");
    }
    assert_eq!(stats["byStatus"]["COMPLETED"], 4);
    assert_eq!(stats["byStatus"]["COMPENSATED"], 2);
    let listed = all_pages(&stack, "reason=INVENTORY_UNAVAILABLE").await;
    assert_eq!(
        (stats["byReason"]["INVENTORY_UNAVAILABLE"].as_u64(), listed),
        (Some(2), 2)
    );
    assert_eq!(stats["stuck"], all_pages(&stack, "stuck=true").await);
    assert_eq!(all_pages(&stack, "stuck=false").await, 6);
    assert_eq!(stats["inFlight"], 0);
    let d = &stats["duration"];
    assert!(
        d["p50Ms"].as_f64() > Some(0.0) && d["p50Ms"].as_f64() <= d["maxMs"].as_f64(),
        "{d}"
    );
    for bad in ["0m", "30s", "25h", "15", "m", "1.5h", "-1h"] {
        let (status, _) = stack
            .get(Svc::Saga, &format!("/sagas/stats?window={bad}"))
            .await;
        assert_eq!(status, 422, "window={bad}");
    }
    for bad in [
        "reason=LATE",
        "createdAfter=yesterday",
        "stuck=maybe",
        "status=DONE",
    ] {
        let (status, body) = stack.get(Svc::Saga, &format!("/sagas?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let since = all_pages(
        &stack,
        "createdAfter=2000-01-01T00:00:00Z&createdBefore=2999-01-01T00:00:00%2B02:00",
    )
    .await;
    assert_eq!(since, 6);

    // Without the token (or with another) every admin call is refused and changes nothing.
    let admin_calls: Vec<(Svc, Method, String, Option<Value>)> = vec![
        (
            Svc::Saga,
            Method::POST,
            format!("/sagas/{}/retry", new_id()),
            None,
        ),
        (
            Svc::Saga,
            Method::POST,
            format!("/sagas/{}/abort", new_id()),
            None,
        ),
        (Svc::Saga, Method::POST, "/dlq/1/replay".into(), None),
        (
            Svc::Saga,
            Method::POST,
            "/dlq/replay".into(),
            Some(json!({"consumer": "x"})),
        ),
        (Svc::Saga, Method::POST, "/dlq/1/discard".into(), None),
        (Svc::Saga, Method::GET, "/admin/audit".into(), None),
        (Svc::Payment, Method::GET, "/admin/simulation".into(), None),
        (
            Svc::Payment,
            Method::PUT,
            "/admin/simulation".into(),
            Some(json!({"successRate": 0})),
        ),
        (Svc::Payment, Method::GET, "/admin/audit".into(), None),
        (
            Svc::Inventory,
            Method::PUT,
            "/inventory/p-1".into(),
            Some(json!({"onHand": 1})),
        ),
        (Svc::Inventory, Method::GET, "/admin/audit".into(), None),
    ];
    for (svc, method, path, body) in &admin_calls {
        for token in [None, Some("not-the-token")] {
            let (status, answer) = stack
                .admin(*svc, method.clone(), path, body.clone(), token)
                .await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {answer}");
            assert_eq!(answer["error"]["code"], "UNAUTHORIZED");
        }
    }
    let (_, simulation) = stack
        .admin(
            Svc::Payment,
            Method::GET,
            "/admin/simulation",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(simulation["successRate"], 1.0);
    let (_, stock) = stack.get(Svc::Inventory, "/inventory/p-1").await;
    assert_eq!(stock["onHand"], 96);

    // Accepted calls are in their service's audit log, with a fingerprint of the token.
    stack.set_stock("p-2", 7).await;
    let (status, _) = stack.set_simulation(json!({"seed": 9})).await;
    assert_eq!(status, 200);
    let inventory = audit(&stack, Svc::Inventory).await;
    let actions: Vec<(&str, &str)> = inventory
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, vec![("stock.set", "p-2"), ("stock.set", "p-1")]);
    let payment = audit(&stack, Svc::Payment).await;
    assert_eq!(payment.len(), 1);
    assert!(
        payment[0]["detail"]
            .as_str()
            .unwrap()
            .contains("seed 7 -> 9")
    );
    for entry in inventory.iter().chain(&payment) {
        let actor = entry["actor"].as_str().unwrap();
        assert!(
            actor.starts_with("token:") && !actor.contains(ADMIN),
            "{actor}"
        );
    }
    stack.invariants_hold(&orders, &[("p-1", 100)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_admin_token_configured_every_admin_call_is_forbidden() {
    let stack = Stack::start(Options {
        admin_token: None,
        ..Options::default()
    })
    .await;
    for (svc, method, path) in [
        (
            Svc::Saga,
            Method::POST,
            format!("/sagas/{}/retry", new_id()),
        ),
        (Svc::Saga, Method::POST, "/dlq/1/discard".to_owned()),
        (Svc::Saga, Method::GET, "/admin/audit".to_owned()),
        (Svc::Payment, Method::GET, "/admin/simulation".to_owned()),
        (Svc::Inventory, Method::PUT, "/inventory/p-1".to_owned()),
    ] {
        let body = (method == Method::PUT).then(|| json!({"onHand": 1}));
        let (status, answer) = stack
            .admin(svc, method.clone(), &path, body, Some(ADMIN))
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (403, Some("ADMIN_DISABLED")),
            "{method} {path}"
        );
    }
}
