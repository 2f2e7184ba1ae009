//! `saga-upgrade`: a rolling upgrade under load, and a rollback. The four services run on the
//! previous release (two instances each, on infrastructure of their own) while orders flow; one
//! service at a time, in an order drawn from a seed, each instance is stopped as a deployment
//! stops it (SIGTERM) and started on the new release with the environment it had. Then one
//! service goes back to the previous release, and forward again. At the end every accepted order
//! must have ended, the invariants hold, every step must have sagas that began before it and
//! ended after it, and nothing may be dead-lettered but the poison the harness fed on purpose.
//! See docs/upgrading.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream;
use futures_util::StreamExt as _;
use saga_client::{Client, Svc};
use serde_json::{Value, json};
use sqlx::PgPool;
use test_support::{NatsServer, PgServer, free_port};
use uuid::Uuid;

use crate::checks::*;
use crate::procs::*;

pub struct Options {
    /// The previous release's binaries.
    pub old_bin_dir: PathBuf,
    /// The new release's binaries.
    pub new_bin_dir: PathBuf,
    /// Orders per second, open loop.
    pub rate: f64,
    /// Draws the order of the services and the one rolled back.
    pub seed: u64,
    /// Orders confirmed before each step and cancelled after it.
    pub held: usize,
    /// Orders placed and ended on each mix of releases before the roll goes on: after each
    /// step, and half as many while a service runs one instance of each release.
    pub per_step: usize,
    pub report: Option<PathBuf>,
    /// Settings given to the new release's instances only (a rolling upgrade gives none: this
    /// shows what a change-over that breaks the contract does).
    pub new_env: Vec<(String, String)>,
}

const ADMIN: &str = "upgrade-admin";
const SAGA_TIMEOUT_MS: u64 = 10_000;
/// How long a stopped instance may take to finish its work before it is killed.
const GRACE: Duration = Duration::from_secs(30);
/// How long the system may take to end an order placed after a step.
const PROGRESS: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Release {
    Previous,
    New,
}

impl Release {
    fn label(self) -> &'static str {
        match self {
            Release::Previous => "previous",
            Release::New => "new",
        }
    }
}

/// One step of the roll: every instance of `service` onto `to`.
#[derive(Clone, Copy, Debug)]
struct Step {
    service: &'static str,
    to: Release,
}

/// The steps drawn from `seed`: every service forward in a shuffled order, then one of them
/// back and forward again.
fn plan(seed: u64) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut order: Vec<&'static str> = SERVICES.iter().map(|(name, _, _)| *name).collect();
    rng.shuffle(&mut order);
    let back = order[rng.usize(..order.len())];
    let mut steps: Vec<Step> = order
        .into_iter()
        .map(|service| Step {
            service,
            to: Release::New,
        })
        .collect();
    steps.push(Step {
        service: back,
        to: Release::Previous,
    });
    steps.push(Step {
        service: back,
        to: Release::New,
    });
    steps
}

/// What a step did, on the database's clock.
struct StepRecord {
    step: Step,
    /// When the first instance was asked to stop.
    began: f64,
    /// When the last instance of the release rolled away had exited.
    old_gone: f64,
    took: Duration,
    /// From the end of the step until the orders placed after it had ended.
    progress: Duration,
    /// Orders confirmed before the step and cancelled after it.
    held: Vec<String>,
}

/// The system under test: its own NATS and PostgreSQL, eight service processes.
struct Rig {
    run_dir: PathBuf,
    _nats: NatsServer,
    _pg: PgServer,
    pools: HashMap<Svc, PgPool>,
    js: jetstream::Context,
    procs: Vec<Proc>,
    /// Each process's environment as the previous release ran it.
    envs: Vec<Vec<(String, String)>>,
    http: reqwest::Client,
    client: Client,
    stock: Vec<(String, i64)>,
}

