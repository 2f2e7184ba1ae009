//! The saga dashboard (`GET /ui` on saga-coordinator, SPEC section 8), driven in headless
//! Chromium against the real stack: this test prepares the state through the public APIs (sagas
//! completed and compensated, one FAILED, dead letters), then runs `tests/ui/dashboard.mjs`
//! (Playwright over Debian's Chromium), which checks the page from a user's side and takes the
//! screenshots of docs/screenshots; then it checks through the API what the page did.
//!
//! Needs node, `tests/ui/node_modules` and `/usr/bin/chromium`: `scripts/test.sh` installs them.
//! `SAGA_UI_SCREENSHOTS=docs/screenshots cargo test -p e2e --test e2e dashboard::` refreshes the
//! checked-in screenshots (by default they go to `target/tmp/dashboard-screenshots`).
//! `SAGA_UI_HOLD=600` keeps the prepared stack up that many seconds before the browser runs, and
//! prints the page's address, to look at it by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use async_nats::jetstream::message::PublishMessage;
use reqwest::Method;
use serde_json::json;

const PAYMENT_CONSUMER: &str = "payment-service-order-created-v1";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The browser part's own limit (it takes about 20 s).
const BROWSER_LIMIT: Duration = Duration::from_secs(120);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The browser test's directory, once node, its packages and Chromium are there.
fn browser_test_dir() -> PathBuf {
    let dir = workspace_root().join("tests/ui");
    let missing = |what: &str| -> ! {
        panic!(
            "{what} is missing: scripts/test.sh installs it (Debian's chromium package, and \
             `npm ci` in tests/ui), or install it by hand to run this test alone"
        )
    };
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => missing("node (Node.js 18 or later)"),
    }
    if !dir.join("node_modules/playwright-core").is_dir() {
        missing("tests/ui/node_modules (playwright-core)");
    }
    if !Path::new(CHROMIUM).exists() {
        missing(CHROMIUM);
    }
    dir
}

fn screenshot_dir() -> PathBuf {
    match std::env::var_os("SAGA_UI_SCREENSHOTS") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots"),
    }
}

/// Runs `node dashboard.mjs` with `env`, and returns whether it passed and what it printed.
fn run_browser_test(dir: &Path, env: &[(&str, String)]) -> (bool, String) {
    let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser.log");
    let log = std::fs::File::create(&log_path).expect("the browser test's log");
    let mut command = Command::new("node");
    command
        .arg("dashboard.mjs")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("starting node");
    let started = Instant::now();
    let passed = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break status.success();
        }
        if started.elapsed() > BROWSER_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut output = std::fs::read_to_string(&log_path).unwrap_or_default();
    if started.elapsed() > BROWSER_LIMIT {
        output.push_str(&format!("\n(killed after {BROWSER_LIMIT:?})"));
    }
    (passed, output)
}

