//! Two majors of one event: a producer publishes both copies with one event id, and a service
//! that consumes both handles each event once, whichever copies arrive and in whatever order.

use crate::rig::*;

/// The v2 consumer of the test service, as `spec()` is the v1 one.
fn spec_v2() -> ConsumerSpec {
    let mut spec = spec();
    spec.kind = EventKind::OrderCreatedV2;
    spec
}

/// Publishes one copy of `event` in major `kind`, under that copy's `Nats-Msg-Id` prefixed with
/// `prefix` (empty: the id the relay would use, so JetStream drops a repeat).
async fn publish_copy(js: &jetstream::Context, event: &Envelope, kind: EventKind, prefix: &str) {
    let body = event.encode(kind).expect("the major carries it");
    js.send_publish(
        kind.subject(),
        PublishMessage::build()
            .message_id(format!("{prefix}{}", kind.message_id(event.event_id)))
            .payload(body.into()),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
}

async fn pending(js: &jetstream::Context, durable: &str) -> (u64, usize) {
    let info = js
        .get_stream("ORDERS")
        .await
        .expect("stream")
        .consumer_info(durable)
        .await
        .expect("consumer");
    (info.num_pending, info.num_ack_pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_takes_effect_once_whichever_majors_arrive_in_whatever_order() {
    let mut rig = rig().await;
    // The producer publishes both majors, as during a change-over.
    rig.outbox = Outbox::new("order-service");
    let stop = Shutdown::new();
    let relay = spawn_relay(&rig, &stop);
    let v1 = start_consumer(
        &rig,
        rig.js.clone(),
        spec(),
        RecordEffect { instance: "v1" },
        &stop,
    )
    .await;
    let v2 = start_consumer(
        &rig,
        rig.js.clone(),
        spec_v2(),
        RecordEffect { instance: "v2" },
        &stop,
    )
    .await;

    // Through the outbox: both copies of each event, one after the other.
    let mut ids = add_events(&rig, 60, 7).await;
    wait_for_effects(&rig.pool, 60, "every event through the outbox once").await;
    let stored = stream_messages(&rig.js, "ORDERS").await;
    assert_eq!(stored, 120, "two copies of each event in the stream");

    // The second major first, the first long after it; and the first first, then the second.
    let late: Vec<Envelope> = order_created_events(&rig.outbox, 20);
    for event in &late[..10] {
        publish_copy(&rig.js, event, EventKind::OrderCreatedV2, "").await;
    }
    for event in &late[10..] {
        publish_copy(&rig.js, event, EventKind::OrderCreated, "").await;
    }
    ids.extend(late.iter().map(|e| e.event_id));
    wait_for_effects(&rig.pool, 80, "the first copy of each late event").await;
    for event in &late[..10] {
        publish_copy(&rig.js, event, EventKind::OrderCreated, "").await;
    }
    for event in &late[10..] {
        publish_copy(&rig.js, event, EventKind::OrderCreatedV2, "").await;
    }
    // And every copy again under ids JetStream has not seen: redeliveries of both majors.
    for event in &late {
        publish_copy(&rig.js, event, EventKind::OrderCreated, "again-").await;
        publish_copy(&rig.js, event, EventKind::OrderCreatedV2, "again-").await;
    }
    eventually("both consumers caught up", WAIT, || {
        let js = rig.js.clone();
        async move {
            let a = pending(&js, &spec().durable()).await;
            let b = pending(&js, &spec_v2().durable()).await;
            if a == (0, 0) && b == (0, 0) {
                Ok(())
            } else {
                Err(format!("v1 {a:?}, v2 {b:?} (pending, unacked)"))
            }
        }
    })
    .await;
    assert_effects_are(&rig.pool, &ids).await;
    let twice = scalar(&rig.pool, "SELECT count(*) FROM effects WHERE n > 1").await;
    assert_eq!(twice, 0, "an event took effect twice");
    let by_v2 = scalar(
        &rig.pool,
        "SELECT count(*) FROM effects WHERE instance = 'v2'",
    )
    .await;
    assert!(
        by_v2 >= 10,
        "the v2 copies that came first were handled by the v2 consumer"
    );
    let inbox = scalar(&rig.pool, "SELECT count(*) FROM messaging_inbox").await;
    assert_eq!(inbox, 80, "one inbox row per event, not per copy");
    stop.cancel();
    for task in [relay, v1, v2] {
        task.await.expect("stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_told_to_publish_the_second_major_only_writes_no_first_major_copy() {
    let mut rig = rig().await;
    rig.outbox = Outbox::new("order-service").with_majors(Majors::parse("2").expect("majors"));
    let stop = Shutdown::new();
    let relay = spawn_relay(&rig, &stop);
    add_events(&rig, 5, 5).await;
    eventually("five copies published", WAIT, || {
        let js = rig.js.clone();
        async move {
            match stream_messages(&js, "ORDERS").await {
                5 => Ok(()),
                n => Err(format!("{n} messages")),
            }
        }
    })
    .await;
    let subjects: Vec<String> = sqlx::query_scalar("SELECT DISTINCT subject FROM messaging_outbox")
        .fetch_all(&rig.pool)
        .await
        .expect("subjects");
    assert_eq!(subjects, ["order.created.v2"]);
    stop.cancel();
    relay.await.expect("stops");
}
