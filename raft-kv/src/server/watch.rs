//! `GET /v1/watch?prefix=P&from_revision=R`: a stream of every change to keys under `P`, in
//! revision order, as newline-delimited JSON ([`WatchEvent`], one line per change).
//!
//! Where the events come from: the replicated change history inside the state machine
//! ([`crate::history`]), read from this node's own applied state. Every replica holds the
//! same history at the same applied index, so any node, follower or leader, serves the same
//! events, and a client that reconnects anywhere with its last revision + 1 continues
//! exactly: no change skipped, none repeated.
//!
//! - Without `from_revision` the watch starts after a linearizable read: it sees every change
//!   acknowledged after the request and none before.
//! - A `from_revision` older than the retained history answers `410` `compacted` with the
//!   oldest revision available; a watcher that falls that far behind mid-stream gets an
//!   `error` event `compacted` and the stream ends.
//! - The first line is a `progress` event naming the revision the watch starts after; more
//!   follow when the stream is idle, so a client always knows where to resume.
//! - New changes are awaited through the node's applied-index notification, never by
//!   polling on a timer.
//! - Bounded: at most [`WatchLimits::watches_max`] watches per node (then `503`
//!   `overloaded`), and per watch at most [`WatchLimits::buffered_batches_max`] batches of
//!   [`WatchLimits::batch_bytes_max`] waiting for the client; a client that reads nothing for
//!   [`WatchLimits::stall_timeout`] gets an `error` event `slow_watcher` after what it was
//!   sent, and the stream ends. On shutdown every stream ends with `shutting_down`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper::body::Frame;
use serde::Deserialize;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tracing::Instrument;

use crate::server::backend::KvBackend;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::wire::{CompactedBody, ReadConsistency, WatchEvent};
use crate::{ChangesResponse, Query, QueryResponse};

/// Limits of the watch API on one node. Defaults: 1,024 watches, batches of at most 256
/// changes or 256 KiB, 4 batches buffered per watch (so at most about 1 MiB per watch, plus
/// one oversized change), a client that reads nothing for 30 s is dropped, and an idle
/// stream gets a progress line every 10 s (which also notices clients that went away).
#[derive(Clone, Debug)]
pub struct WatchLimits {
    /// Most concurrent watches on the node; each holds a task and its buffered batches.
    pub watches_max: usize,
    /// Most changes read from the history in one go.
    pub batch_changes_max: u32,
    /// Most bytes of changes read in one go (one change is always read).
    pub batch_bytes_max: u64,
    /// Batches waiting for the client before the watch stops reading.
    pub buffered_batches_max: usize,
    /// How long a full buffer may wait for the client before the watch is dropped.
    pub stall_timeout: Duration,
    /// How long an idle stream waits before sending a progress line.
    pub progress_interval: Duration,
}

impl Default for WatchLimits {
    fn default() -> Self {
        WatchLimits {
            watches_max: 1024,
            batch_changes_max: 256,
            batch_bytes_max: 256 * 1024,
            buffered_batches_max: 4,
            stall_timeout: Duration::from_secs(30),
            progress_interval: Duration::from_secs(10),
        }
    }
}

/// The node's watches: their limits, a count of open ones, and the signal that ends them all
/// at shutdown (a graceful HTTP shutdown would otherwise wait for endless streams).
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    limits: WatchLimits,
    permits: Arc<Semaphore>,
    closing: watch::Sender<bool>,
}

impl Default for WatchHub {
    fn default() -> Self {
        WatchHub::new(WatchLimits::default())
    }
}

impl WatchHub {
    /// A hub with these limits.
    pub fn new(limits: WatchLimits) -> Self {
        let permits = Arc::new(Semaphore::new(limits.watches_max));
        WatchHub {
            inner: Arc::new(HubInner {
                limits,
                permits,
                closing: watch::Sender::new(false),
            }),
        }
    }

    /// Ends every open watch (with a `shutting_down` event) and refuses new ones.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
        self.inner.permits.close();
    }

    /// Number of open watches.
    pub fn active(&self) -> usize {
        self.inner.limits.watches_max - self.inner.permits.available_permits()
    }
}

#[derive(Clone)]
struct WatchState {
    backend: Arc<dyn KvBackend>,
    hub: WatchHub,
    key_bytes_max: u64,
}

/// The watch route, for merging into the API's router.
pub fn routes<S: Clone + Send + Sync + 'static>(
    backend: Arc<dyn KvBackend>,
    hub: WatchHub,
    key_bytes_max: u64,
) -> Router<S> {
    let state = WatchState {
        backend,
        hub,
        key_bytes_max,
    };
    Router::new()
        .route("/v1/watch", get(watch_handler))
        .with_state(state)
}

/// Query parameters of a watch.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchParams {
    prefix: Option<String>,
    from_revision: Option<u64>,
}

