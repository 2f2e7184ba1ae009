//! The system on a three-node JetStream cluster, every stream with three replicas: orders keep
//! flowing while the node that leads the ORDERS stream is SIGKILLed, and none is lost.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use shared_events::Stream;
use test_support::NatsCluster;

/// Creates every stream with three replicas before the services start, retrying: right after a
/// cluster forms, a stream creation can time out although it went through.
async fn provision(cluster: &NatsCluster) {
    let settings = messaging::nats::NatsSettings::new(cluster.urls(), "e2e-provision");
    let js = messaging::nats::jetstream(messaging::nats::connect(&settings).await.expect("nats"));
    let mut last = String::new();
    for _ in 0..20 {
        match messaging::nats::ensure_streams(&js, 3).await {
            Ok(()) => return,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("streams not provisioned: {last}");
}

/// Places an order for one of `products`, retrying with its Idempotency-Key until it is
/// accepted; returns its id.
async fn place(stack: &Stack, products: &[&str], n: usize) -> String {
    let body = json!({"customerId": "c-cluster", "items": [
        {"productId": products[n % products.len()], "quantity": 1 + n % 3, "unitPrice": 12.5},
    ]});
    let key = new_id();
    for _ in 0..100 {
        let sent = stack
            .http
            .post(stack.url(Svc::Order, "/orders"))
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        if let Ok(response) = sent
            && response.status().as_u16() == 201
            && let Ok(order) = response.json::<serde_json::Value>().await
        {
            return order["orderId"].as_str().expect("orderId").to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("order {n} never accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_flow_on_while_the_orders_stream_leader_is_killed_and_none_is_lost() {
    let started = Instant::now();
    let mut cluster = NatsCluster::start().await.expect("cluster");
    provision(&cluster).await;
    let stack = Arc::new(
        Stack::start(Options {
            nats_url: Some(cluster.urls()),
            stream_replicas: 3,
            success_rate: 0.8,
            ..Options::default()
        })
        .await,
    );

    // Every stream really has three replicas, one on each node, all current.
    for stream in Stream::ALL {
        let placement = cluster
            .stream_placement(stream.name())
            .await
            .expect("placement");
        assert_eq!(placement.configured_replicas, 3, "{placement:?}");
        let mut nodes = placement.nodes();
        nodes.sort_unstable();
        assert_eq!(nodes, vec![0, 1, 2], "{}: {placement:?}", stream.name());
    }

    let products = ["cl-1", "cl-2", "cl-3"];
    let stock: Vec<(&str, i64)> = products.iter().map(|p| (*p, 10_000)).collect();
    for (product, n) in &stock {
        stack.set_stock(product, *n).await;
    }

    // Orders before the fault, and their ends: the flow works on the cluster.
    let mut orders = Vec::new();
    for n in 0..10 {
        orders.push(place(&stack, &products, n).await);
    }
    stack.invariants_hold(&orders, &stock).await;

    // A steady flow of orders (20/s) from now until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let flow = tokio::spawn({
        let (stack, stop) = (stack.clone(), stop.clone());
        async move {
            let mut placed = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut n = 1000;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                placed.push(place(&stack, &products, n).await);
                n += 1;
            }
            placed
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;

    let leader = cluster
        .stream_leader("ORDERS")
        .await
        .expect("ORDERS leader");
    cluster.kill(leader).await;
    let killed_at = Instant::now();
    let next = cluster
        .wait_stream_leader("ORDERS", Some(leader), Duration::from_secs(30))
        .await
        .expect("a new ORDERS leader");
    eprintln!(
        "ORDERS leader {} SIGKILLed; {} leads after {:.1}s",
        cluster.name(leader),
        cluster.name(next),
        killed_at.elapsed().as_secs_f64()
    );

    // Orders placed now go to the new leader; the killed node stays down.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let during_and_after = flow.await.expect("order flow");
    assert!(during_and_after.len() > 50, "{}", during_and_after.len());
    orders.extend(during_and_after);

    // Every order ends CONFIRMED or CANCELLED, and the books balance.
    stack.invariants_hold(&orders, &stock).await;
    let mut confirmed = 0;
    for id in &orders {
        let (_, order) = stack.get(Svc::Order, &format!("/orders/{id}")).await;
        if order["status"] == "CONFIRMED" {
            confirmed += 1;
        }
    }
    assert!(confirmed > 0, "no order confirmed");
    eprintln!(
        "{} orders ({confirmed} confirmed), all ended {:.1}s after the kill",
        orders.len(),
        killed_at.elapsed().as_secs_f64()
    );

    // The killed node comes back and catches up with what it missed.
    cluster.start_again(leader).await.expect("restart");
    cluster
        .wait_stream_current("ORDERS", Duration::from_secs(30))
        .await
        .expect("the restarted replica catches up");
    eprintln!("test took {:.1}s", started.elapsed().as_secs_f64());
}
