//! The messaging core against a real PostgreSQL and a nats-server each test starts itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use messaging::db::Migration;
use messaging::nats::{NatsSettings, ensure_streams};
use messaging::{
    Batch, Consumer, ConsumerSpec, Handler, HandlerError, Outbox, Relay, RelayConfig, Shutdown,
    Written,
};
use shared_events::{Envelope, EventKind, OrderCreated, OrderLine, PaymentConfirmed};
use sqlx::PgPool;
use test_support::{NatsServer, TestDb, eventually};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

const EFFECTS: &[Migration] = &[Migration {
    version: 1000,
    description: "test effects",
    sql: "CREATE TABLE effects (event_id UUID PRIMARY KEY, order_id UUID NOT NULL, \
          instance TEXT NOT NULL, n INT NOT NULL)",
}];

struct Rig {
    nats: NatsServer,
    pool: PgPool,
    js: jetstream::Context,
    outbox: Outbox,
    _db: TestDb,
}

async fn rig() -> Rig {
    let nats = NatsServer::start().await.expect("nats-server");
    let db = TestDb::create().await.expect("test database");
    let pool = db.pool(12).await.expect("pool");
    messaging::db::migrate(&pool, &[EFFECTS])
        .await
        .expect("migrate");
    let js = connect(&nats, "test").await;
    ensure_streams(&js, 1).await.expect("streams");
    Rig {
        nats,
        pool,
        js,
        outbox: Outbox::new("order-service"),
        _db: db,
    }
}

async fn connect(nats: &NatsServer, name: &str) -> jetstream::Context {
    let client = messaging::nats::connect(&NatsSettings::new(nats.url(), name))
        .await
        .expect("connect");
    messaging::nats::jetstream(client)
}

fn order_created(order_id: Uuid) -> OrderCreated {
    OrderCreated {
        order_id,
        saga_id: order_id,
        customer_id: "c-1".parse().expect("customer"),
        items: vec![OrderLine {
            product_id: "p-1".parse().expect("product"),
            quantity: shared_events::Quantity::new(1).expect("quantity"),
            unit_price: "9.99".parse().expect("money"),
        }],
        total_amount: "9.99".parse().expect("money"),
        currency: shared_events::Currency::euro(),
    }
}

/// Adds `n` order.created events to the outbox, `per_tx` to a transaction.
/// `n` `order.created` events of new orders, as `outbox` writes them.
fn order_created_events(outbox: &Outbox, n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|_| {
            let order = Uuid::now_v7();
            outbox.event(order_created(order), order, None)
        })
        .collect()
}

async fn add_events(rig: &Rig, n: usize, per_tx: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(per_tx) {
        let mut tx = rig.pool.begin().await.expect("begin");
        let mut written = Written::none();
        for _ in chunk {
            let order_id = Uuid::now_v7();
            let event = rig.outbox.event(order_created(order_id), order_id, None);
            ids.push(event.event_id);
            written.extend(rig.outbox.add(&mut tx, event).await.expect("add"));
        }
        rig.outbox.commit(tx, written).await.expect("commit");
    }
    ids
}

/// Records each handled event in `effects`; a second effect of one event would show as n = 2.
#[derive(Clone)]
struct RecordEffect {
    instance: &'static str,
}

impl Handler for RecordEffect {
    async fn handle(&self, events: &[Envelope], batch: &mut Batch<'_>) -> Result<(), HandlerError> {
        for event in events {
            sqlx::query(
                "INSERT INTO effects (event_id, order_id, instance, n) VALUES ($1, $2, $3, 1) \
                 ON CONFLICT (event_id) DO UPDATE SET n = effects.n + 1",
            )
            .bind(event.event_id)
            .bind(event.payload.order_id())
            .bind(self.instance)
            .execute(batch.conn())
            .await?;
        }
        Ok(())
    }
}

fn spec() -> ConsumerSpec {
    let mut spec = ConsumerSpec::new("test-service", EventKind::OrderCreated);
    spec.concurrency = 8;
    spec.retry_base = Duration::from_millis(20);
    spec.retry_max = Duration::from_millis(500);
    spec.heartbeat = Duration::from_secs(1);
    spec
}

fn relay_config() -> RelayConfig {
    RelayConfig {
        batch_size: 20,
        poll_interval: Duration::from_millis(100),
        // Rows whose hand-off was lost (a killed relay, NATS away) go to the poller after this.
        handoff_lease: Duration::from_millis(900),
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(500),
        ..RelayConfig::default()
    }
}

