//! The HTTP API: routes, request parsing and limits, and the mapping of state machine
//! answers to statuses. Built with axum (routing, extractors and graceful shutdown on top
//! of hyper, maintained by the tokio project).
//!
//! Every request is answered, with a JSON error body when it fails; nothing a client sends
//! can panic a handler. Bodies are read with a hard size limit, against the node's body
//! memory budget and within the body timeout ([`crate::server::limits`]). Every request is
//! authorized first ([`crate::server::auth`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::server::auth::{self, Auth, Caller, Principal};
use crate::server::backend::KvBackend;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::limits::{BodyBudget, BodyError, BodyLease, BodyLimits};
use crate::server::newline;
use crate::server::prom::{HttpMetrics, PromWriter, ROUTES};
use crate::server::watch::{self, WatchHub};
use crate::server::wire::{
    self, AddMemberBody, HEADER_CLIENT_ID, HEADER_CREATE_REVISION, HEADER_FORWARDED,
    HEADER_REVISION, HEADER_SEQUENCE, HEADER_STORE_REVISION, HEADER_VERSION, KeyMeta, ListBody,
    ListEntry, ReadConsistency, TransferBody, TransferResult, WriteBody,
};
use crate::{Command, CommandError, Condition, Op, Query, QueryResponse, Response as KvResponse};

/// Size limits the API enforces before anything reaches the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest key accepted (bytes, after percent-decoding).
    pub key_bytes_max: u64,
    /// Longest value accepted (the PUT body).
    pub value_bytes_max: u64,
    /// Longest JSON body accepted on the admin routes.
    pub json_body_bytes_max: usize,
    /// How long a request forwarded to the leader may take.
    pub forward_timeout: Duration,
}

impl Limits {
    /// The state machine's limits, so the API refuses what the log would reject anyway.
    pub fn from_kv(config: &crate::KvConfig) -> Self {
        Limits {
            key_bytes_max: config.key_bytes_max,
            value_bytes_max: config.value_bytes_max,
            json_body_bytes_max: 64 * 1024,
            forward_timeout: Duration::from_secs(10),
        }
    }
}

/// Shared state of the handlers. Cloned for every request by each layer that holds it, so
/// it is one `Arc`: one reference count to move per clone, not one per field.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<ApiShared>,
}

/// What [`ApiState`] shares (reached through its `Deref`).
#[derive(Clone)]
pub struct ApiShared {
    backend: Arc<dyn KvBackend>,
    pub(crate) limits: Arc<Limits>,
    metrics: Arc<HttpMetrics>,
    auth: Arc<Auth>,
    budget: BodyBudget,
    /// TLS settings for forwarding to the leader (the caller's token goes along).
    pub(crate) forward_tls: Option<Arc<rustls::ClientConfig>>,
    watches: WatchHub,
}

impl std::ops::Deref for ApiState {
    type Target = ApiShared;

    fn deref(&self) -> &ApiShared {
        &self.inner
    }
}

impl ApiState {
    /// State over `backend` with `limits`, recording into `metrics`; open to everyone and
    /// with the default body limits until told otherwise.
    pub fn new(backend: Arc<dyn KvBackend>, limits: Limits, metrics: Arc<HttpMetrics>) -> Self {
        ApiState {
            inner: Arc::new(ApiShared {
                backend,
                limits: Arc::new(limits),
                metrics,
                auth: Arc::new(Auth::open()),
                budget: BodyBudget::new(BodyLimits::default()),
                forward_tls: None,
                watches: WatchHub::default(),
            }),
        }
    }

    /// The same state checking every request against `auth`, and forwarding to the leader
    /// over TLS with `forward_tls` when given.
    #[must_use]
    pub fn with_security(
        mut self,
        auth: Auth,
        forward_tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let shared = Arc::make_mut(&mut self.inner);
        shared.auth = Arc::new(auth);
        shared.forward_tls = forward_tls;
        self
    }

    /// The same state with these body limits.
    #[must_use]
    pub fn with_body_limits(mut self, limits: BodyLimits) -> Self {
        Arc::make_mut(&mut self.inner).budget = BodyBudget::new(limits);
        self
    }

    /// The node's watches (closed at shutdown so streams end).
    pub fn watches(&self) -> &WatchHub {
        &self.watches
    }
}

