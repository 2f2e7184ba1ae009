//! Dead letters: what cannot be handled lands in the DLQ once, with its reason.

use crate::rig::*;

pub async fn dlq_headers(js: &jetstream::Context, sequence: u64) -> HashMap<String, String> {
    let message = js
        .get_stream("DLQ")
        .await
        .expect("DLQ stream")
        .get_raw_message(sequence)
        .await
        .expect("DLQ message");
    message
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.first()
                    .map(std::string::ToString::to_string)
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_land_in_the_dlq_with_their_reason_and_later_messages_are_handled() {
    let rig = rig().await;
    let stop = Shutdown::new();
    let consumer = start_consumer(
        &rig,
        rig.js.clone(),
        spec(),
        RecordEffect { instance: "a" },
        &stop,
    )
    .await;

    let publish = |id: String, body: Vec<u8>| {
        let js = rig.js.clone();
        async move {
            js.send_publish(
                "order.created.v1",
                PublishMessage::build().message_id(id).payload(body.into()),
            )
            .await
            .expect("publish")
            .await
            .expect("ack");
        }
    };
    let order_id = Uuid::now_v7();
    let good = Envelope::new(order_created(order_id), order_id, None, "order-service");
    let mut v3: serde_json::Value =
        serde_json::from_slice(&good.encode(EventKind::OrderCreated).expect("v1")).expect("json");
    v3["eventId"] = Uuid::now_v7().to_string().into();
    v3["version"] = 3.into();

    publish("bad-json".into(), b"{\"eventId\": oops".to_vec()).await;
    publish("v3".into(), serde_json::to_vec(&v3).expect("json")).await;
    publish(
        good.event_id.to_string(),
        good.encode(EventKind::OrderCreated).expect("v1"),
    )
    .await;

    eventually("the good event handled and two dead letters", WAIT, || {
        let (pool, js) = (rig.pool.clone(), rig.js.clone());
        async move {
            let n = scalar(&pool, "SELECT count(*) FROM effects").await;
            let dead = stream_messages(&js, "DLQ").await;
            if n == 1 && dead == 2 {
                Ok(())
            } else {
                Err(format!("{n} effects, {dead} dead letters"))
            }
        }
    })
    .await;
    let mut reasons = Vec::new();
    for seq in [1, 2] {
        let headers = dlq_headers(&rig.js, seq).await;
        assert_eq!(
            headers.get("Dlq-Consumer").map(String::as_str),
            Some("test-service-order-created-v1")
        );
        assert_eq!(
            headers.get("Dlq-Subject").map(String::as_str),
            Some("order.created.v1")
        );
        assert!(
            !headers
                .get("Dlq-Detail")
                .cloned()
                .unwrap_or_default()
                .is_empty()
        );
        reasons.push(headers.get("Dlq-Reason").cloned().unwrap_or_default());
    }
    reasons.sort();
    assert_eq!(reasons, ["MALFORMED", "UNKNOWN_VERSION"]);
    let effect: Uuid = sqlx::query_scalar("SELECT event_id FROM effects")
        .fetch_one(&rig.pool)
        .await
        .expect("effect");
    assert_eq!(effect, good.event_id);
    let info = rig
        .js
        .get_stream("ORDERS")
        .await
        .expect("s")
        .consumer_info(spec().durable())
        .await
        .expect("c");
    assert_eq!(
        info.num_ack_pending, 0,
        "poison must be acked, not redelivered forever"
    );
    stop.cancel();
    consumer.await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_replayed_after_the_duplicate_window_is_not_dead_lettered_twice() {
    let rig = rig().await;
    let stop = Shutdown::new();
    let consumer = start_consumer(
        &rig,
        rig.js.clone(),
        spec(),
        RecordEffect { instance: "a" },
        &stop,
    )
    .await;
    let order_id = Uuid::now_v7();
    let good = Envelope::new(order_created(order_id), order_id, None, "order-service");
    for (id, body) in [
        ("bad".to_owned(), b"not json".to_vec()),
        (
            good.event_id.to_string(),
            good.encode(EventKind::OrderCreated).expect("v1"),
        ),
    ] {
        rig.js
            .send_publish(
                "order.created.v1",
                PublishMessage::build().message_id(id).payload(body.into()),
            )
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let settled = || async {
        let info = rig
            .js
            .get_stream("ORDERS")
            .await
            .map_err(|e| e.to_string())?
            .consumer_info(spec().durable())
            .await
            .map_err(|e| e.to_string())?;
        let (effects, dead) = (
            scalar(&rig.pool, "SELECT count(*) FROM effects").await,
            stream_messages(&rig.js, "DLQ").await,
        );
        if info.ack_floor.stream_sequence == 2
            && info.num_ack_pending == 0
            && effects == 1
            && dead >= 1
        {
            Ok(dead)
        } else {
            Err(format!(
                "ack floor {}, effects {effects}, dead letters {dead}",
                info.ack_floor.stream_sequence
            ))
        }
    };
    assert_eq!(
        eventually("poison dead-lettered, good event handled", WAIT, settled).await,
        1
    );

    // JetStream's duplicate window can no longer catch a second copy, and the consumer loses its
    // acks (as a crashed server can): the stream is delivered again from the start.
    let mut dlq = messaging::nats::stream_config(shared_events::Stream::Dlq, 1);
    dlq.duplicate_window = Duration::from_millis(100);
    rig.js.update_stream(dlq).await.expect("shrink the window");
    tokio::time::sleep(Duration::from_millis(300)).await; // let the window pass
    rig.js
        .get_stream("ORDERS")
        .await
        .expect("stream")
        .delete_consumer(&spec().durable())
        .await
        .expect("delete");
    assert_eq!(
        eventually("the replay consumed", WAIT, settled).await,
        1,
        "the replayed poison was dead-lettered twice"
    );
    assert_eq!(
        scalar(&rig.pool, "SELECT count(*) FROM effects WHERE n <> 1").await,
        0
    );
    stop.cancel();
    consumer.await.expect("stops");
}

/// Fails each event a set number of times before handling it (u32::MAX: always).
struct Flaky {
    failures: Mutex<HashMap<Uuid, u32>>,
    plan: HashMap<Uuid, u32>,
}

impl Handler for Flaky {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let fail = {
            let mut failures = self.failures.lock().expect("lock");
            events.iter().any(|e| {
                let count = failures.entry(e.event_id).or_default();
                *count += 1;
                *count <= self.plan.get(&e.event_id).copied().unwrap_or(0)
            })
        };
        if fail {
            return Err(anyhow::anyhow!("simulated failure").into());
        }
        RecordEffect { instance: "flaky" }
            .handle(events, batch)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_backoff_and_dead_lettered_when_retries_run_out() {
    let rig = rig().await;
    let stop = Shutdown::new();
    let recovers = Envelope::new(
        order_created(Uuid::now_v7()),
        Uuid::now_v7(),
        None,
        "order-service",
    );
    let never = Envelope::new(
        order_created(Uuid::now_v7()),
        Uuid::now_v7(),
        None,
        "order-service",
    );
    let plan = HashMap::from([(recovers.event_id, 2), (never.event_id, u32::MAX)]);
    let flaky = Flaky {
        failures: Mutex::default(),
        plan,
    };
    let mut spec = spec();
    spec.max_attempts = 4;
    let consumer = start_consumer(&rig, rig.js.clone(), spec.clone(), flaky, &stop).await;
    let relay = spawn_relay(&rig, &stop);
    let mut tx = rig.pool.begin().await.expect("begin");
    let written = rig
        .outbox
        .add_all(&mut tx, vec![recovers.clone(), never.clone()])
        .await
        .expect("add");
    rig.outbox.commit(tx, written).await.expect("commit");

    eventually(
        "one event handled on its third try, one dead-lettered",
        WAIT,
        || {
            let (pool, js) = (rig.pool.clone(), rig.js.clone());
            async move {
                let n = scalar(&pool, "SELECT count(*) FROM effects").await;
                let dead = stream_messages(&js, "DLQ").await;
                if n == 1 && dead == 1 {
                    Ok(())
                } else {
                    Err(format!("{n} effects, {dead} dead letters"))
                }
            }
        },
    )
    .await;
    let headers = dlq_headers(&rig.js, 1).await;
    assert_eq!(
        headers.get("Dlq-Reason").map(String::as_str),
        Some("RETRIES_EXHAUSTED")
    );
    assert_eq!(headers.get("Dlq-Delivered").map(String::as_str), Some("4"));
    let handled: Uuid = sqlx::query_scalar("SELECT event_id FROM effects")
        .fetch_one(&rig.pool)
        .await
        .expect("effect");
    assert_eq!(handled, recovers.event_id);
    // The failed attempts left nothing behind: no inbox row for the dead-lettered event.
    assert_eq!(
        scalar(&rig.pool, "SELECT count(*) FROM messaging_inbox").await,
        1
    );
    stop.cancel();
    consumer.await.expect("stops");
    relay.await.expect("stops");
}
