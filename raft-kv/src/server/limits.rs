//! Bounds on what HTTP clients can hold of a node: connections (and so file descriptors),
//! time, and memory for request bodies.
//!
//! - **Connections**: the accept loop takes a slot from a semaphore before it accepts, so at
//!   most [`HttpLimits::connections_max`] connections are open; more wait in the kernel's
//!   backlog, holding no descriptor of this process. The cap is sized under the process's
//!   `RLIMIT_NOFILE` ([`connection_cap`]) so the Raft port, storage and snapshots always
//!   find descriptors.
//! - **Time**: a TLS handshake must finish within [`HttpLimits::handshake_timeout`]; a
//!   request head must arrive within [`HttpLimits::header_timeout`], counted from the moment
//!   the connection waits for it, so it is also the keep-alive idle timeout; a body must
//!   arrive within [`BodyLimits::timeout`].
//! - **Memory**: every request body is read against one node-wide budget of bytes
//!   ([`BodyBudget`]); a body that does not fit is refused at once with 503 instead of
//!   being buffered. hyper's per-connection buffer is capped too ([`READ_BUFFER_BYTES_MAX`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::server::http::ApiService;
use crate::server::prom::HttpMetrics;

/// Largest read buffer hyper keeps per connection; also the longest request head.
pub const READ_BUFFER_BYTES_MAX: usize = 64 * 1024;

/// Descriptors kept for everything but HTTP connections: the Raft port's inbound
/// connections (the transport admits at most 256), outbound peer links and their snapshot
/// lanes, log segments, snapshots, listeners, standard streams.
pub const RESERVED_FDS: u64 = 512;

