//! A bound on the HTTP connections a service holds open (`HTTP_MAX_CONNECTIONS`).
//!
//! Past saturation, a client that opens a new connection for each request it cannot get answered
//! on the ones it has (an open loop, or many clients) would otherwise make the service hold
//! thousands: each one memory, a descriptor and a task on the service's one thread, which also
//! handles the service's events. While the bound is reached the service accepts no more: new
//! connections wait in the kernel's listen queue (and, once that is full, the client's connection
//! attempts are retried by its TCP stack) until a connection closes. The wait costs the service
//! nothing, and the connections it holds keep being answered at its pace, admission's 503
//! `OVERLOADED` included.
//!
//! Answering each connection over the bound with a 503 instead was measured and rejected: every
//! refusal closed its connection, so each retry was a new connection to accept, answer and close
//! on the service's one thread, and an open loop at 2,500 orders/s ended 272 orders/s with POST
//! p99 21 s (`scripts/experiment-connection-bound.sh`, docs/benchmarks.md).
//!
//! Connections held open count, idle ones too (a client's keep-alive pool). So that idle ones do
//! not keep waiting ones out, a connection idle for [`IDLE`] while the bound is reached is closed
//! (the server reads it as ended by the client). Without that, in an open loop past capacity,
//! the slowest POST was answered after 167 s: connections gone idle, most likely the load
//! generator's own keep-alive pool, held every place while its new connections waited.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection may be idle while the bound is reached.
pub const IDLE: Duration = Duration::from_secs(2);

/// Connections open (gauge).
pub const OPEN: &str = "http_connections_open";
/// Times the bound was reached: a connection waited in the listen queue for a place (counter).
pub const WAITS: &str = "http_connection_waits_total";

pub fn describe() {
    metrics::describe_gauge!(OPEN, "HTTP connections open");
    metrics::describe_counter!(
        WAITS,
        "Times HTTP_MAX_CONNECTIONS were open and new connections waited for one to close"
    );
    metrics::counter!(WAITS).increment(0);
    metrics::gauge!(OPEN).increment(0.0);
}

/// The service's listener, holding at most `max` connections open.
pub struct Bounded {
    listener: TcpListener,
    open: Arc<Semaphore>,
}

impl Bounded {
    pub fn new(listener: TcpListener, max: usize) -> Bounded {
        Bounded {
            listener,
            open: Arc::new(Semaphore::new(max)),
        }
    }
}

/// A connection within the bound: its place is given back when the server drops it.
pub struct Held {
    stream: TcpStream,
    /// The places, to tell whether the bound is reached.
    open: Arc<Semaphore>,
    /// Fires [`IDLE`] after the connection last read or wrote something.
    idle: Pin<Box<tokio::time::Sleep>>,
    /// Whether `idle` is watched: from each activity until it fires once.
    armed: bool,
    _place: OwnedSemaphorePermit,
}

impl Held {
    fn active(&mut self) {
        self.idle.as_mut().reset(tokio::time::Instant::now() + IDLE);
        self.armed = true;
    }
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
        let place = match self.open.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                metrics::counter!(WAITS).increment(1);
                tracing::debug!("HTTP_MAX_CONNECTIONS open: new connections wait");
                self.open
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    metrics::gauge!(OPEN).increment(1.0);
                    return (
                        Held {
                            stream,
                            open: self.open.clone(),
                            idle: Box::pin(tokio::time::sleep(IDLE)),
                            armed: true,
                            _place: place,
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was taken: wait a
                    // little rather than spin, as axum's own listener does.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        if let Poll::Ready(read) = Pin::new(&mut self.stream).poll_read(cx, buf) {
            if buf.filled().len() > before {
                self.active();
            }
            return Poll::Ready(read);
        }
        // Nothing to read: idle. Idle for IDLE while the bound is reached: ended. Idle for IDLE
        // below it: left alone (no timer) until its next activity.
        if self.armed && self.idle.as_mut().poll(cx).is_ready() {
            if self.open.available_permits() == 0 {
                return Poll::Ready(Ok(()));
            }
            self.armed = false;
        }
        Poll::Pending
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.active();
        }
        written
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
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.active();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
