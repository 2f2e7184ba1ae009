//! The faults that last the hold time (`--hold-seconds`): payment-service's PostgreSQL down, the
//! one nats-server down, JetStream's store full, payment-service slow. Each holds its fault while
//! the load goes on, watches what the system does meanwhile, ends the fault, and returns what it
//! saw (the `details` of its entry in the report). What must not happen meanwhile (a 500, a hung
//! request, an event published while the store is full) is added to the run's failed checks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, stream};
use saga_client::Svc;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use test_support::NatsServer;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::harness::{ADMIN, Chaos};
use crate::load::Answers;

const MIB: u64 = 1024 * 1024;
/// Room JetStream's store is given above what it holds when it runs out of room, and at start:
/// enough for the system's events until the next fault (well under 1 MiB a second here).
pub const STORE_HEADROOM: u64 = 192 * MIB;
/// Below this much room, the store's limit is raised before the next fault.
const STORE_HEADROOM_MIN: u64 = 96 * MIB;
/// The harness's own stream that fills the store.
const FILLER: &str = "CHAOS_FILLER";
const FILLER_SUBJECT: &str = "chaos.filler";
/// The slowest answer payment-service may give while its database is down.
pub const QUICK: Duration = Duration::from_secs(2);
/// A request not answered within this long has hung.
const HUNG: Duration = Duration::from_secs(10);
/// The gateway's latency while payment-service is slow.
const SLOW_LATENCY_MS: u64 = 2000;

/// Raises the store's limit when little room is left, so that only the fault fills it.
pub async fn keep_room_in_store(
    server: &mut NatsServer,
    js: &jetstream::Context,
) -> anyhow::Result<()> {
    let Some(limit) = server.store_limit() else {
        return Ok(());
    };
    let used = store_used(js).await?;
    if limit.saturating_sub(used) < STORE_HEADROOM_MIN {
        server.set_store_limit(used + STORE_HEADROOM).await?;
        eprintln!(
            "chaos: JetStream store limit raised to {} MiB ({} MiB used)",
            (used + STORE_HEADROOM) / MIB,
            used / MIB
        );
    }
    Ok(())
}

async fn store_used(js: &jetstream::Context) -> anyhow::Result<u64> {
    Ok(js
        .query_account()
        .await
        .context("reading JetStream's usage")?
        .storage)
}

/// Every unsent row of the outboxes of the databases in `pools` (those that answer).
async fn outbox_unsent(pools: &[&PgPool]) -> i64 {
    let mut unsent = 0;
    for pool in pools {
        unsent += sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL",
        )
        .fetch_one(*pool)
        .await
        .unwrap_or(0);
    }
    unsent
}

/// Holds for `hold`, sampling the outboxes of `svcs` every second; returns the most unsent rows
/// seen at once.
async fn hold_watching_outboxes(chaos: &Chaos, svcs: &[Svc], hold: Duration) -> i64 {
    let pools: Vec<&PgPool> = svcs.iter().map(|s| &chaos.pools[s]).collect();
    let until = Instant::now() + hold;
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(outbox_unsent(&pools).await);
        tokio::time::sleep(
            Duration::from_secs(1).min(until.saturating_duration_since(Instant::now())),
        )
        .await;
    }
    peak
}

/// What payment-service answered one kind of request while its database was down.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probed {
    /// By status (`503`), or `hung` (no answer within 10 s) or `failed` (no connection).
    answers: BTreeMap<String, u64>,
    slowest_ms: u64,
    /// Answers slower than 2 s.
    slow: u64,
}

/// What was seen while payment-service's database was down.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentDbDown {
    /// By request: `GET /payments?orderId=`, `GET /payments/{id}`, `GET /health/ready`,
    /// `GET /health/live`.
    probes: BTreeMap<&'static str, Probed>,
    /// How order-service answered the load's POSTs meanwhile.
    posts: Answers<u64>,
}

/// What a request must be answered while the database is down.
#[derive(Clone, Copy)]
struct ProbeRequest {
    name: &'static str,
    /// The status it must be answered with.
    expect: u16,
}

const PROBES: [ProbeRequest; 4] = [
    ProbeRequest {
        name: "GET /payments?orderId=",
        expect: 503,
    },
    ProbeRequest {
        name: "GET /payments/{id}",
        expect: 503,
    },
    ProbeRequest {
        name: "GET /health/ready",
        expect: 503,
    },
    ProbeRequest {
        name: "GET /health/live",
        expect: 200,
    },
];

