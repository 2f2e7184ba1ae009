//! Delivery: every event takes effect once, whatever the relay, NATS and the consumers go through.

use crate::rig::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_of_1000_events_takes_effect_once_despite_relay_kills_and_double_delivery() {
    let rig = rig().await;
    // A third of the relay's "mark sent" statements fail after the batch was published and
    // acknowledged: a relay dying between publish and mark, as often as the test wants.
    sqlx::raw_sql(
        "CREATE FUNCTION lose_mark() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF random() < 0.33 THEN RAISE EXCEPTION 'relay died before marking'; END IF; \
         RETURN NULL; END $$; \
         CREATE TRIGGER lose_mark BEFORE UPDATE ON messaging_outbox \
         FOR EACH STATEMENT EXECUTE FUNCTION lose_mark();",
    )
    .execute(&rig.pool)
    .await
    .expect("chaos trigger");

    let stop = Shutdown::new();
    let consumer = start_consumer(
        &rig,
        rig.js.clone(),
        spec(),
        RecordEffect { instance: "a" },
        &stop,
    )
    .await;

    // Every event is delivered a second time under a fresh Nats-Msg-Id, which JetStream's
    // duplicate window cannot catch: only the inbox stands between it and a second effect.
    let client = rig.js.client();
    let mut seen = client
        .subscribe("order.created.v1")
        .await
        .expect("subscribe");
    let duplicator_js = rig.js.clone();
    let duplicator = tokio::spawn(async move {
        while let Some(msg) = seen.next().await {
            let id = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(std::string::ToString::to_string)
                .unwrap_or_default();
            if id.starts_with("dup-") {
                continue;
            }
            let copy = PublishMessage::build()
                .message_id(format!("dup-{id}"))
                .payload(msg.payload);
            if let Ok(ack) = duplicator_js.send_publish(msg.subject, copy).await {
                let _ = ack.await;
            }
        }
    });

    // The relay is killed (its task aborted) at random points, over and over, while events
    // are added, until all of them are marked sent.
    let relay = Relay::new(
        rig.pool.clone(),
        rig.js.clone(),
        rig.outbox.clone(),
        relay_config(),
    );
    let killer_relay = relay.clone();
    let killer_pool = rig.pool.clone();
    let killer = tokio::spawn(async move {
        let mut kills = 0u32;
        loop {
            let task = tokio::spawn(killer_relay.clone().run(Shutdown::new()));
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1..25))).await;
            task.abort();
            let _ = task.await;
            kills += 1;
            let unsent: i64 =
                sqlx::query_scalar("SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL")
                    .fetch_one(&killer_pool)
                    .await
                    .unwrap_or(1);
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM messaging_outbox")
                .fetch_one(&killer_pool)
                .await
                .unwrap_or(0);
            if total == 1000 && unsent == 0 {
                return kills;
            }
        }
    });
    let ids = add_events(&rig, 1000, 25).await;
    assert_eq!(ids.len(), 1000);
    let kills = tokio::time::timeout(Duration::from_secs(180), killer)
        .await
        .expect("relay never got everything out")
        .expect("killer task");

    let durable = spec().durable();
    let js = rig.js.clone();
    eventually("1000 effects, 2000 stored messages, all acked", WAIT, || {
        let (pool, js, durable) = (rig.pool.clone(), js.clone(), durable.clone());
        async move {
            let effects = scalar(&pool, "SELECT count(*) FROM effects").await;
            let stored = stream_messages(&js, "ORDERS").await;
            let info = js.get_stream("ORDERS").await.map_err(|e| e.to_string())?
                .consumer_info(&durable).await.map_err(|e| e.to_string())?;
            if effects == 1000 && stored == 2000 && info.num_pending == 0 && info.num_ack_pending == 0
                && info.ack_floor.stream_sequence == 2000
            {
                Ok(())
            } else {
                Err(format!("effects {effects}, stored {stored}, pending {}, ack pending {}, ack floor {}",
                    info.num_pending, info.num_ack_pending, info.ack_floor.stream_sequence))
            }
        }
    })
    .await;

    let doubled = scalar(&rig.pool, "SELECT count(*) FROM effects WHERE n <> 1").await;
    assert_eq!(doubled, 0, "an event took effect more than once");
    assert_effects_are(&rig.pool, &ids).await;
    assert_eq!(
        scalar(&rig.pool, "SELECT count(*) FROM messaging_inbox").await,
        1000
    );
    let republished = relay.stats().republished.load(Ordering::Relaxed);
    assert!(
        republished > 0,
        "no relay died between publish and mark ({kills} kills)"
    );
    eprintln!("relay killed {kills} times; {republished} rows republished after a lost mark");

    stop.cancel();
    consumer.await.expect("consumer stops");
    duplicator.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_added_while_nats_is_down_are_delivered_and_the_consumer_carries_on_after_restart() {
    let mut rig = rig().await;
    let stop = Shutdown::new();
    let consumer = start_consumer(
        &rig,
        rig.js.clone(),
        spec(),
        RecordEffect { instance: "a" },
        &stop,
    )
    .await;
    let relay = Relay::new(
        rig.pool.clone(),
        rig.js.clone(),
        rig.outbox.clone(),
        relay_config(),
    );
    let relay_task = tokio::spawn(relay.clone().run(stop.clone()));

    add_events(&rig, 20, 5).await;
    wait_for_effects(&rig.pool, 20, "the first 20 events handled").await;

    rig.nats.kill().await;
    let failed_before = relay.stats().failed_rounds.load(Ordering::Relaxed);
    add_events(&rig, 100, 10).await;
    // The relay keeps trying against the dead server; the rows stay unsent meanwhile.
    eventually(
        "the relay to have failed twice against the dead server",
        WAIT,
        || {
            let failed = relay.stats().failed_rounds.load(Ordering::Relaxed);
            async move {
                if failed >= failed_before + 2 {
                    Ok(())
                } else {
                    Err(format!("{failed} failed rounds"))
                }
            }
        },
    )
    .await;
    let unsent = scalar(
        &rig.pool,
        "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL",
    )
    .await;
    assert_eq!(unsent, 100, "rows must be kept while NATS is away");
    assert_eq!(scalar(&rig.pool, "SELECT count(*) FROM effects").await, 20);

    rig.nats.start_again().await.expect("restart nats-server");
    eventually("all 120 events handled after the restart", WAIT, || {
        let pool = rig.pool.clone();
        async move {
            let n = scalar(&pool, "SELECT count(*) FROM effects").await;
            let unsent = scalar(
                &pool,
                "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL",
            )
            .await;
            if n == 120 && unsent == 0 {
                Ok(())
            } else {
                Err(format!("{n} effects, {unsent} unsent"))
            }
        }
    })
    .await;

    // The same consumer task, never restarted by the test, goes on after a second restart too.
    rig.nats.kill().await;
    rig.nats.start_again().await.expect("restart nats-server");
    add_events(&rig, 30, 10).await;
    wait_for_effects(
        &rig.pool,
        150,
        "30 more events handled after a second restart",
    )
    .await;
    assert_eq!(
        scalar(&rig.pool, "SELECT count(*) FROM effects WHERE n <> 1").await,
        0
    );
    assert!(!consumer.is_finished() && !relay_task.is_finished());
    stop.cancel();
    consumer.await.expect("consumer stops");
    relay_task.await.expect("relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_durable_handle_each_event_once_and_both_work() {
    let rig = rig().await;
    let stop = Shutdown::new();
    let js_a = connect(&rig.nats, "instance-a").await;
    let js_b = connect(&rig.nats, "instance-b").await;
    let mut spec = spec();
    spec.concurrency = 2;
    let a = start_consumer(
        &rig,
        js_a,
        spec.clone(),
        RecordEffect { instance: "a" },
        &stop,
    )
    .await;
    let b = start_consumer(&rig, js_b, spec, RecordEffect { instance: "b" }, &stop).await;
    let relay = spawn_relay(&rig, &stop);

    add_events(&rig, 400, 20).await;
    wait_for_effects(&rig.pool, 400, "400 events handled").await;
    assert_eq!(
        scalar(&rig.pool, "SELECT count(*) FROM effects WHERE n <> 1").await,
        0
    );
    let by_a = scalar(
        &rig.pool,
        "SELECT count(*) FROM effects WHERE instance = 'a'",
    )
    .await;
    let by_b = scalar(
        &rig.pool,
        "SELECT count(*) FROM effects WHERE instance = 'b'",
    )
    .await;
    assert_eq!(by_a + by_b, 400);
    assert!(
        by_a > 0 && by_b > 0,
        "one instance did all the work: a {by_a}, b {by_b}"
    );
    let consumers = rig
        .js
        .get_stream("ORDERS")
        .await
        .expect("stream")
        .consumer_names()
        .count()
        .await;
    assert_eq!(consumers, 1, "both instances must share one durable");
    stop.cancel();
    for task in [a, b, relay] {
        task.await.expect("stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_handled_many_events_per_transaction_each_once() {
    let rig = rig().await;
    let stop = Shutdown::new();
    // The backlog is published before any consumer runs.
    let relay = spawn_relay(&rig, &stop);
    let ids = add_events(&rig, 500, 50).await;
    eventually("500 events in ORDERS", WAIT, || {
        let js = rig.js.clone();
        async move {
            match stream_messages(&js, "ORDERS").await {
                500 => Ok(()),
                n => Err(format!("{n} stored")),
            }
        }
    })
    .await;
    let mut spec = spec();
    spec.max_batch = 64;
    let consumer = start_consumer(&rig, rig.js.clone(), spec, RecordBatch, &stop).await;
    wait_for_effects(&rig.pool, 500, "500 effects").await;
    assert_effects_are(&rig.pool, &ids).await;
    assert_eq!(
        scalar(
            &rig.pool,
            "SELECT count(*) FROM effects WHERE instance <> 'batch'"
        )
        .await,
        0,
        "an event took effect twice"
    );
    let largest = scalar(&rig.pool, "SELECT max(n)::bigint FROM effects").await;
    assert!(
        (2..=64).contains(&largest),
        "a waiting backlog must be handled in batches of at most max_batch, largest was {largest}"
    );
    stop.cancel();
    consumer.await.expect("stops");
    relay.await.expect("stops");
}

/// Leaves chosen events for later a set number of times, and records the rest.
struct Defers {
    plan: Mutex<HashMap<Uuid, u32>>,
}

impl Handler for Defers {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let mut ready = Vec::new();
        for event in events {
            let later = {
                let mut plan = self.plan.lock().expect("lock");
                match plan.get_mut(&event.event_id) {
                    Some(left) if *left > 0 => {
                        *left -= 1;
                        true
                    }
                    _ => false,
                }
            };
            if later {
                batch.retry_later(event, "not yet");
            } else {
                ready.push(event.clone());
            }
        }
        RecordEffect { instance: "defers" }
            .handle(&ready, batch)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_left_for_later_is_delivered_again_and_handled_once() {
    let rig = rig().await;
    let stop = Shutdown::new();
    let events: Vec<Envelope> = order_created_events(&rig.outbox, 20);
    let deferred = events[3].event_id;
    let defers = Defers {
        plan: Mutex::new(HashMap::from([(deferred, 2)])),
    };
    let consumer = start_consumer(&rig, rig.js.clone(), spec(), defers, &stop).await;
    let relay = spawn_relay(&rig, &stop);
    let mut tx = rig.pool.begin().await.expect("begin");
    let written = rig.outbox.add_all(&mut tx, events).await.expect("add");
    rig.outbox.commit(tx, written).await.expect("commit");

    eventually("19 events handled, one left for later", WAIT, || {
        let pool = rig.pool.clone();
        async move {
            let others =
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM effects WHERE event_id <> $1")
                    .bind(deferred)
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| e.to_string())?;
            if others == 19 {
                Ok(())
            } else {
                Err(format!("{others} others handled"))
            }
        }
    })
    .await;
    wait_for_effects(
        &rig.pool,
        20,
        "the deferred event handled on its third delivery",
    )
    .await;
    assert_eq!(
        scalar(&rig.pool, "SELECT count(*) FROM effects WHERE n <> 1").await,
        0
    );
    assert_eq!(
        scalar(&rig.pool, "SELECT count(*) FROM messaging_inbox").await,
        20,
        "one inbox row per event, none left by the deferrals"
    );
    assert_eq!(stream_messages(&rig.js, "DLQ").await, 0);
    stop.cancel();
    consumer.await.expect("stops");
    relay.await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_handling_commit_and_ack_before_returning() {
    let rig = rig().await;
    let stop = Shutdown::new();
    let (started, mut on_start) = tokio::sync::mpsc::unbounded_channel();
    let consumer = start_consumer(&rig, rig.js.clone(), spec(), Slow { started }, &stop).await;
    let relay = spawn_relay(&rig, &stop);
    add_events(&rig, 1, 1).await;
    tokio::time::timeout(WAIT, on_start.recv())
        .await
        .expect("handler started");
    stop.cancel();
    tokio::time::timeout(WAIT, consumer)
        .await
        .expect("consumer stops")
        .expect("joins");
    relay.await.expect("relay stops");
    assert_eq!(scalar(&rig.pool, "SELECT count(*) FROM effects").await, 1);
    let info = rig
        .js
        .get_stream("ORDERS")
        .await
        .expect("s")
        .consumer_info(spec().durable())
        .await
        .expect("c");
    assert_eq!(
        info.ack_floor.stream_sequence, 1,
        "in-flight message must be acked before stopping"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_a_handler_emits_are_published_after_commit_in_the_same_saga() {
    let rig = rig().await;
    let stop = Shutdown::new();
    let consumer = start_consumer(&rig, rig.js.clone(), spec(), Charge, &stop).await;
    let relay = spawn_relay(&rig, &stop);
    let saga = Uuid::now_v7();
    let cause = rig.outbox.event(order_created(Uuid::now_v7()), saga, None);
    let mut tx = rig.pool.begin().await.expect("begin");
    let written = rig.outbox.add(&mut tx, cause.clone()).await.expect("add");
    rig.outbox.commit(tx, written).await.expect("commit");

    eventually(
        "the emitted payment.confirmed stored in PAYMENTS",
        WAIT,
        || {
            let js = rig.js.clone();
            async move {
                let n = stream_messages(&js, "PAYMENTS").await;
                if n == 1 {
                    Ok(())
                } else {
                    Err(format!("{n} messages"))
                }
            }
        },
    )
    .await;
    let stored = rig
        .js
        .get_stream("PAYMENTS")
        .await
        .expect("s")
        .get_raw_message(1)
        .await
        .expect("m");
    assert_eq!(stored.subject.as_str(), "payment.confirmed.v1");
    let emitted = Envelope::decode(&stored.payload).expect("decodes");
    assert_eq!(emitted.correlation_id, saga);
    assert_eq!(emitted.causation_id, Some(cause.event_id));
    assert_eq!(emitted.producer, "order-service");
    let msg_id = stored
        .headers
        .get("Nats-Msg-Id")
        .map(std::string::ToString::to_string);
    assert_eq!(msg_id, Some(emitted.event_id.to_string()));
    stop.cancel();
    consumer.await.expect("stops");
    relay.await.expect("stops");
}

/// Records each event with the size of the batch it came in.
struct RecordBatch;

impl Handler for RecordBatch {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let size = i32::try_from(events.len()).expect("batch size");
        for event in events {
            sqlx::query(
                "INSERT INTO effects (event_id, order_id, instance, n) VALUES ($1, $2, 'batch', $3) \
                 ON CONFLICT (event_id) DO UPDATE SET instance = 'twice'",
            )
            .bind(event.event_id)
            .bind(event.payload.order_id())
            .bind(size)
            .execute(batch.conn())
            .await?;
        }
        Ok(())
    }
}

/// Emits a payment.confirmed for each order.created it handles.
struct Charge;

impl Handler for Charge {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        for event in events {
            batch.emit(
                event,
                PaymentConfirmed {
                    order_id: event.payload.order_id(),
                    saga_id: event.correlation_id,
                    payment_id: Uuid::now_v7(),
                    amount: "9.99".parse().expect("money"),
                    currency: shared_events::Currency::euro(),
                },
            );
        }
        Ok(())
    }
}

/// Takes its time, and says when it started.
struct Slow {
    started: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Handler for Slow {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        let _ = self.started.send(());
        tokio::time::sleep(Duration::from_millis(500)).await;
        RecordEffect { instance: "slow" }
            .handle(events, batch)
            .await
    }
}
