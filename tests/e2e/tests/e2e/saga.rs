//! The order saga end to end: the four services, a real PostgreSQL and a nats-server per test.
//! Every flow ends by checking the invariants of the contract through the public HTTP APIs.

use std::time::Duration;

use crate::common::*;
use futures_util::future::join_all;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_confirms_the_order_commits_stock_and_completes_the_saga() {
    let stack = Stack::start(Options::default()).await;
    stack.set_stock("p-1", 10).await;
    let order = stack.order(&[("p-1", 2, "19.99")]).await;
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["totalAmount"], json!(39.98));
    assert_eq!(order["items"][0]["totalPrice"], json!(39.98));
    let (order_id, saga_id) = ids(&order);

    stack.order_becomes(&order_id, "CONFIRMED").await;
    let saga = stack.saga_becomes(&saga_id, "COMPLETED").await;
    assert_eq!(saga["orderId"], order_id.as_str());
    assert_eq!(saga["payment"]["status"], "CONFIRMED");
    assert!(saga["payment"]["paymentId"].is_string(), "{saga}");
    assert!(saga["inventory"]["reservationId"].is_string(), "{saga}");
    let (_, payment) = stack
        .get(Svc::Payment, &format!("/payments?orderId={order_id}"))
        .await;
    assert_eq!(payment["status"], "CONFIRMED");
    assert_eq!(payment["amount"], json!(39.98));
    let (_, by_id) = stack
        .get(
            Svc::Payment,
            &format!("/payments/{}", payment["paymentId"].as_str().unwrap()),
        )
        .await;
    assert_eq!(by_id["orderId"], order_id.as_str());

    stack
        .invariants_hold(std::slice::from_ref(&order_id), &[("p-1", 10)])
        .await;
    let (_, reservation) = stack
        .get(Svc::Inventory, &format!("/reservations/{order_id}"))
        .await;
    assert_eq!(reservation["status"], "COMMITTED");
    let (_, stock) = stack.get(Svc::Inventory, "/inventory/p-1").await;
    assert_eq!(
        (stock["onHand"].as_i64(), stock["available"].as_i64()),
        (Some(8), Some(8))
    );

    let saga = stack.saga_becomes(&saga_id, "COMPLETED").await;
    let history: Vec<&str> = saga["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["eventType"].as_str().unwrap())
        .collect();
    for expected in [
        "order.created",
        "payment.confirmed",
        "inventory.reserved",
        "saga.completed",
    ] {
        assert!(
            history.contains(&expected),
            "{expected} missing from {history:?}"
        );
    }
    let (_, listed) = stack
        .get(Svc::Saga, &format!("/sagas?orderId={order_id}"))
        .await;
    assert_eq!(listed["items"][0]["sagaId"], saga_id.as_str());
    let (_, listed) = stack
        .get(Svc::Order, "/orders?customerId=c-e2e&status=CONFIRMED")
        .await;
    assert_eq!(listed["items"][0]["orderId"], order_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_cancels_the_order_and_releases_the_stock() {
    let stack = Stack::start(Options {
        success_rate: 0.0,
        ..Options::default()
    })
    .await;
    stack.set_stock("p-1", 5).await;
    let (order_id, saga_id) = ids(&stack.order(&[("p-1", 3, "10")]).await);

    let order = stack.order_becomes(&order_id, "CANCELLED").await;
    assert_eq!(order["cancellationReason"], "PAYMENT_FAILED");
    let saga = stack.saga_becomes(&saga_id, "COMPENSATED").await;
    assert_eq!(saga["reason"], "PAYMENT_FAILED");
    stack
        .invariants_hold(std::slice::from_ref(&order_id), &[("p-1", 5)])
        .await;
    let (_, reservation) = stack
        .get(Svc::Inventory, &format!("/reservations/{order_id}"))
        .await;
    assert_eq!(reservation["status"], "RELEASED");
    let (_, payment) = stack
        .get(Svc::Payment, &format!("/payments?orderId={order_id}"))
        .await;
    assert_eq!(payment["status"], "FAILED");
    let (_, stock) = stack.get(Svc::Inventory, "/inventory/p-1").await;
    assert_eq!(stock["available"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_stock_or_an_unknown_product_cancels_the_order_and_refunds_the_charge() {
    let stack = Stack::start(Options::default()).await;
    stack.set_stock("p-1", 1).await;
    let (short, short_saga) = ids(&stack.order(&[("p-1", 2, "5")]).await);
    let (unknown, unknown_saga) = ids(&stack
        .order(&[("p-1", 1, "5"), ("no-such-product", 1, "5")])
        .await);

    for (order_id, saga_id) in [(&short, &short_saga), (&unknown, &unknown_saga)] {
        let order = stack.order_becomes(order_id, "CANCELLED").await;
        assert_eq!(order["cancellationReason"], "INVENTORY_UNAVAILABLE");
        let saga = stack.saga_becomes(saga_id, "COMPENSATED").await;
        assert_eq!(saga["payment"]["status"], "REFUNDED");
        let (_, payment) = stack
            .get(Svc::Payment, &format!("/payments?orderId={order_id}"))
            .await;
        assert_eq!(payment["status"], "REFUNDED");
    }
    let (_, reservation) = stack
        .get(Svc::Inventory, &format!("/reservations/{unknown}"))
        .await;
    assert_eq!(
        (
            reservation["status"].as_str(),
            reservation["reason"].as_str()
        ),
        (Some("FAILED"), Some("UNKNOWN_PRODUCT"))
    );
    let (_, reservation) = stack
        .get(Svc::Inventory, &format!("/reservations/{short}"))
        .await;
    assert_eq!(reservation["reason"], "INSUFFICIENT_STOCK");
    stack
        .invariants_hold(&[short, unknown], &[("p-1", 1)])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_participant_down_the_saga_times_out_and_its_late_work_is_undone() {
    let mut stack = Stack::start(Options {
        saga_timeout: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    stack.set_stock("p-1", 10).await;
    stack.stop_service(Svc::Payment).await;
    let (order_id, saga_id) = ids(&stack.order(&[("p-1", 4, "2.50")]).await);

    let order = stack.order_becomes(&order_id, "CANCELLED").await;
    assert_eq!(order["cancellationReason"], "TIMEOUT");
    let saga = stack.saga_becomes(&saga_id, "COMPENSATED").await;
    assert_eq!(saga["reason"], "TIMEOUT");
    assert_eq!(saga["inventory"]["status"], "RELEASED");
    // Payment never answered: its id is there, as null (SPEC 3's shape), not left out.
    assert_eq!(
        saga["payment"].get("paymentId"),
        Some(&serde_json::Value::Null),
        "{saga}"
    );
    assert!(saga["inventory"]["reservationId"].is_string(), "{saga}");

    // Back up, payment-service finds both order.created and order.cancelled waiting: whatever it
    // does for the order (charge then refund, or never charge) leaves no net charge.
    stack.start_service(Svc::Payment).await;
    let payment = match test_support::eventually_ok("payment settled", WAIT, || async {
        let (status, p) = stack
            .get(Svc::Payment, &format!("/payments?orderId={order_id}"))
            .await;
        if status == 200 && (p["status"] == "REFUNDED" || p["status"] == "FAILED") {
            Ok(p)
        } else {
            Err(p.to_string())
        }
    })
    .await
    {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    stack.saga_becomes(&saga_id, "COMPENSATED").await;
    stack
        .invariants_hold(std::slice::from_ref(&order_id), &[("p-1", 10)])
        .await;
    eprintln!(
        "late payment-service left the payment {}",
        payment["status"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cancel_of_a_pending_or_confirmed_order_refunds_and_restocks() {
    let mut stack = Stack::start(Options::default()).await;
    stack.set_stock("p-1", 10).await;

    let (confirmed, confirmed_saga) = ids(&stack.order(&[("p-1", 3, "7.10")]).await);
    stack.order_becomes(&confirmed, "CONFIRMED").await;
    stack
        .invariants_hold(std::slice::from_ref(&confirmed), &[("p-1", 10)])
        .await;
    let (status, cancelled) = stack
        .post(
            Svc::Order,
            &format!("/orders/{confirmed}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["cancellationReason"], "CUSTOMER_REQUEST");
    let (status, again) = stack
        .post(
            Svc::Order,
            &format!("/orders/{confirmed}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("CANCELLED")),
        "cancelling twice is a no-op"
    );
    stack.saga_becomes(&confirmed_saga, "COMPENSATED").await;

    // Pending: payment-service is down, so the order cannot move on before the customer cancels.
    stack.stop_service(Svc::Payment).await;
    let (pending, pending_saga) = ids(&stack.order(&[("p-1", 2, "1.00")]).await);
    let (status, cancelled) = stack
        .post(
            Svc::Order,
            &format!("/orders/{pending}/cancel"),
            &json!(null),
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("CANCELLED")),
        "{cancelled}"
    );
    stack.start_service(Svc::Payment).await;
    stack.saga_becomes(&pending_saga, "COMPENSATED").await;

    stack
        .invariants_hold(&[confirmed.clone(), pending.clone()], &[("p-1", 10)])
        .await;
    let (_, payment) = stack
        .get(Svc::Payment, &format!("/payments?orderId={confirmed}"))
        .await;
    assert_eq!(payment["status"], "REFUNDED");
    let (_, stock) = stack.get(Svc::Inventory, "/inventory/p-1").await;
    assert_eq!(
        (stock["onHand"].as_i64(), stock["available"].as_i64()),
        (Some(10), Some(10))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_orders_for_the_last_ten_units_sell_exactly_ten() {
    let stack = Stack::start(Options::default()).await;
    stack.set_stock("last-units", 10).await;
    let placed = join_all((0..50).map(|_| stack.order(&[("last-units", 1, "3.00")]))).await;
    let orders: Vec<String> = placed.iter().map(|o| ids(o).0).collect();
    stack.invariants_hold(&orders, &[("last-units", 10)]).await;
    let mut confirmed = 0;
    for id in &orders {
        let (_, order) = stack.get(Svc::Order, &format!("/orders/{id}")).await;
        if order["status"] == "CONFIRMED" {
            confirmed += 1;
        } else {
            assert_eq!(order["cancellationReason"], "INVENTORY_UNAVAILABLE");
        }
    }
    assert_eq!(
        confirmed, 10,
        "every payment succeeds, so exactly the 10 units are sold"
    );
    let (_, stock) = stack.get(Svc::Inventory, "/inventory/last-units").await;
    assert_eq!(
        (stock["onHand"].as_i64(), stock["available"].as_i64()),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_one_order_and_refuses_another_body() {
    let stack = Stack::start(Options {
        auto_provision: 100,
        ..Options::default()
    })
    .await;
    let body = json!({"customerId": "c-idem", "items": [{"productId": "p-9", "quantity": 1, "unitPrice": 4.5}]});
    let send = |body: serde_json::Value| {
        let request = stack
            .http
            .post(stack.url(Svc::Order, "/orders"))
            .header("Idempotency-Key", "key-1")
            .json(&body);
        async move {
            let response = request.send().await.expect("POST");
            (
                response.status().as_u16(),
                response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    // Eight at once: some are written in the same group commit, some meet the committed key.
    let sent = futures_util::future::join_all((0..8).map(|_| send(body.clone()))).await;
    let first = sent[0].clone();
    for (status, order) in &sent {
        assert_eq!(*status, 201, "{order}");
        assert_eq!(
            order["orderId"], first.1["orderId"],
            "one order for one key"
        );
    }
    let (third_status, third) = send(body.clone()).await;
    assert_eq!(
        (third_status, &third["orderId"]),
        (201, &first.1["orderId"])
    );

    let mut other = body.clone();
    other["items"][0]["quantity"] = json!(2);
    let (status, error) = send(other).await;
    assert_eq!(status, 409);
    assert_eq!(error["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    let (_, listed) = stack.get(Svc::Order, "/orders?customerId=c-idem").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let order_id = first.1["orderId"].as_str().unwrap().to_owned();
    stack.order_becomes(&order_id, "CONFIRMED").await;
    stack.invariants_hold(&[order_id], &[("p-9", 100)]).await;
}