/// The API's router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/kv", get(list_keys))
        .route("/v1/status", get(status))
        .route("/v1/members", get(members).post(add_member))
        .route("/v1/members/{id}", axum::routing::delete(remove_member))
        .route("/v1/leader/transfer", post(transfer_leader))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .merge(watch::routes(
            Arc::clone(&state.backend),
            state.watches.clone(),
            state.limits.key_bytes_max,
        ))
        // `/v1/kv/<key>` is served from the fallback, not a `{*key}` route: a route parameter
        // costs five allocations per request (axum percent-decodes it into an `Arc<str>`, a
        // `Vec` and a request extension) that the handlers never read (they decode the key
        // from the path themselves).
        .fallback(key_or_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One layer, not three: each `from_fn` layer boxes a future and clones its state
        // per request.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            around_request,
        ))
        .with_state(state)
}

/// What the listener serves: [`router`], except that requests for single keys
/// (`/v1/kv/<key>`, the hot path) skip the router and go straight to their handler through
/// the same request layer (`around`). The router would find them in its fallback anyway,
/// after cloning its boxed route service and boxing the route's future and the layer's
/// `Next` (about five allocations per request); here one boxed future is left.
#[derive(Clone)]
pub struct ApiService {
    state: ApiState,
    router: TowerToHyperService<Router>,
}

/// The service [`crate::server::limits::serve_http`] runs for `state`: see [`ApiService`].
pub fn service(state: ApiState) -> ApiService {
    ApiService {
        router: TowerToHyperService::new(router(state.clone())),
        state,
    }
}

impl<B> hyper::service::Service<axum::http::Request<B>> for ApiService
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
    >;

    fn call(&self, request: axum::http::Request<B>) -> Self::Future {
        if is_key_path(request.uri().path()) {
            let state = self.state.clone();
            let request = request.map(Body::new);
            Box::pin(async move {
                let inner = |request| key_or_not_found(State(state.clone()), request);
                Ok(around(&state, request, inner).await)
            })
        } else {
            Box::pin(self.router.call(request))
        }
    }
}

/// Around every request routed by [`router`]: see [`around`].
async fn around_request(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    around(&state, request, |request| next.run(request)).await
}

/// Around every request: authorizes it ([`auth::refusal`]), runs `inner`, times it and
/// counts its status by route (refusals included), and ends a JSON answer with a newline
/// ([`newline::end_line`]).
async fn around<F, Fut>(state: &ApiState, mut request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let route = route_index(request.method(), request.uri().path(), request.headers());
    let started = Instant::now();
    let response = match auth::refusal(&state.auth, &mut request) {
        None => inner(request).await,
        Some(refusal) => refusal,
    };
    state
        .metrics
        .record(route, response.status().as_u16(), started.elapsed());
    newline::end_line(response).await
}

fn is_key_path(path: &str) -> bool {
    path.len() > KEY_PATH_PREFIX.len() && path.starts_with(KEY_PATH_PREFIX)
}

fn route_index(method: &Method, path: &str, headers: &HeaderMap) -> usize {
    let name = if headers.contains_key(HEADER_FORWARDED) {
        "forwarded"
    } else if path.starts_with(KEY_PATH_PREFIX) {
        match *method {
            Method::PUT => "put",
            Method::GET => "get",
            Method::DELETE => "delete",
            _ => "other",
        }
    } else {
        match path {
            "/v1/kv" => "list",
            "/v1/status" => "status",
            "/v1/leader/transfer" => "transfer",
            "/metrics" => "metrics",
            "/healthz" => "healthz",
            p if p.starts_with("/v1/members") => "members",
            _ => "other",
        }
    };
    ROUTES.iter().position(|r| *r == name).unwrap_or(0)
}

/// `GET`/`HEAD`, `PUT` and `DELETE` of `/v1/kv/<key>`; any other path is unknown.
async fn key_or_not_found(State(state): State<ApiState>, request: Request) -> Response {
    if !is_key_path(request.uri().path()) {
        return route_not_found(request.uri().clone()).await.into_response();
    }
    let answer = match *request.method() {
        Method::GET | Method::HEAD => get_key(State(state), request).await,
        Method::PUT => put_key(State(state), request).await,
        Method::DELETE => delete_key(State(state), request).await,
        _ => {
            let (method, uri) = (request.method().clone(), request.uri().clone());
            return method_not_allowed(method, uri).await.into_response();
        }
    };
    answer.into_response()
}

