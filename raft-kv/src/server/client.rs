//! HTTP client side: one keep-alive connection to one node ([`Connection`]), and a
//! cluster client ([`ClusterClient`]) that finds a live node, follows leader hints and
//! retries through failovers. Used by the CLI, the load generator, the tests, and by a node
//! forwarding an admin request to its leader.
//!
//! Retried writes are exactly-once: every write of a [`ClusterClient`] carries its session
//! (`client-id`, `sequence`), and a retry reuses the sequence, so the state machine replays
//! the first outcome instead of applying the write again.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::server::credentials::Credentials;

use crate::server::wire::{
    self, AddMemberBody, ErrorBody, HEADER_CLIENT_ID, HEADER_CREATE_REVISION, HEADER_REVISION,
    HEADER_SEQUENCE, HEADER_VERSION, KeyMeta, ListBody, MembersBody, ReadConsistency, StatusBody,
    TransferResult, WriteBody,
};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not `http://host:port` or `host:port`.
    #[error("bad endpoint `{0}`: use http://host:port")]
    BadEndpoint(String),
    /// Nothing accepted a connection at the endpoint.
    #[error("{endpoint}: cannot connect: {message}")]
    Connect {
        /// The node.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// The connection broke (the request may or may not have reached the node).
    #[error("{endpoint}: {message}")]
    Transport {
        /// The node.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// No answer in time.
    #[error("{endpoint}: no answer within {waited_ms} ms")]
    Timeout {
        /// The node.
        endpoint: String,
        /// How long the client waited.
        waited_ms: u64,
    },
    /// The node answered with an error.
    #[error("{status}: {} ({})", body.message, body.error)]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error body (boxed: it is large and errors are rare).
        body: Box<ErrorBody>,
    },
    /// Every node tried failed for lack of a leader; `reachable` of the `voters` answered a
    /// health check.
    #[error("{}", no_leader_message(*reachable, *voters, tried))]
    NoLeader {
        /// Voters that answered.
        reachable: usize,
        /// Voters in the membership.
        voters: usize,
        /// What each endpoint answered, in the order tried.
        tried: String,
    },
    /// The node answered something that is not the API's format.
    #[error("unexpected answer ({status}): {message}")]
    Decode {
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        message: String,
    },
}

impl ClientError {
    /// True when the same request may succeed on another node or a little later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Transport { .. }
            | ClientError::Timeout { .. }
            | ClientError::NoLeader { .. } => true,
            ClientError::Api { body, .. } => matches!(
                body.error.as_str(),
                "not_leader"
                    | "unavailable"
                    | "overloaded"
                    | "timeout"
                    | "outcome_unknown"
                    | "shutting_down"
            ),
            ClientError::BadEndpoint(_) | ClientError::Decode { .. } => false,
        }
    }

    /// Whether the request may have taken effect: it may have reached the node (a broken
    /// connection, a timeout) or the node said so (`"outcome": "unknown"`, or a 504 from a
    /// server that does not say). A refused connection or a `not_applied` answer did not.
    pub fn may_have_applied(&self) -> bool {
        match self {
            ClientError::BadEndpoint(_) | ClientError::Connect { .. } => false,
            // Some of the nodes tried may have timed out after taking the request.
            ClientError::Transport { .. }
            | ClientError::Timeout { .. }
            | ClientError::Decode { .. }
            | ClientError::NoLeader { .. } => true,
            ClientError::Api { status, body } => match body.outcome.as_deref() {
                Some(outcome) => outcome == "unknown",
                None => *status == 504,
            },
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn no_leader_message(reachable: usize, voters: usize, tried: &str) -> String {
    let state = if reachable * 2 > voters {
        "no leader yet: an election has not settled"
    } else {
        "no leader: the cluster has no quorum"
    };
    format!("{state} ({reachable} of {voters} nodes reachable); tried {tried}")
}

/// `http://host:port[/]`, `https://host:port[/]` or `host:port` -> `host:port`.
pub fn authority_of(endpoint: &str) -> Result<String, ClientError> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
        return Err(ClientError::BadEndpoint(endpoint.to_string()));
    }
    Ok(authority.to_string())
}

