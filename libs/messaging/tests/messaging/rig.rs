//! What every test of the messaging core shares: a database, a nats-server of its own, an
//! outbox, and helpers to wait for effects.

pub use std::collections::HashMap;
pub use std::sync::Arc;
pub use std::sync::Mutex;
pub use std::sync::atomic::AtomicBool;
pub use std::sync::atomic::Ordering;
pub use std::time::Duration;

pub use async_nats::jetstream::{self, message::PublishMessage};
pub use futures_util::StreamExt;
pub use messaging::db::Migration;
pub use messaging::nats::{NatsSettings, ensure_streams};
pub use messaging::{
    Batch, Consumer, ConsumerSpec, Handler, HandlerError, Outbox, Relay, RelayConfig, Shutdown,
    Written,
};
pub use shared_events::{Envelope, EventKind, Majors, OrderCreated, OrderLine, PaymentConfirmed};
pub use sqlx::PgPool;
pub use test_support::{NatsServer, TestDb, eventually};
pub use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);

pub const EFFECTS: &[Migration] = &[Migration::expand(
    1000,
    "test effects",
    "CREATE TABLE effects (event_id UUID PRIMARY KEY, order_id UUID NOT NULL, \
     instance TEXT NOT NULL, n INT NOT NULL)",
)];

pub struct Rig {
    pub nats: NatsServer,
    pub pool: PgPool,
    pub js: jetstream::Context,
    pub outbox: Outbox,
    pub _db: TestDb,
}

pub async fn rig() -> Rig {
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
        outbox: v1_outbox(),
        _db: db,
    }
}

/// An outbox that publishes the first major only: one row, one message per event, as the
/// plumbing tests count them (the majors have tests of their own).
pub fn v1_outbox() -> Outbox {
    Outbox::new("order-service").with_majors(Majors::parse("1").expect("majors"))
}

pub async fn connect(nats: &NatsServer, name: &str) -> jetstream::Context {
    let client = messaging::nats::connect(&NatsSettings::new(nats.url(), name))
        .await
        .expect("connect");
    messaging::nats::jetstream(client)
}

pub fn order_created(order_id: Uuid) -> OrderCreated {
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
pub fn order_created_events(outbox: &Outbox, n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|_| {
            let order = Uuid::now_v7();
            outbox.event(order_created(order), order, None)
        })
        .collect()
}

pub async fn add_events(rig: &Rig, n: usize, per_tx: usize) -> Vec<Uuid> {
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
pub struct RecordEffect {
    pub instance: &'static str,
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

pub fn spec() -> ConsumerSpec {
    let mut spec = ConsumerSpec::new("test-service", EventKind::OrderCreated);
    spec.concurrency = 8;
    spec.retry_base = Duration::from_millis(20);
    spec.retry_max = Duration::from_millis(500);
    spec.heartbeat = Duration::from_secs(1);
    spec
}

pub fn relay_config() -> RelayConfig {
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
pub fn spawn_relay(rig: &Rig, stop: &Shutdown) -> tokio::task::JoinHandle<()> {
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

pub async fn start_consumer<H: Handler>(
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

pub async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// Asserts that the effects table holds exactly the events `ids`, in any order.
pub async fn assert_effects_are(pool: &PgPool, ids: &[Uuid]) {
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
pub async fn wait_for_effects(pool: &PgPool, want: i64, what: &str) {
    eventually(what, WAIT, || async move {
        match scalar(pool, "SELECT count(*) FROM effects").await {
            n if n == want => Ok(()),
            n => Err(format!("{n} effects")),
        }
    })
    .await;
}

pub async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    js.get_stream(name)
        .await
        .expect("stream")
        .get_info()
        .await
        .expect("stream info")
        .state
        .messages
}