/// Paths of single keys start with this.
const KEY_PATH_PREFIX: &str = "/v1/kv/";

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::RouteNotFound,
        format!("no route for {}; see the API in the README", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not supported on {}", uri.path()),
    )
}

/// Query parameters of a PUT or DELETE.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteParams {
    /// Write only if the key's revision equals this (0: only if absent).
    if_revision: Option<u64>,
    /// Write only if the key does not exist.
    if_absent: Option<bool>,
}

/// Query parameters of a GET of one key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadParams {
    consistency: Option<String>,
}

/// Query parameters of a list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    prefix: Option<String>,
    start_after: Option<String>,
    limit: Option<u32>,
    consistency: Option<String>,
}

/// Default page size of a list.
const LIST_LIMIT_DEFAULT: u32 = 1000;

async fn put_key(State(state): State<ApiState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let key = key_from_path(parts.uri.path(), &state.limits)?;
    let params: WriteParams = parse_query(&parts.uri)?;
    let condition = condition_of(&params)?;
    let session = session_of(&parts)?;
    let (value, _lease) = read_body(
        &state,
        body,
        state.limits.value_bytes_max,
        ErrorCode::ValueTooLarge,
    )
    .await?;
    let op = Op::Put {
        key,
        value,
        condition,
    };
    write(&state, op, session).await
}

async fn delete_key(State(state): State<ApiState>, request: Request) -> Result<Response, ApiError> {
    let (parts, _body) = request.into_parts();
    let key = key_from_path(parts.uri.path(), &state.limits)?;
    let params: WriteParams = parse_query(&parts.uri)?;
    let condition = condition_of(&params)?;
    let session = session_of(&parts)?;
    write(&state, Op::Delete { key, condition }, session).await
}

async fn write(
    state: &ApiState,
    op: Op,
    session: Option<(u64, u64)>,
) -> Result<Response, ApiError> {
    let mut command = Command::new(op, now_ms());
    if let Some((client_id, sequence)) = session {
        command = command.with_session(client_id, sequence);
    }
    let response = state.backend.write(command).await?;
    write_outcome(response).map(|body| newline::json_line(StatusCode::OK, &body))
}

/// Maps the state machine's answer to a write to the API's answer.
fn write_outcome(response: KvResponse) -> Result<WriteBody, ApiError> {
    match response {
        KvResponse::Put { revision, .. } | KvResponse::Delete { revision, .. } => {
            Ok(WriteBody { revision })
        }
        KvResponse::ConditionFailed { revision, current } => {
            let message = match current {
                Some(k) => format!(
                    "condition failed: the key is at revision {}",
                    k.mod_revision
                ),
                None => "condition failed: the key does not exist".to_string(),
            };
            let mut error = ApiError::new(ErrorCode::ConditionFailed, message);
            error.condition = Some((current.map(KeyMeta::from), revision));
            Err(error)
        }
        KvResponse::Rejected(error) => Err(command_error(error)),
    }
}

fn command_error(error: CommandError) -> ApiError {
    let code = match &error {
        CommandError::EmptyKey => ErrorCode::EmptyKey,
        CommandError::KeyTooLarge { .. } => ErrorCode::KeyTooLarge,
        CommandError::ValueTooLarge { .. } => ErrorCode::ValueTooLarge,
        CommandError::InvalidSequence { .. } => ErrorCode::InvalidSequence,
        CommandError::StaleSequence { .. } => ErrorCode::StaleSequence,
        CommandError::SessionUnknown { .. } => ErrorCode::SessionUnknown,
        CommandError::IndexNotIncreasing { .. } => ErrorCode::Internal,
    };
    ApiError::new(code, error.to_string())
}

async fn get_key(State(state): State<ApiState>, request: Request) -> Result<Response, ApiError> {
    let uri = request.uri();
    let key = key_from_path(uri.path(), &state.limits)?;
    // The usual query, `consistency=<level>` alone, is read without the general parser
    // (which allocates a `String` and a path for its error messages per request).
    let consistency = match uri.query().and_then(|q| q.strip_prefix("consistency=")) {
        Some(level)
            if level
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            consistency_of(Some(level))?
        }
        _ => {
            let params: ReadParams = parse_query(uri)?;
            consistency_of(params.consistency.as_deref())?
        }
    };
    let answer = state.backend.read(Query::Get { key }, consistency).await?;
    let QueryResponse::Get(answer) = answer else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "a get was answered as a range",
        ));
    };
    let Some(entry) = answer.entry else {
        return Err(ApiError::new(
            ErrorCode::KeyNotFound,
            "the key does not exist",
        ));
    };
    let meta = KeyMeta::from(entry.key_revision);
    let mut response = Response::new(Body::from(entry.value));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(HEADER_REVISION, number_header(meta.revision));
    headers.insert(HEADER_CREATE_REVISION, number_header(meta.create_revision));
    headers.insert(HEADER_VERSION, number_header(meta.version));
    headers.insert(HEADER_STORE_REVISION, number_header(answer.revision));
    Ok(response)
}