/// A raw answer: status, the headers that matter, body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: hyper::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The answer as `T` when it is a 2xx JSON body, the API error otherwise.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClientError> {
        self.check()?;
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Decode {
            status: self.status.as_u16(),
            message: e.to_string(),
        })
    }

    /// `Ok` for a 2xx answer, the API error otherwise.
    pub fn check(&self) -> Result<(), ClientError> {
        if self.status.is_success() {
            return Ok(());
        }
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => Err(ClientError::Api {
                status: self.status.as_u16(),
                body: Box::new(body),
            }),
            Err(_) => Err(ClientError::Decode {
                status: self.status.as_u16(),
                message: String::from_utf8_lossy(&self.body).into_owned(),
            }),
        }
    }
}

/// One keep-alive HTTP/1.1 connection to one node, made on first use and remade after it
/// breaks.
pub struct Connection {
    authority: String,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// TLS settings when the connection uses TLS.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// `Bearer <token>`, sent with every request.
    authorization: Option<HeaderValue>,
}

impl Connection {
    /// A plaintext connection without credentials to `endpoint` (`http://host:port` or
    /// `host:port`), not yet open.
    pub fn new(endpoint: &str) -> Result<Self, ClientError> {
        Self::with_credentials(endpoint, &Credentials::default())
    }

    /// A connection to `endpoint` presenting `credentials`: over TLS for `https://`
    /// endpoints, and for endpoints without a scheme when `credentials` has TLS settings.
    pub fn with_credentials(
        endpoint: &str,
        credentials: &Credentials,
    ) -> Result<Self, ClientError> {
        let authority = authority_of(endpoint)?;
        let host = HeaderValue::from_str(&authority)
            .map_err(|_| ClientError::BadEndpoint(endpoint.to_string()))?;
        let tls = credentials
            .tls_for(endpoint)
            .map_err(ClientError::BadEndpoint)?;
        let authorization = credentials
            .authorization()
            .map_err(ClientError::BadEndpoint)?;
        Ok(Connection {
            authority,
            host,
            sender: None,
            tls,
            authorization,
        })
    }

    /// The node's `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    fn transport_error(&self, message: impl ToString) -> ClientError {
        ClientError::Transport {
            endpoint: self.authority.clone(),
            message: message.to_string(),
        }
    }

    async fn connect_if_needed(&mut self) -> Result<(), ClientError> {
        if self.sender.as_ref().is_some_and(|s| !s.is_closed()) {
            return Ok(());
        }
        let stream =
            TcpStream::connect(&self.authority)
                .await
                .map_err(|e| ClientError::Connect {
                    endpoint: self.authority.clone(),
                    message: e.to_string(),
                })?;
        // Requests are small; waiting for Nagle would add a round trip of delay.
        stream
            .set_nodelay(true)
            .map_err(|e| self.transport_error(e))?;
        let sender = match &self.tls {
            None => handshake(TokioIo::new(stream)).await,
            Some(config) => {
                let stream = crate::server::tls::connect(config, &self.authority, stream)
                    .await
                    .map_err(|message| ClientError::Connect {
                        endpoint: self.authority.clone(),
                        message,
                    })?;
                handshake(TokioIo::new(stream)).await
            }
        };
        self.sender = Some(sender.map_err(|e| self.transport_error(e))?);
        Ok(())
    }

    /// Sends one request and reads the whole answer. On a broken connection the
    /// connection is dropped (the next call reconnects) and the error returned: the request
    /// may or may not have reached the node.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, self.host.clone());
        if let Some(authorization) = &self.authorization {
            builder = builder.header(hyper::header::AUTHORIZATION, authorization.clone());
        }
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| ClientError::BadEndpoint(format!("{path_and_query}: {e}")))?;
        let result = self.exchange(request).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn exchange(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, ClientError> {
        self.connect_if_needed().await?;
        let authority = &self.authority;
        let plaintext = self.tls.is_none();
        let error = |e: hyper::Error| ClientError::Transport {
            endpoint: authority.clone(),
            // Plaintext HTTP to a TLS port reads a TLS alert as a malformed answer.
            message: if plaintext && e.is_parse() {
                format!("{e}; the node may serve HTTPS: give its CA (--ca) or an https:// endpoint")
            } else {
                e.to_string()
            },
        };
        let Some(sender) = self.sender.as_mut() else {
            return Err(self.transport_error("not connected"));
        };
        sender.ready().await.map_err(error)?;
        let response = sender.send_request(request).await.map_err(error)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(error)?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// Starts HTTP/1.1 on an open stream; the connection task ends when the stream closes
/// (errors surface on the next request).
async fn handshake<S>(io: TokioIo<S>) -> Result<SendRequest<Full<Bytes>>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl Connection {
    /// Sends a GET and returns as soon as the answer's head arrives, with the body still
    /// streaming (for watches). The connection is busy until that body is dropped.
    pub async fn open_stream(
        &mut self,
        path_and_query: &str,
    ) -> Result<(StatusCode, hyper::body::Incoming), ClientError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path_and_query)
            .header(HOST, self.host.clone());
        let request = match &self.authorization {
            Some(authorization) => {
                request.header(hyper::header::AUTHORIZATION, authorization.clone())
            }
            None => request,
        };
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::BadEndpoint(format!("{path_and_query}: {e}")))?;
        self.connect_if_needed().await?;
        let authority = self.authority.clone();
        let error = |e: hyper::Error| ClientError::Transport {
            endpoint: authority.clone(),
            message: e.to_string(),
        };
        let Some(sender) = self.sender.as_mut() else {
            return Err(self.transport_error("not connected"));
        };
        let result = async {
            sender.ready().await.map_err(error)?;
            sender.send_request(request).await.map_err(error)
        }
        .await;
        match result {
            Ok(response) => Ok((response.status(), response.into_body())),
            Err(e) => {
                self.sender = None;
                Err(e)
            }
        }
    }
}

