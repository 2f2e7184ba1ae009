//! One load run: set stock, send orders, follow their ends on NATS, then report.
//!
//! Steps, each a function: [`prepare`] (products and their stock), [`send`] (the open or closed
//! loop), [`settle`] (until every accepted order has ended), [`check`] (the invariants) and
//! [`Report::new`] (what happened, typed: `--json` writes it, `scripts/lib/bench.py` reads it).

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use saga_client::{Client, Svc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared_events::{Envelope, Event};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::stats::{Latencies, LatencySummary, wilson95};

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

/// One order line as the generator makes it: which product (by its index), how many, at what
/// price in cents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    pub product: usize,
    pub quantity: u32,
    pub cents: u32,
}

/// The `n`th order of a run with this seed: the same for the same seed and `n`, whichever task
/// of whichever thread places it.
pub fn nth_order(seed: u64, n: u64, products: usize) -> Line {
    // SplitMix64's constant spreads consecutive numbers over the generator's seeds.
    let mut rng = fastrand::Rng::with_seed(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    Line {
        product: rng.usize(..products.max(1)),
        quantity: 1,
        cents: rng.u32(100..10_000),
    }
}

/// What is known of each order.
#[derive(Default)]
struct Book {
    sent: HashMap<Uuid, Instant>,
    ended: HashMap<Uuid, (Instant, String)>,
    payment: HashMap<Uuid, bool>,
    post: Latencies,
    /// POSTs that failed: no answer, or an answer other than 201 and a 503 with Retry-After.
    failures: u64,
    /// 5xx answers other than a 503 with Retry-After.
    server_errors: u64,
    /// 503 answers with Retry-After: the service refused the order for now.
    refusals: u64,
    /// POSTs sent, answered or not.
    attempts: u64,
}

struct Shared {
    book: Mutex<Book>,
    /// Orders taken by the loops (the next order's number).
    sent: AtomicU64,
    stop: AtomicBool,
    key_prefix: Option<String>,
    seed: u64,
}

/// The mode of a run, as the report gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "loop", rename_all = "lowercase")]
pub enum ModeReport {
    Open { rate: f64 },
    Closed { concurrency: usize },
}

/// The payment decisions seen, against the configured success rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentReport {
    pub decided: u64,
    pub approved: u64,
    pub share: f64,
    pub interval95: [f64; 2],
    pub configured_rate: Option<f64>,
}

/// What a run did, as `--json` writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub mode: ModeReport,
    /// Orders accepted (201).
    pub orders: u64,
    /// POSTs that failed (no answer, or an error answer other than a refusal).
    pub post_failures: u64,
    /// 503 answers with `Retry-After`: orders refused for now, and sent again after it.
    pub refusals: u64,
    /// 5xx answers other than a refusal.
    pub server_errors: u64,
    /// POSTs sent per second while sending, answered or not: the load offered.
    pub attempts_per_second: f64,
    pub unfinished: u64,
    pub sending_seconds: f64,
    pub first_post_to_last_end_seconds: f64,
    /// Orders that ended, per second from the first POST to the last end.
    pub throughput_orders_per_second: f64,
    pub post_latency: LatencySummary,
    pub order_to_end_latency: LatencySummary,
    pub outcomes: HashMap<String, u64>,
    pub payment: PaymentReport,
    /// `hold`, `VIOLATED: …` or `not checked …`.
    pub invariants: String,
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let client = Client::new(HashMap::from([
        (Svc::Order, o.order_url.clone()),
        (Svc::Payment, o.payment_url.clone()),
        (Svc::Inventory, o.inventory_url.clone()),
        (Svc::Saga, o.saga_url.clone()),
    ]));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let products = Arc::new(prepare(&o, &http, &client).await?);
    let shared = Arc::new(Shared {
        book: Mutex::default(),
        sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        key_prefix: o.key_prefix.clone(),
        seed: o.seed,
    });
    let nats = async_nats::connect(o.nats_url.as_str())
        .await
        .context("connecting to NATS")?;
    let listener = tokio::spawn(follow(nats, shared.clone()));
    let started = Instant::now();
    let progress = tokio::spawn(progress(shared.clone(), started));
    send(&o, &http, &client, &shared, &products, started).await;
    let sending = started.elapsed();
    settle(&shared, o.settle).await;
    shared.stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    listener.abort();

    let book = shared.book.lock().await;
    let unfinished = book
        .sent
        .keys()
        .filter(|id| !book.ended.contains_key(id))
        .count() as u64;
    let invariants = if !o.check {
        "not checked (--no-check)".to_owned()
    } else if unfinished > 0 {
        format!("not checked: {unfinished} orders never ended")
    } else {
        check(&client, &book, &products, o.stock).await
    };
    let report = Report::new(&o, &book, started, sending, invariants);
    let mut summary = report.summary();
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &o.summary {
        std::fs::write(path, &summary)?;
    }
    summary.pop();
    println!("{summary}");
    if report.unfinished > 0 || report.invariants.starts_with("VIOLATED") {
        bail!("the run did not end well");
    }
    Ok(())
}