async fn list_keys(State(state): State<ApiState>, uri: Uri) -> Result<Response, ApiError> {
    let params: ListParams = parse_query(&uri)?;
    let consistency = consistency_of(params.consistency.as_deref())?;
    let prefix = Bytes::from(params.prefix.unwrap_or_default());
    if prefix.len() as u64 > state.limits.key_bytes_max {
        return Err(ApiError::new(
            ErrorCode::KeyTooLarge,
            "the prefix is longer than a key may be",
        ));
    }
    let query = Query::Range {
        prefix,
        start_after: params.start_after.map(Bytes::from),
        limit: params.limit.unwrap_or(LIST_LIMIT_DEFAULT),
    };
    let QueryResponse::Range(answer) = state.backend.read(query, consistency).await? else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "a range was answered as a get",
        ));
    };
    let entries = answer
        .entries
        .iter()
        .map(|kv| ListEntry::new(&kv.key, &kv.value, kv.key_revision.into()))
        .collect();
    let body = ListBody {
        revision: answer.revision,
        entries,
        more: answer.more,
    };
    Ok(newline::json_line(StatusCode::OK, &body))
}

async fn status(State(state): State<ApiState>) -> Response {
    newline::json_line(StatusCode::OK, &state.backend.status())
}

async fn healthz(State(state): State<ApiState>) -> Response {
    match state.backend.health() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => ApiError::new(ErrorCode::ShuttingDown, reason).into_response(),
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    state.backend.render_metrics(&mut out);
    let mut writer = PromWriter::new(&mut out);
    state.metrics.render(&mut writer);
    writer.single(
        "raft_kv_http_body_budget_available_bytes",
        "gauge",
        "Bytes of the request body budget not held by any request.",
        state.budget.available_bytes() as f64,
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        out,
    )
        .into_response()
}

async fn members(State(state): State<ApiState>) -> Response {
    axum::Json(state.backend.members()).into_response()
}

async fn add_member(State(state): State<ApiState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let (bytes, _lease) = read_body(
        &state,
        body,
        state.limits.json_body_bytes_max as u64,
        ErrorCode::BadRequest,
    )
    .await?;
    let add: AddMemberBody = parse_json(&bytes)?;
    crate::server::members::check_add(&add, &state.backend.members())?;
    match state.backend.add_member(add).await {
        Ok(members) => Ok(axum::Json(members).into_response()),
        Err(error) => crate::server::forward::forward_or(&state, &parts, bytes, error).await,
    }
}

async fn remove_member(
    State(state): State<ApiState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, _body) = request.into_parts();
    let id = parts
        .uri
        .path()
        .rsplit('/')
        .next()
        .and_then(|id| id.parse::<u64>().ok())
        .filter(|id| *id != 0)
        .ok_or_else(|| ApiError::bad_request("the member id must be a positive integer"))?;
    match state.backend.remove_member(id).await {
        Ok(members) => Ok(axum::Json(members).into_response()),
        Err(error) => crate::server::forward::forward_or(&state, &parts, Bytes::new(), error).await,
    }
}

async fn transfer_leader(
    State(state): State<ApiState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let (bytes, _lease) = read_body(
        &state,
        body,
        state.limits.json_body_bytes_max as u64,
        ErrorCode::BadRequest,
    )
    .await?;
    let mut transfer: TransferBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        TransferBody::default()
    } else {
        parse_json(&bytes)?
    };
    #[derive(Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TransferParams {
        target: Option<u64>,
    }
    let params: TransferParams = parse_query(&parts.uri)?;
    transfer.target = transfer.target.or(params.target);
    match state.backend.transfer_leader(transfer.target).await {
        Ok(leader) => Ok(axum::Json(TransferResult { leader }).into_response()),
        Err(error) => crate::server::forward::forward_or(&state, &parts, bytes, error).await,
    }
}

