//! What runs beside the faults: a steady stream of orders from a careful client, and a
//! duplicator that publishes every event a second time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// How long one order may go unaccepted before the load gives up on it: longer than any fault
/// lasts, with its recovery.
const ACCEPT_WITHIN: Duration = Duration::from_secs(300);

/// What the client and the duplicator did, counted as they go.
#[derive(Default, Debug)]
pub struct Counters {
    /// Orders sent (each with its own `Idempotency-Key`, however often it is retried).
    pub orders: AtomicU64,
    /// POSTs that had to be sent again.
    pub post_retries: AtomicU64,
    answers: Answers<AtomicU64>,
    /// Events published a second time under a fresh `Nats-Msg-Id`.
    pub duplicates: AtomicU64,
}

/// What the POSTs of orders were answered, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answers<N> {
    /// 201: the order accepted.
    pub accepted: N,
    /// 503 `OVERLOADED`: admission refused a new order.
    pub refused: N,
    /// Any other 503 (the database unavailable).
    pub unavailable: N,
    /// Any other answer of 500 or more.
    pub server_errors: N,
    /// Any other answer (4xx).
    pub other: N,
    /// No answer within 5 s, or no connection (an instance down).
    pub no_answer: N,
}

impl Answers<u64> {
    /// What was answered since `before`.
    pub fn since(self, before: Answers<u64>) -> Answers<u64> {
        Answers {
            accepted: self.accepted - before.accepted,
            refused: self.refused - before.refused,
            unavailable: self.unavailable - before.unavailable,
            server_errors: self.server_errors - before.server_errors,
            other: self.other - before.other,
            no_answer: self.no_answer - before.no_answer,
        }
    }
}

impl Counters {
    /// The answers so far.
    pub fn answers(&self) -> Answers<u64> {
        let a = &self.answers;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Answers {
            accepted: n(&a.accepted),
            refused: n(&a.refused),
            unavailable: n(&a.unavailable),
            server_errors: n(&a.server_errors),
            other: n(&a.other),
            no_answer: n(&a.no_answer),
        }
    }

    /// Counts an answer; returns how long to wait before trying again (`Retry-After` when given).
    fn count(&self, answer: &Answer) -> Duration {
        let a = &self.answers;
        let (counter, wait) = match answer {
            Answer::Accepted => (&a.accepted, Duration::ZERO),
            Answer::Status {
                status: 503,
                code,
                retry_after,
            } => {
                let wait = retry_after.unwrap_or(Duration::from_millis(100));
                if code == "OVERLOADED" {
                    (&a.refused, wait)
                } else {
                    (&a.unavailable, wait)
                }
            }
            Answer::Status { status, .. } if *status >= 500 => {
                (&a.server_errors, Duration::from_millis(100))
            }
            Answer::Status { .. } => (&a.other, Duration::from_millis(100)),
            Answer::None => (&a.no_answer, Duration::from_millis(100)),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        wait
    }
}

/// What a POST of an order got.
enum Answer {
    Accepted,
    Status {
        status: u16,
        code: String,
        retry_after: Option<Duration>,
    },
    None,
}

/// A steady stream of orders, each retried with its Idempotency-Key against either order-service
/// instance (at `order_bases`) until one accepts it, after the `Retry-After` of a 503. Returns
/// the ids of all accepted orders.
pub async fn load(
    http: reqwest::Client,
    order_bases: Vec<String>,
    rate: f64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    stock: Vec<(String, i64)>,
) -> anyhow::Result<Vec<String>> {
    let mut tasks = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(interval);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let (http, bases, counters) = (http.clone(), order_bases.clone(), counters.clone());
        let lines: Vec<Value> = (0..fastrand::usize(1..=3))
            .map(|_| {
                let (product, _) = &stock[fastrand::usize(..stock.len())];
                json!({"productId": product, "quantity": fastrand::u32(1..=3), "unitPrice": fastrand::u32(100..10_000) as f64 / 100.0})
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let key = Uuid::now_v7().to_string();
            let body = json!({"customerId": "chaos", "items": lines});
            counters.orders.fetch_add(1, Ordering::Relaxed);
            let first = Instant::now();
            for attempt in 0usize.. {
                let base = &bases[attempt % bases.len()];
                let sent = http
                    .post(format!("{base}/orders"))
                    .header("Idempotency-Key", &key)
                    .timeout(Duration::from_secs(5))
                    .json(&body)
                    .send()
                    .await;
                let (answer, order) = match sent {
                    Ok(r) => read(r).await,
                    Err(_) => (Answer::None, None),
                };
                let wait = counters.count(&answer);
                if let Some(id) = order {
                    return Ok(id);
                }
                counters.post_retries.fetch_add(1, Ordering::Relaxed);
                if first.elapsed() > ACCEPT_WITHIN {
                    bail!("an order was not accepted within {ACCEPT_WITHIN:?}");
                }
                // Spread out, so that the orders refused together do not all come back at once.
                tokio::time::sleep(wait.mul_f64(1.0 + fastrand::f64() * 0.25)).await;
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

/// The answer to a POST, and the order's id if it was accepted.
async fn read(response: reqwest::Response) -> (Answer, Option<String>) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(5)));
    let body: Value = response.json().await.unwrap_or_default();
    if status == 201
        && let Some(id) = body["orderId"].as_str()
    {
        return (Answer::Accepted, Some(id.to_owned()));
    }
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (
        Answer::Status {
            status,
            code,
            retry_after,
        },
        None,
    )
}

/// Publishes every event again under a fresh Nats-Msg-Id, which JetStream's duplicate window
/// cannot catch.
pub async fn duplicate_everything(js: jetstream::Context, counters: Arc<Counters>) {
    let client = js.client();
    let Ok(mut seen) = client.subscribe(">").await else {
        return;
    };
    while let Some(msg) = seen.next().await {
        let subject = msg.subject.as_str();
        if subject.starts_with('$')
            || subject.starts_with("_INBOX")
            || subject.starts_with("dlq.")
            || subject.starts_with("chaos.")
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
