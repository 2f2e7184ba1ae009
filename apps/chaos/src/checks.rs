//! What the harnesses check at the end, and what they feed the system on purpose: the
//! database's clock, progress, the outbox drained, the dead letters exactly those fed.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::bail;
use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use saga_client::Svc;
use serde_json::json;
use shared_events::EventKind;
use sqlx::PgPool;
use uuid::Uuid;

/// The value of a check that passed; a check that failed is added to `failed`.
pub fn noted<T>(failed: &mut Vec<String>, check: anyhow::Result<T>) -> Option<T> {
    match check {
        Ok(value) => Some(value),
        Err(e) => {
            eprintln!("chaos: check failed: {e:#}");
            failed.push(format!("{e:#}"));
            None
        }
    }
}

/// The database's clock, in seconds since the epoch.
pub async fn db_clock(pool: &PgPool) -> anyhow::Result<f64> {
    Ok(
        sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
            .fetch_one(pool)
            .await?,
    )
}

/// Whether an order accepted after `since` (the database's clock) is confirmed.
pub async fn confirmed_since(pool: &PgPool, since: f64) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE status = 'CONFIRMED' \
         AND created_at > to_timestamp($1))",
    )
    .bind(since)
    .fetch_one(pool)
    .await
    .unwrap_or(false)
}

pub async fn terminal_sagas(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sagas WHERE status IN ('COMPLETED', 'COMPENSATED')")
        .fetch_one(pool)
        .await
        .unwrap_or(-1)
}

/// Publishes and returns where the stream stored the message, retrying under the same
/// `Nats-Msg-Id` (stored once) while the stream has no leader.
pub async fn publish(
    js: &jetstream::Context,
    subject: &str,
    id: String,
    body: Vec<u8>,
) -> anyhow::Result<u64> {
    let mut tries = 0;
    loop {
        let sent = async {
            let message = PublishMessage::build()
                .message_id(id.clone())
                .payload(body.clone().into());
            anyhow::Ok(js.send_publish(subject.to_owned(), message).await?.await?)
        };
        match sent.await {
            Ok(ack) => return Ok(ack.sequence),
            Err(e) if tries >= 40 => return Err(e.context(format!("publishing to {subject}"))),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// A poison message: its subject and where the stream stored it.
pub type Poison = (String, u64);

/// Bad JSON and an unknown major version on every subject, so every consumer meets both.
/// Bad JSON and an unknown major version on each of `subjects`, so every consumer of them meets
/// both.
pub async fn feed_poison(
    js: &jetstream::Context,
    subjects: &[&str],
) -> anyhow::Result<Vec<Poison>> {
    let mut fed = Vec::new();
    for kind in subjects.iter().filter_map(|s| EventKind::from_subject(s)) {
        let subject = kind.subject();
        let seq = publish(
            js,
            subject,
            format!("poison-{}", Uuid::now_v7()),
            b"{not json".to_vec(),
        )
        .await?;
        fed.push((subject.to_owned(), seq));
        let future = json!({"eventId": Uuid::now_v7(), "eventType": kind.name(), "version": 99,
            "occurredAt": "2026-01-01T00:00:00Z", "correlationId": Uuid::now_v7(), "causationId": null,
            "producer": "chaos", "payload": {}});
        let seq = publish(
            js,
            subject,
            format!("poison-{}", Uuid::now_v7()),
            serde_json::to_vec(&future)?,
        )
        .await?;
        fed.push((subject.to_owned(), seq));
    }
    Ok(fed)
}

pub async fn unsent_outbox(pools: &HashMap<Svc, PgPool>, deadline: Instant) -> anyhow::Result<i64> {
    loop {
        let mut unsent = 0;
        for pool in pools.values() {
            unsent += sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL",
            )
            .fetch_one(pool)
            .await?;
        }
        if unsent == 0 {
            return Ok(0);
        }
        if Instant::now() > deadline {
            bail!("{unsent} outbox rows never sent");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The DLQ holds exactly one dead letter per (consumer of its subject, poison message) and
/// nothing else. Returns how many it holds.
pub async fn check_dlq(js: &jetstream::Context, poison: &[Poison]) -> anyhow::Result<usize> {
    let mut consumers_of: HashMap<String, Vec<String>> = HashMap::new();
    for stream in ["ORDERS", "PAYMENTS", "INVENTORY", "SAGAS"] {
        let s = js.get_stream(stream).await?;
        let mut infos = s.consumers();
        while let Some(info) = infos.next().await {
            let info = info?;
            consumers_of
                .entry(info.config.filter_subject.clone())
                .or_default()
                .push(info.name.clone());
        }
    }
    let expected: BTreeSet<(String, u64)> = poison
        .iter()
        .flat_map(|(subject, seq)| {
            consumers_of
                .get(subject)
                .into_iter()
                .flatten()
                .map(move |c| (c.clone(), *seq))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let dlq = js.get_stream("DLQ").await?;
    loop {
        let count = dlq.get_info().await?.state.messages;
        if count as usize >= expected.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let info = dlq.get_info().await?;
    let mut found = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if info.state.messages == 0 {
            break;
        }
        let m = dlq.get_raw_message(seq).await?;
        let header = |k: &str| {
            m.headers
                .get(k)
                .map(std::string::ToString::to_string)
                .unwrap_or_default()
        };
        let reason = header("Dlq-Reason");
        if reason != "MALFORMED" && reason != "UNKNOWN_VERSION" {
            bail!(
                "unexpected dead letter: {reason} {} from {}",
                header("Dlq-Detail"),
                header("Dlq-Consumer")
            );
        }
        found.push((
            header("Dlq-Consumer"),
            header("Dlq-Stream-Sequence").parse::<u64>().unwrap_or(0),
        ));
    }
    let found_set: BTreeSet<(String, u64)> = found.iter().cloned().collect();
    if found_set != expected || found.len() != expected.len() {
        bail!(
            "DLQ holds {} dead letters ({} distinct), expected exactly {}: missing {:?}, extra {:?}",
            found.len(),
            found_set.len(),
            expected.len(),
            expected.difference(&found_set).take(5).collect::<Vec<_>>(),
            found_set.difference(&expected).take(5).collect::<Vec<_>>()
        );
    }
    Ok(found.len())
}