/// Dead letters: a copy of a real `order.created` that payment-service gave up on (a JSON
/// payload), and a poison message every consumer of its subject dead-letters (a text payload).
/// Returns the ids of the copy, and of payment-service's and inventory-service's poison entries.
async fn dead_letters(stack: &Stack) -> (i64, i64, i64) {
    let js = stack.jetstream().await;
    let created = js
        .get_stream("ORDERS")
        .await
        .expect("ORDERS")
        .get_last_raw_message_by_subject("order.created.v1")
        .await
        .expect("an order's creation");
    let copy = PublishMessage::build()
        .header("Dlq-Consumer", PAYMENT_CONSUMER)
        .header("Dlq-Subject", "order.created.v1")
        .header("Dlq-Reason", "RETRIES_EXHAUSTED")
        .header("Dlq-Detail", "8 attempts, last: database timeout")
        .payload(created.payload.clone());
    stack
        .publish(&format!("dlq.{PAYMENT_CONSUMER}"), copy)
        .await;
    let json_entry = stack
        .until(
            Svc::Saga,
            &format!("/dlq?consumer={PAYMENT_CONSUMER}&reason=RETRIES_EXHAUSTED"),
            "the copy listed",
            |p| p["items"].as_array().is_some_and(|i| i.len() == 1),
        )
        .await["items"][0]["id"]
        .as_i64()
        .expect("an id");
    stack
        .publish(
            "order.created.v1",
            PublishMessage::build()
                .message_id("dashboard-poison-1")
                .payload("{not an event".into()),
        )
        .await;
    let poison = stack
        .until(
            Svc::Saga,
            "/dlq?reason=MALFORMED",
            "the poison dead-lettered by its three consumers",
            |p| p["items"].as_array().is_some_and(|i| i.len() == 3),
        )
        .await;
    let id_of = |consumer: &str| {
        poison["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|d| d["consumer"] == consumer)
            .and_then(|d| d["id"].as_i64())
            .unwrap_or_else(|| panic!("{consumer}'s poison entry"))
    };
    (
        json_entry,
        id_of(PAYMENT_CONSUMER),
        id_of("inventory-service-order-created-v1"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_sagas_and_dead_letters_and_acts_on_them_from_the_page() {
    let browser_dir = browser_test_dir();
    let mut stack = Stack::start(Options {
        compensation_timeout: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    stack.set_stock("p-1", 20).await;
    stack.set_stock("p-2", 20).await;
    let mut orders = Vec::new();

    // Some history: completed sagas, one compensated for want of stock, one for a declined
    // payment.
    for (product, quantity, price) in [("p-1", 1, "12.5"), ("p-2", 3, "4.99"), ("p-1", 2, "7")] {
        orders.push(ids(&stack.order(&[(product, quantity, price)]).await).0);
    }
    let unavailable = ids(&stack.order(&[("no-such-product", 1, "5")]).await).0;
    stack.order_becomes(&unavailable, "CANCELLED").await;
    orders.push(unavailable);
    // Paid before payments are declined: a payment still to come would be declined too.
    for order_id in &orders[..3] {
        stack.order_becomes(order_id, "CONFIRMED").await;
    }
    assert_eq!(stack.set_simulation(json!({"successRate": 0})).await.0, 200);
    let declined = ids(&stack.order(&[("p-2", 1, "30")]).await).0;
    stack.order_becomes(&declined, "CANCELLED").await;
    orders.push(declined);
    assert_eq!(stack.set_simulation(json!({"successRate": 1})).await.0, 200);

    let (failed_order, failed_saga) = stack.failed_saga().await;
    orders.push(failed_order);
    let (json_entry, poison_entry, replayed_entry) = dead_letters(&stack).await;

    // The saga the page must show first: created last, and ended.
    let (new_order, new_saga) = ids(&stack.order(&[("p-2", 2, "15")]).await);
    stack.order_becomes(&new_order, "CONFIRMED").await;
    orders.push(new_order);
    // Its last event: the stock committed after the saga completed.
    let completed = stack
        .until(
            Svc::Saga,
            &format!("/sagas/{new_saga}"),
            "the new saga completed, its stock committed",
            |s| s["status"] == "COMPLETED" && s["inventory"]["status"] == "COMMITTED",
        )
        .await;
    let new_events = event_types(&completed);
    assert!(new_events.len() >= 3, "{completed}");

    let url = stack.url(Svc::Saga, "/ui");
    if let Some(seconds) = std::env::var("SAGA_UI_HOLD")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        println!("dashboard: {url} (token {ADMIN}); failed saga {failed_saga}; holding {seconds}s");
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }

    let screenshots = screenshot_dir();
    std::fs::create_dir_all(&screenshots).expect("the screenshot directory");
    let env = vec![
        ("SAGA_UI_URL", url),
        ("SAGA_UI_TOKEN", ADMIN.to_owned()),
        ("SAGA_UI_NEW_SAGA", new_saga.clone()),
        ("SAGA_UI_NEW_EVENTS", new_events.join(",")),
        ("SAGA_UI_FAILED_SAGA", failed_saga.clone()),
        ("SAGA_UI_DLQ_JSON", json_entry.to_string()),
        ("SAGA_UI_DLQ_DISCARD", poison_entry.to_string()),
        ("SAGA_UI_DLQ_REPLAY", replayed_entry.to_string()),
        ("SAGA_UI_SCREENSHOTS", screenshots.display().to_string()),
        ("SAGA_UI_CHROMIUM", CHROMIUM.to_owned()),
    ];
    let (passed, output) =
        tokio::task::spawn_blocking(move || run_browser_test(&browser_dir, &env))
            .await
            .expect("the browser test");
    assert!(passed, "tests/ui/dashboard.mjs failed:\n{output}");
    println!("{output}");

    // What the page did, through the API.
    let saga = stack.saga_becomes(&failed_saga, "COMPENSATED").await;
    let retry = saga["history"]
        .as_array()
        .expect("history")
        .iter()
        .find(|h| h["eventType"] == "operator.retry")
        .unwrap_or_else(|| panic!("no operator.retry in {saga}"));
    assert!(
        retry["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("token:")),
        "{retry}"
    );
    let (status, entry) = stack.get(Svc::Saga, &format!("/dlq/{poison_entry}")).await;
    assert_eq!(
        (status, entry["status"].as_str()),
        (200, Some("DISCARDED")),
        "{entry}"
    );
    assert_eq!(entry["statusDetail"], "discarded from the dashboard");
    let (_, entry) = stack
        .get(Svc::Saga, &format!("/dlq/{replayed_entry}"))
        .await;
    assert_eq!(entry["status"], "REPLAYED", "{entry}");
    let (_, audit) = stack
        .admin(
            Svc::Saga,
            Method::GET,
            "/admin/audit?limit=100",
            None,
            Some(ADMIN),
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("audit items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        vec!["dlq.replay", "dlq.discard", "saga.retry"],
        "the page's admin calls, once each"
    );
    stack
        .invariants_hold(&orders, &[("p-1", 20), ("p-2", 20)])
        .await;
}
