//! The alert rules and the Grafana dashboard under docs/ops name only metrics the services
//! export, and the HTTP metrics are labelled by route template, never by raw path.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;
use async_nats::jetstream::message::PublishMessage;
use serde_json::json;

/// Every metric name of this system (`saga_…`, `http_…`, `messaging_…`, `order_…`) that `text`
/// mentions.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            ["saga_", "http_", "messaging_", "order_"]
                .iter()
                .any(|prefix| w.starts_with(prefix))
        })
        .map(str::to_owned)
        .collect()
}

fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_dashboard_name_is_exported() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ops");
    let alerts = std::fs::read_to_string(docs.join("alerts.yml")).expect("docs/ops/alerts.yml");
    let dashboard = std::fs::read_to_string(docs.join("grafana-dashboard.json"))
        .expect("docs/ops/grafana-dashboard.json");
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    let named: BTreeSet<String> = metric_names(&alerts)
        .into_iter()
        .chain(metric_names(&dashboard))
        .collect();
    assert!(named.len() >= 10, "{named:?}");

    // Traffic that makes every metric appear: a saga that completes, one that compensates, a
    // dead letter, an admin call, a request for a path no route takes.
    let stack = Stack::start(Options::default()).await;
    stack.set_stock("p-1", 5).await;
    let (done, _) = ids(&stack.order(&[("p-1", 1, "2")]).await);
    let (failed, _) = ids(&stack.order(&[("p-2", 1, "2")]).await);
    stack.order_becomes(&done, "CONFIRMED").await;
    stack.order_becomes(&failed, "CANCELLED").await;
    let (status, _) = stack.get(Svc::Order, &format!("/orders/{done}")).await;
    assert_eq!(status, 200);
    let (status, _) = stack.get(Svc::Order, "/no/such/path").await;
    assert_eq!(status, 404);
    stack
        .publish(
            "saga.completed.v1",
            PublishMessage::build().payload("poison".into()),
        )
        .await;
    stack
        .until(Svc::Saga, "/dlq", "the poison dead-lettered", |p| {
            p["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    let (status, _) = stack.set_simulation(json!({"seed": 1})).await;
    assert_eq!(status, 200);
    stack.reconcile_now().await.expect("a reconciliation run");

    let metrics = stack.metrics().await;
    let have = exported(&metrics);
    let missing: Vec<&String> = named.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "named in docs/ops but not exported: {missing:?}"
    );

    let routes: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.split("route=\"").nth(1)?.split('"').next())
        .collect();
    assert!(routes.contains("/orders/{order_id}"), "{routes:?}");
    assert!(routes.contains("/inventory/{product_id}"), "{routes:?}");
    assert!(routes.contains("unmatched"), "{routes:?}");
    assert!(
        !routes
            .iter()
            .any(|r| r.contains(&done) || r.contains("/no/such")),
        "raw paths as labels: {routes:?}"
    );
    for status in [
        "STARTED",
        "COMPLETED",
        "COMPENSATING",
        "COMPENSATED",
        "FAILED",
    ] {
        assert!(
            metrics.contains(&format!("saga_sagas{{status=\"{status}\"}}")),
            "saga_sagas{{status={status}}} missing"
        );
    }
    assert!(
        metrics.contains("saga_sagas{status=\"COMPLETED\"} 1"),
        "{metrics}"
    );
}
