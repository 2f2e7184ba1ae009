//! One load run: set stock, send orders, follow their ends on NATS, then report.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use saga_client::{Client, Svc};
use serde_json::{Value, json};
use shared_events::{Envelope, Event};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::stats::{Latencies, wilson95};

pub enum Mode {
    Open { rate: f64 },
    Closed { concurrency: usize },
}

pub enum Stop {
    Orders(u64),
    Duration(Duration),
}

pub struct Options {
    pub mode: Mode,
    pub stop: Stop,
    pub products: usize,
    pub stock: i64,
    pub expected_rate: Option<f64>,
    pub json: Option<PathBuf>,
    pub summary: Option<PathBuf>,
    pub check: bool,
    pub seed: u64,
    pub order_url: String,
    pub payment_url: String,
    pub inventory_url: String,
    pub saga_url: String,
    pub nats_url: String,
    pub admin_token: Option<String>,
    pub settle: Duration,
    /// Idempotency-Keys `<prefix>-<n>` (n counts orders from 0) instead of random ones.
    pub key_prefix: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Closed { concurrency: 8 },
            stop: Stop::Orders(1000),
            products: 50,
            stock: 1_000_000_000,
            expected_rate: None,
            json: None,
            summary: None,
            check: true,
            seed: 1,
            order_url: "http://127.0.0.1:3004".into(),
            payment_url: "http://127.0.0.1:3006".into(),
            inventory_url: "http://127.0.0.1:3007".into(),
            saga_url: "http://127.0.0.1:3008".into(),
            nats_url: "nats://127.0.0.1:4222".into(),
            admin_token: None,
            settle: Duration::from_secs(90),
            key_prefix: None,
        }
    }
}

/// What is known of each order.
#[derive(Default)]
struct Book {
    sent: HashMap<Uuid, Instant>,
    ended: HashMap<Uuid, (Instant, String)>,
    payment: HashMap<Uuid, bool>,
    post: Latencies,
    failures: u64,
}

struct Shared {
    book: Mutex<Book>,
    sent: AtomicU64,
    stop: AtomicBool,
    keys: AtomicU64,
    key_prefix: Option<String>,
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let base = HashMap::from([
        (Svc::Order, o.order_url.clone()),
        (Svc::Payment, o.payment_url.clone()),
        (Svc::Inventory, o.inventory_url.clone()),
        (Svc::Saga, o.saga_url.clone()),
    ]);
    let client = Client::new(base);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;

