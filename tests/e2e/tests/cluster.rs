//! NATS beyond one server: on a three-node JetStream cluster, every stream with three replicas,
//! orders keep flowing while the node that leads the ORDERS stream is SIGKILLed, and none is lost;
//! streams of one replica grow to three when the services are told to; and what the operator
//! does when NATS loses events it had acknowledged (a machine crash before its disk sync):
//! publish the outbox again.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_one_replica_grow_to_three_when_the_services_ask_for_three() {
    let cluster = NatsCluster::start().await.expect("cluster");
    let settings = messaging::nats::NatsSettings::new(cluster.urls(), "e2e-provision");
    let js = messaging::nats::jetstream(messaging::nats::connect(&settings).await.expect("nats"));
    let mut created = false;
    for _ in 0..20 {
        if messaging::nats::ensure_streams(&js, 1).await.is_ok() {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(created, "streams of one replica not created");
    let placement = cluster.stream_placement("ORDERS").await.expect("placement");
    assert_eq!(
        (placement.configured_replicas, placement.nodes().len()),
        (1, 1)
    );

    // The services start with NATS_STREAM_REPLICAS=3: provisioning raises every stream to three.
    let stack = Stack::start(Options {
        nats_url: Some(cluster.urls()),
        stream_replicas: 3,
        ..Options::default()
    })
    .await;
    for stream in Stream::ALL {
        cluster
            .wait_stream_current(stream.name(), Duration::from_secs(30))
            .await
            .expect("replicas current");
        let placement = cluster
            .stream_placement(stream.name())
            .await
            .expect("placement");
        assert_eq!(placement.configured_replicas, 3, "{placement:?}");
        assert_eq!(placement.nodes().len(), 3, "{placement:?}");
    }
    stack.set_stock("grow-1", 10).await;
    let order = stack.order(&[("grow-1", 1, "5.00")]).await;
    let (order_id, _) = ids(&order);
    stack.order_becomes(&order_id, "CONFIRMED").await;
}

/// The outbox rows of a service sent since `since`, marked unsent again: its relay publishes them
/// once more (the operator's remedy in docs/operations.md). Returns how many.
async fn republish_since(database_url: &str, since: f64) -> u64 {
    let pool = sqlx::PgPool::connect(database_url).await.expect("database");
    let done =
        sqlx::query("UPDATE messaging_outbox SET sent_at = NULL WHERE sent_at >= to_timestamp($1)")
            .bind(since)
            .execute(&pool)
            .await
            .expect("republish");
    pool.close().await;
    done.rows_affected()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_nats_lost_after_acknowledging_them_are_published_again_from_the_outbox() {
    let mut stack = Stack::start(Options::default()).await;
    stack.set_stock("lost-1", 100).await;
    let pool = sqlx::PgPool::connect(&stack.database_url(Svc::Order))
        .await
        .expect("orders database");
    let since: f64 = sqlx::query_scalar("SELECT extract(epoch FROM now())::float8")
        .fetch_one(&pool)
        .await
        .expect("clock");

    // Orders whose order.created NATS acknowledges while none of its consumers runs ...
    for svc in [Svc::Payment, Svc::Inventory, Svc::Saga] {
        stack.stop_service(svc).await;
    }
    let mut orders = Vec::new();
    for _ in 0..5 {
        orders.push(ids(&stack.order(&[("lost-1", 1, "3.50")]).await).0);
    }
    test_support::eventually("order.created acknowledged", WAIT, || async {
        let unsent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL")
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
        if unsent == 0 {
            Ok(())
        } else {
            Err(format!("{unsent} unsent"))
        }
    })
    .await;

    // ... and then loses: the stream's tail is gone and the server starts again from its store,
    // as after a machine crash before the disk sync.
    let js = messaging::nats::jetstream(
        messaging::nats::connect(&messaging::nats::NatsSettings::new(
            stack.nats.url(),
            "e2e-loss",
        ))
        .await
        .expect("nats"),
    );
    let purged = js
        .get_stream("ORDERS")
        .await
        .expect("ORDERS")
        .purge()
        .await
        .expect("purge");
    assert_eq!(purged.purged, 5);
    match &mut stack.nats {
        StackNats::Own(server) => {
            server.kill().await;
            server.start_again().await.expect("nats-server");
        }
        StackNats::Given(_) => unreachable!("a nats-server of the stack's own"),
    }
    for svc in [Svc::Payment, Svc::Inventory, Svc::Saga] {
        stack.start_service(svc).await;
    }

    // Nothing notices by itself: no saga starts, the orders stay PENDING.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &orders {
        let (_, order) = stack.get(Svc::Order, &format!("/orders/{id}")).await;
        assert_eq!(order["status"], "PENDING", "{order}");
        let (_, sagas) = stack.get(Svc::Saga, &format!("/sagas?orderId={id}")).await;
        assert_eq!(sagas["items"], json!([]), "{sagas}");
    }

    // The operator publishes again what order-service sent since before the loss.
    assert_eq!(
        republish_since(&stack.database_url(Svc::Order), since).await,
        5
    );
    for id in &orders {
        stack.order_becomes(id, "CONFIRMED").await;
    }
    stack.invariants_hold(&orders, &[("lost-1", 100)]).await;
    pool.close().await;
}