/// Sends one request to `url` on a fresh connection and returns the answer as an axum
/// response; used by a node to forward an admin request to its leader, presenting the
/// caller's `authorization` (the leader checks it).
pub async fn forward(
    url: &str,
    method: Method,
    path_and_query: &str,
    body: Bytes,
    timeout: Duration,
    credentials: &Credentials,
    authorization: Option<HeaderValue>,
) -> Result<axum::response::Response, ClientError> {
    let mut connection = Connection::with_credentials(url, credentials)?;
    connection.authorization = authorization;
    let headers = [
        (wire::HEADER_FORWARDED, "1".to_string()),
        ("content-type", "application/json".to_string()),
    ];
    let answer = tokio::time::timeout(
        timeout,
        connection.send(method, path_and_query, &headers, body),
    )
    .await
    .map_err(|_| ClientError::Timeout {
        endpoint: connection.authority().to_string(),
        waited_ms: duration_ms(timeout),
    })??;
    let mut response = axum::response::Response::new(axum::body::Body::from(answer.body));
    *response.status_mut() = answer.status;
    if let Some(content_type) = answer.headers.get(CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, content_type.clone());
    }
    Ok(response)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A random 64-bit number from the OS-seeded hasher keys (no RNG crate needed for ids).
pub fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// How a [`ClusterClient`] retries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Longest wait for one answer from one node.
    pub request_timeout: Duration,
    /// How long to keep retrying (other nodes, leader hints, waiting for an election).
    pub retry_for: Duration,
    /// TLS settings and token presented to every node.
    pub credentials: Credentials,
}

impl Default for ClientOptions {
    /// 5 s per request (above the server's own 5 s request timeout would hide its answer,
    /// so a little above it), retrying for 15 s: several election timeouts.
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_millis(5_500),
            retry_for: Duration::from_secs(15),
            credentials: Credentials::default(),
        }
    }
}

/// A key's value and metadata, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The value's bytes.
    pub value: Bytes,
    /// The key's metadata.
    pub meta: KeyMeta,
}

/// A write's precondition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteCondition {
    /// No condition.
    #[default]
    Always,
    /// Only if the key does not exist.
    Absent,
    /// Only if the key's revision is this (0: absent).
    Revision(u64),
}

impl WriteCondition {
    fn query(self) -> String {
        match self {
            WriteCondition::Always => String::new(),
            WriteCondition::Absent => "?if_absent=true".into(),
            WriteCondition::Revision(r) => format!("?if_revision={r}"),
        }
    }
}

/// A client of the whole cluster: tries the nodes it knows, follows leader hints, retries
/// retryable failures until [`ClientOptions::retry_for`] has passed, and makes every write
/// exactly-once with its own session.
pub struct ClusterClient {
    endpoints: Vec<String>,
    connections: Vec<Connection>,
    current: usize,
    options: ClientOptions,
    client_id: u64,
    next_sequence: u64,
    /// Whether some attempt of the last call may have taken effect.
    last_call_uncertain: bool,
}

