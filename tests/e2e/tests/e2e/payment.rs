//! The simulated gateway is deterministic: the same seed and order id give the same decision,
//! whatever restarts or state losses happen in between.

use std::time::Duration;

use messaging::Shutdown;
use messaging::nats::{NatsSettings, connect, ensure_streams, jetstream};
use serde_json::Value;
use service_kit::CommonSettings;
use shared_events::{Envelope, OrderCreated, OrderLine};
use test_support::{NatsServer, TestDb, eventually};
use uuid::Uuid;

use crate::common::payment_settings;

/// The decisions a brand-new payment-service (fresh database, fresh NATS) makes for `orders`.
async fn decisions(seed: u64, orders: &[Uuid]) -> Vec<String> {
    let nats = NatsServer::start().await.expect("nats");
    let db = TestDb::create().await.expect("db");
    let stop = Shutdown::new();
    let settings = payment_settings(
        CommonSettings::for_test(payment_service::SERVICE, &db.url, &nats.url()),
        0.5,
        seed,
    );
    let service = payment_service::build(settings, stop.clone())
        .await
        .expect("payment-service");
    let port = service.port();
    let task = tokio::spawn(service.run_until_stopped());

    let js = jetstream(
        connect(&NatsSettings::new(nats.url(), "test"))
            .await
            .expect("connect"),
    );
    ensure_streams(&js, 1).await.expect("streams");
    for order_id in orders {
        let created = OrderCreated {
            order_id: *order_id,
            saga_id: *order_id,
            customer_id: "c".parse().expect("customer"),
            items: vec![OrderLine {
                product_id: "p".parse().expect("product"),
                quantity: shared_events::Quantity::new(1).expect("quantity"),
                unit_price: "1".parse().expect("money"),
            }],
            total_amount: "1".parse().expect("money"),
            currency: shared_events::Currency::euro(),
        };
        let event = Envelope::new(created, *order_id, None, "order-service");
        js.publish(event.subject(), event.to_bytes().into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let http = reqwest::Client::new();
    let found = eventually(
        "every order charged or declined",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            async move {
                let mut statuses = Vec::new();
                for order_id in orders {
                    let url = format!("http://127.0.0.1:{port}/payments?orderId={order_id}");
                    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
                    let body: Value = response.json().await.map_err(|e| e.to_string())?;
                    match body["status"].as_str() {
                        Some(s) => statuses.push(format!("{s}:{}", body["reason"])),
                        None => return Err(format!("order {order_id}: {body}")),
                    }
                }
                Ok(statuses)
            }
        },
    )
    .await;
    stop.cancel();
    task.await.expect("join").expect("stops cleanly");
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_and_orders_get_the_same_decisions_after_a_restart_with_lost_state() {
    let orders: Vec<Uuid> = (0..40u128)
        .map(|i| Uuid::from_u128(0x0123_4567_89ab_7def_8000_0000_0000_0000 + i * 7919))
        .collect();
    let first = decisions(42, &orders).await;
    let again = decisions(42, &orders).await;
    assert_eq!(first, again, "a restarted gateway changed its mind");
    let approved = first.iter().filter(|s| s.starts_with("CONFIRMED")).count();
    assert!(
        approved > 5 && approved < 35,
        "rate 0.5 approved {approved} of 40"
    );
    let other_seed = decisions(43, &orders).await;
    assert_ne!(first, other_seed, "the seed must matter");
}
