//! Relays: several on one database never publish a row twice.

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