impl ProbeRequest {
    fn url(self, base: &str) -> String {
        let id = Uuid::now_v7();
        match self.name {
            "GET /payments?orderId=" => format!("{base}/payments?orderId={id}"),
            "GET /payments/{id}" => format!("{base}/payments/{id}"),
            "GET /health/ready" => format!("{base}/health/ready"),
            _ => format!("{base}/health/live"),
        }
    }
}

/// One answer to a probe: its request, what came back, how long it took.
type ProbeAnswer = (usize, String, Duration);

/// Asks every instance at `bases` each probe request in turn until `stop`.
async fn probe(
    http: reqwest::Client,
    bases: Vec<String>,
    stop: Arc<AtomicBool>,
) -> Vec<ProbeAnswer> {
    let mut tasks = JoinSet::new();
    for base in bases {
        let (http, stop) = (http.clone(), stop.clone());
        tasks.spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for (i, request) in PROBES.iter().enumerate() {
                    let asked = Instant::now();
                    let answer = http.get(request.url(&base)).timeout(HUNG).send().await;
                    let took = asked.elapsed();
                    let what = match answer {
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(e) if e.is_timeout() => "hung".to_owned(),
                        Err(_) => "failed".to_owned(),
                    };
                    seen.push((i, what, took));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        });
    }
    let mut all = Vec::new();
    while let Some(seen) = tasks.join_next().await {
        all.extend(seen.unwrap_or_default());
    }
    all
}

/// payment-service's PostgreSQL stopped (fast shutdown, as an operator stops it) for the hold
/// time under load, while both instances of payment-service are asked, again and again, for
/// payments (which need the database) and for their health. Every answer must come within
/// [`QUICK`]: a 503 where the database is needed, 200 for liveness; never a 500, never a hang.
pub async fn payment_db_down(chaos: &mut Chaos) -> anyhow::Result<Value> {
    let before = chaos.counters.answers();
    let bases = chaos.bases(Svc::Payment).await;
    chaos.payment_pg.stop().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(probe(chaos.http.clone(), bases, stop.clone()));
    tokio::time::sleep(chaos.options.hold).await;
    stop.store(true, Ordering::Relaxed);
    let answers = prober.await.unwrap_or_default();
    chaos.payment_pg.start_again().await?;
    let mut probes: BTreeMap<&'static str, Probed> = BTreeMap::new();
    for (i, what, took) in &answers {
        let request = PROBES[*i];
        let probed = probes.entry(request.name).or_default();
        *probed.answers.entry(what.clone()).or_default() += 1;
        probed.slowest_ms = probed.slowest_ms.max(took.as_millis() as u64);
        if *took > QUICK {
            probed.slow += 1;
        }
    }
    for request in PROBES {
        let Some(probed) = probes.get(request.name) else {
            chaos.fault_failures.push(format!(
                "payment-service's database down: {} was never asked",
                request.name
            ));
            continue;
        };
        let expected = request.expect.to_string();
        let wrong: Vec<String> = probed
            .answers
            .iter()
            .filter(|(what, _)| **what != expected)
            .map(|(what, n)| format!("{n} × {what}"))
            .collect();
        if !wrong.is_empty() {
            chaos.fault_failures.push(format!(
                "payment-service's database down: {} answered {} (only {expected} expected)",
                request.name,
                wrong.join(", ")
            ));
        }
        if probed.slow > 0 {
            chaos.fault_failures.push(format!(
                "payment-service's database down: {} answers to {} came after more than {QUICK:?} (the slowest after {} ms)",
                probed.slow, request.name, probed.slowest_ms
            ));
        }
    }
    let seen = PaymentDbDown {
        probes,
        posts: chaos.counters.answers().since(before),
    };
    eprintln!(
        "chaos: while payment-service's database was down: {}",
        serde_json::to_string(&seen)?
    );
    Ok(serde_json::to_value(seen)?)
}

/// What was seen while the nats-server was down.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NatsDown {
    /// The most outbox rows waiting at once, in the four databases.
    outbox_unsent_peak: i64,
    posts: Answers<u64>,
}