impl ClusterClient {
    /// A client of the nodes at `endpoints` (at least one), with a fresh random session.
    pub fn new(endpoints: &[String], options: ClientOptions) -> Result<Self, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::BadEndpoint("(none given)".into()));
        }
        let connections = endpoints
            .iter()
            .map(|e| Connection::with_credentials(e, &options.credentials))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClusterClient {
            endpoints: endpoints.to_vec(),
            connections,
            current: 0,
            options,
            client_id: random_u64().max(1),
            next_sequence: 1,
            last_call_uncertain: false,
        })
    }

    /// The session's client id.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// After a failed call: whether any of its attempts may have taken effect. `false` means
    /// the write certainly did not happen (every attempt was refused or answered
    /// `not_applied`); `true` means its outcome is unknown.
    pub fn last_call_may_have_applied(&self) -> bool {
        self.last_call_uncertain
    }

    /// The endpoint the client currently talks to.
    pub fn current_endpoint(&self) -> &str {
        &self.endpoints[self.current]
    }

    /// Sends a request, retrying as described on the type. `Ok` carries any answer that is
    /// not retryable (including 4xx errors, which the caller interprets).
    pub async fn call(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let started = Instant::now();
        let deadline = started + self.options.retry_for;
        let mut backoff = Duration::from_millis(20);
        // Attempts in a row that found no listening node: two full rounds over every
        // endpoint, and at least a second (a restarting node is back by then), mean a wrong
        // address or a cluster that is down, not a failover; say so instead of retrying for
        // all of `retry_for`.
        let mut unreachable = 0;
        self.last_call_uncertain = false;
        let mut tried: Vec<(String, String)> = Vec::new();
        loop {
            let timeout = self.options.request_timeout;
            let connection = &mut self.connections[self.current];
            let attempt = tokio::time::timeout(
                timeout,
                connection.send(method.clone(), path_and_query, headers, body.clone()),
            )
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Timeout {
                    endpoint: connection.authority().to_string(),
                    waited_ms: duration_ms(timeout),
                })
            });
            let error = match attempt {
                Ok(answer) => match answer.check() {
                    Ok(()) => return Ok(answer),
                    Err(error) if !error.is_retryable() => return Ok(answer),
                    Err(error) => error,
                },
                Err(error) => error,
            };
            self.last_call_uncertain |= error.may_have_applied();
            unreachable = match error {
                ClientError::Connect { .. } => unreachable + 1,
                _ => 0,
            };
            let hopeless = unreachable >= 2 * self.endpoints.len()
                && started.elapsed() >= Duration::from_secs(1);
            let endpoint = self.current_endpoint().to_string();
            match tried.iter_mut().find(|(e, _)| *e == endpoint) {
                Some(entry) => entry.1 = error.to_string(),
                None => tried.push((endpoint, error.to_string())),
            }
            if Instant::now() >= deadline || hopeless {
                let diagnosis = crate::server::diagnose::no_leader(
                    &self.endpoints,
                    &self.options.credentials,
                    &tried,
                );
                return Err(diagnosis.await.unwrap_or(error));
            }
            tracing::debug!(endpoint = self.current_endpoint(), %error, "retrying");
            self.move_on(&error);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Picks the next node to try: the leader the error names, else the next endpoint.
    fn move_on(&mut self, error: &ClientError) {
        let hint = match error {
            ClientError::Api { body, .. } => body.leader.as_ref().and_then(|l| l.url.clone()),
            _ => None,
        };
        if let Some(url) = hint {
            if let Some(position) = self
                .endpoints
                .iter()
                .position(|e| authority_of(e).ok() == authority_of(&url).ok())
            {
                if position != self.current {
                    self.current = position;
                    return;
                }
            } else if let Ok(connection) =
                Connection::with_credentials(&url, &self.options.credentials)
            {
                self.endpoints.push(url);
                self.connections.push(connection);
                self.current = self.endpoints.len() - 1;
                return;
            }
        }
        self.current = (self.current + 1) % self.endpoints.len();
    }

    async fn write(
        &mut self,
        method: Method,
        key: &[u8],
        condition: WriteCondition,
        body: Bytes,
    ) -> Result<u64, ClientError> {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let headers = [
            (HEADER_CLIENT_ID, self.client_id.to_string()),
            (HEADER_SEQUENCE, sequence.to_string()),
        ];
        let path = format!("/v1/kv/{}{}", wire::encode_key(key), condition.query());
        let answer = self.call(method, &path, &headers, body).await?;
        answer.json::<WriteBody>().map(|w| w.revision)
    }

    /// Sets `key` to `value` if `condition` holds; returns the new revision. A failed
    /// condition is `ClientError::Api` with status 412.
    pub async fn put(
        &mut self,
        key: &[u8],
        value: Bytes,
        condition: WriteCondition,
    ) -> Result<u64, ClientError> {
        self.write(Method::PUT, key, condition, value).await
    }

    /// Deletes `key` if `condition` holds; returns the store's revision afterwards.
    pub async fn delete(
        &mut self,
        key: &[u8],
        condition: WriteCondition,
    ) -> Result<u64, ClientError> {
        self.write(Method::DELETE, key, condition, Bytes::new())
            .await
    }

    /// Reads `key`; `None` when it does not exist.
    pub async fn get(
        &mut self,
        key: &[u8],
        consistency: ReadConsistency,
    ) -> Result<Option<Value>, ClientError> {
        let path = format!(
            "/v1/kv/{}?consistency={}",
            wire::encode_key(key),
            consistency.as_str()
        );
        let answer = self.call(Method::GET, &path, &[], Bytes::new()).await?;
        if answer.status == StatusCode::NOT_FOUND {
            answer.check().or_else(|e| match &e {
                ClientError::Api { body, .. } if body.error == "key_not_found" => Ok(()),
                _ => Err(e),
            })?;
            return Ok(None);
        }
        answer.check()?;
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Some(Value {
            meta: KeyMeta {
                revision: header(HEADER_REVISION),
                create_revision: header(HEADER_CREATE_REVISION),
                version: header(HEADER_VERSION),
            },
            value: answer.body,
        }))
    }

    /// Lists keys starting with `prefix`.
    pub async fn list(
        &mut self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
        consistency: ReadConsistency,
    ) -> Result<ListBody, ClientError> {
        let mut path = format!(
            "/v1/kv?prefix={}&limit={limit}&consistency={}",
            wire::encode_key(prefix.as_bytes()),
            consistency.as_str()
        );
        if let Some(after) = start_after {
            path.push_str("&start_after=");
            path.push_str(&wire::encode_key(after.as_bytes()));
        }
        self.call(Method::GET, &path, &[], Bytes::new())
            .await?
            .json()
    }

    /// The status of the node the client currently talks to.
    pub async fn status(&mut self) -> Result<StatusBody, ClientError> {
        self.call(Method::GET, "/v1/status", &[], Bytes::new())
            .await?
            .json()
    }

    /// The members as the current node knows them.
    pub async fn members(&mut self) -> Result<MembersBody, ClientError> {
        self.call(Method::GET, "/v1/members", &[], Bytes::new())
            .await?
            .json()
    }

    /// Adds (or promotes) a member.
    pub async fn add_member(&mut self, add: &AddMemberBody) -> Result<MembersBody, ClientError> {
        let body = serde_json::to_vec(add).map_err(|e| ClientError::Decode {
            status: 0,
            message: e.to_string(),
        })?;
        let headers = [("content-type", "application/json".to_string())];
        self.call(Method::POST, "/v1/members", &headers, Bytes::from(body))
            .await?
            .json()
    }

    /// Removes a member.
    pub async fn remove_member(&mut self, id: u64) -> Result<MembersBody, ClientError> {
        let path = format!("/v1/members/{id}");
        self.call(Method::DELETE, &path, &[], Bytes::new())
            .await?
            .json()
    }

    /// Hands leadership to `target` (or the best voter); returns the new leader.
    pub async fn transfer_leader(&mut self, target: Option<u64>) -> Result<u64, ClientError> {
        let path = match target {
            Some(t) => format!("/v1/leader/transfer?target={t}"),
            None => "/v1/leader/transfer".to_string(),
        };
        let answer = self.call(Method::POST, &path, &[], Bytes::new()).await?;
        answer.json::<TransferResult>().map(|t| t.leader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: endpoints are accepted with or without scheme and refused when malformed.
    #[test]
    fn parses_endpoints() {
        assert_eq!(
            authority_of("http://127.0.0.1:8001/").unwrap(),
            "127.0.0.1:8001"
        );
        assert_eq!(authority_of("localhost:8001").unwrap(), "localhost:8001");
        assert!(authority_of("http://host/path").is_err());
        assert!(authority_of("nohostport").is_err());
        assert!(authority_of("").is_err());
    }
}
