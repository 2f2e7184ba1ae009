//! The harness: infrastructure of its own (nats-server or a three-node JetStream cluster, and
//! two PostgreSQL servers: payment-service's, and the other three services'), the services as
//! processes, restarted when they exit as a process manager would, a careful client, a
//! duplicator, the fault schedule, and the final verdict.
//!
//! [`run`] goes through its steps in turn: [`Chaos::setup`], then for each fault of the schedule
//! [`Chaos::inject`] and [`Chaos::recover`] (the recovery probe), then [`Chaos::verdict`] and
//! [`Chaos::report`].

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream;
use saga_client::{Client, Svc, Tally};
use serde::Serialize;
use serde_json::{Value, json};
use shared_events::EventKind;
use sqlx::PgPool;
use test_support::{NatsCluster, NatsServer, PgServer, free_port};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::checks::*;
use crate::fault::Fault;
use crate::load::{self, Counters};
use crate::outages;
use crate::procs::*;

#[derive(Debug)]
pub struct Options {
    pub duration: Duration,
    pub rate: f64,
    pub bin_dir: PathBuf,
    pub report: Option<PathBuf>,
    /// NATS as a three-node cluster, streams with three replicas, and the cluster's faults.
    pub cluster: bool,
    /// The faults, in the order they are injected, round after round.
    pub faults: Vec<Fault>,
    /// How long a lasting fault lasts (a database or NATS down, the store full, a slow
    /// participant).
    pub hold: Duration,
}

pub(crate) const ADMIN: &str = "chaos-admin";
const SAGA_TIMEOUT_MS: u64 = 4000;

/// How long a killed node stays down before it is started again: longer than a leader election
/// (4 to 9 s on nats-server 2.9), so the system carries on without it for a while.
const NODE_DOWN: Duration = Duration::from_secs(8);
/// How long a node is stopped for the fault "stop a node past the deadline": three saga deadlines.
const NODE_DOWN_PAST_DEADLINE: Duration = Duration::from_millis(SAGA_TIMEOUT_MS * 3);
/// The streams whose leaders are killed in turn.
const LEADER_STREAMS: [&str; 4] = ["ORDERS", "PAYMENTS", "INVENTORY", "SAGAS"];
/// How long the system has to make progress again after a fault.
const RECOVER_WITHIN: Duration = Duration::from_secs(120);
/// The pause between one fault's recovery and the next fault.
const BETWEEN_FAULTS: Duration = Duration::from_secs(2);

/// The NATS the services use: one server, or a cluster.
pub(crate) enum Nats {
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

