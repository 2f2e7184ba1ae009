//! A bound on the HTTP connections a service holds open (`HTTP_MAX_CONNECTIONS`).
//!
//! Past saturation, a client that opens a new connection for each request it cannot get answered
//! on the ones it has (an open loop, or many clients) would otherwise make the service hold
//! thousands: each one memory, a descriptor and a task on the service's one thread, which also
//! handles the service's events. A connection over the bound is answered at once, before any
//! route runs: 503 `OVERLOADED` with `Retry-After`, `Connection: close`. Its request is read
//! (what arrives within a second, up to 16 KiB) before the answer, and whatever the client still
//! sends is drained until it closes, so that the close does not reset the connection before the
//! client has read the answer.
//!
//! Connections held open count, idle ones too (a client's keep-alive pool).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ErrorBody, ErrorInner};

/// Connections open (gauge).
pub const OPEN: &str = "http_connections_open";
/// Connections refused with `OVERLOADED` because the bound was reached (counter).
pub const REFUSED: &str = "http_connections_refused_total";

/// The `Retry-After` of a refused connection, in seconds.
pub const RETRY_AFTER: u64 = 1;
/// How long a refused connection is given to send its request, and then to close.
const REFUSAL_WAIT: Duration = Duration::from_secs(1);
/// The most of a refused connection's request that is read before the answer.
const REFUSAL_READ: usize = 16 * 1024;

pub fn describe() {
    metrics::describe_gauge!(OPEN, "HTTP connections open");
    metrics::describe_counter!(
        REFUSED,
        "HTTP connections answered 503 OVERLOADED at once: HTTP_MAX_CONNECTIONS were open"
    );
    metrics::counter!(REFUSED).increment(0);
    metrics::gauge!(OPEN).increment(0.0);
}

/// The service's listener, holding at most `max` connections open.
pub struct Bounded {
    listener: TcpListener,
    open: Arc<Semaphore>,
    max: usize,
    refusal: Arc<[u8]>,
}

impl Bounded {
    pub fn new(listener: TcpListener, max: usize) -> Bounded {
        Bounded {
            listener,
            open: Arc::new(Semaphore::new(max)),
            max,
            refusal: refusal(max).into(),
        }
    }
}

/// The whole answer to a connection over the bound.
fn refusal(max: usize) -> Vec<u8> {
    let body = serde_json::to_string(&ErrorBody {
        error: ErrorInner {
            code: "OVERLOADED".into(),
            message: format!("{max} connections are open already; try again later"),
            details: Vec::new(),
        },
    })
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {RETRY_AFTER}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A connection within the bound: its place is given back when the server drops it.
pub struct Held {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!(OPEN).decrement(1.0);
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Held;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Held, SocketAddr) {
        loop {
            let (stream, addr) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was taken: wait a
                    // little rather than spin, as axum's own listener does.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.open.clone().try_acquire_owned() {
                Ok(place) => {
                    metrics::gauge!(OPEN).increment(1.0);
                    return (
                        Held {
                            stream,
                            _place: place,
                        },
                        addr,
                    );
                }
                Err(_) => {
                    metrics::counter!(REFUSED).increment(1);
                    tracing::debug!(max = self.max, %addr, "connection refused: the bound is reached");
                    tokio::spawn(refuse(stream, self.refusal.clone()));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Answers a connection over the bound: reads its request (the head, and what else arrives with
/// it), answers, and drains until the client closes; a second at most for each wait.
async fn refuse(mut stream: TcpStream, answer: Arc<[u8]>) {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(REFUSAL_WAIT, async {
        while request.len() < REFUSAL_READ && !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if stream.write_all(&answer).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(REFUSAL_WAIT, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
