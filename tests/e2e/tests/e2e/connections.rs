//! The bound on HTTP connections (`HTTP_MAX_CONNECTIONS`): while that many are open, idle ones
//! included, the service accepts no more; the connections it holds are answered as always, and
//! those idle for `IDLE` are closed, so that a waiting connection is served.

use std::time::Duration;

use messaging::Shutdown;
use service_kit::CommonSettings;
use test_support::{NatsServer, TestDb};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::payment_settings;

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
async fn a_connection_over_the_bound_waits_until_one_closes() {
    let nats = NatsServer::start().await.expect("nats");
    let db = TestDb::create().await.expect("db");
    let stop = Shutdown::new();
    let mut common = CommonSettings::for_test(payment_service::SERVICE, &db.url, &nats.url());
    common.max_connections = MAX;
    let settings = payment_settings(common, 1.0, 1);
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

    // A client of its own, so a connection of its own: over the bound, it waits. Without the
    // bound it is answered in a few milliseconds.
    let url = format!("http://127.0.0.1:{port}/health/live");
    let mut over = tokio::spawn({
        let url = url.clone();
        async move { reqwest::Client::new().get(&url).send().await }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut over)
            .await
            .is_err(),
        "a connection over the bound was answered"
    );
    // The connections held are still answered.
    let mut first = held.remove(0);
    first
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("request");
    let mut buf = vec![0u8; 4096];
    let n = first.read(&mut buf).await.expect("answer");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "a held connection: {}",
        String::from_utf8_lossy(&buf[..n])
    );

    // Idle connections are closed once idle for `IDLE` while the bound is reached: the waiting
    // connection gets a place.
    let answered = tokio::time::timeout(Duration::from_secs(15), over)
        .await
        .expect("served once an idle connection was closed")
        .expect("join")
        .expect("an answer");
    assert_eq!(answered.status().as_u16(), 200);
    let mut closed = false;
    for stream in std::iter::once(&mut first).chain(held.iter_mut()) {
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "no idle connection was closed");
    drop(held);
    stop.cancel();
    task.await.expect("join").expect("stops cleanly");
}