/// The rig's relay with the test configuration, running until `stop`.
fn spawn_relay(rig: &Rig, stop: &Shutdown) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        Relay::new(
            rig.pool.clone(),
            rig.js.clone(),
            rig.outbox.clone(),
            relay_config(),
        )
        .run(stop.clone()),
    )
}

async fn start_consumer<H: Handler>(
    rig: &Rig,
    js: jetstream::Context,
    spec: ConsumerSpec,
    handler: H,
    stop: &Shutdown,
) -> tokio::task::JoinHandle<()> {
    let consumer = Consumer::provision(js, rig.pool.clone(), rig.outbox.clone(), spec, handler)
        .await
        .expect("provision consumer");
    tokio::spawn(consumer.run(stop.clone()))
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// Asserts that the effects table holds exactly the events `ids`, in any order.
async fn assert_effects_are(pool: &PgPool, ids: &[Uuid]) {
    let handled: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM effects ORDER BY event_id")
        .fetch_all(pool)
        .await
        .expect("effects");
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(
        handled, expected,
        "the effects are not exactly the events sent"
    );
}

/// Waits until the effects table holds `want` rows.
async fn wait_for_effects(pool: &PgPool, want: i64, what: &str) {
    eventually(what, WAIT, || async move {
        match scalar(pool, "SELECT count(*) FROM effects").await {
            n if n == want => Ok(()),
            n => Err(format!("{n} effects")),
        }
    })
    .await;
}

async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    js.get_stream(name)
        .await
        .expect("stream")
        .get_info()
        .await
        .expect("stream info")
        .state
        .messages
}

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
                .map(|v| v.to_string())
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
async fn two_relays_on_one_database_publish_each_row_once() {
    let rig = rig().await;
    let stop = Shutdown::new();
    // Two instances of one service: each its own outbox handle and relay, one database.
    let second = Outbox::new("order-service");
    let relays: Vec<Relay> = [rig.outbox.clone(), second.clone()]
        .into_iter()
        .map(|outbox| Relay::new(rig.pool.clone(), rig.js.clone(), outbox, relay_config()))
        .collect();
    let tasks: Vec<_> = relays
        .iter()
        .map(|r| tokio::spawn(r.clone().run(stop.clone())))
        .collect();
    // Rows written by a third process that died before publishing: only the pollers see them.
    let orphaned = Outbox::new("order-service");
    let mut tx = rig.pool.begin().await.expect("begin");
    let lost: Vec<Envelope> = order_created_events(&orphaned, 100);
    let written = orphaned.add_all(&mut tx, lost).await.expect("add");
    drop(written);
    tx.commit().await.expect("commit");
    for outbox in [&rig.outbox, &second] {
        for _ in 0..10 {
            let mut tx = rig.pool.begin().await.expect("begin");
            let events: Vec<Envelope> = order_created_events(outbox, 20);
            let written = outbox.add_all(&mut tx, events).await.expect("add");
            outbox.commit(tx, written).await.expect("commit");
        }
    }
    eventually("500 rows stamped sent", WAIT, || {
        let pool = rig.pool.clone();
        async move {
            match scalar(
                &pool,
                "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NOT NULL",
            )
            .await
            {
                500 => Ok(()),
                n => Err(format!("{n} sent")),
            }
        }
    })
    .await;
    assert_eq!(stream_messages(&rig.js, "ORDERS").await, 500);
    let republished: u64 = relays
        .iter()
        .map(|r| r.stats().republished.load(Ordering::Relaxed))
        .sum();
    assert_eq!(republished, 0, "a row was published twice");
    let published: Vec<u64> = relays
        .iter()
        .map(|r| r.stats().published.load(Ordering::Relaxed))
        .collect();
    assert_eq!(published.iter().sum::<u64>(), 500, "{published:?}");
    stop.cancel();
    for task in tasks {
        task.await.expect("stops");
    }
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

async fn dlq_headers(js: &jetstream::Context, sequence: u64) -> HashMap<String, String> {
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
                v.first().map(|v| v.to_string()).unwrap_or_default(),
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
    let mut v2: serde_json::Value = serde_json::from_slice(&good.to_bytes()).expect("json");
    v2["eventId"] = Uuid::now_v7().to_string().into();
    v2["version"] = 2.into();

    publish("bad-json".into(), b"{\"eventId\": oops".to_vec()).await;
    publish("v2".into(), serde_json::to_vec(&v2).expect("json")).await;
    publish(good.event_id.to_string(), good.to_bytes()).await;

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
        (good.event_id.to_string(), good.to_bytes()),
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
    let msg_id = stored.headers.get("Nats-Msg-Id").map(|v| v.to_string());
    assert_eq!(msg_id, Some(emitted.event_id.to_string()));
    stop.cancel();
    consumer.await.expect("stops");
    relay.await.expect("stops");
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

/// Retention: sent outbox rows go after the retention, inbox and dead-letter records once their
/// message can no longer be redelivered (the streams' age plus the retention); an unsent row is
/// never deleted, however old: it is published first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_their_retention_are_deleted_and_nothing_younger_or_unsent() {
    let rig = rig().await;
    let day = 24 * 3600;
    let horizon = messaging::nats::MAX_EVENT_AGE.as_secs() + day;
    let event = order_created_events(&rig.outbox, 1).remove(0);
    let old_unsent = event.event_id;
    sqlx::query(
        "INSERT INTO messaging_outbox (event_id, subject, body, created_at, sent_at) VALUES \
           (gen_random_uuid(), 'order.created.v1', '\\x00', now() - interval '3 days', \
            now() - interval '3 days'), \
           (gen_random_uuid(), 'order.created.v1', '\\x00', now() - interval '2 hours', \
            now() - interval '2 hours'), \
           ($1, 'order.created.v1', $2, now() - interval '3 days', NULL)",
    )
    .bind(old_unsent)
    .bind(serde_json::to_vec(&event).expect("body"))
    .execute(&rig.pool)
    .await
    .expect("outbox rows");
    sqlx::query(
        "INSERT INTO messaging_inbox (consumer, event_id, handled_at) VALUES \
           ('c', gen_random_uuid(), now() - make_interval(secs => $1 + 60)), \
           ('c', gen_random_uuid(), now() - make_interval(secs => $1 - 3600))",
    )
    .bind(horizon as f64)
    .execute(&rig.pool)
    .await
    .expect("inbox rows");
    sqlx::query(
        "INSERT INTO messaging_dead_letters (consumer, stream, stream_sequence, reason, dead_at) \
         VALUES ('c', 'ORDERS', 1, 'MALFORMED', now() - make_interval(secs => $1 + 60)), \
                ('c', 'ORDERS', 2, 'MALFORMED', now() - make_interval(secs => $1 - 3600))",
    )
    .bind(horizon as f64)
    .execute(&rig.pool)
    .await
    .expect("dead-letter rows");

    // The process's recorder, installed before the relay counts.
    let recorder = messaging::metrics::prometheus();
    let stop = Shutdown::new();
    let relay = tokio::spawn(
        Relay::new(
            rig.pool.clone(),
            rig.js.clone(),
            rig.outbox.clone(),
            RelayConfig {
                prune_interval: Duration::from_millis(100),
                ..relay_config()
            },
        )
        .run(stop.clone()),
    );
    let pool = &rig.pool;
    eventually("old rows deleted", WAIT, || async move {
        let left = (
            scalar(pool, "SELECT count(*) FROM messaging_outbox").await,
            scalar(pool, "SELECT count(*) FROM messaging_inbox").await,
            scalar(pool, "SELECT count(*) FROM messaging_dead_letters").await,
        );
        if left == (2, 1, 1) {
            Ok(())
        } else {
            Err(format!("outbox, inbox, dead letters: {left:?}"))
        }
    })
    .await;
    // The old unsent row was published and is kept; so are the young rows.
    let unsent: Option<bool> =
        sqlx::query_scalar("SELECT sent_at IS NOT NULL FROM messaging_outbox WHERE event_id = $1")
            .bind(old_unsent)
            .fetch_optional(pool)
            .await
            .expect("unsent row");
    assert_eq!(
        unsent,
        Some(true),
        "the old unsent row was published, not deleted"
    );
    assert_eq!(stream_messages(&rig.js, "ORDERS").await, 1);
    assert_eq!(
        scalar(
            pool,
            "SELECT count(*) FROM messaging_dead_letters WHERE stream_sequence = 2"
        )
        .await,
        1
    );
    let metrics = recorder.render();
    for name in [
        "messaging_outbox_pruned_total",
        "messaging_inbox_pruned_total",
        "messaging_dead_letters_pruned_total",
    ] {
        let counted: f64 = metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(counted >= 1.0, "{name} counted {counted}:\n{metrics}");
    }
    stop.cancel();
    relay.await.expect("relay");
}