/// The one nats-server SIGKILLed and kept down for the hold time, then started again with its
/// store: the services write their events to their outboxes meanwhile, and publish them after.
pub async fn nats_down(chaos: &mut Chaos) -> anyhow::Result<Value> {
    let before = chaos.counters.answers();
    chaos.nats.single()?.kill().await;
    let all = [Svc::Order, Svc::Payment, Svc::Inventory, Svc::Saga];
    let peak = hold_watching_outboxes(chaos, &all, chaos.options.hold).await;
    chaos.nats.single()?.start_again().await?;
    let seen = NatsDown {
        outbox_unsent_peak: peak,
        posts: chaos.counters.answers().since(before),
    };
    if seen.outbox_unsent_peak == 0 && seen.posts.accepted > 0 {
        chaos
            .fault_failures
            .push("nats-server down: orders were accepted but no outbox held an event".to_owned());
    }
    Ok(serde_json::to_value(seen)?)
}

/// What was seen while JetStream's store was full.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StoreFull {
    store_limit_bytes: u64,
    /// What the system's streams held when the filler began.
    store_used_bytes: u64,
    filler_bytes: u64,
    /// What refused the filler's last publish.
    refusal: String,
    /// The most outbox rows waiting at once, in the four databases.
    outbox_unsent_peak: i64,
    /// order-service's `messaging_outbox_backlog` at the end, as its `/metrics` said it.
    order_backlog_metric: Option<f64>,
    posts: Answers<u64>,
}

