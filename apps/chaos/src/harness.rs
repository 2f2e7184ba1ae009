//! The harness: infrastructure of its own (nats-server or a three-node JetStream cluster,
//! PostgreSQL), the services as processes, restarted when they exit as a process manager would, a
//! careful client, a duplicator, the fault schedule, and the final verdict.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use saga_client::{Client, Svc};
use serde_json::{Value, json};
use shared_events::EventKind;
use sqlx::PgPool;
use test_support::{NatsCluster, NatsServer, PgServer, free_port};

use crate::checks::*;
use crate::procs::*;
use tokio::sync::Mutex;
use uuid::Uuid;

pub struct Options {
    pub duration: Duration,
    pub rate: f64,
    pub bin_dir: PathBuf,
    pub report: Option<PathBuf>,
    /// NATS as a three-node cluster, streams with three replicas, and the cluster's faults.
    pub cluster: bool,
}

const ADMIN: &str = "chaos-admin";
const SAGA_TIMEOUT_MS: u64 = 4000;

/// How long a killed node stays down before it is started again: longer than a leader election
/// (4 to 9 s on nats-server 2.9), so the system carries on without it for a while.
const NODE_DOWN: Duration = Duration::from_secs(8);
/// How long a node is stopped for the fault "stop a node past the deadline": three saga deadlines.
const NODE_DOWN_PAST_DEADLINE: Duration = Duration::from_millis(SAGA_TIMEOUT_MS * 3);
/// The streams whose leaders are killed in turn.
const LEADER_STREAMS: [&str; 4] = ["ORDERS", "PAYMENTS", "INVENTORY", "SAGAS"];

/// The faults, in the order they are injected, round after round.
const SCHEDULE: [&str; 9] = [
    "kill order-service",
    "kill payment-service",
    "kill inventory-service",
    "kill saga-coordinator",
    "kill one of each pair",
    "restart nats-server",
    "restart postgresql",
    "cancel before create",
    "poison",
];

/// The faults with NATS as a cluster: the same, with the node faults in place of the one
/// server's restart, spread among the others.
const CLUSTER_SCHEDULE: [&str; 13] = [
    "kill order-service",
    "kill a stream leader",
    "kill payment-service",
    "kill the meta leader",
    "kill inventory-service",
    "kill a node",
    "kill saga-coordinator",
    "stop a node past the deadline",
    "kill one of each pair",
    "rolling restart",
    "restart postgresql",
    "cancel before create",
    "poison",
];

/// The NATS the services use: one server, or a cluster.
enum Nats {
    Single(NatsServer),
    Cluster(NatsCluster),
}

impl Nats {
    /// The `NATS_URL` of the services: every node.
    fn urls(&self) -> String {
        match self {
            Nats::Single(server) => server.url(),
            Nats::Cluster(cluster) => cluster.urls(),
        }
    }

    /// Replicas of every stream.
    fn replicas(&self) -> usize {
        match self {
            Nats::Single(_) => 1,
            Nats::Cluster(cluster) => cluster.len(),
        }
    }

    fn cluster(&mut self) -> anyhow::Result<&mut NatsCluster> {
        match self {
            Nats::Cluster(cluster) => Ok(cluster),
            Nats::Single(_) => bail!("a cluster fault without a cluster"),
        }
    }
}

/// A service process that exited by itself, and was started again.
#[derive(Clone, Debug)]
struct Exit {
    process: String,
    status: String,
    at: Duration,
    /// The last line of its log.
    last_words: String,
}

#[derive(Default, Debug)]
struct Counters {
    posts: AtomicU64,
    post_retries: AtomicU64,
    duplicates: AtomicU64,
}

/// A fault injected, and how soon the system made progress again.
#[derive(Clone, Debug, Default)]
struct Fault {
    /// What was done (`kill the ORDERS leader`, ...).
    kind: String,
    /// The node it was done to, for the cluster's faults.
    node: String,
    /// From the fault until a saga reached its end again (`COMPLETED` or `COMPENSATED`).
    sagas_moving: Duration,
    /// From the fault until an order accepted after it was `CONFIRMED`: the whole flow, through
    /// every stream, works again.
    orders_confirmed: Duration,
}