/// Connection and time limits of the HTTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most HTTP connections open at once (after [`connection_cap`]).
    pub connections_max: usize,
    /// Longest wait for a TLS handshake to complete.
    pub handshake_timeout: Duration,
    /// Longest wait for a complete request head, idle keep-alive time included.
    pub header_timeout: Duration,
    /// How long to let in-flight requests finish on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    /// 4,096 connections (then capped by `RLIMIT_NOFILE`), 5 s for a handshake, 30 s for a
    /// request head or of idleness (browsers and load balancers keep connections 60 s or
    /// less and reconnect cheaply), 10 s of shutdown grace.
    fn default() -> Self {
        HttpLimits {
            connections_max: 4096,
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Limits on request bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Bytes of request bodies all requests together may hold in memory.
    pub budget_bytes: usize,
    /// Longest time to receive one body, from its first byte being awaited.
    pub timeout: Duration,
}

impl Default for BodyLimits {
    /// 64 MiB (64 maximal values at once, far more small ones), 30 s per body.
    fn default() -> Self {
        BodyLimits {
            budget_bytes: 64 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (Linux); `None`
/// elsewhere or when unlimited.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The connection cap to use: `wanted`, lowered so that [`RESERVED_FDS`] descriptors stay
/// free under `fd_limit` (or half of a very small limit), and at least 1.
pub fn connection_cap(wanted: usize, fd_limit: Option<u64>) -> usize {
    let Some(limit) = fd_limit else {
        return wanted.max(1);
    };
    let available = if limit > 2 * RESERVED_FDS {
        limit - RESERVED_FDS
    } else {
        limit / 2
    };
    let available = usize::try_from(available).unwrap_or(usize::MAX);
    wanted.min(available).max(1)
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the route accepts.
    #[error("the body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The node's body budget is used up by other requests; retry later.
    #[error("the server is holding its maximum of request bodies; retry shortly")]
    OverBudget,
    /// The body did not arrive in time.
    #[error("the body did not arrive within {0:?}")]
    TimedOut(Duration),
    /// The connection failed while reading.
    #[error("could not read the body: {0}")]
    Broken(String),
}

/// Bytes of request bodies held in memory, node-wide.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    limits: BodyLimits,
}

/// Budget held by one read body; returned when dropped (keep it until the request is done).
#[derive(Debug)]
pub struct BodyLease {
    _permit: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    /// A budget of `limits.budget_bytes`.
    pub fn new(limits: BodyLimits) -> Self {
        let bytes = limits.budget_bytes.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            bytes: Arc::new(Semaphore::new(bytes)),
            limits,
        }
    }

    /// Bytes not held by any request right now.
    pub fn available_bytes(&self) -> usize {
        self.bytes.available_permits()
    }

    fn take(
        &self,
        bytes: usize,
        lease: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<(), BodyError> {
        if bytes == 0 {
            return Ok(());
        }
        let count = u32::try_from(bytes).map_err(|_| BodyError::OverBudget)?;
        let permit = Arc::clone(&self.bytes)
            .try_acquire_many_owned(count)
            .map_err(|_| BodyError::OverBudget)?;
        match lease {
            Some(held) => held.merge(permit),
            None => *lease = Some(permit),
        }
        Ok(())
    }

    /// Reads a whole body of at most `max_bytes` within the body timeout, charging every
    /// byte to the budget as it arrives; refuses at once what cannot fit.
    pub async fn read(&self, body: Body, max_bytes: u64) -> Result<(Bytes, BodyLease), BodyError> {
        let too_large = BodyError::TooLarge { limit: max_bytes };
        let announced = body.size_hint().lower();
        if announced > max_bytes {
            return Err(too_large);
        }
        let mut lease = None;
        // A declared length is charged up front: a body that cannot fit is refused before
        // a byte of it is read.
        let announced = usize::try_from(announced).map_err(|_| BodyError::OverBudget)?;
        self.take(announced, &mut lease)?;
        let deadline = tokio::time::Instant::now() + self.limits.timeout;
        let mut body = body;
        let mut buffer = Vec::with_capacity(announced);
        loop {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| BodyError::TimedOut(self.limits.timeout))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let length = buffer.len() + data.len();
            if length as u64 > max_bytes {
                return Err(too_large);
            }
            self.take(
                length.saturating_sub(announced.max(buffer.len())),
                &mut lease,
            )?;
            buffer.extend_from_slice(&data);
        }
        Ok((Bytes::from(buffer), BodyLease { _permit: lease }))
    }
}

/// Serves `service` ([`crate::server::http::service`]) on `listener` (over TLS when `tls` is
/// given) within `limits` until `shutdown` resolves, then lets open requests finish for the
/// shutdown grace.
pub async fn serve_http(
    listener: TcpListener,
    service: ApiService,
    tls: Option<TlsAcceptor>,
    limits: HttpLimits,
    metrics: Arc<HttpMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let counters = &metrics.connections;
    counters
        .max
        .store(limits.connections_max as u64, Ordering::Relaxed);
    let graceful = GracefulShutdown::new();
    let http = http_builder(&limits);
    tracing::info!(
        address = ?listener.local_addr().ok(),
        tls = tls.is_some(),
        connections_max = limits.connections_max,
        header_timeout_ms = limits.header_timeout.as_millis() as u64,
        "HTTP API listening"
    );
    tokio::pin!(shutdown);
    let mut at_cap = false;
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning; the slot is released.
                tracing::warn!(%error, "HTTP accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let full = slots.available_permits() == 0;
        if full && !at_cap {
            tracing::warn!(
                max = limits.connections_max,
                "HTTP connection cap reached; new connections wait"
            );
        }
        at_cap = full;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let connection = Connection {
            metrics: Arc::clone(&metrics),
            http: http.clone(),
            service: service.clone(),
            watcher: graceful.watcher(),
            handshake_timeout: limits.handshake_timeout,
        };
        tokio::spawn(connection.run(stream, tls.clone(), peer, permit));
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still open after the shutdown grace; dropping them");
    }
}

/// HTTP/1.1 with the header (and idle) timeout and the read buffer cap.
fn http_builder(limits: &HttpLimits) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(READ_BUFFER_BYTES_MAX)
        .keep_alive(true);
    http
}

/// What one connection task needs.
struct Connection {
    metrics: Arc<HttpMetrics>,
    http: hyper::server::conn::http1::Builder,
    service: ApiService,
    watcher: hyper_util::server::graceful::Watcher,
    handshake_timeout: Duration,
}

impl Connection {
    async fn run(
        self,
        stream: TcpStream,
        tls: Option<TlsAcceptor>,
        peer: std::net::SocketAddr,
        _slot: OwnedSemaphorePermit,
    ) {
        let metrics = Arc::clone(&self.metrics);
        let counters = &metrics.connections;
        counters.open.fetch_add(1, Ordering::Relaxed);
        match tls {
            None => self.serve(stream, peer).await,
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                match tokio::time::timeout(self.handshake_timeout, handshake).await {
                    Ok(Ok(stream)) => self.serve(stream, peer).await,
                    Ok(Err(error)) => {
                        counters.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                    }
                    Err(_) => {
                        counters.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "TLS handshake timed out");
                    }
                }
            }
        }
        counters.open.fetch_sub(1, Ordering::Relaxed);
    }

    async fn serve<S>(self, stream: S, peer: std::net::SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let connection = self
            .http
            .serve_connection(TokioIo::new(stream), self.service);
        if let Err(error) = self.watcher.watch(connection).await {
            tracing::debug!(%peer, %error, "HTTP connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the cap leaves the reserved descriptors free, never exceeds what was asked,
    /// and stays usable under tiny limits.
    #[test]
    fn connection_cap_keeps_descriptors_for_raft() {
        assert_eq!(connection_cap(4096, Some(4096)), 4096 - 512);
        assert_eq!(connection_cap(100, Some(1_048_576)), 100);
        assert_eq!(connection_cap(4096, Some(1024)), 512);
        assert_eq!(connection_cap(4096, Some(300)), 150);
        assert_eq!(connection_cap(4096, None), 4096);
        assert_eq!(connection_cap(0, Some(2)), 1);
    }

    /// Goal: bodies are charged to the budget while held, refused when over the budget or
    /// the route's limit, and the budget comes back when the lease is dropped.
    #[tokio::test]
    async fn bodies_are_charged_to_one_budget() {
        let budget = BodyBudget::new(BodyLimits {
            budget_bytes: 1000,
            timeout: Duration::from_secs(5),
        });
        let (bytes, lease) = budget
            .read(Body::from(vec![1u8; 600]), 10_000)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 600);
        assert_eq!(budget.available_bytes(), 400);
        let refused = budget.read(Body::from(vec![1u8; 600]), 10_000).await;
        assert_eq!(refused.unwrap_err(), BodyError::OverBudget);
        let too_large = budget.read(Body::from(vec![1u8; 300]), 100).await;
        assert_eq!(too_large.unwrap_err(), BodyError::TooLarge { limit: 100 });
        drop(lease);
        assert_eq!(budget.available_bytes(), 1000);
        let (bytes, _lease) = budget
            .read(Body::from(vec![1u8; 600]), 10_000)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 600);
    }

    /// A body that sends one chunk, then nothing, forever.
    struct Stalling(Option<Bytes>);

    impl hyper::body::Body for Stalling {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(bytes) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes)))),
                None => std::task::Poll::Pending,
            }
        }
    }

    /// Goal: a body that stops arriving is given up after the timeout, and its budget freed.
    #[tokio::test]
    async fn stalled_bodies_time_out() {
        let budget = BodyBudget::new(BodyLimits {
            budget_bytes: 1000,
            timeout: Duration::from_millis(100),
        });
        let body = Body::new(Stalling(Some(Bytes::from(vec![0u8; 10]))));
        let error = budget.read(body, 10_000).await.unwrap_err();
        assert!(matches!(error, BodyError::TimedOut(_)), "{error}");
        assert_eq!(budget.available_bytes(), 1000);
    }
}
