//! Provisioning: streams and consumers are created once and checked against what the server stored.

use crate::rig::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_is_idempotent_and_fails_loudly_when_the_server_keeps_another_config() {
    let nats = NatsServer::start().await.expect("nats");
    let js = connect(&nats, "provision").await;
    ensure_streams(&js, 1).await.expect("first");
    ensure_streams(&js, 1)
        .await
        .expect("second run changes nothing");
    let asked = messaging::nats::consumer_config(
        "svc-order-created-v1",
        "order.created.v1",
        Duration::from_secs(30),
        100,
    );
    messaging::nats::ensure_consumer(&js, shared_events::Stream::Orders, asked.clone())
        .await
        .expect("consumer");
    let stored = js
        .get_stream("ORDERS")
        .await
        .expect("s")
        .consumer_info("svc-order-created-v1")
        .await
        .expect("info");
    assert_eq!(stored.config.filter_subject, "order.created.v1");
    assert_eq!(stored.config.max_deliver, -1);

    // A SAGAS stream someone made in memory cannot be turned into a file stream: refuse to run.
    let other = NatsServer::start().await.expect("nats");
    let js = connect(&other, "provision").await;
    js.create_stream(jetstream::stream::Config {
        name: "SAGAS".into(),
        subjects: vec!["saga.>".into()],
        storage: jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .expect("memory stream");
    let err = messaging::nats::ensure_stream(&js, shared_events::Stream::Sagas, 1)
        .await
        .expect_err("mismatch");
    assert!(err.to_string().contains("storage"), "{err}");
}