    // Products of this run, each with its stock set by the admin call.
    fastrand::seed(o.seed);
    let run_tag = Uuid::now_v7().simple().to_string()[20..].to_owned();
    let products: Vec<String> = (0..o.products)
        .map(|i| format!("load-{run_tag}-{i}"))
        .collect();
    let token = o
        .admin_token
        .clone()
        .context("setting stock needs the admin token (--admin-token or ADMIN_TOKEN)")?;
    for p in &products {
        let r = http
            .put(client.url(Svc::Inventory, &format!("/inventory/{p}")))
            .bearer_auth(&token)
            .json(&json!({"onHand": o.stock}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "setting stock of {p}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
    }

    let shared = Arc::new(Shared {
        book: Mutex::default(),
        sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        keys: AtomicU64::new(0),
        key_prefix: o.key_prefix.clone(),
    });
    let nats = async_nats::connect(o.nats_url.as_str())
        .await
        .context("connecting to NATS")?;
    let listener = tokio::spawn(follow(nats, shared.clone()));

    let started = Instant::now();
    let progress = tokio::spawn(progress(shared.clone(), started));
    let products = Arc::new(products);
    let limit = match o.stop {
        Stop::Orders(n) => Some(n),
        Stop::Duration(_) => None,
    };
    let until = match o.stop {
        Stop::Duration(d) => Some(started + d),
        Stop::Orders(_) => None,
    };
    let more = {
        let shared = shared.clone();
        move || {
            !shared.stop.load(Ordering::Relaxed)
                && until.is_none_or(|t| Instant::now() < t)
                && limit.is_none_or(|n| shared.sent.fetch_add(1, Ordering::Relaxed) < n)
        }
    };
    let mut tasks = Vec::new();
    match o.mode {
        Mode::Open { rate } => {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                tick.tick().await;
                if !more() {
                    break;
                }
                let (http, client, shared, products) = (
                    http.clone(),
                    client.clone(),
                    shared.clone(),
                    products.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    place(&http, &client, &shared, &products).await
                }));
            }
        }
        Mode::Closed { concurrency } => {
            for _ in 0..concurrency {
                let (http, client, shared, products) = (
                    http.clone(),
                    client.clone(),
                    shared.clone(),
                    products.clone(),
                );
                let more = more.clone();
                tasks.push(tokio::spawn(async move {
                    while more() {
                        place(&http, &client, &shared, &products).await;
                    }
                }));
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let sending = started.elapsed();

    // Wait for every order's end.
    let deadline = Instant::now() + o.settle;
    loop {
        let (sent, ended) = {
            let book = shared.book.lock().await;
            (
                book.sent.len(),
                book.sent
                    .keys()
                    .filter(|id| book.ended.contains_key(id))
                    .count(),
            )
        };
        if ended == sent || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    eprintln!();
    listener.abort();

    let book = shared.book.lock().await;
    let orders: Vec<Uuid> = book.sent.keys().copied().collect();
    let mut end_latency = Latencies::default();
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    let mut last_end = started;
    let mut unfinished = 0u64;
    for id in &orders {
        match book.ended.get(id) {
            Some((at, outcome)) => {
                end_latency.record(at.saturating_duration_since(book.sent[id]));
                *outcomes.entry(outcome.clone()).or_default() += 1;
                last_end = last_end.max(*at);
            }
            None => unfinished += 1,
        }
    }
    let span = last_end.saturating_duration_since(started).max(sending);
    // Only orders that ended count: an overloaded system must not look faster than it is.
    let finished = orders.len() as u64 - unfinished;
    let throughput = finished as f64 / span.as_secs_f64().max(1e-9);
    let decided: Vec<bool> = orders
        .iter()
        .filter_map(|id| book.payment.get(id).copied())
        .collect();
    let approved = decided.iter().filter(|ok| **ok).count() as u64;
    let (lo, hi) = wilson95(approved, decided.len() as u64);
    let share = if decided.is_empty() {
        0.0
    } else {
        approved as f64 / decided.len() as f64
    };

    let invariants = if o.check && unfinished == 0 {
        let ids: Vec<String> = orders.iter().map(Uuid::to_string).collect();
        let stock: Vec<(String, i64)> = products.iter().map(|p| (p.clone(), o.stock)).collect();
        let check_deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match client.check_invariants(&ids, &stock).await {
                Ok(_) => break json!("hold"),
                Err(e) if Instant::now() > check_deadline => break json!(format!("VIOLATED: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    } else if o.check {
        json!(format!("not checked: {unfinished} orders never ended"))
    } else {
        json!("not checked (--no-check)")
    };

    let mode = match o.mode {
        Mode::Open { rate } => json!({"loop": "open", "rate": rate}),
        Mode::Closed { concurrency } => json!({"loop": "closed", "concurrency": concurrency}),
    };
    let report = json!({
        "mode": mode,
        "orders": orders.len(),
        "postFailures": book.failures,
        "unfinished": unfinished,
        "sendingSeconds": sending.as_secs_f64(),
        "firstPostToLastEndSeconds": span.as_secs_f64(),
        "throughputOrdersPerSecond": throughput,
        "postLatency": book.post.json(),
        "orderToEndLatency": end_latency.json(),
        "outcomes": outcomes,
        "payment": {"decided": decided.len(), "approved": approved, "share": share,
                    "interval95": [lo, hi], "configuredRate": o.expected_rate},
        "invariants": invariants,
    });
    let mut summary = format!(
        "{} orders, {finished} ended within {:.1} s: {:.0} orders/s from first POST to last end ({} POST failures, {} unfinished)\n\
         POST /orders:  {}\norder to end:  {}\noutcomes:      {}\n\
         payment:       {approved} of {} approved = {:.4} (95% interval {:.4} to {:.4}){}\ninvariants:    {}\n",
        orders.len(),
        span.as_secs_f64(),
        throughput,
        book.failures,
        unfinished,
        book.post.line(),
        end_latency.line(),
        serde_json::to_string(&outcomes)?,
        decided.len(),
        share,
        lo,
        hi,
        o.expected_rate
            .map(|r| format!(
                "; configured {r}: {}",
                if (lo..=hi).contains(&r) {
                    "inside"
                } else {
                    "OUTSIDE"
                }
            ))
            .unwrap_or_default(),
        invariants.as_str().unwrap_or_default(),
    );
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &o.summary {
        std::fs::write(path, &summary)?;
    }
    summary.pop();
    println!("{summary}");
    if unfinished > 0
        || invariants
            .as_str()
            .is_some_and(|s| s.starts_with("VIOLATED"))
    {
        bail!("the run did not end well");
    }
    Ok(())
}

/// Places one order, retrying a failed POST with the same Idempotency-Key a few times.
async fn place(http: &reqwest::Client, client: &Client, shared: &Shared, products: &[String]) {
    let product = &products[fastrand::usize(..products.len())];
    let body = json!({"customerId": "load", "items": [
        {"productId": product, "quantity": 1, "unitPrice": fastrand::u32(100..10_000) as f64 / 100.0}]});
    let key = match &shared.key_prefix {
        Some(prefix) => format!("{prefix}-{}", shared.keys.fetch_add(1, Ordering::Relaxed)),
        None => Uuid::now_v7().to_string(),
    };
    for _ in 0..5 {
        let at = Instant::now();
        let sent = http
            .post(client.url(Svc::Order, "/orders"))
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        if let Ok(r) = sent
            && r.status().as_u16() == 201
            && let Ok(order) = r.json::<Value>().await
            && let Some(id) = order["orderId"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
        {
            let mut book = shared.book.lock().await;
            book.post.record(at.elapsed());
            book.sent.insert(id, at);
            return;
        }
        shared.book.lock().await.failures += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Follows order ends and payment decisions on NATS (core subscriptions see every publish).
async fn follow(nats: async_nats::Client, shared: Arc<Shared>) -> anyhow::Result<()> {
    let orders = nats.subscribe("order.>").await?;
    let payments = nats.subscribe("payment.>").await?;
    let mut all = futures_util::stream::select(orders, payments);
    while let Some(msg) = all.next().await {
        let Ok(event) = Envelope::decode(&msg.payload) else {
            continue;
        };
        let now = Instant::now();
        let mut book = shared.book.lock().await;
        match &event.payload {
            Event::OrderConfirmed(e) => {
                book.ended
                    .entry(e.order_id)
                    .or_insert((now, "CONFIRMED".into()));
            }
            Event::OrderCancelled(e) => {
                book.ended
                    .entry(e.order_id)
                    .or_insert((now, format!("CANCELLED:{}", e.reason.as_str())));
            }
            Event::PaymentConfirmed(e) => {
                book.payment.entry(e.order_id).or_insert(true);
            }
            Event::PaymentFailed(e) => {
                book.payment.entry(e.order_id).or_insert(false);
            }
            _ => {}
        }
    }
    Ok(())
}

/// One progress line on stderr, rewritten every second.
async fn progress(shared: Arc<Shared>, started: Instant) {
    let mut last = 0usize;
    while !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let book = shared.book.lock().await;
        let sent = book.sent.len();
        let ended = book
            .sent
            .keys()
            .filter(|id| book.ended.contains_key(id))
            .count();
        eprint!(
            "\r{:>6.1}s  sent {sent} ({}/s)  ended {ended}  in flight {}  post p99 {:.1} ms   ",
            started.elapsed().as_secs_f64(),
            sent - last,
            sent - ended,
            book.post.json()["p99Ms"].as_f64().unwrap_or(0.0)
        );
        last = sent;
    }
}