/// The median and the largest of some durations, in seconds.
fn median_max(mut values: Vec<Duration>) -> Value {
    values.sort_unstable();
    let median = values.get(values.len() / 2).copied().unwrap_or_default();
    let max = values.last().copied().unwrap_or_default();
    json!({"median": median.as_secs_f64(), "max": max.as_secs_f64()})
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let run_dir = std::env::temp_dir().join(format!("saga-chaos-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&run_dir)?;
    eprintln!("chaos: logs in {}", run_dir.display());
    let mut nats = if options.cluster {
        let cluster = NatsCluster::start().await?;
        eprintln!("chaos: NATS cluster {}", cluster.urls());
        Nats::Cluster(cluster)
    } else {
        Nats::Single(NatsServer::start().await?)
    };
    let replicas = nats.replicas();
    let js = messaging::nats::jetstream(
        messaging::nats::connect(&messaging::nats::NatsSettings::new(nats.urls(), "chaos")).await?,
    );
    if let Nats::Cluster(cluster) = &nats {
        provision_streams(&js, cluster, replicas).await?;
    }
    let mut pg = PgServer::start().await?;
    let mut pools = HashMap::new();
    for (_, svc, db) in SERVICES {
        pg.create_database(db).await?;
        pools.insert(svc, PgPool::connect(&pg.url(db)).await?);
    }

    // Two instances of every service.
    let mut procs = Vec::new();
    for (name, svc, db) in SERVICES {
        for instance in ["a", "b"] {
            let port = free_port();
            let env = vec![
                ("PORT".into(), port.to_string()),
                ("DATABASE_URL".into(), pg.url(db)),
                ("NATS_URL".into(), nats.urls()),
                ("NATS_STREAM_REPLICAS".into(), replicas.to_string()),
                ("ADMIN_TOKEN".into(), ADMIN.into()),
                ("PAYMENT_SUCCESS_RATE".into(), "0.8".into()),
                ("PAYMENT_SEED".into(), "11".into()),
                ("SAGA_TIMEOUT_MS".into(), SAGA_TIMEOUT_MS.to_string()),
                ("DB_MAX_CONNECTIONS".into(), "6".into()),
                ("RUST_LOG".into(), "warn".into()),
            ];
            let log = run_dir.join(format!("{name}-{instance}.log"));
            let mut p = Proc {
                name,
                svc,
                port,
                env,
                log,
                child: None,
            };
            p.spawn(&options.bin_dir)?;
            procs.push(p);
        }
    }
    let procs = Arc::new(Mutex::new(procs));
    let http = reqwest::Client::new();
    wait_ready(&http, procs.lock().await.iter().map(Proc::base).collect()).await?;
    let started = Instant::now();
    let exits = Arc::new(Mutex::new(Vec::new()));
    let supervisor = tokio::spawn(supervise(
        procs.clone(),
        options.bin_dir.clone(),
        started,
        exits.clone(),
    ));
    let client = {
        let procs = procs.lock().await;
        let base = SERVICES
            .iter()
            .map(|(_, svc, _)| {
                (
                    *svc,
                    procs
                        .iter()
                        .find(|p| p.svc == *svc)
                        .map(Proc::base)
                        .unwrap_or_default(),
                )
            })
            .collect();
        Client::new(base)
    };

    // Stock: plenty of most products, and one scarce enough to run out.
    let mut stock: Vec<(String, i64)> = (0..6).map(|i| (format!("chaos-{i}"), 100_000)).collect();
    stock.push(("chaos-scarce".into(), 40));
    for (product, n) in &stock {
        let url = client.url(Svc::Inventory, &format!("/inventory/{product}"));
        let r = http
            .put(url)
            .bearer_auth(ADMIN)
            .json(&json!({"onHand": n}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("setting stock: {}", r.status());
        }
    }

    let counters = Arc::new(Counters::default());
    let stop_load = Arc::new(AtomicBool::new(false));
    let duplicator = tokio::spawn(duplicate_everything(js.clone(), counters.clone()));
    let load = tokio::spawn(load(
        http.clone(),
        procs.clone(),
        options.rate,
        stop_load.clone(),
        counters.clone(),
        stock.clone(),
    ));

    // The fault schedule, round after round until the time is up.
    let mut faults: Vec<Fault> = Vec::new();
    let mut poison = Vec::new();
    let mut fabricated = Vec::new();
    let schedule: &[&str] = if options.cluster {
        &CLUSTER_SCHEDULE
    } else {
        &SCHEDULE
    };
    let mut round = 0usize;
    let mut leader_kills = 0usize;
    while started.elapsed() < options.duration {
        let fault = schedule[round % schedule.len()];
        round += 1;
        let before = terminal_sagas(&pools[&Svc::Saga]).await;
        let since = db_clock(&pools[&Svc::Order]).await?;
        let mut label = fault.to_owned();
        let mut place = String::new();
        // A node to start again once it has been down this long.
        let mut down: Option<(usize, Duration)> = None;
        let at = Instant::now();
        match fault {
            "kill one of each pair" => {
                let mut procs = procs.lock().await;
                for p in procs.iter_mut().skip(1).step_by(2) {
                    p.sigkill().await;
                }
                for p in procs.iter_mut().skip(1).step_by(2) {
                    p.spawn(&options.bin_dir)?;
                }
            }
            "restart nats-server" => {
                if let Nats::Single(server) = &mut nats {
                    server.kill().await;
                    server.start_again().await?;
                }
            }
            "kill a stream leader" => {
                let stream = LEADER_STREAMS[leader_kills % LEADER_STREAMS.len()];
                leader_kills += 1;
                let cluster = nats.cluster()?;
                let leader = cluster
                    .wait_stream_leader(stream, None, Duration::from_secs(60))
                    .await?;
                label = format!("kill the {stream} leader");
                place = cluster.name(leader).to_owned();
                cluster.kill(leader).await;
                down = Some((leader, NODE_DOWN));
            }
            "kill the meta leader" => {
                let cluster = nats.cluster()?;
                let leader = cluster.wait_meta_leader(Duration::from_secs(60)).await?;
                place = cluster.name(leader).to_owned();
                cluster.kill(leader).await;
                down = Some((leader, NODE_DOWN));
            }
            "kill a node" => {
                let cluster = nats.cluster()?;
                let node = fastrand::usize(..cluster.len());
                place = cluster.name(node).to_owned();
                cluster.kill(node).await;
                down = Some((node, NODE_DOWN));
            }
            "stop a node past the deadline" => {
                let cluster = nats.cluster()?;
                let node = fastrand::usize(..cluster.len());
                place = cluster.name(node).to_owned();
                cluster.stop(node).await?;
                down = Some((node, NODE_DOWN_PAST_DEADLINE));
            }
            "rolling restart" => {
                let cluster = nats.cluster()?;
                for node in 0..cluster.len() {
                    cluster.stop(node).await?;
                    cluster.start_again(node).await?;
                    whole_again(cluster).await?;
                }
            }
            "restart postgresql" => {
                pg.kill().await?;
                pg.start_again().await?;
            }
            "cancel before create" => {
                fabricated.extend(cancel_before_create(&http, &procs, &options.bin_dir, 5).await?);
            }
            "poison" => {
                let subjects: Vec<&str> = EventKind::ALL.iter().map(|k| k.subject()).collect();
                poison.extend(feed_poison(&js, &subjects).await?);
            }
            kill => {
                let name = kill.trim_start_matches("kill ");
                let mut procs = procs.lock().await;
                if let Some(p) = procs.iter_mut().find(|p| p.name == name) {
                    p.sigkill().await;
                    p.spawn(&options.bin_dir)?;
                }
            }
        }
        // Until a saga reaches its end again after the fault, and an order placed after it is
        // confirmed.
        let (mut sagas_moving, mut orders_confirmed) = (None, None);
        let (sagas_moving, orders_confirmed) = loop {
            if sagas_moving.is_none() && terminal_sagas(&pools[&Svc::Saga]).await > before {
                sagas_moving = Some(at.elapsed());
            }
            if orders_confirmed.is_none() && confirmed_since(&pools[&Svc::Order], since).await {
                orders_confirmed = Some(at.elapsed());
            }
            if let (Some(s), Some(o)) = (sagas_moving, orders_confirmed) {
                break (s, o);
            }
            if at.elapsed() > Duration::from_secs(120) {
                if sagas_moving.is_none() {
                    bail!("no saga moved for 120 s after {label}");
                }
                bail!("no order placed after {label} was confirmed within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let at_node = if place.is_empty() {
            String::new()
        } else {
            format!(" ({place})")
        };
        eprintln!(
            "chaos: {label}{at_node}: sagas moving again after {:.2}s, a new order confirmed after {:.2}s",
            sagas_moving.as_secs_f64(),
            orders_confirmed.as_secs_f64()
        );
        faults.push(Fault {
            kind: label,
            node: place,
            sagas_moving,
            orders_confirmed,
        });
        if let Some((node, for_how_long)) = down {
            tokio::time::sleep(for_how_long.saturating_sub(at.elapsed())).await;
            let cluster = nats.cluster()?;
            cluster.start_again(node).await?;
            whole_again(cluster).await?;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop_load.store(true, Ordering::Relaxed);
    let mut orders = load.await??;
    orders.extend(fabricated.iter().cloned());
    eprintln!(
        "chaos: load stopped after {} orders; waiting for every saga to end",
        orders.len()
    );

    // The verdict: every check runs, and the report says which failed.
    let mut failed: Vec<String> = Vec::new();
    let settle = Duration::from_millis(SAGA_TIMEOUT_MS) + Duration::from_secs(120);
    let deadline = Instant::now() + settle;
    let tally = loop {
        match client.check_invariants(&orders, &stock).await {
            Ok(tally) => break Some(tally),
            Err(e) if Instant::now() > deadline => {
                failed.push(format!("invariants do not hold after {settle:?}: {e}"));
                break None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let never_charged = noted(&mut failed, check_fabricated(&client, &fabricated).await);
    let unsent = noted(&mut failed, unsent_outbox(&pools, deadline).await);
    if let Nats::Cluster(cluster) = &nats {
        noted(&mut failed, whole_again(cluster).await);
        noted(&mut failed, replicas_agree(cluster).await);
    }
    let dead_letters = noted(&mut failed, check_dlq(&js, &poison).await);
    let double_charges: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT order_id FROM payments GROUP BY order_id HAVING count(*) > 1) d",
    )
    .fetch_one(&pools[&Svc::Payment])
    .await?;
    if double_charges != 0 {
        failed.push(format!("{double_charges} orders charged more than once"));
    }
    duplicator.abort();
    supervisor.abort();
    let exits = exits.lock().await.clone();

    let longest = faults
        .iter()
        .max_by_key(|f| f.sagas_moving)
        .cloned()
        .unwrap_or_default();
    let longest_flow = faults
        .iter()
        .max_by_key(|f| f.orders_confirmed)
        .cloned()
        .unwrap_or_default();
    let mut by_kind: HashMap<&str, usize> = HashMap::new();
    let mut kinds: BTreeSet<&str> = BTreeSet::new();
    for f in &faults {
        *by_kind.entry(f.kind.as_str()).or_default() += 1;
        kinds.insert(f.kind.as_str());
    }
    let recovery_by_kind: serde_json::Map<String, Value> = kinds
        .iter()
        .map(|kind| {
            let of_kind = || faults.iter().filter(|f| f.kind == *kind);
            let moving = median_max(of_kind().map(|f| f.sagas_moving).collect());
            let confirmed = median_max(of_kind().map(|f| f.orders_confirmed).collect());
            (
                (*kind).to_owned(),
                json!({"sagasMoving": moving, "newOrderConfirmed": confirmed}),
            )
        })
        .collect();
    let mut report = json!({
        "nats": if options.cluster { "cluster" } else { "single" },
        "natsNodes": match &nats { Nats::Single(_) => 1, Nats::Cluster(c) => c.len() },
        "streamReplicas": replicas,
        "durationSeconds": options.duration.as_secs_f64(),
        "orders": orders.len(),
        "confirmed": tally.as_ref().map(|t| t.confirmed),
        "cancelled": tally.as_ref().map(|t| t.cancelled),
        "postRetries": counters.post_retries.load(Ordering::Relaxed),
        "faultsInjected": faults.len(),
        "faultsByKind": by_kind,
        "duplicatesDelivered": counters.duplicates.load(Ordering::Relaxed),
        "cancelBeforeCreateOrders": fabricated.len(),
        "cancelBeforeCreateNeverCharged": never_charged,
        "poisonMessagesFed": poison.len(),
        "deadLetters": dead_letters,
        "ordersLost": tally.as_ref().map(|t| orders.len() - (t.confirmed + t.cancelled)),
        "ordersChargedTwice": double_charges,
        "outboxRowsUnsent": unsent,
        "serviceExits": exits.len(),
        "serviceExitDetails": exits.iter().map(|e| json!({"process": e.process, "status": e.status,
            "atSeconds": e.at.as_secs_f64(), "lastLogLine": e.last_words})).collect::<Vec<_>>(),
        "longestRecoverySeconds": longest.sagas_moving.as_secs_f64(),
        "longestRecoveryFault": longest.kind,
        "longestNewOrderConfirmedSeconds": longest_flow.orders_confirmed.as_secs_f64(),
        "longestNewOrderConfirmedFault": longest_flow.kind,
        "recoveryByKind": recovery_by_kind,
        "recoveries": faults.iter().map(|f| {
            let mut r = json!({"fault": f.kind, "seconds": f.sagas_moving.as_secs_f64(),
                "newOrderConfirmedSeconds": f.orders_confirmed.as_secs_f64()});
            if !f.node.is_empty() {
                r["node"] = json!(f.node);
            }
            r
        }).collect::<Vec<_>>(),
    });
    report["everyGuaranteeHeld"] = json!(failed.is_empty());
    report["failedChecks"] = json!(failed);
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &options.report {
        std::fs::write(path, &text)?;
    }
    println!("{text}");
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    println!("chaos: every guarantee held");
    drop(procs);
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(())
}

/// Creates every stream with `replicas` replicas before the services start (retrying: right
/// after a cluster forms, a creation can time out although it went through), and checks that
/// each has a replica on every node.
async fn provision_streams(
    js: &jetstream::Context,
    cluster: &NatsCluster,
    replicas: usize,
) -> anyhow::Result<()> {
    let mut tries = 0;
    while let Err(e) = messaging::nats::ensure_streams(js, replicas).await {
        tries += 1;
        if tries >= 20 {
            bail!("provisioning the streams on the cluster: {e}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for stream in shared_events::Stream::ALL {
        let placement = cluster.stream_placement(stream.name()).await?;
        if placement.configured_replicas != replicas || placement.nodes().len() != cluster.len() {
            bail!(
                "stream {} is not on every node: {placement:?}",
                stream.name()
            );
        }
    }
    Ok(())
}

/// Until every node runs, sees a meta leader and answers JetStream calls, and every replica of
/// every stream is current: the cluster is whole again before the next fault.
async fn whole_again(cluster: &NatsCluster) -> anyhow::Result<()> {
    cluster.wait_ready(Duration::from_secs(60)).await?;
    for stream in shared_events::Stream::ALL {
        cluster
            .wait_stream_current(stream.name(), Duration::from_secs(60))
            .await?;
    }
    Ok(())
}

/// Every node holds the same messages at the same sequences of every stream, once nothing is
/// published any more.
async fn replicas_agree(cluster: &NatsCluster) -> anyhow::Result<()> {
    for stream in shared_events::Stream::ALL {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let states = cluster.replica_states(stream.name()).await?;
            let agree =
                states.len() == cluster.len() && states.windows(2).all(|w| w[0].same_as(&w[1]));
            if agree {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the replicas of stream {} disagree: {}",
                    stream.name(),
                    states
                        .iter()
                        .map(|s| format!(
                            "{} holds {} messages, sequences {} to {}",
                            cluster.name(s.node),
                            s.messages,
                            s.first_seq,
                            s.last_seq
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    eprintln!("chaos: every replica of every stream holds the same messages");
    Ok(())
}

/// What a process manager does: a service process that exits by itself (a task of it died, or
/// it could not start) is started again a second later. Each exit is recorded for the report.
async fn supervise(
    procs: Arc<Mutex<Vec<Proc>>>,
    bin_dir: PathBuf,
    started: Instant,
    exits: Arc<Mutex<Vec<Exit>>>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut procs = procs.lock().await;
        for p in procs.iter_mut() {
            let Some(child) = p.child.as_mut() else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            p.child = None;
            let last_words = std::fs::read_to_string(&p.log)
                .unwrap_or_default()
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .to_owned();
            let exit = Exit {
                process: p.label(),
                status: status.to_string(),
                at: started.elapsed(),
                last_words,
            };
            eprintln!(
                "chaos: {} exited ({}) after {:.1}s; starting it again: {}",
                exit.process,
                exit.status,
                exit.at.as_secs_f64(),
                exit.last_words
            );
            exits.lock().await.push(exit);
            if let Err(e) = p.spawn(&bin_dir) {
                eprintln!("chaos: starting {} again: {e:#}", p.label());
            }
        }
    }
}

/// A steady stream of orders, each retried with its Idempotency-Key against either order-service
/// instance until one accepts it. Returns the ids of all accepted orders.
async fn load(
    http: reqwest::Client,
    procs: Arc<Mutex<Vec<Proc>>>,
    rate: f64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    stock: Vec<(String, i64)>,
) -> anyhow::Result<Vec<String>> {
    let bases: Vec<String> = procs
        .lock()
        .await
        .iter()
        .filter(|p| p.svc == Svc::Order)
        .map(Proc::base)
        .collect();
    let mut tasks = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(interval);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let (http, bases, counters) = (http.clone(), bases.clone(), counters.clone());
        let lines: Vec<Value> = (0..fastrand::usize(1..=3))
            .map(|_| {
                let (product, _) = &stock[fastrand::usize(..stock.len())];
                json!({"productId": product, "quantity": fastrand::u32(1..=3), "unitPrice": fastrand::u32(100..10_000) as f64 / 100.0})
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let key = Uuid::now_v7().to_string();
            let body = json!({"customerId": "chaos", "items": lines});
            counters.posts.fetch_add(1, Ordering::Relaxed);
            for attempt in 0u32.. {
                let base = &bases[attempt as usize % bases.len()];
                let sent = http
                    .post(format!("{base}/orders"))
                    .header("Idempotency-Key", &key)
                    .timeout(Duration::from_secs(5))
                    .json(&body)
                    .send()
                    .await;
                if let Ok(r) = sent
                    && r.status().as_u16() == 201
                    && let Ok(order) = r.json::<Value>().await
                    && let Some(id) = order["orderId"].as_str()
                {
                    return Ok(id.to_owned());
                }
                counters.post_retries.fetch_add(1, Ordering::Relaxed);
                if attempt > 600 {
                    bail!("an order was never accepted");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            unreachable!()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await??);
    }
    // One order per key, whatever the retries.
    let unique: BTreeSet<&String> = ids.iter().collect();
    if unique.len() != ids.len() {
        bail!("retries with one Idempotency-Key made more than one order");
    }
    Ok(ids)
}

/// Publishes every event again under a fresh Nats-Msg-Id, which JetStream's duplicate window
/// cannot catch.
async fn duplicate_everything(js: jetstream::Context, counters: Arc<Counters>) {
    let client = js.client();
    let Ok(mut seen) = client.subscribe(">").await else {
        return;
    };
    while let Some(msg) = seen.next().await {
        let subject = msg.subject.as_str();
        if subject.starts_with('$') || subject.starts_with("_INBOX") || subject.starts_with("dlq.")
        {
            continue;
        }
        let id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(std::string::ToString::to_string)
            .unwrap_or_default();
        if id.is_empty()
            || id.starts_with("dup-")
            || id.starts_with("poison-")
            || id.starts_with("chaos-")
        {
            continue;
        }
        let copy = PublishMessage::build()
            .message_id(format!("dup-{id}"))
            .payload(msg.payload.clone());
        if let Ok(ack) = js.send_publish(msg.subject.clone(), copy).await
            && ack.await.is_ok()
        {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Real orders cancelled while both instances of payment-service and inventory-service are down:
/// when they come back, `order.created` and `order.cancelled` wait side by side in two durables,
/// and each participant meets them in whichever order its consumers pull them.
async fn cancel_before_create(
    http: &reqwest::Client,
    procs: &Mutex<Vec<Proc>>,
    bin_dir: &std::path::Path,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut procs = procs.lock().await;
    let order_base = procs
        .iter()
        .find(|p| p.svc == Svc::Order)
        .map(Proc::base)
        .context("order-service")?;
    let participants = |p: &&mut Proc| matches!(p.svc, Svc::Payment | Svc::Inventory);
    for p in procs.iter_mut().filter(participants) {
        p.sigkill().await;
    }
    let mut ids = Vec::new();
    for _ in 0..n {
        let body = json!({"customerId": "chaos-cancel", "items": [{"productId": "chaos-0", "quantity": 1, "unitPrice": 5}]});
        let order: Value = http
            .post(format!("{order_base}/orders"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let id = order["orderId"]
            .as_str()
            .context("order refused")?
            .to_owned();
        let cancelled = http
            .post(format!("{order_base}/orders/{id}/cancel"))
            .send()
            .await?;
        if !cancelled.status().is_success() {
            bail!("cancelling {id}: {}", cancelled.status());
        }
        ids.push(id);
    }
    for p in procs.iter_mut().filter(participants) {
        p.spawn(bin_dir)?;
    }
    Ok(ids)
}

/// The orders cancelled while their participants were down: never left charged or holding stock.
/// Returns how many were never charged at all (the rest were charged and then refunded).
async fn check_fabricated(client: &Client, ids: &[String]) -> anyhow::Result<usize> {
    let mut never_charged = 0;
    for id in ids {
        let (status, payment) = client
            .get(Svc::Payment, &format!("/payments?orderId={id}"))
            .await
            .map_err(anyhow::Error::msg)?;
        let (_, reservation) = client
            .get(Svc::Inventory, &format!("/reservations/{id}"))
            .await
            .map_err(anyhow::Error::msg)?;
        let pay = if status == 404 {
            "NONE"
        } else {
            payment["status"].as_str().unwrap_or("?")
        };
        if pay == "CONFIRMED"
            || matches!(
                reservation["status"].as_str(),
                Some("RESERVED" | "COMMITTED")
            )
        {
            bail!("cancel-before-create order {id}: payment {payment}, reservation {reservation}");
        }
        if pay != "REFUNDED" {
            never_charged += 1;
        }
    }
    Ok(never_charged)
}
