//! One order across four services is one trace: the four services run as processes (their real
//! binaries) exporting spans by OTLP/HTTP to a receiver in this test, and logging JSON lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::{Value, json};
use test_support::{NatsServer, TestDb, eventually, free_port};
use tokio::process::{Child, Command};

use crate::common::bin_dir;

/// A span as received: the service that sent it, its name and ids, and its events' names.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    events: Vec<String>,
    links: usize,
}

type Spans = Arc<Mutex<Vec<Received>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /v1/traces`: decodes an OTLP export request and keeps its spans.
async fn receive(State(spans): State<Spans>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut kept = spans.lock().expect("spans");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                kept.push(Received {
                    service: service.clone(),
                    name: span.name.clone(),
                    trace_id: hex(&span.trace_id),
                    events: span.events.iter().map(|e| e.name.clone()).collect(),
                    links: span.links.len(),
                });
            }
        }
    }
    StatusCode::OK
}

struct Proc {
    name: &'static str,
    port: u16,
    log: PathBuf,
    child: Child,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_across_the_four_services_with_json_logs_that_carry_it() {
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("receiver");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let receiver = axum::Router::new()
        .route("/v1/traces", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let nats = NatsServer::start().await.expect("nats");
    let logs = std::env::temp_dir().join(format!("saga-trace-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&logs).expect("log dir");
    let mut procs = Vec::new();
    for name in [
        "order-service",
        "payment-service",
        "inventory-service",
        "saga-coordinator",
    ] {
        let binary = bin_dir().join(name);
        assert!(
            binary.exists(),
            "{} is not built: run `cargo build --workspace` (scripts/test.sh does)",
            binary.display()
        );
        let db = TestDb::create().await.expect("database");
        let port = free_port();
        let log = logs.join(format!("{name}.log"));
        let child = Command::new(binary)
            .env_clear()
            .env("PORT", port.to_string())
            .env("DATABASE_URL", &db.url)
            .env("NATS_URL", nats.url())
            .env("ADMIN_TOKEN", "trace-test")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("PAYMENT_SUCCESS_RATE", "1")
            .env("INVENTORY_AUTO_PROVISION", "100")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start the service");
        procs.push(Proc {
            name,
            port,
            log,
            child,
        });
    }
    let http = reqwest::Client::new();
    let url = |p: &Proc, path: &str| format!("http://127.0.0.1:{}{path}", p.port);
    for p in &procs {
        let ready = url(p, "/health/ready");
        eventually(
            &format!("{} ready", p.name),
            Duration::from_secs(60),
            || {
                let (http, ready) = (http.clone(), ready.clone());
                async move {
                    match http.get(&ready).send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                }
            },
        )
        .await;
    }

    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let order: Value = http
        .post(url(&procs[0], "/orders"))
        .header("traceparent", &traceparent)
        .json(&json!({"customerId": "c-trace", "items": [{"productId": "p-trace", "quantity": 1, "unitPrice": 3}]}))
        .send()
        .await
        .expect("POST /orders")
        .json()
        .await
        .expect("the order");
    let order_id = order["orderId"].as_str().expect("orderId").to_owned();
    let saga_id = order["sagaId"].as_str().expect("sagaId").to_owned();
    let order_path = url(&procs[0], &format!("/orders/{order_id}"));
    eventually("the order confirmed", Duration::from_secs(60), || {
        let (http, path) = (http.clone(), order_path.clone());
        async move {
            let order: Value = http
                .get(&path)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if order["status"] == "CONFIRMED" {
                Ok(())
            } else {
                Err(order.to_string())
            }
        }
    })
    .await;
    let saga: Value = http
        .get(url(&procs[3], &format!("/sagas/{saga_id}")))
        .send()
        .await
        .expect("GET saga")
        .json()
        .await
        .expect("the saga");
    assert_eq!(saga["traceId"], trace_id.as_str(), "{saga}");

    // Stopped the way a process manager stops them, the services export what they hold.
    for p in &procs {
        let pid = p.child.id().expect("pid").to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
    }
    for p in &mut procs {
        let status = tokio::time::timeout(Duration::from_secs(30), p.child.wait())
            .await
            .expect("a service stops on SIGTERM")
            .expect("exit status");
        assert!(status.success(), "{} exited with {status}", p.name);
    }

    let in_trace: Vec<Received> = eventually("spans of the trace", Duration::from_secs(30), || {
        let spans = spans.clone();
        let trace_id = trace_id.clone();
        async move {
            let found: Vec<Received> = spans
                .lock()
                .expect("spans")
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            let services: BTreeSet<&str> = found.iter().map(|s| s.service.as_str()).collect();
            if services.len() == 4 {
                Ok(found)
            } else {
                Err(format!("services so far: {services:?}"))
            }
        }
    })
    .await;
    let by_service: BTreeMap<String, Vec<String>> =
        in_trace.iter().fold(BTreeMap::new(), |mut map, s| {
            map.entry(s.service.clone())
                .or_default()
                .push(s.name.clone());
            map
        });
    let names_of = |service: &str| -> Vec<String> {
        by_service
            .iter()
            .find(|(k, _)| k.contains(service))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(
        names_of("order-service").contains(&"request".to_owned()),
        "{by_service:?}"
    );
    assert!(
        names_of("order-service").contains(&"publish".to_owned()),
        "{by_service:?}"
    );
    for consumer in ["payment-service", "inventory-service", "saga-coordinator"] {
        assert!(
            names_of(consumer).contains(&"decide".to_owned()),
            "{consumer} has no consumer span in the trace: {by_service:?}"
        );
    }
    assert!(
        in_trace
            .iter()
            .any(|s| s.service.contains("saga-coordinator")
                && s.events.iter().any(|e| e == "saga decided")),
        "the coordinator's decision is in the trace: {in_trace:?}"
    );
    let consumes: Vec<Received> = spans
        .lock()
        .expect("spans")
        .iter()
        .filter(|s| s.name == "consume")
        .cloned()
        .collect();
    assert!(
        consumes.iter().any(|s| s.links > 0),
        "batches link to the traces of their events: {consumes:?}"
    );

    // The JSON logs: every line an object; the decision carries the saga and its trace.
    let coordinator = std::fs::read_to_string(&procs[3].log).expect("coordinator log");
    let mut decisions = 0;
    for line in coordinator.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(entry.get(field).is_some(), "{field} missing: {line}");
        }
        if entry["message"] == "saga decided" && entry["sagaId"] == saga_id.as_str() {
            assert_eq!(entry["traceId"], trace_id.as_str(), "{line}");
            assert_eq!(entry["orderId"], order_id.as_str(), "{line}");
            decisions += 1;
        }
    }
    assert_eq!(decisions, 1, "one info line per decision:\n{coordinator}");
    let _ = std::fs::remove_dir_all(&logs);
}