async fn watch_handler(State(state): State<WatchState>, uri: Uri) -> Response {
    match open(&state, &uri).await {
        Ok(body) => {
            let mut response = Response::new(Body::new(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            response
        }
        Err(response) => response,
    }
}

/// Checks the request, finds the starting revision and starts the watch's task.
async fn open(state: &WatchState, uri: &Uri) -> Result<WatchBody, Response> {
    let params: WatchParams = match uri.query().filter(|q| !q.is_empty()) {
        None => WatchParams::default(),
        Some(_) => axum::extract::Query::try_from_uri(uri)
            .map(|q| q.0)
            .map_err(|e| {
                ApiError::bad_request(format!("bad query parameters: {}", e.body_text()))
                    .into_response()
            })?,
    };
    let prefix = Bytes::from(params.prefix.unwrap_or_default());
    if prefix.len() as u64 > state.key_bytes_max {
        let error = ApiError::new(ErrorCode::KeyTooLarge, "the prefix is longer than a key");
        return Err(error.into_response());
    }
    let hub = &state.hub.inner;
    let permit = Arc::clone(&hub.permits).try_acquire_owned().map_err(|_| {
        let message = format!(
            "this node serves at most {} watches; retry later or on another node",
            hub.limits.watches_max
        );
        ApiError::new(ErrorCode::Overloaded, message).into_response()
    })?;
    let backend = state.backend.as_ref();
    let start_revision = match params.from_revision {
        Some(0) => {
            let error = ApiError::bad_request("from_revision starts at 1");
            return Err(error.into_response());
        }
        Some(from) => {
            let first = read_changes(backend, &prefix, from, (0, 0), ReadConsistency::Stale)
                .await
                .map_err(IntoResponse::into_response)?;
            if first.compacted {
                return Err(compacted_answer(from, first.oldest_revision));
            }
            from
        }
        None => {
            let now = read_changes(
                backend,
                &prefix,
                u64::MAX,
                (0, 0),
                ReadConsistency::Linearizable,
            )
            .await
            .map_err(IntoResponse::into_response)?;
            now.revision + 1
        }
    };
    let (sender, receiver) = mpsc::channel(hub.limits.buffered_batches_max.max(1));
    let last_line = Arc::new(Mutex::new(None));
    let producer = Producer {
        backend: Arc::clone(&state.backend),
        limits: hub.limits.clone(),
        prefix,
        cursor: start_revision,
        sender,
        last_line: Arc::clone(&last_line),
        closing: hub.closing.subscribe(),
        _permit: permit,
    };
    tracing::debug!(start_revision, "watch opened");
    let span = tracing::debug_span!("watch", start_revision);
    tokio::spawn(producer.run().instrument(span));
    Ok(WatchBody {
        receiver,
        last_line,
    })
}

fn compacted_answer(from_revision: u64, oldest_revision: u64) -> Response {
    let body = CompactedBody {
        error: "compacted".into(),
        message: format!(
            "revision {from_revision} is no longer in the change history; the oldest \
             available is {oldest_revision} (read the current state, then watch from its \
             revision + 1)"
        ),
        leader: None,
        oldest_revision,
    };
    (StatusCode::GONE, axum::Json(body)).into_response()
}

/// One history read from this node's applied state (or at a linearizable read index).
async fn read_changes(
    backend: &dyn KvBackend,
    prefix: &Bytes,
    from_revision: u64,
    (limit, bytes_max): (u32, u64),
    consistency: ReadConsistency,
) -> Result<ChangesResponse, ApiError> {
    let query = Query::Changes {
        prefix: prefix.clone(),
        from_revision,
        limit,
        bytes_max,
    };
    match backend.read(query, consistency).await? {
        QueryResponse::Changes(changes) => Ok(changes),
        _ => Err(ApiError::new(
            ErrorCode::Internal,
            "a history read was answered with another kind of answer",
        )),
    }
}

/// The task behind one watch: reads batches from the history, hands them to the body, and
/// waits for applies when it has caught up.
struct Producer {
    backend: Arc<dyn KvBackend>,
    limits: WatchLimits,
    prefix: Bytes,
    /// The next revision to send.
    cursor: u64,
    sender: mpsc::Sender<Bytes>,
    /// The stream's final error line, taken by the body once the channel is drained.
    last_line: Arc<Mutex<Option<Bytes>>>,
    closing: watch::Receiver<bool>,
    /// Held while the watch runs: counts against [`WatchLimits::watches_max`].
    _permit: OwnedSemaphorePermit,
}

/// How a watch ended: the error line to send last, if any.
type Ending = Option<WatchEvent>;

impl Producer {
    async fn run(mut self) {
        let ending = self.stream().await;
        if let Some(event) = ending {
            tracing::debug!(error = ?event.error, message = ?event.message, "watch ended");
            *self
                .last_line
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = Some(line_of(&event));
        } else {
            tracing::debug!("watch ended: the client went away");
        }
        // Dropping the sender lets the body drain what is buffered, then the last line.
    }

    async fn stream(&mut self) -> Ending {
        let first = line_of(&WatchEvent::progress(self.cursor - 1));
        if let Err(ending) = self.send(first).await {
            return ending;
        }
        loop {
            let limits = (self.limits.batch_changes_max, self.limits.batch_bytes_max);
            let read = read_changes(
                self.backend.as_ref(),
                &self.prefix,
                self.cursor,
                limits,
                ReadConsistency::Stale,
            );
            let batch = tokio::select! {
                biased;
                _ = self.closing.wait_for(|closing| *closing) => None,
                batch = read => Some(batch),
            };
            let batch = match batch {
                None => return self.shutting_down(),
                Some(Ok(batch)) => batch,
                Some(Err(error)) => return self.failed(&error),
            };
            if batch.compacted {
                let message = format!(
                    "the watch fell behind the retained history; the oldest available \
                     revision is {}",
                    batch.oldest_revision
                );
                let mut event = WatchEvent::error(self.cursor - 1, "compacted", message);
                event.oldest_revision = Some(batch.oldest_revision);
                return Some(event);
            }
            let lines: Vec<u8> = batch
                .changes
                .iter()
                .flat_map(|change| line_of(&WatchEvent::change(change)))
                .collect();
            let sent = !lines.is_empty();
            if sent && let Err(ending) = self.send(Bytes::from(lines)).await {
                return ending;
            }
            // Only now: `cursor - 1` is always the last revision handed to the body.
            self.cursor = batch.next_revision;
            if sent {
                continue;
            }
            if let Err(ending) = self.wait_for_applies(batch.applied_index).await {
                return ending;
            }
        }
    }

    /// Waits until the node applies past `applied_index`; sends a progress line instead when
    /// that takes longer than the progress interval.
    async fn wait_for_applies(&mut self, applied_index: u64) -> Result<(), Ending> {
        let interval = self.limits.progress_interval;
        let applied = self.backend.wait_applied_beyond(applied_index, interval);
        let outcome = tokio::select! {
            biased;
            _ = self.closing.wait_for(|closing| *closing) => None,
            _ = self.sender.closed() => return Err(None),
            outcome = applied => Some(outcome),
        };
        let Some(outcome) = outcome else {
            return Err(self.shutting_down());
        };
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => {
                let progress = line_of(&WatchEvent::progress(self.cursor - 1));
                self.send(progress).await
            }
            Err(error) => Err(self.failed(&error)),
        }
    }

    /// Hands a chunk to the body, waiting at most the stall timeout for room.
    async fn send(&mut self, chunk: Bytes) -> Result<(), Ending> {
        let stall_timeout = self.limits.stall_timeout;
        match self.sender.send_timeout(chunk, stall_timeout).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Closed(_)) => Err(None),
            Err(SendTimeoutError::Timeout(_)) => {
                let message = format!(
                    "the client read nothing for {} ms with {} batches waiting; reconnect \
                     with from_revision = revision + 1",
                    stall_timeout.as_millis(),
                    self.limits.buffered_batches_max
                );
                // The chunk that did not fit is not sent: resume after the last one that was.
                Err(Some(WatchEvent::error(
                    self.cursor - 1,
                    "slow_watcher",
                    message,
                )))
            }
        }
    }

    fn shutting_down(&self) -> Ending {
        Some(WatchEvent::error(
            self.cursor - 1,
            "shutting_down",
            "the node is shutting down; reconnect to another node with from_revision = \
             revision + 1",
        ))
    }

    fn failed(&self, error: &ApiError) -> Ending {
        Some(WatchEvent::error(
            self.cursor - 1,
            error.code.as_str(),
            format!(
                "{}; reconnect with from_revision = revision + 1",
                error.message
            ),
        ))
    }
}

/// One event as a JSON line.
fn line_of(event: &WatchEvent) -> Bytes {
    let mut line = serde_json::to_vec(event).unwrap_or_else(|error| {
        // Serializing plain strings and numbers cannot fail; keep the stream well-formed.
        tracing::error!(%error, "a watch event did not serialize");
        b"{\"kind\":\"error\",\"revision\":0,\"error\":\"internal\"}".to_vec()
    });
    line.push(b'\n');
    Bytes::from(line)
}

/// The response body of a watch: the batches the task buffered, then its last line.
struct WatchBody {
    receiver: mpsc::Receiver<Bytes>,
    last_line: Arc<Mutex<Option<Bytes>>>,
}

impl hyper::body::Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(None) => {
                let last = self
                    .last_line
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .take();
                Poll::Ready(last.map(|line| Ok(Frame::data(line))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