    pub(crate) fn single(&mut self) -> anyhow::Result<&mut NatsServer> {
        match self {
            Nats::Single(server) => Ok(server),
            Nats::Cluster(_) => bail!("a one-server fault on a cluster"),
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

/// Where the recovery from a fault is measured from: the fault's end.
pub(crate) struct Mark {
    pub at: Instant,
    /// The database's clock then (order-service's): orders accepted after it are new.
    pub since: f64,
    /// Sagas ended by then.
    pub sagas_ended: i64,
}

/// A fault as it was injected.
pub(crate) struct Injected {
    /// What was done (`kill the ORDERS leader`, ...).
    pub label: String,
    /// The node it was done to, for the cluster's faults.
    pub node: String,
    pub started: Instant,
    /// When it ended (a process started again, a server back, space freed).
    pub end: Mark,
    /// A node to start again once it has been down this long (the system recovers without it).
    pub down: Option<(usize, Duration)>,
    /// What the fault saw while it lasted.
    pub details: Option<Value>,
}

/// A fault injected, and how soon the system made progress again after its end.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Recovery {
    fault: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    node: String,
    /// How long the fault itself lasted.
    #[serde(serialize_with = "seconds")]
    fault_seconds: Duration,
    /// From the fault's end until a saga reached its end again (`COMPLETED` or `COMPENSATED`).
    #[serde(rename = "seconds", serialize_with = "seconds")]
    sagas_moving: Duration,
    /// From the fault's end until an order accepted after it was `CONFIRMED`: the whole flow,
    /// through every stream, works again.
    #[serde(rename = "newOrderConfirmedSeconds", serialize_with = "seconds")]
    orders_confirmed: Duration,
    /// From the fault's end until every outbox row written before it was sent (lasting faults).
    #[serde(
        rename = "heldEventsSentSeconds",
        serialize_with = "maybe_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    held_events_sent: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn maybe_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// The median and the largest of some durations, in seconds.
fn median_max(mut values: Vec<Duration>) -> Value {
    values.sort_unstable();
    let median = values.get(values.len() / 2).copied().unwrap_or_default();
    let max = values.last().copied().unwrap_or_default();
    json!({"median": median.as_secs_f64(), "max": max.as_secs_f64()})
}

/// What the final checks found; `failed` says which did not hold.
struct Verdict {
    failed: Vec<String>,
    orders: Vec<String>,
    tally: Option<Tally>,
    never_charged: Option<usize>,
    unsent: Option<i64>,
    dead_letters: Option<usize>,
    double_charges: i64,
}

/// Everything a run holds: the infrastructure, the services, what runs beside the faults, and
/// what the faults did.
pub(crate) struct Chaos {
    pub options: Options,
    run_dir: PathBuf,
    pub nats: Nats,
    pub js: jetstream::Context,
    /// order-service's, inventory-service's and saga-coordinator's databases.
    pub pg: PgServer,
    /// payment-service's database, on a server of its own so that it can be stopped alone.
    pub payment_pg: PgServer,
    pub pools: HashMap<Svc, PgPool>,
    pub procs: Arc<Mutex<Vec<Proc>>>,
    pub http: reqwest::Client,
    client: Client,
    stock: Vec<(String, i64)>,
    pub counters: Arc<Counters>,
    started: Instant,
    exits: Arc<Mutex<Vec<Exit>>>,
    /// The supervisor and the duplicator.
    background: Vec<JoinHandle<()>>,
    stop_load: Arc<AtomicBool>,
    load: Option<JoinHandle<anyhow::Result<Vec<String>>>>,
    recoveries: Vec<Recovery>,
    poison: Vec<Poison>,
    /// Orders cancelled while their participants were down.
    cancelled_early: Vec<String>,
    leader_kills: usize,
    /// What a fault saw that must not happen (a 500 while a database was down, ...).
    pub fault_failures: Vec<String>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let mut chaos = Chaos::setup(options).await?;
    let mut round = 0usize;
    while chaos.started.elapsed() < chaos.options.duration {
        let fault = chaos.options.faults[round % chaos.options.faults.len()];
        round += 1;
        let injected = chaos.inject(fault).await?;
        chaos.recover(injected).await?;
        tokio::time::sleep(BETWEEN_FAULTS).await;
    }
    let verdict = chaos.verdict().await?;
    chaos.report(verdict).await
}

impl Chaos {
    /// Starts NATS, PostgreSQL and two instances of every service, sets the stock, and starts
    /// the load, the duplicator and the supervisor.
    async fn setup(options: Options) -> anyhow::Result<Chaos> {
        if options.faults.is_empty() {
            bail!("no fault to inject");
        }
        let run_dir = std::env::temp_dir().join(format!("saga-chaos-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&run_dir)?;
        eprintln!("chaos: logs in {}", run_dir.display());
        let nats = if options.cluster {
            let cluster = NatsCluster::start().await?;
            eprintln!("chaos: NATS cluster {}", cluster.urls());
            Nats::Cluster(cluster)
        } else if options.faults.contains(&Fault::StoreFull) {
            Nats::Single(NatsServer::start_with_store_limit(outages::STORE_HEADROOM).await?)
        } else {
            Nats::Single(NatsServer::start().await?)
        };
        let replicas = nats.replicas();
        let js = messaging::nats::jetstream(
            messaging::nats::connect(&messaging::nats::NatsSettings::new(nats.urls(), "chaos"))
                .await?,
        );
        if let Nats::Cluster(cluster) = &nats {
            provision_streams(&js, cluster, replicas).await?;
        }
        let (pg, payment_pg) = (PgServer::start().await?, PgServer::start().await?);
        let server_of = |svc: Svc| {
            if svc == Svc::Payment {
                &payment_pg
            } else {
                &pg
            }
        };
        let mut pools = HashMap::new();
        for (_, svc, db) in SERVICES {
            server_of(svc).create_database(db).await?;
            pools.insert(svc, PgPool::connect(&server_of(svc).url(db)).await?);
        }

        // Two instances of every service.
        let mut procs = Vec::new();
        for (name, svc, db) in SERVICES {
            for instance in ["a", "b"] {
                let port = free_port();
                let env = vec![
                    ("PORT".into(), port.to_string()),
                    ("DATABASE_URL".into(), server_of(svc).url(db)),
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
        let http = reqwest::Client::new();
        let bases: Vec<String> = procs.iter().map(Proc::base).collect();
        let base_of = |svc: Svc| {
            procs
                .iter()
                .find(|p| p.svc == svc)
                .map(Proc::base)
                .unwrap_or_default()
        };
        let client = Client::new(SERVICES.iter().map(|(_, s, _)| (*s, base_of(*s))).collect());
        let order_bases: Vec<String> = procs
            .iter()
            .filter(|p| p.svc == Svc::Order)
            .map(Proc::base)
            .collect();
        let procs = Arc::new(Mutex::new(procs));
        // Supervised from the start: an instance that exits while starting (say, two instances
        // migrating the same database at once) is started again, as a process manager would.
        let exits = Arc::new(Mutex::new(Vec::new()));
        let supervisor = tokio::spawn(supervise(
            procs.clone(),
            options.bin_dir.clone(),
            Instant::now(),
            exits.clone(),
        ));
        wait_ready(&http, bases).await?;

        // Stock: plenty of most products, and one scarce enough to run out.
        let mut stock: Vec<(String, i64)> =
            (0..6).map(|i| (format!("chaos-{i}"), 100_000)).collect();
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
        let background = vec![
            supervisor,
            tokio::spawn(load::duplicate_everything(js.clone(), counters.clone())),
        ];
        let load = tokio::spawn(load::load(
            http.clone(),
            order_bases,
            options.rate,
            stop_load.clone(),
            counters.clone(),
            stock.clone(),
        ));
        Ok(Chaos {
            options,
            run_dir,
            nats,
            js,
            pg,
            payment_pg,
            pools,
            procs,
            http,
            client,
            stock,
            counters,
            started: Instant::now(),
            exits,
            background,
            stop_load,
            load: Some(load),
            recoveries: Vec::new(),
            poison: Vec::new(),
            cancelled_early: Vec::new(),
            leader_kills: 0,
            fault_failures: Vec::new(),
        })
    }

    /// Where a recovery is measured from: now. Retried while the databases come back.
    pub(crate) async fn mark(&self) -> anyhow::Result<Mark> {
        let at = Instant::now();
        let deadline = at + Duration::from_secs(60);
        loop {
            let since = db_clock(&self.pools[&Svc::Order]).await;
            let sagas_ended = terminal_sagas(&self.pools[&Svc::Saga]).await;
            match since {
                Ok(since) if sagas_ended >= 0 => {
                    return Ok(Mark {
                        at,
                        since,
                        sagas_ended,
                    });
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context("reading the database's clock"));
                }
                _ if Instant::now() > deadline => bail!("counting the sagas ended failed"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Injects `fault`, and for a lasting one holds it and ends it.
    async fn inject(&mut self, fault: Fault) -> anyhow::Result<Injected> {
        if fault != Fault::StoreFull
            && let Nats::Single(server) = &mut self.nats
        {
            outages::keep_room_in_store(server, &self.js).await?;
        }
        let started = Instant::now();
        let mut label = fault.label().to_owned();
        let mut node = String::new();
        let mut down = None;
        let mut details = None;
        match fault {
            Fault::KillOrderService
            | Fault::KillPaymentService
            | Fault::KillInventoryService
            | Fault::KillSagaCoordinator => {
                let name = fault.service_killed().context("a service to kill")?;
                let mut procs = self.procs.lock().await;
                if let Some(p) = procs.iter_mut().find(|p| p.name == name) {
                    p.sigkill().await;
                    p.spawn(&self.options.bin_dir)?;
                }
            }
            Fault::KillOneOfEachPair => {
                let mut procs = self.procs.lock().await;
                for p in procs.iter_mut().skip(1).step_by(2) {
                    p.sigkill().await;
                }
                for p in procs.iter_mut().skip(1).step_by(2) {
                    p.spawn(&self.options.bin_dir)?;
                }
            }
            Fault::RestartNatsServer => {
                let server = self.nats.single()?;
                server.kill().await;
                server.start_again().await?;
            }
            Fault::RestartPostgresql => {
                tokio::try_join!(self.pg.kill(), self.payment_pg.kill())?;
                tokio::try_join!(self.pg.start_again(), self.payment_pg.start_again())?;
            }
            Fault::RestartPostgresqlCleanly => {
                tokio::try_join!(self.pg.stop(), self.payment_pg.stop())?;
                tokio::try_join!(self.pg.start_again(), self.payment_pg.start_again())?;
            }
            Fault::PaymentDbDown => details = Some(outages::payment_db_down(self).await?),
            Fault::NatsDown => details = Some(outages::nats_down(self).await?),
            Fault::StoreFull => details = Some(outages::store_full(self).await?),
            Fault::SlowPayment => details = Some(outages::slow_payment(self).await?),
            Fault::CancelBeforeCreate => {
                let ids =
                    cancel_before_create(&self.http, &self.procs, &self.options.bin_dir, 5).await?;
                self.cancelled_early.extend(ids);
            }
            Fault::Poison => {
                let subjects: Vec<&str> = EventKind::ALL.iter().map(|k| k.subject()).collect();
                self.poison.extend(feed_poison(&self.js, &subjects).await?);
            }
            Fault::KillStreamLeader => {
                let stream = LEADER_STREAMS[self.leader_kills % LEADER_STREAMS.len()];
                self.leader_kills += 1;
                let cluster = self.nats.cluster()?;
                let leader = cluster
                    .wait_stream_leader(stream, None, Duration::from_secs(60))
                    .await?;
                label = format!("kill the {stream} leader");
                node = cluster.name(leader).to_owned();
                cluster.kill(leader).await;
                down = Some((leader, NODE_DOWN));
            }
            Fault::KillMetaLeader => {
                let cluster = self.nats.cluster()?;
                let leader = cluster.wait_meta_leader(Duration::from_secs(60)).await?;
                node = cluster.name(leader).to_owned();
                cluster.kill(leader).await;
                down = Some((leader, NODE_DOWN));
            }
            Fault::KillNode => {
                let cluster = self.nats.cluster()?;
                let n = fastrand::usize(..cluster.len());
                node = cluster.name(n).to_owned();
                cluster.kill(n).await;
                down = Some((n, NODE_DOWN));
            }
            Fault::StopNodePastDeadline => {
                let cluster = self.nats.cluster()?;
                let n = fastrand::usize(..cluster.len());
                node = cluster.name(n).to_owned();
                cluster.stop(n).await?;
                down = Some((n, NODE_DOWN_PAST_DEADLINE));
            }
            Fault::RollingRestart => {
                let cluster = self.nats.cluster()?;
                for n in 0..cluster.len() {
                    cluster.stop(n).await?;
                    cluster.start_again(n).await?;
                    whole_again(cluster).await?;
                }
            }
        }
        Ok(Injected {
            label,
            node,
            started,
            end: self.mark().await?,
            down,
            details,
        })
    }

    /// The recovery probe: from the fault's end until a saga reaches its end again, an order
    /// placed after it is confirmed, and (after a lasting fault) every event held in an outbox
    /// meanwhile is sent. Then a node kept down is started again.
    async fn recover(&mut self, injected: Injected) -> anyhow::Result<()> {
        let Injected {
            label,
            node,
            started,
            end,
            down,
            details,
        } = injected;
        let lasted = details.is_some();
        let (mut sagas_moving, mut orders_confirmed, mut held_sent) = (None, None, None);
        let (sagas_moving, orders_confirmed) = loop {
            if sagas_moving.is_none()
                && terminal_sagas(&self.pools[&Svc::Saga]).await > end.sagas_ended
            {
                sagas_moving = Some(end.at.elapsed());
            }
            if orders_confirmed.is_none()
                && confirmed_since(&self.pools[&Svc::Order], end.since).await
            {
                orders_confirmed = Some(end.at.elapsed());
            }
            if lasted
                && held_sent.is_none()
                && unsent_written_before(&self.pools, end.since).await == Some(0)
            {
                held_sent = Some(end.at.elapsed());
            }
            if let (Some(s), Some(o)) = (sagas_moving, orders_confirmed)
                && (held_sent.is_some() || !lasted)
            {
                break (s, o);
            }
            if end.at.elapsed() > RECOVER_WITHIN {
                if sagas_moving.is_none() {
                    bail!("no saga moved for {RECOVER_WITHIN:?} after {label}");
                }
                if orders_confirmed.is_none() {
                    bail!("no order placed after {label} was confirmed within {RECOVER_WITHIN:?}");
                }
                bail!(
                    "events held in the outboxes during {label} were not all sent within {RECOVER_WITHIN:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let at_node = if node.is_empty() {
            String::new()
        } else {
            format!(" ({node})")
        };
        let held = held_sent
            .map(|d| {
                format!(
                    ", every event held meanwhile sent after {:.2}s",
                    d.as_secs_f64()
                )
            })
            .unwrap_or_default();
        eprintln!(
            "chaos: {label}{at_node}: sagas moving again after {:.2}s, a new order confirmed after {:.2}s{held}",
            sagas_moving.as_secs_f64(),
            orders_confirmed.as_secs_f64()
        );
        self.recoveries.push(Recovery {
            fault: label,
            node,
            fault_seconds: end.at.duration_since(started),
            sagas_moving,
            orders_confirmed,
            held_events_sent: held_sent,
            details,
        });
        if let Some((n, for_how_long)) = down {
            tokio::time::sleep(for_how_long.saturating_sub(end.at.elapsed())).await;
            let cluster = self.nats.cluster()?;
            cluster.start_again(n).await?;
            whole_again(cluster).await?;
        }
        Ok(())
    }

    /// Stops the load, waits for every saga to end, and runs every check; each that fails is
    /// named in the verdict.
    async fn verdict(&mut self) -> anyhow::Result<Verdict> {
        self.stop_load.store(true, Ordering::Relaxed);
        let load = self.load.take().context("the load runs")?;
        let mut orders = load.await??;
        orders.extend(self.cancelled_early.iter().cloned());
        eprintln!(
            "chaos: load stopped after {} orders; waiting for every saga to end",
            orders.len()
        );
        let mut failed = self.fault_failures.clone();
        let settle = Duration::from_millis(SAGA_TIMEOUT_MS) + Duration::from_secs(120);
        let deadline = Instant::now() + settle;
        let tally = loop {
            match self.client.check_invariants(&orders, &self.stock).await {
                Ok(tally) => break Some(tally),
                Err(e) if Instant::now() > deadline => {
                    failed.push(format!("invariants do not hold after {settle:?}: {e}"));
                    break None;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let never_charged = noted(
            &mut failed,
            check_cancelled_early(&self.client, &self.cancelled_early).await,
        );
        let unsent = noted(&mut failed, unsent_outbox(&self.pools, deadline).await);
        if let Nats::Cluster(cluster) = &self.nats {
            noted(&mut failed, whole_again(cluster).await);
            noted(&mut failed, replicas_agree(cluster).await);
        }
        let dead_letters = noted(&mut failed, check_dlq(&self.js, &self.poison).await);
        let double_charges: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT order_id FROM payments GROUP BY order_id HAVING count(*) > 1) d",
        )
        .fetch_one(&self.pools[&Svc::Payment])
        .await?;
        if double_charges != 0 {
            failed.push(format!("{double_charges} orders charged more than once"));
        }
        Ok(Verdict {
            failed,
            orders,
            tally,
            never_charged,
            unsent,
            dead_letters,
            double_charges,
        })
    }

    /// Prints the report (and writes it to `--report`); fails, naming them, if a check did not
    /// hold.
    async fn report(self, verdict: Verdict) -> anyhow::Result<()> {
        for task in &self.background {
            task.abort();
        }
        let exits = self.exits.lock().await.clone();
        let faults = &self.recoveries;
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
        for f in faults {
            *by_kind.entry(f.fault.as_str()).or_default() += 1;
            kinds.insert(f.fault.as_str());
        }
        let recovery_by_kind: serde_json::Map<String, Value> = kinds
            .iter()
            .map(|kind| {
                let of_kind = || faults.iter().filter(|f| f.fault == *kind);
                let mut figures = json!({
                    "sagasMoving": median_max(of_kind().map(|f| f.sagas_moving).collect()),
                    "newOrderConfirmed": median_max(of_kind().map(|f| f.orders_confirmed).collect()),
                    "faultLasted": median_max(of_kind().map(|f| f.fault_seconds).collect()),
                });
                let held: Vec<Duration> = of_kind().filter_map(|f| f.held_events_sent).collect();
                if !held.is_empty() {
                    figures["heldEventsSent"] = median_max(held);
                }
                ((*kind).to_owned(), figures)
            })
            .collect();
        let Verdict {
            failed,
            orders,
            tally,
            never_charged,
            unsent,
            dead_letters,
            double_charges,
        } = verdict;
        let mut report = json!({
            "nats": if self.options.cluster { "cluster" } else { "single" },
            "natsNodes": match &self.nats { Nats::Single(_) => 1, Nats::Cluster(c) => c.len() },
            "streamReplicas": self.nats.replicas(),
            "durationSeconds": self.options.duration.as_secs_f64(),
            "holdSeconds": self.options.hold.as_secs_f64(),
            "schedule": self.options.faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
            "orders": orders.len(),
            "confirmed": tally.as_ref().map(|t| t.confirmed),
            "cancelled": tally.as_ref().map(|t| t.cancelled),
            "postRetries": self.counters.post_retries.load(Ordering::Relaxed),
            "postAnswers": self.counters.answers(),
            "faultsInjected": faults.len(),
            "faultsByKind": by_kind,
            "duplicatesDelivered": self.counters.duplicates.load(Ordering::Relaxed),
            "cancelBeforeCreateOrders": self.cancelled_early.len(),
            "cancelBeforeCreateNeverCharged": never_charged,
            "poisonMessagesFed": self.poison.len(),
            "deadLetters": dead_letters,
            "ordersLost": tally.as_ref().map(|t| orders.len() - (t.confirmed + t.cancelled)),
            "ordersChargedTwice": double_charges,
            "outboxRowsUnsent": unsent,
            "serviceExits": exits.len(),
            "serviceExitDetails": exits.iter().map(|e| json!({"process": e.process, "status": e.status,
                "atSeconds": e.at.as_secs_f64(), "lastLogLine": e.last_words})).collect::<Vec<_>>(),
            "longestRecoverySeconds": longest.sagas_moving.as_secs_f64(),
            "longestRecoveryFault": longest.fault,
            "longestNewOrderConfirmedSeconds": longest_flow.orders_confirmed.as_secs_f64(),
            "longestNewOrderConfirmedFault": longest_flow.fault,
            "recoveryByKind": recovery_by_kind,
            "recoveries": faults,
        });
        report["everyGuaranteeHeld"] = json!(failed.is_empty());
        report["failedChecks"] = json!(failed);
        let text = serde_json::to_string_pretty(&report)?;
        if let Some(path) = &self.options.report {
            std::fs::write(path, &text)?;
        }
        println!("{text}");
        if !failed.is_empty() {
            bail!("{}", failed.join("; "));
        }
        println!("chaos: every guarantee held");
        let run_dir = self.run_dir.clone();
        drop(self);
        let _ = std::fs::remove_dir_all(&run_dir);
        Ok(())
    }

    /// The base URLs of the instances of `svc`.
    pub(crate) async fn bases(&self, svc: Svc) -> Vec<String> {
        self.procs
            .lock()
            .await
            .iter()
            .filter(|p| p.svc == svc)
            .map(Proc::base)
            .collect()
    }
}

/// Rows of every outbox written before `since` (the database's clock) and not yet sent; `None`
/// while a database cannot say.
async fn unsent_written_before(pools: &HashMap<Svc, PgPool>, since: f64) -> Option<i64> {
    let mut unsent = 0;
    for pool in pools.values() {
        unsent += sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NULL \
             AND created_at <= to_timestamp($1)",
        )
        .bind(since)
        .fetch_one(pool)
        .await
        .ok()?;
    }
    Some(unsent)
}

/// Creates every stream with `replicas` replicas before the services start (retrying: right
/// after a cluster forms, a creation can time out although it went through), and waits until
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
    // A stream just created may not have elected its leader yet: its info request times out
    // meanwhile, so the placement is asked again until it answers.
    for stream in shared_events::Stream::ALL {
        test_support::eventually_ok(
            &format!("stream {} on every node", stream.name()),
            Duration::from_secs(60),
            || async {
                let placement = cluster
                    .stream_placement(stream.name())
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                if placement.configured_replicas == replicas
                    && placement.nodes().len() == cluster.len()
                {
                    Ok(())
                } else {
                    Err(format!("{placement:?}"))
                }
            },
        )
        .await
        .map_err(anyhow::Error::msg)?;
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
async fn check_cancelled_early(client: &Client, ids: &[String]) -> anyhow::Result<usize> {
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