/// JetStream's store filled to its limit by a stream of the harness's own (`CHAOS_FILLER`), so
/// that every publish is refused ("insufficient resources"); held for the hold time while the
/// outboxes keep the events; then the filler deleted, and the events flow again.
pub async fn store_full(chaos: &mut Chaos) -> anyhow::Result<Value> {
    let server = chaos.nats.single()?;
    let Some(mut limit) = server.store_limit() else {
        bail!("store-full needs a nats-server started with a store limit");
    };
    let used = store_used(&chaos.js).await?;
    if limit < used + STORE_HEADROOM {
        limit = used + STORE_HEADROOM;
        server.set_store_limit(limit).await?;
    }
    let before = chaos.counters.answers();
    let filler = chaos
        .js
        .create_stream(stream::Config {
            name: FILLER.into(),
            subjects: vec![format!("{FILLER_SUBJECT}.>")],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .context("creating the filler stream")?;
    let (filled, refusal) = fill(&chaos.js).await?;
    drop(filler);
    eprintln!(
        "chaos: JetStream store full: {} MiB of filler over {} MiB of events (limit {} MiB): {refusal}",
        filled / MIB,
        used / MIB,
        limit / MIB
    );
    let all = [Svc::Order, Svc::Payment, Svc::Inventory, Svc::Saga];
    let peak = hold_watching_outboxes(chaos, &all, chaos.options.hold).await;
    let still_refused = refused(&chaos.js, 1024).await;
    let order_backlog_metric = outbox_backlog_metric(chaos, Svc::Order).await;
    chaos
        .js
        .delete_stream(FILLER)
        .await
        .context("deleting the filler stream")?;
    let seen = StoreFull {
        store_limit_bytes: limit,
        store_used_bytes: used,
        filler_bytes: filled,
        refusal,
        outbox_unsent_peak: peak,
        order_backlog_metric,
        posts: chaos.counters.answers().since(before),
    };
    // JetStream refuses for want of room with "insufficient resources" (10023) once the
    // server's store limit is reached, or "insufficient storage resources" (10047).
    if !["10023", "10047"]
        .iter()
        .any(|code| seen.refusal.contains(code))
    {
        chaos.fault_failures.push(format!(
            "jetstream store full: the filler was refused for another reason than room: {}",
            seen.refusal
        ));
    }
    if still_refused.is_none() {
        chaos.fault_failures.push(
            "jetstream store full: a publish was taken before the filler was deleted".to_owned(),
        );
    }
    if seen.outbox_unsent_peak == 0 && seen.posts.accepted > 0 {
        chaos.fault_failures.push(
            "jetstream store full: orders were accepted but no outbox held an event".to_owned(),
        );
    }
    Ok(serde_json::to_value(seen)?)
}

/// Publishes 512 KiB messages to the filler until JetStream refuses one for want of room: it
/// refuses a publish once what it stores is past its limit, whatever the message's size, so from
/// then on every publish to any stream is refused. Returns what was stored, and the refusal.
async fn fill(js: &jetstream::Context) -> anyhow::Result<(u64, String)> {
    const CHUNK: u64 = 512 * 1024;
    let mut filled = 0u64;
    loop {
        if let Some(why) = refused(js, CHUNK as usize).await {
            return Ok((filled, why));
        }
        filled += CHUNK;
        if filled > 4 * STORE_HEADROOM {
            bail!("JetStream took {filled} bytes of filler without refusing any");
        }
    }
}

/// Publishes `size` bytes to the filler: `None` if JetStream stored them, else why it refused
/// (for want of room: "insufficient resources", error code 10023 or 10047).
async fn refused(js: &jetstream::Context, size: usize) -> Option<String> {
    let published = async {
        js.publish(format!("{FILLER_SUBJECT}.x"), vec![b'x'; size].into())
            .await?
            .await
    };
    match published.await {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// `messaging_outbox_backlog` as the first instance of `svc` exports it.
async fn outbox_backlog_metric(chaos: &Chaos, svc: Svc) -> Option<f64> {
    let base = chaos.bases(svc).await.into_iter().next()?;
    let text = chaos
        .http
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|l| l.starts_with("messaging_outbox_backlog{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(f64::max)
}

/// What was seen while payment-service was slow.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SlowPayment {
    latency_ms: u64,
    /// Sagas that reached their end meanwhile.
    sagas_ended: i64,
    /// Of which completed (the order confirmed) and compensated.
    completed: i64,
    compensated: i64,
    /// How order-service answered the load's POSTs meanwhile (`refused`: 503 `OVERLOADED`).
    posts: Answers<u64>,
}

/// payment-service's gateway set to answer after 2 s (`PUT /admin/simulation`) for the hold
/// time, under load; then back to no latency. Orders go on ending, more slowly (some cancelled
/// at their deadline), and admission refuses new orders while the oldest waits too long.
pub async fn slow_payment(chaos: &mut Chaos) -> anyhow::Result<Value> {
    let saga_pool = &chaos.pools[&Svc::Saga];
    let ended_before = outcomes(saga_pool).await?;
    let before = chaos.counters.answers();
    set_latency(chaos, SLOW_LATENCY_MS).await?;
    tokio::time::sleep(chaos.options.hold).await;
    let ended = outcomes(&chaos.pools[&Svc::Saga]).await?;
    let posts = chaos.counters.answers().since(before);
    set_latency(chaos, 0).await?;
    let seen = SlowPayment {
        latency_ms: SLOW_LATENCY_MS,
        sagas_ended: (ended.0 + ended.1) - (ended_before.0 + ended_before.1),
        completed: ended.0 - ended_before.0,
        compensated: ended.1 - ended_before.1,
        posts,
    };
    if seen.sagas_ended <= 0 {
        chaos
            .fault_failures
            .push("payment-service slow: no saga ended while it was".to_owned());
    }
    eprintln!(
        "chaos: while payment-service was slow: {}",
        serde_json::to_string(&seen)?
    );
    Ok(serde_json::to_value(seen)?)
}

/// Sagas `COMPLETED`, and `COMPENSATED`.
async fn outcomes(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    let (completed, compensated): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'COMPLETED'), \
         count(*) FILTER (WHERE status = 'COMPENSATED') FROM sagas",
    )
    .fetch_one(pool)
    .await?;
    Ok((completed, compensated))
}

/// Sets the gateway's latency for every instance of payment-service, retrying until it is
/// taken (the call needs payment-service's database).
async fn set_latency(chaos: &Chaos, latency_ms: u64) -> anyhow::Result<()> {
    let base = chaos
        .bases(Svc::Payment)
        .await
        .into_iter()
        .next()
        .context("payment-service")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = chaos
            .http
            .put(format!("{base}/admin/simulation"))
            .bearer_auth(ADMIN)
            .timeout(Duration::from_secs(5))
            .json(&json!({"latencyMs": latency_ms}))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if Instant::now() > deadline => {
                bail!("setting payment-service's latency: {}", r.status())
            }
            Err(e) if Instant::now() > deadline => {
                return Err(e).context("setting payment-service's latency");
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
