//! Relays: several on one database never publish a row twice; the poller is not held up by a busy
//! hand-off; events held through an outage go out as soon as NATS is back.

use crate::rig::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_database_publish_each_row_once() {
    let rig = rig().await;
    let stop = Shutdown::new();
    // Two instances of one service: each its own outbox handle and relay, one database.
    let second = v1_outbox();
    let relays: Vec<Relay> = [rig.outbox.clone(), second.clone()]
        .into_iter()
        .map(|outbox| Relay::new(rig.pool.clone(), rig.js.clone(), outbox, relay_config()))
        .collect();
    let tasks: Vec<_> = relays
        .iter()
        .map(|r| tokio::spawn(r.clone().run(stop.clone())))
        .collect();
    // Rows written by a third process that died before publishing: only the pollers see them.
    let orphaned = v1_outbox();
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

/// The poller comes once a second (here every 100 ms) even while the hand-off never runs dry:
/// a row left unsent by a process that died is published while this process keeps publishing
/// its own events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_publishes_rows_of_a_dead_process_while_the_hand_off_stays_busy() {
    let rig = rig().await;
    let stop = Shutdown::new();
    let relay = spawn_relay(&rig, &stop);
    // Events committed without pause, more per commit than one publish round takes (20), so
    // that the hand-off's queue never runs dry.
    let busy = Arc::new(AtomicBool::new(true));
    let producer = {
        let (pool, outbox, busy) = (rig.pool.clone(), rig.outbox.clone(), busy.clone());
        tokio::spawn(async move {
            let mut added = 0usize;
            while busy.load(Ordering::Relaxed) && added < 15_000 {
                let mut tx = pool.begin().await.expect("begin");
                let events = order_created_events(&outbox, 200);
                let written = outbox.add_all(&mut tx, events).await.expect("add");
                outbox.commit(tx, written).await.expect("commit");
                added += 200;
            }
            added
        })
    };
    wait_for_published(&rig, 1000).await;
    // Then a row of a process that died: older than the hand-off lease, never handed here.
    let orphan = order_created_events(&rig.outbox, 1).remove(0);
    sqlx::query(
        "INSERT INTO messaging_outbox (event_id, subject, body, created_at) \
         VALUES ($1, 'order.created.v1', $2, now() - interval '10 seconds')",
    )
    .bind(orphan.event_id)
    .bind(orphan.encode(EventKind::OrderCreated).expect("body"))
    .execute(&rig.pool)
    .await
    .expect("an orphaned row");
    let inserted = std::time::Instant::now();
    eventually("the orphaned row published", WAIT, || {
        let pool = rig.pool.clone();
        async move {
            let sent: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("SELECT sent_at FROM messaging_outbox WHERE event_id = $1")
                    .bind(orphan.event_id)
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| e.to_string())?;
            sent.map(|_| ()).ok_or_else(|| "not yet".to_owned())
        }
    })
    .await;
    let took = inserted.elapsed();
    let still_busy = !producer.is_finished();
    busy.store(false, Ordering::Relaxed);
    producer.await.expect("producer");
    assert!(
        still_busy,
        "the orphaned row was published only once the hand-off ran dry, {took:?} after it was \
         written: the poller waited for the hand-off"
    );
    assert!(
        took < Duration::from_secs(3),
        "published {took:?} after it was written: the poller waited for the hand-off"
    );
    stop.cancel();
    relay.await.expect("stops");
}

/// Waits until JetStream holds at least `n` messages of the ORDERS stream.
async fn wait_for_published(rig: &Rig, n: u64) {
    eventually("events published", WAIT, || {
        let js = rig.js.clone();
        async move {
            match stream_messages(&js, "ORDERS").await {
                have if have >= n => Ok(()),
                have => Err(format!("{have} of {n}")),
            }
        }
    })
    .await;
}

/// Events handed off while NATS is down, for longer than the hand-off publishes from memory, are
/// published by their relay as soon as NATS is back, not when their lease lets the poller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_held_through_an_outage_go_out_when_nats_is_back_without_waiting_for_the_lease() {
    let mut rig = rig().await;
    let stop = Shutdown::new();
    // A long lease, so that the poller cannot be what publishes them; the hand-off publishes
    // from memory only within a third of it (2 s).
    let lease = Duration::from_secs(6);
    let relay = tokio::spawn(
        Relay::new(
            rig.pool.clone(),
            rig.js.clone(),
            rig.outbox.clone(),
            RelayConfig {
                handoff_lease: lease,
                ..relay_config()
            },
        )
        .run(stop.clone()),
    );
    rig.nats.kill().await;
    let mut tx = rig.pool.begin().await.expect("begin");
    let events = order_created_events(&rig.outbox, 30);
    let written = rig.outbox.add_all(&mut tx, events).await.expect("add");
    rig.outbox.commit(tx, written).await.expect("commit");
    // Kept from NATS until they are too old for the hand-off's memory.
    eventually("the held events past a third of the lease", WAIT, || {
        let pool = rig.pool.clone();
        async move {
            let age: f64 = sqlx::query_scalar(
                "SELECT EXTRACT(EPOCH FROM now() - max(created_at))::float8 \
                 FROM messaging_outbox WHERE sent_at IS NULL",
            )
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
            if age > 2.5 {
                Ok(())
            } else {
                Err(format!("{age:.1} s old"))
            }
        }
    })
    .await;
    rig.nats.start_again().await.expect("nats-server again");
    wait_for_published(&rig, 30).await;
    let oldest_wait: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM max(sent_at - created_at))::float8 FROM messaging_outbox",
    )
    .fetch_one(&rig.pool)
    .await
    .expect("waits");
    assert!(
        oldest_wait < lease.as_secs_f64(),
        "an event held through the outage was sent {oldest_wait:.1} s after it was written: \
         it waited for its lease ({lease:?})"
    );
    stop.cancel();
    relay.await.expect("stops");
}
