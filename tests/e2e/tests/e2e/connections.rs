//! The bound on HTTP connections (`HTTP_MAX_CONNECTIONS`): while that many are open, idle ones
//! included, a new connection is answered 503 `OVERLOADED` with `Retry-After` at once, as a client
//! reads it; once one closes, a new connection is served again.

use std::time::Duration;

use messaging::Shutdown;
use payment_service::gateway::SuccessRate;
use serde_json::Value;
use service_kit::CommonSettings;
use test_support::{NatsServer, TestDb, eventually};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const MAX: usize = 3;

/// A connection that asked for `/health/live` and holds on, kept alive: its answer's status line.
async fn hold(port: u16) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("request");
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.expect("answer");
    let status = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    (stream, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_bound_is_refused_at_once_until_one_closes() {
    let nats = NatsServer::start().await.expect("nats");
    let db = TestDb::create().await.expect("db");
    let stop = Shutdown::new();
    let mut common = CommonSettings::for_test(payment_service::SERVICE, &db.url, &nats.url());
    common.max_connections = MAX;
    let settings = payment_service::Settings {
        common,
        simulation: payment_service::Simulation {
            success_rate: SuccessRate::new(1.0).expect("rate"),
            seed: 1,
            latency: Duration::ZERO,
        },
    };
    let service = payment_service::build(settings, stop.clone())
        .await
        .expect("payment-service");
    let port = service.port();
    let task = tokio::spawn(service.run_until_stopped());

    let mut held = Vec::new();
    for _ in 0..MAX {
        let (stream, status) = hold(port).await;
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "within the bound: {status}"
        );
        held.push(stream);
    }

    // A client of its own, so a connection of its own: over the bound.
    let url = format!("http://127.0.0.1:{port}/health/live");
    let refused = reqwest::Client::new()
        .get(&url)
        .send()
        .await
        .expect("a refusal is an answer, not a reset connection");
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = refused.json().await.expect("a JSON body");
    assert_eq!(body["error"]["code"], "OVERLOADED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("3 connections")),
        "{body}"
    );

    // One closes: its place is given back, and a new connection is served.
    drop(held.pop());
    eventually("a new connection served", Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let status = reqwest::Client::new()
                .get(&url)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .status()
                .as_u16();
            if status == 200 {
                Ok(())
            } else {
                Err(format!("answered {status}"))
            }
        }
    })
    .await;
    drop(held);
    stop.cancel();
    task.await.expect("join").expect("stops cleanly");
}
