//! Retention: rows go once they can no longer be needed.

use crate::rig::*;

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
    .bind(event.encode(EventKind::OrderCreated).expect("body"))
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
