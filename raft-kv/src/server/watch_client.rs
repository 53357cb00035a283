//! [`Watcher`]: the client side of `GET /v1/watch`. Reads the event stream of one node and,
//! when that node fails (connection lost, shutting down, too slow, stalled), reconnects to
//! another node with its last revision + 1, so the caller sees every change exactly once,
//! in revision order, across failovers.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::StatusCode;

use crate::server::client::{ClientError, ClientOptions, Connection};
use crate::server::wire::{self, CompactedBody, ErrorBody, WatchEvent, WatchEventKind};

/// A line longer than this is refused (a value is at most a few MiB, even base64-encoded).
const LINE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// A stream silent for this long is presumed dead (the server sends progress every 10 s).
const SILENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// A watch of one prefix across the cluster.
pub struct Watcher {
    endpoints: Vec<String>,
    current: usize,
    prefix: String,
    /// The next revision to ask for; `None` until the first node says where "now" is.
    next_revision: Option<u64>,
    stream: Option<LineStream>,
    options: ClientOptions,
}

/// One node's event stream, split into lines.
struct LineStream {
    /// Kept so the connection lives as long as its body.
    _connection: Connection,
    body: hyper::body::Incoming,
    buffer: BytesMut,
    endpoint: String,
}

impl Watcher {
    /// A watch of keys starting with `prefix` on the nodes at `endpoints`, from
    /// `from_revision` (or from now, linearizably, when `None`). Nothing is sent until
    /// [`Watcher::next`].
    pub fn new(
        endpoints: &[String],
        prefix: &str,
        from_revision: Option<u64>,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::BadEndpoint("(none given)".into()));
        }
        for endpoint in endpoints {
            Connection::new(endpoint)?;
        }
        Ok(Watcher {
            endpoints: endpoints.to_vec(),
            current: 0,
            prefix: prefix.to_string(),
            next_revision: from_revision,
            stream: None,
            options,
        })
    }

    /// The revision the watch continues from (last revision seen + 1), once known.
    pub fn next_revision(&self) -> Option<u64> {
        self.next_revision
    }

    /// The next change (a `put` or `delete` event). Reconnects to another node on failure
    /// and keeps trying for [`ClientOptions::retry_for`] without an answer before giving
    /// up. A `compacted` history is an error no reconnect can fix.
    pub async fn next(&mut self) -> Result<WatchEvent, ClientError> {
        let mut failing_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(20);
        loop {
            let step = self.step().await;
            let error = match step {
                Ok(Some(event)) => return Ok(event),
                Ok(None) => {
                    failing_since = None;
                    continue;
                }
                Err(error) if !error.is_retryable() => return Err(error),
                Err(error) => error,
            };
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.options.retry_for {
                return Err(error);
            }
            tracing::debug!(%error, "watch: moving to another node");
            self.stream = None;
            self.current = (self.current + 1) % self.endpoints.len();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Reads one line: `Some` for a change, `None` for progress; errors end the stream.
    async fn step(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        if self.stream.is_none() {
            self.stream = Some(self.open().await?);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let line = tokio::time::timeout(SILENCE_TIMEOUT, stream.next_line())
            .await
            .unwrap_or_else(|_| Err(stream.error("the stream went silent")))?;
        let event: WatchEvent = serde_json::from_slice(&line).map_err(|e| ClientError::Decode {
            status: 200,
            message: format!("bad watch event: {e}"),
        })?;
        self.accept(event)
    }

    /// Checks an event's order and moves the resume point.
    fn accept(&mut self, event: WatchEvent) -> Result<Option<WatchEvent>, ClientError> {
        let next = self.next_revision.unwrap_or(0);
        match event.kind {
            WatchEventKind::Put | WatchEventKind::Delete => {
                if event.revision < next {
                    return Err(ClientError::Decode {
                        status: 200,
                        message: format!(
                            "event at revision {} after revision {} was seen: out of order",
                            event.revision,
                            next.saturating_sub(1)
                        ),
                    });
                }
                self.next_revision = Some(event.revision + 1);
                Ok(Some(event))
            }
            WatchEventKind::Progress => {
                self.next_revision = Some(next.max(event.revision + 1));
                Ok(None)
            }
            WatchEventKind::Error => {
                self.next_revision = Some(next.max(event.revision + 1));
                self.stream = None;
                let code = event.error.clone().unwrap_or_default();
                let message = event.message.clone().unwrap_or_default();
                // Only a compacted history is final; any other node may serve the rest.
                let status = if code == "compacted" { 410 } else { 503 };
                let body = ErrorBody {
                    error: if code == "compacted" {
                        code
                    } else {
                        "unavailable".into()
                    },
                    message,
                    leader: None,
                    current: None,
                    revision: None,
                    outcome: None,
                };
                Err(ClientError::Api {
                    status,
                    body: Box::new(body),
                })
            }
        }
    }

    async fn open(&mut self) -> Result<LineStream, ClientError> {
        let endpoint = self.endpoints[self.current].clone();
        let mut path = format!(
            "/v1/watch?prefix={}",
            wire::encode_key(self.prefix.as_bytes())
        );
        if let Some(revision) = self.next_revision {
            path.push_str(&format!("&from_revision={revision}"));
        }
        let mut connection = Connection::new(&endpoint)?;
        let timeout = self.options.request_timeout;
        let (status, body) = tokio::time::timeout(timeout, connection.open_stream(&path))
            .await
            .map_err(|_| ClientError::Timeout {
                endpoint: endpoint.clone(),
                waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            })??;
        if status.is_success() {
            return Ok(LineStream {
                _connection: connection,
                body,
                buffer: BytesMut::new(),
                endpoint,
            });
        }
        let bytes = tokio::time::timeout(timeout, body.collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        Err(refusal(status, &bytes))
    }
}

/// The error for a watch a node refused to open.
fn refusal(status: StatusCode, bytes: &Bytes) -> ClientError {
    if status == StatusCode::GONE
        && let Ok(compacted) = serde_json::from_slice::<CompactedBody>(bytes)
    {
        return ClientError::Api {
            status: 410,
            body: Box::new(ErrorBody {
                error: compacted.error,
                message: compacted.message,
                leader: None,
                current: None,
                revision: Some(compacted.oldest_revision),
                outcome: None,
            }),
        };
    }
    let answer = crate::server::client::Answer {
        status,
        headers: Default::default(),
        body: bytes.clone(),
    };
    match answer.check() {
        Err(error) => error,
        Ok(()) => ClientError::Decode {
            status: status.as_u16(),
            message: "a watch answered without a stream".into(),
        },
    }
}

impl LineStream {
    fn error(&self, message: &str) -> ClientError {
        ClientError::Transport {
            endpoint: self.endpoint.clone(),
            message: message.to_string(),
        }
    }

    /// The next line without its `\n`; an error when the stream ends or breaks.
    async fn next_line(&mut self) -> Result<Bytes, ClientError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let mut line = self.buffer.split_to(end + 1);
                line.truncate(end);
                return Ok(line.freeze());
            }
            if self.buffer.len() > LINE_BYTES_MAX {
                return Err(self.error("a watch event line is too long"));
            }
            let frame = match self.body.frame().await {
                None => return Err(self.error("the watch stream ended")),
                Some(Err(e)) => return Err(self.error(&e.to_string())),
                Some(Ok(frame)) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }
}