/// The key named by a `/v1/kv/{key}` path, percent-decoded and checked against the limits.
fn key_from_path(path: &str, limits: &Limits) -> Result<Bytes, ApiError> {
    let encoded = path.strip_prefix(KEY_PATH_PREFIX).unwrap_or_default();
    let key = wire::decode_percent(encoded)
        .ok_or_else(|| ApiError::bad_request("the key has a malformed percent escape"))?;
    if key.is_empty() {
        return Err(ApiError::new(ErrorCode::EmptyKey, "the key is empty"));
    }
    if key.len() as u64 > limits.key_bytes_max {
        return Err(ApiError::new(
            ErrorCode::KeyTooLarge,
            format!(
                "key of {} bytes exceeds the limit of {} bytes",
                key.len(),
                limits.key_bytes_max
            ),
        ));
    }
    Ok(Bytes::from(key))
}

/// `n` as a header value: one allocation (`HeaderValue::from(u64)` makes two).
fn number_header(n: u64) -> HeaderValue {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // Invariant: ASCII digits are valid header value bytes.
    HeaderValue::from_bytes(&digits[start..]).expect("digits are a valid header value")
}

fn parse_query<T: DeserializeOwned + Default>(uri: &Uri) -> Result<T, ApiError> {
    if uri.query().is_none_or(str::is_empty) {
        return Ok(T::default());
    }
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("bad query parameters: {}", e.body_text())))
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

fn condition_of(params: &WriteParams) -> Result<Condition, ApiError> {
    match (params.if_revision, params.if_absent) {
        (Some(_), Some(true)) => Err(ApiError::bad_request(
            "give at most one of if_revision and if_absent",
        )),
        (Some(revision), _) => Ok(Condition::ModRevision(revision)),
        (None, Some(true)) => Ok(Condition::Absent),
        (None, _) => Ok(Condition::Always),
    }
}

fn consistency_of(text: Option<&str>) -> Result<ReadConsistency, ApiError> {
    text.map_or(Ok(ReadConsistency::default()), |t| {
        t.parse().map_err(ApiError::bad_request)
    })
}

/// The `(client_id, sequence)` of a session write, from its headers (both or neither), the
/// client id made the caller's own ([`auth::session_client_id`]).
fn session_of(parts: &axum::http::request::Parts) -> Result<Option<(u64, u64)>, ApiError> {
    let open = Principal(None);
    let principal = parts
        .extensions
        .get::<Caller>()
        .map_or(&open, |caller| &caller.principal);
    Ok(session_headers(&parts.headers)?
        .map(|(client_id, sequence)| (auth::session_client_id(principal, client_id), sequence)))
}

/// The `(client_id, sequence)` headers as sent.
fn session_headers(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        headers
            .get(name)
            .map(|value| {
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "header `{name}` must be an unsigned integer"
                        ))
                    })
            })
            .transpose()
    };
    match (number(HEADER_CLIENT_ID)?, number(HEADER_SEQUENCE)?) {
        (Some(client_id), Some(sequence)) => Ok(Some((client_id, sequence))),
        (None, None) => Ok(None),
        _ => Err(ApiError::bad_request(format!(
            "give both `{HEADER_CLIENT_ID}` and `{HEADER_SEQUENCE}` headers, or neither"
        ))),
    }
}

/// Reads a body of at most `max_bytes` against the node's body budget, refusing larger
/// ones with `code` before buffering. Keep the lease until the request is done.
async fn read_body(
    state: &ApiState,
    body: Body,
    max_bytes: u64,
    code: ErrorCode,
) -> Result<(Bytes, BodyLease), ApiError> {
    state.budget.read(body, max_bytes).await.map_err(|e| {
        let code = match &e {
            BodyError::TooLarge { .. } if code == ErrorCode::BadRequest => ErrorCode::ValueTooLarge,
            BodyError::TooLarge { .. } => code,
            BodyError::OverBudget => ErrorCode::Overloaded,
            BodyError::TimedOut(_) => ErrorCode::RequestTimeout,
            BodyError::Broken(_) => ErrorCode::BadRequest,
        };
        ApiError::new(code, e.to_string())
    })
}

/// The proposer's clock for session expiry: wall-clock milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: revision headers carry the number in decimal, at both ends of the range.
    #[test]
    fn number_headers_are_decimal() {
        for n in [0, 7, 10, 1_234_567_890, u64::MAX] {
            assert_eq!(number_header(n), HeaderValue::from(n));
        }
    }
}