impl Rig {
    async fn start(old_bin_dir: &std::path::Path) -> anyhow::Result<Rig> {
        let run_dir =
            std::env::temp_dir().join(format!("saga-upgrade-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&run_dir)?;
        eprintln!("upgrade: logs in {}", run_dir.display());
        let nats = NatsServer::start().await?;
        let js = messaging::nats::jetstream(
            messaging::nats::connect(&messaging::nats::NatsSettings::new(nats.url(), "upgrade"))
                .await?,
        );
        let pg = PgServer::start().await?;
        let mut pools = HashMap::new();
        for (_, svc, db) in SERVICES {
            pg.create_database(db).await?;
            pools.insert(svc, PgPool::connect(&pg.url(db)).await?);
        }
        let mut procs = Vec::new();
        for (name, svc, db) in SERVICES {
            for instance in ["a", "b"] {
                let port = free_port();
                let env: Vec<(String, String)> = [
                    ("PORT", port.to_string()),
                    ("DATABASE_URL", pg.url(db)),
                    ("NATS_URL", nats.url()),
                    ("ADMIN_TOKEN", ADMIN.into()),
                    ("PAYMENT_SUCCESS_RATE", "0.85".into()),
                    ("PAYMENT_SEED", "7".into()),
                    ("SAGA_TIMEOUT_MS", SAGA_TIMEOUT_MS.to_string()),
                    ("DB_MAX_CONNECTIONS", "5".into()),
                    ("RUST_LOG", "warn".into()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                let mut p = Proc {
                    name,
                    svc,
                    port,
                    env,
                    log: run_dir.join(format!("{name}-{instance}.log")),
                    child: None,
                };
                p.spawn(old_bin_dir)?;
                procs.push(p);
            }
        }
        let http = reqwest::Client::new();
        wait_ready(&http, procs.iter().map(Proc::base).collect()).await?;
        let base = SERVICES
            .iter()
            .map(|(_, svc, _)| {
                let first = procs.iter().find(|p| p.svc == *svc).map(Proc::base);
                (*svc, first.unwrap_or_default())
            })
            .collect();
        let client = Client::new(base);
        let stock: Vec<(String, i64)> = (0..5).map(|i| (format!("up-{i}"), 1_000_000)).collect();
        for (product, n) in &stock {
            let r = http
                .put(client.url(Svc::Inventory, &format!("/inventory/{product}")))
                .bearer_auth(ADMIN)
                .json(&json!({"onHand": n}))
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("setting stock: {}", r.status());
            }
        }
        let envs = procs.iter().map(|p| p.env.clone()).collect();
        Ok(Rig {
            run_dir,
            _nats: nats,
            _pg: pg,
            pools,
            js,
            procs,
            envs,
            http,
            client,
            stock,
        })
    }

    fn order_bases(&self) -> Vec<String> {
        self.procs
            .iter()
            .filter(|p| p.svc == Svc::Order)
            .map(Proc::base)
            .collect()
    }

    async fn clock(&self) -> anyhow::Result<f64> {
        db_clock(&self.pools[&Svc::Order]).await
    }

    /// Up to `n` orders confirmed most recently.
    async fn confirmed(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT order_id FROM orders WHERE status = 'CONFIRMED' \
             ORDER BY updated_at DESC LIMIT $1",
        )
        .bind(n as i64)
        .fetch_all(&self.pools[&Svc::Order])
        .await?;
        Ok(ids.iter().map(Uuid::to_string).collect())
    }

    /// Cancels each order as its customer would, on either order-service instance.
    async fn cancel(&self, ids: &[String]) -> anyhow::Result<()> {
        let bases = self.order_bases();
        for (i, id) in ids.iter().enumerate() {
            let mut tries = 0;
            loop {
                let base = &bases[(i + tries) % bases.len()];
                let sent = self
                    .http
                    .post(format!("{base}/orders/{id}/cancel"))
                    .json(&json!({"reason": "held across an upgrade step"}))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                if matches!(&sent, Ok(r) if r.status().is_success()) {
                    break;
                }
                tries += 1;
                if tries > 100 {
                    bail!("cancelling {id}: {sent:?}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Rolls every instance of the step's service onto its release, one at a time.
    async fn roll(&mut self, step: Step, options: &Options) -> anyhow::Result<StepRecord> {
        let held = self.confirmed(options.held).await?;
        if held.len() < options.held {
            bail!("only {} confirmed orders to hold across a step", held.len());
        }
        let began = self.clock().await?;
        let started = Instant::now();
        let dir = match step.to {
            Release::Previous => &options.old_bin_dir,
            Release::New => &options.new_bin_dir,
        };
        let mut old_gone = began;
        let instances: Vec<usize> = (0..self.procs.len())
            .filter(|&i| self.procs[i].name == step.service)
            .collect();
        for (n, i) in instances.into_iter().enumerate() {
            if n > 0 {
                // The service runs one instance of each release: orders go through both.
                let since = self.clock().await?;
                self.progress_after(since, options.per_step / 2).await?;
            }
            let mut env = self.envs[i].clone();
            if step.to == Release::New {
                env.extend(options.new_env.iter().cloned());
            }
            let p = &mut self.procs[i];
            p.stop(GRACE).await?;
            old_gone = db_clock(&self.pools[&Svc::Order]).await?;
            p.env = env;
            p.spawn(dir)?;
            wait_ready(&self.http, vec![p.base()]).await?;
        }
        let took = started.elapsed();
        self.cancel(&held).await?;
        let progress = self.progress_after(old_gone, options.per_step).await?;
        eprintln!(
            "upgrade: {} on the {} release in {:.1}s; {} orders placed after it ended {:.2}s later",
            step.service,
            step.to.label(),
            took.as_secs_f64(),
            options.per_step,
            progress.as_secs_f64()
        );
        Ok(StepRecord {
            step,
            began,
            old_gone,
            took,
            progress,
            held,
        })
    }

    /// How long until `n` orders placed after `since` (the database's clock) have ended.
    async fn progress_after(&self, since: f64, n: usize) -> anyhow::Result<Duration> {
        let at = Instant::now();
        loop {
            let ended: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM orders WHERE status <> 'PENDING' \
                 AND created_at > to_timestamp($1)",
            )
            .bind(since)
            .fetch_one(&self.pools[&Svc::Order])
            .await?;
            if ended >= n.max(1) as i64 {
                return Ok(at.elapsed());
            }
            if at.elapsed() > PROGRESS {
                bail!("{ended} of {n} orders placed after the step ended within {PROGRESS:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The open-loop load: orders at a steady rate, each retried with its `Idempotency-Key` on the
/// other order-service instance until one accepts it.
struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<Vec<Posted>>>,
    failures: Arc<AtomicU64>,
}

/// An accepted order, and how long its POST took (retries included).
struct Posted {
    id: String,
    took: Duration,
    retried: bool,
}

impl Load {
    fn start(http: reqwest::Client, bases: Vec<String>, rate: f64, products: Vec<String>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(Self::run(
            http,
            bases,
            rate,
            products,
            stop.clone(),
            failures.clone(),
        ));
        Load {
            stop,
            task,
            failures,
        }
    }

    async fn run(
        http: reqwest::Client,
        bases: Vec<String>,
        rate: f64,
        products: Vec<String>,
        stop: Arc<AtomicBool>,
        failures: Arc<AtomicU64>,
    ) -> anyhow::Result<Vec<Posted>> {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut tasks = Vec::new();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            let lines: Vec<Value> = (0..1 + n % 3)
                .map(|i| {
                    json!({"productId": products[(n + i) % products.len()],
                        "quantity": 1 + (n + i) % 3,
                        "unitPrice": ((n * 37 + i * 11) % 9_900 + 100) as f64 / 100.0})
                })
                .collect();
            let body = json!({"customerId": "upgrade", "items": lines});
            let (http, bases, failures) = (http.clone(), bases.clone(), failures.clone());
            tasks.push(tokio::spawn(async move {
                let key = Uuid::now_v7().to_string();
                let started = Instant::now();
                for attempt in 0usize..600 {
                    let base = &bases[(n + attempt) % bases.len()];
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
                        return Ok(Posted {
                            id: id.to_owned(),
                            took: started.elapsed(),
                            retried: attempt > 0,
                        });
                    }
                    failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                bail!("an order was never accepted")
            }));
        }
        let mut posted = Vec::with_capacity(tasks.len());
        for task in tasks {
            posted.push(task.await??);
        }
        Ok(posted)
    }

    async fn finish(self) -> anyhow::Result<(Vec<Posted>, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let posted = self.task.await??;
        Ok((posted, self.failures.load(Ordering::Relaxed)))
    }
}

/// The value at quantile `q` of `values` (sorted here), in seconds.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Sagas that began before `step` and ended after it: all, and those not held on purpose.
async fn straddling(pool: &PgPool, record: &StepRecord) -> anyhow::Result<(i64, i64)> {
    let held: Vec<Uuid> = record
        .held
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect();
    let (all, natural): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE NOT order_id = ANY($3)) FROM sagas \
         WHERE created_at < to_timestamp($1) AND ended_at > to_timestamp($2)",
    )
    .bind(record.began)
    .bind(record.old_gone)
    .bind(&held)
    .fetch_one(pool)
    .await?;
    Ok((all, natural))
}

/// Every consumer of a second major (`…-v2`) has taken every message of its subject: the new
/// release read the new major. Returns how many messages they were delivered in all.
async fn second_majors_consumed(js: &jetstream::Context) -> anyhow::Result<u64> {
    let mut delivered = 0;
    let mut consumers = 0;
    for stream in ["ORDERS", "PAYMENTS"] {
        let s = js.get_stream(stream).await?;
        let mut infos = s.consumers();
        while let Some(info) = infos.next().await {
            let info = info?;
            if !info.config.filter_subject.ends_with(".v2") {
                continue;
            }
            consumers += 1;
            if info.num_pending > 0 || info.num_ack_pending > 0 {
                bail!(
                    "{} left {} messages pending and {} unacknowledged",
                    info.name,
                    info.num_pending,
                    info.num_ack_pending
                );
            }
            delivered += info.delivered.stream_sequence;
        }
    }
    if consumers == 0 || delivered == 0 {
        bail!("no consumer of a second major took any message");
    }
    Ok(delivered)
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let steps = plan(options.seed);
    let order: Vec<String> = steps
        .iter()
        .map(|s| format!("{} to {}", s.service, s.to.label()))
        .collect();
    eprintln!(
        "upgrade: seed {} (rerun with --seed {}): {}",
        options.seed,
        options.seed,
        order.join(", ")
    );
    let mut rig = Rig::start(&options.old_bin_dir).await?;
    let poison = feed_poison(&rig.js, &["order.created.v1", "payment.confirmed.v1"]).await?;
    let products: Vec<String> = rig.stock.iter().map(|(p, _)| p.clone()).collect();
    let load = Load::start(rig.http.clone(), rig.order_bases(), options.rate, products);
    // Orders confirmed on the previous release, to hold across the first step.
    let warm = Instant::now();
    while rig.confirmed(options.held).await?.len() < options.held {
        if warm.elapsed() > PROGRESS {
            bail!("no orders confirmed on the previous release");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let roll_began = rig.clock().await?;
    let roll_started = Instant::now();
    let mut records = Vec::new();
    for step in steps {
        records.push(rig.roll(step, &options).await?);
    }
    let roll_took = roll_started.elapsed();
    let roll_ended = rig.clock().await?;
    let (posted, post_failures) = load.finish().await?;
    let mut orders: Vec<String> = posted.iter().map(|p| p.id.clone()).collect();
    let unique: std::collections::BTreeSet<&String> = orders.iter().collect();
    if unique.len() != orders.len() {
        bail!("retries with one Idempotency-Key made more than one order");
    }
    orders.sort();
    eprintln!(
        "upgrade: {} orders accepted; waiting for every saga to end",
        orders.len()
    );

    let mut failed: Vec<String> = Vec::new();
    let settle = Duration::from_millis(SAGA_TIMEOUT_MS) + PROGRESS;
    let deadline = Instant::now() + settle;
    let tally = loop {
        match rig.client.check_invariants(&orders, &rig.stock).await {
            Ok(tally) => break Some(tally),
            Err(e) if Instant::now() > deadline => {
                failed.push(format!("invariants do not hold after {settle:?}: {e}"));
                break None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let mut steps_report = Vec::new();
    for record in &records {
        let (all, natural) = straddling(&rig.pools[&Svc::Saga], record).await?;
        if all == 0 {
            failed.push(format!(
                "no saga began before {} went to the {} release and ended after it",
                record.step.service,
                record.step.to.label()
            ));
        }
        steps_report.push(json!({
            "service": record.step.service,
            "to": record.step.to.label(),
            "seconds": record.took.as_secs_f64(),
            "ordersEndedAfterSeconds": record.progress.as_secs_f64(),
            "sagasAcrossStep": all,
            "sagasAcrossStepNotHeld": natural,
            "heldOrders": record.held.len(),
        }));
    }
    let second_major = noted(&mut failed, second_majors_consumed(&rig.js).await);
    let dead_letters = noted(&mut failed, check_dlq(&rig.js, &poison).await);
    let unsent = noted(&mut failed, unsent_outbox(&rig.pools, deadline).await);
    let double_charges: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT order_id FROM payments GROUP BY order_id HAVING count(*) > 1) d",
    )
    .fetch_one(&rig.pools[&Svc::Payment])
    .await?;
    if double_charges != 0 {
        failed.push(format!("{double_charges} orders charged more than once"));
    }
    for p in &mut rig.procs {
        if let Some(child) = p.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            failed.push(format!("{} exited: {status}", p.label()));
        }
    }
    // Order-to-end of the orders placed during the roll (not those cancelled on purpose).
    let mut to_end: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM updated_at - created_at)::float8 FROM orders \
         WHERE created_at BETWEEN to_timestamp($1) AND to_timestamp($2) \
         AND status <> 'PENDING' AND cancellation_reason IS DISTINCT FROM 'CUSTOMER_REQUEST'",
    )
    .bind(roll_began)
    .bind(roll_ended)
    .fetch_all(&rig.pools[&Svc::Order])
    .await?;
    let mut post_seconds: Vec<f64> = posted.iter().map(|p| p.took.as_secs_f64()).collect();
    let report = json!({
        "seed": options.seed,
        "steps": steps_report,
        "rate": options.rate,
        "rollSeconds": roll_took.as_secs_f64(),
        "orders": orders.len(),
        "confirmed": tally.as_ref().map(|t| t.confirmed),
        "cancelled": tally.as_ref().map(|t| t.cancelled),
        "postFailures": post_failures,
        "ordersRetried": posted.iter().filter(|p| p.retried).count(),
        "postP99Ms": quantile(&mut post_seconds, 0.99) * 1000.0,
        "orderToEndDuringRollMs": {
            "orders": to_end.len(),
            "p50": quantile(&mut to_end, 0.50) * 1000.0,
            "p99": quantile(&mut to_end, 0.99) * 1000.0,
            "max": quantile(&mut to_end, 1.0) * 1000.0,
        },
        "secondMajorMessagesDelivered": second_major,
        "deadLetters": dead_letters,
        "poisonFed": poison.len(),
        "outboxRowsUnsent": unsent,
        "ordersChargedTwice": double_charges,
        "everyGuaranteeHeld": failed.is_empty(),
        "failedChecks": failed,
    });
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &options.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{text}");
    if !failed.is_empty() {
        bail!(
            "{} (seed {}; logs in {})",
            failed.join("; "),
            options.seed,
            rig.run_dir.display()
        );
    }
    eprintln!("upgrade: every guarantee held");
    let _ = std::fs::remove_dir_all(&rig.run_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_moves_every_service_forward_then_one_back_and_forward_again() {
        for seed in 0..50 {
            let steps = plan(seed);
            assert_eq!(steps.len(), 6);
            let mut forward: Vec<&str> = steps[..4].iter().map(|s| s.service).collect();
            assert!(steps[..4].iter().all(|s| s.to == Release::New));
            forward.sort_unstable();
            assert_eq!(
                forward,
                [
                    "inventory-service",
                    "order-service",
                    "payment-service",
                    "saga-coordinator"
                ]
            );
            assert_eq!(steps[4].service, steps[5].service);
            assert_eq!(
                (steps[4].to, steps[5].to),
                (Release::Previous, Release::New)
            );
        }
        let orders: std::collections::BTreeSet<Vec<&str>> = (0..50)
            .map(|seed| plan(seed).iter().map(|s| s.service).collect())
            .collect();
        assert!(orders.len() > 10, "the seed changes the order");
        assert_eq!(
            plan(7).iter().map(|s| s.service).collect::<Vec<_>>(),
            plan(7).iter().map(|s| s.service).collect::<Vec<_>>()
        );
    }
}