/// The products of this run, each with its stock set by the admin call. Their names are new in
/// every run (`load-<tag>-<i>`), unless `--key-prefix` names the run: then the same keys make the
/// same orders, with the same products, in every run.
async fn prepare(
    o: &Options,
    http: &reqwest::Client,
    client: &Client,
) -> anyhow::Result<Vec<String>> {
    let tag = match &o.key_prefix {
        Some(prefix) => prefix.clone(),
        None => Uuid::now_v7().simple().to_string()[20..].to_owned(),
    };
    let products: Vec<String> = (0..o.products).map(|i| format!("load-{tag}-{i}")).collect();
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
    Ok(products)
}

/// Sends orders until the run's stop: at a rate (open loop), or from `concurrency` tasks that
/// each send the next order as soon as the last one was accepted (closed loop).
async fn send(
    o: &Options,
    http: &reqwest::Client,
    client: &Client,
    shared: &Arc<Shared>,
    products: &Arc<Vec<String>>,
    started: Instant,
) {
    let limit = match o.stop {
        Stop::Orders(n) => Some(n),
        Stop::Duration(_) => None,
    };
    let until = match o.stop {
        Stop::Duration(d) => Some(started + d),
        Stop::Orders(_) => None,
    };
    // The next order's number, or none once the run should stop.
    let next = {
        let shared = shared.clone();
        move || {
            if shared.stop.load(Ordering::Relaxed) || until.is_some_and(|t| Instant::now() >= t) {
                return None;
            }
            let n = shared.sent.fetch_add(1, Ordering::Relaxed);
            limit.is_none_or(|max| n < max).then_some(n)
        }
    };
    let spawn = |n: Option<u64>| {
        let (http, client, shared, products) = (
            http.clone(),
            client.clone(),
            shared.clone(),
            products.clone(),
        );
        let next = next.clone();
        tokio::spawn(async move {
            match n {
                Some(n) => place(&http, &client, &shared, &products, n, until).await,
                None => {
                    while let Some(n) = next() {
                        place(&http, &client, &shared, &products, n, until).await;
                    }
                }
            }
        })
    };
    let mut tasks = Vec::new();
    match o.mode {
        Mode::Open { rate } => {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                tick.tick().await;
                let Some(n) = next() else { break };
                tasks.push(spawn(Some(n)));
            }
        }
        Mode::Closed { concurrency } => {
            for _ in 0..concurrency {
                tasks.push(spawn(None));
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Waits until every accepted order has ended, or `settle` has passed.
async fn settle(shared: &Shared, settle: Duration) {
    let deadline = Instant::now() + settle;
    loop {
        let all_ended = {
            let book = shared.book.lock().await;
            book.sent.keys().all(|id| book.ended.contains_key(id))
        };
        if all_ended || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The invariants over every order of the run.
async fn check(client: &Client, book: &Book, products: &[String], stock: i64) -> String {
    let ids: Vec<String> = book.sent.keys().map(Uuid::to_string).collect();
    let stock: Vec<(String, i64)> = products.iter().map(|p| (p.clone(), stock)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.check_invariants(&ids, &stock).await {
            Ok(_) => return "hold".into(),
            Err(e) if Instant::now() > deadline => return format!("VIOLATED: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

impl Report {
    fn new(
        o: &Options,
        book: &Book,
        started: Instant,
        sending: Duration,
        invariants: String,
    ) -> Report {
        let mut end_latency = Latencies::default();
        let mut outcomes: HashMap<String, u64> = HashMap::new();
        let mut last_end = started;
        let mut unfinished = 0u64;
        for (id, sent) in &book.sent {
            match book.ended.get(id) {
                Some((at, outcome)) => {
                    end_latency.record(at.saturating_duration_since(*sent));
                    *outcomes.entry(outcome.clone()).or_default() += 1;
                    last_end = last_end.max(*at);
                }
                None => unfinished += 1,
            }
        }
        let span = last_end.saturating_duration_since(started).max(sending);
        // Only orders that ended count: an overloaded system must not look faster than it is.
        let finished = book.sent.len() as u64 - unfinished;
        let decided: Vec<bool> = book
            .sent
            .keys()
            .filter_map(|id| book.payment.get(id).copied())
            .collect();
        let approved = decided.iter().filter(|ok| **ok).count() as u64;
        let (lo, hi) = wilson95(approved, decided.len() as u64);
        let share = if decided.is_empty() {
            0.0
        } else {
            approved as f64 / decided.len() as f64
        };
        Report {
            mode: match o.mode {
                Mode::Open { rate } => ModeReport::Open { rate },
                Mode::Closed { concurrency } => ModeReport::Closed { concurrency },
            },
            orders: book.sent.len() as u64,
            post_failures: book.failures,
            refusals: book.refusals,
            server_errors: book.server_errors,
            attempts_per_second: book.attempts as f64 / sending.as_secs_f64().max(1e-9),
            unfinished,
            sending_seconds: sending.as_secs_f64(),
            first_post_to_last_end_seconds: span.as_secs_f64(),
            throughput_orders_per_second: finished as f64 / span.as_secs_f64().max(1e-9),
            post_latency: book.post.summary(),
            order_to_end_latency: end_latency.summary(),
            outcomes,
            payment: PaymentReport {
                decided: decided.len() as u64,
                approved,
                share,
                interval95: [lo, hi],
                configured_rate: o.expected_rate,
            },
            invariants,
        }
    }

    /// The lines the run prints.
    fn summary(&self) -> String {
        let latency = |l: &LatencySummary| {
            format!(
                "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
                l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
            )
        };
        let p = &self.payment;
        let configured = p
            .configured_rate
            .map(|r| {
                let inside = (p.interval95[0]..=p.interval95[1]).contains(&r);
                format!(
                    "; configured {r}: {}",
                    if inside { "inside" } else { "OUTSIDE" }
                )
            })
            .unwrap_or_default();
        format!(
            "{} orders, {} ended within {:.1} s: {:.0} orders/s from first POST to last end ({} POST failures, {} refusals, {} server errors, {} unfinished; {:.0} POSTs/s offered)\n\
             POST /orders:  {}\norder to end:  {}\noutcomes:      {}\n\
             payment:       {} of {} approved = {:.4} (95% interval {:.4} to {:.4}){configured}\ninvariants:    {}\n",
            self.orders,
            self.orders - self.unfinished,
            self.first_post_to_last_end_seconds,
            self.throughput_orders_per_second,
            self.post_failures,
            self.refusals,
            self.server_errors,
            self.unfinished,
            self.attempts_per_second,
            latency(&self.post_latency),
            latency(&self.order_to_end_latency),
            serde_json::to_string(&self.outcomes).unwrap_or_default(),
            p.approved,
            p.decided,
            p.share,
            p.interval95[0],
            p.interval95[1],
            self.invariants,
        )
    }
}

/// What became of one POST.
enum Answer {
    Accepted(Uuid),
    /// 503 with `Retry-After`: send the same order again after this long.
    Refused(Duration),
    /// Anything else: try again soon, a few times.
    Failed {
        server_error: bool,
    },
}

async fn post(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> Answer {
    let Ok(r) = http
        .post(url)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
    else {
        return Answer::Failed {
            server_error: false,
        };
    };
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match (status, retry_after) {
        (201, _) => match r.json::<Value>().await.ok().and_then(|order| {
            order["orderId"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
        }) {
            Some(id) => Answer::Accepted(id),
            None => Answer::Failed {
                server_error: false,
            },
        },
        (503, Some(seconds)) => Answer::Refused(Duration::from_secs(seconds)),
        (status, _) => Answer::Failed {
            server_error: status >= 500,
        },
    }
}

/// Places order `n`: a failed POST is tried again with the same Idempotency-Key a few times, and
/// a refused one again after its `Retry-After`, until the run's end.
async fn place(
    http: &reqwest::Client,
    client: &Client,
    shared: &Shared,
    products: &[String],
    n: u64,
    until: Option<Instant>,
) {
    let line = nth_order(shared.seed, n, products.len());
    let body = json!({"customerId": "load", "items": [
        {"productId": products[line.product], "quantity": line.quantity,
         "unitPrice": f64::from(line.cents) / 100.0}]});
    let key = match &shared.key_prefix {
        Some(prefix) => format!("{prefix}-{n}"),
        None => Uuid::now_v7().to_string(),
    };
    let url = client.url(Svc::Order, "/orders");
    let mut failures = 0;
    while failures < 5 {
        let at = Instant::now();
        let answer = post(http, &url, &key, &body).await;
        let mut book = shared.book.lock().await;
        book.attempts += 1;
        match answer {
            Answer::Accepted(id) => {
                book.post.record(at.elapsed());
                book.sent.insert(id, at);
                return;
            }
            Answer::Refused(wait) => {
                book.refusals += 1;
                drop(book);
                // At least what the service asked, and up to a second more: clients refused
                // together do not all come back at the same instant.
                let wait = wait + Duration::from_millis(fastrand::u64(..1000));
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(t) = until.filter(|&t| Instant::now() + wait >= t) {
                    // The run ends first: wait for its end instead of taking the next order
                    // at once, which the service would refuse at once, again and again.
                    tokio::time::sleep_until(t.into()).await;
                    return;
                }
                tokio::time::sleep(wait).await;
            }
            Answer::Failed { server_error } => {
                book.failures += 1;
                book.server_errors += u64::from(server_error);
                drop(book);
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
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

/// A progress report every second on stderr: rewritten in place on a terminal, one line each
/// otherwise (a log, a pipe).
async fn progress(shared: Arc<Shared>, started: Instant) {
    let terminal = std::io::stderr().is_terminal();
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
        let line = format!(
            "{:>6.1}s  sent {sent} ({}/s)  ended {ended}  in flight {}  refused {}  post p99 {:.1} ms",
            started.elapsed().as_secs_f64(),
            sent - last,
            sent - ended,
            book.refusals,
            book.post.summary().p99_ms
        );
        if terminal {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
        last = sent;
    }
    if terminal {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service at the returned address that answers every request 503 `OVERLOADED` with
    /// `Retry-After: 5`, counting the requests.
    async fn refusing() -> (String, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: its head, then as many bytes of body as it says.
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + length {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..end + 4 + length);
                        counted.fetch_add(1, Ordering::Relaxed);
                        let body = r#"{"error":{"code":"OVERLOADED","message":"busy"}}"#;
                        let answer = format!(
                            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 5\r\n\
                             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (base, requests)
    }

    #[tokio::test]
    async fn an_order_refused_for_longer_than_the_run_has_left_ends_the_task_at_the_runs_end() {
        let (base, requests) = refusing().await;
        let client = Client::new(HashMap::from([(Svc::Order, base)]));
        let shared = Shared {
            book: Mutex::new(Book::default()),
            sent: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            key_prefix: None,
            seed: 1,
        };
        let http = reqwest::Client::new();
        let products = vec!["p-1".to_string()];
        let started = Instant::now();
        let until = started + Duration::from_millis(800);
        // As a closed loop's task: orders one after another until the run's end.
        let mut orders = 0;
        while Instant::now() < until {
            place(&http, &client, &shared, &products, orders, Some(until)).await;
            orders += 1;
        }
        // The first refusal asked for 5 s, past the run's end: the task waited for the end,
        // and took no other order meanwhile.
        assert_eq!(orders, 1);
        assert_eq!(requests.load(Ordering::Relaxed), 1);
        assert_eq!(shared.book.lock().await.refusals, 1);
        assert!(started.elapsed() >= Duration::from_millis(800));
    }

    #[test]
    fn the_same_seed_gives_the_same_orders_whichever_thread_makes_them() {
        let made_here: Vec<Line> = (0..200).map(|n| nth_order(7, n, 50)).collect();
        let made_elsewhere: Vec<Line> = std::thread::spawn(|| {
            // Another thread, and its thread-local generator in another state.
            fastrand::seed(12345);
            let _ = fastrand::u64(..);
            (0..200).map(|n| nth_order(7, n, 50)).collect()
        })
        .join()
        .unwrap();
        assert_eq!(made_here, made_elsewhere);
        let other_seed: Vec<Line> = (0..200).map(|n| nth_order(8, n, 50)).collect();
        assert_ne!(made_here, other_seed);
        let products: std::collections::BTreeSet<usize> =
            made_here.iter().map(|l| l.product).collect();
        assert!(products.len() > 30, "orders spread over the products");
        assert!(made_here.iter().all(|l| (100..10_000).contains(&l.cents)));
    }

    #[test]
    fn the_report_reads_back_as_bench_py_reads_it() {
        let report = Report {
            mode: ModeReport::Closed { concurrency: 64 },
            orders: 10,
            post_failures: 0,
            refusals: 3,
            server_errors: 0,
            attempts_per_second: 20.0,
            unfinished: 0,
            sending_seconds: 1.0,
            first_post_to_last_end_seconds: 1.5,
            throughput_orders_per_second: 6.6,
            post_latency: LatencySummary::default(),
            order_to_end_latency: LatencySummary::default(),
            outcomes: HashMap::new(),
            payment: PaymentReport {
                decided: 0,
                approved: 0,
                share: 0.0,
                interval95: [0.0, 1.0],
                configured_rate: None,
            },
            invariants: "hold".into(),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mode"]["loop"], "closed");
        assert_eq!(json["mode"]["concurrency"], 64);
        assert!(json["throughputOrdersPerSecond"].is_number());
        assert!(json["orderToEndLatency"]["p99Ms"].is_number());
        assert!(json["postLatency"]["p50Ms"].is_number());
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
