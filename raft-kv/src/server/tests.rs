//! The HTTP layer over an in-memory backend (a real `KvStateMachine`, no replication),
//! driven through a real socket by the crate's own client: routing, status codes, limits,
//! sessions and the forwarding of admin requests to the leader.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hyper::Method;
use raft_core::StateMachine;

use crate::server::backend::KvBackend;
use crate::server::client::{ClientOptions, ClusterClient, Connection, WriteCondition};
use crate::server::error::{ApiError, ErrorCode};
use crate::server::http::{ApiState, Limits, router};
use crate::server::prom::HttpMetrics;
use crate::server::wire::{
    AddMemberBody, ErrorBody, LeaderRef, MemberBody, MembersBody, ReadConsistency, StatusBody,
};
use crate::{Command, KvConfig, KvStateMachine, Query, QueryResponse, Response};

/// A single unreplicated store. When `leader` is set, admin calls fail with `NotLeader`
/// naming it, as a follower would.
struct MemoryBackend {
    machine: Mutex<KvStateMachine>,
    index: AtomicU64,
    leader: Option<LeaderRef>,
    transfers: AtomicU64,
}

impl MemoryBackend {
    fn new(config: KvConfig, leader: Option<LeaderRef>) -> Self {
        MemoryBackend {
            machine: Mutex::new(KvStateMachine::new(config).unwrap()),
            index: AtomicU64::new(0),
            leader,
            transfers: AtomicU64::new(0),
        }
    }

    fn not_leader(&self) -> Result<(), ApiError> {
        match &self.leader {
            Some(leader) => Err(ApiError::new(ErrorCode::NotLeader, "not the leader")
                .with_leader(Some(leader.clone()))),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl KvBackend for MemoryBackend {
    fn id(&self) -> u64 {
        1
    }

    async fn write(&self, command: Command) -> Result<Response, ApiError> {
        let index = self.index.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(self.machine.lock().unwrap().apply(index, command))
    }

    async fn read(&self, query: Query, _: ReadConsistency) -> Result<QueryResponse, ApiError> {
        Ok(self.machine.lock().unwrap().query(&query))
    }

    fn status(&self) -> StatusBody {
        let applied = self.index.load(Ordering::SeqCst);
        StatusBody {
            id: 1,
            role: "leader".into(),
            term: 1,
            leader: Some(LeaderRef { id: 1, url: None }),
            commit: applied,
            applied,
            last_index: applied,
            snapshot_index: 0,
            members: self.members().members,
            progress: Default::default(),
            lifecycle: "running".into(),
        }
    }

    fn members(&self) -> MembersBody {
        MembersBody {
            members: vec![MemberBody {
                id: 1,
                role: "voter".into(),
                raft_addr: Some("127.0.0.1:1".into()),
                url: None,
            }],
            joint: false,
        }
    }

    async fn add_member(&self, _: AddMemberBody) -> Result<MembersBody, ApiError> {
        self.not_leader()?;
        Ok(self.members())
    }

    async fn remove_member(&self, _: u64) -> Result<MembersBody, ApiError> {
        self.not_leader()?;
        Ok(self.members())
    }

    async fn transfer_leader(&self, target: Option<u64>) -> Result<u64, ApiError> {
        self.not_leader()?;
        self.transfers.fetch_add(1, Ordering::SeqCst);
        Ok(target.unwrap_or(1))
    }

    fn render_metrics(&self, out: &mut String) {
        out.push_str("# TYPE raft_term gauge\nraft_term 1\n");
    }

    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Serves `backend` on a free loopback port; returns its URL.
async fn spawn_api(backend: Arc<MemoryBackend>, limits: Limits) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = ApiState::new(backend, limits, Arc::new(HttpMetrics::default()));
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    url
}

fn small_limits() -> Limits {
    Limits {
        key_bytes_max: 16,
        value_bytes_max: 64,
        json_body_bytes_max: 1024,
        forward_timeout: Duration::from_secs(2),
    }
}

fn small_config() -> KvConfig {
    KvConfig {
        key_bytes_max: 16,
        value_bytes_max: 64,
        ..KvConfig::default()
    }
}

async fn raw(
    url: &str,
    method: Method,
    path: &str,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> (u16, Bytes) {
    let mut connection = Connection::new(url).unwrap();
    let answer = connection
        .send(method, path, headers, Bytes::copy_from_slice(body))
        .await
        .unwrap();
    (answer.status.as_u16(), answer.body)
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| format!("not an error body: {}", String::from_utf8_lossy(body)))
}

fn client(url: &str) -> ClusterClient {
    let options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_for: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    ClusterClient::new(&[url.to_string()], options).unwrap()
}

/// Goal: put, get, conditional writes (412 with the key's state), delete and list behave
/// as the API promises, for binary keys too.
#[tokio::test]
async fn key_value_round_trip_and_conditions() {
    let url = spawn_api(
        Arc::new(MemoryBackend::new(small_config(), None)),
        small_limits(),
    )
    .await;
    let mut c = client(&url);
    let r1 = c
        .put(b"a/b c", Bytes::from("one"), WriteCondition::Always)
        .await
        .unwrap();
    let value = c
        .get(b"a/b c", ReadConsistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value.value, Bytes::from("one"));
    assert_eq!(value.meta.revision, r1);
    let stale = c
        .put(
            b"a/b c",
            Bytes::from("two"),
            WriteCondition::Revision(r1 + 5),
        )
        .await;
    let error = stale.unwrap_err();
    assert_eq!(error.status(), Some(412));
    let r2 = c
        .put(b"a/b c", Bytes::from("two"), WriteCondition::Revision(r1))
        .await
        .unwrap();
    assert!(r2 > r1);
    let exists = c
        .put(b"a/b c", Bytes::from("x"), WriteCondition::Absent)
        .await;
    assert_eq!(exists.unwrap_err().status(), Some(412));
    c.put(
        &[0xff, 0x01],
        Bytes::from_static(&[0, 159]),
        WriteCondition::Absent,
    )
    .await
    .unwrap();
    c.put(b"a/z", Bytes::from("z"), WriteCondition::Always)
        .await
        .unwrap();
    let list = c
        .list("a/", None, 10, ReadConsistency::Stale)
        .await
        .unwrap();
    let keys: Vec<_> = list
        .entries
        .iter()
        .map(|e| e.key.clone().unwrap())
        .collect();
    assert_eq!(keys, ["a/b c", "a/z"]);
    let page = c.list("", None, 1, ReadConsistency::Lease).await.unwrap();
    assert!(page.more);
    let binary = c
        .get(&[0xff, 0x01], ReadConsistency::Stale)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(binary.value.as_ref(), &[0, 159]);
    c.delete(b"a/b c", WriteCondition::Always).await.unwrap();
    assert!(
        c.get(b"a/b c", ReadConsistency::Linearizable)
            .await
            .unwrap()
            .is_none()
    );
}

/// Goal: a retried session write is applied once (same revision back), a stale sequence is
/// a 409, and half a session is a 400.
#[tokio::test]
async fn session_headers_make_writes_exactly_once() {
    let backend = Arc::new(MemoryBackend::new(small_config(), None));
    let url = spawn_api(Arc::clone(&backend), small_limits()).await;
    let session = |seq: u64| {
        vec![
            ("client-id", "77".to_string()),
            ("sequence", seq.to_string()),
        ]
    };
    let (s1, b1) = raw(&url, Method::PUT, "/v1/kv/k", &session(1), b"v1").await;
    let (s2, b2) = raw(&url, Method::PUT, "/v1/kv/k", &session(1), b"v1").await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, b2, "the retry must replay the first answer");
    let (s3, _) = raw(&url, Method::PUT, "/v1/kv/k", &session(2), b"v2").await;
    assert_eq!(s3, 200);
    let (s4, b4) = raw(&url, Method::PUT, "/v1/kv/k", &session(1), b"v1").await;
    assert_eq!((s4, error_code(&b4).as_str()), (409, "stale_sequence"));
    let value = client(&url)
        .get(b"k", ReadConsistency::Stale)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value.meta.version, 2, "two distinct writes, not three");
    let half = vec![("client-id", "77".to_string())];
    let (s5, b5) = raw(&url, Method::PUT, "/v1/kv/k", &half, b"v").await;
    assert_eq!((s5, error_code(&b5).as_str()), (400, "bad_request"));
    let bad = vec![
        ("client-id", "x".to_string()),
        ("sequence", "1".to_string()),
    ];
    assert_eq!(raw(&url, Method::PUT, "/v1/kv/k", &bad, b"v").await.0, 400);
}

/// Goal: malformed and oversized requests get a 4xx with a JSON error, and the node keeps
/// serving afterwards.
#[tokio::test]
async fn malformed_and_oversized_requests_are_refused() {
    let url = spawn_api(
        Arc::new(MemoryBackend::new(small_config(), None)),
        small_limits(),
    )
    .await;
    let cases: Vec<(Method, &str, Vec<u8>, u16, &str)> = vec![
        (
            Method::PUT,
            "/v1/kv/k",
            vec![b'x'; 65],
            413,
            "value_too_large",
        ),
        (
            Method::PUT,
            "/v1/kv/0123456789abcdefg",
            b"v".to_vec(),
            413,
            "key_too_large",
        ),
        (Method::PUT, "/v1/kv/%zz", b"v".to_vec(), 400, "bad_request"),
        (
            Method::PUT,
            "/v1/kv/k?if_revision=abc",
            b"v".to_vec(),
            400,
            "bad_request",
        ),
        (
            Method::PUT,
            "/v1/kv/k?if_revision=1&if_absent=true",
            b"v".to_vec(),
            400,
            "bad_request",
        ),
        (
            Method::PUT,
            "/v1/kv/k?bogus=1",
            b"v".to_vec(),
            400,
            "bad_request",
        ),
        (
            Method::GET,
            "/v1/kv/k?consistency=eventual",
            vec![],
            400,
            "bad_request",
        ),
        (Method::GET, "/v1/kv/missing", vec![], 404, "key_not_found"),
        (Method::GET, "/v1/nothing", vec![], 404, "not_found"),
        (Method::PATCH, "/v1/kv/k", vec![], 405, "method_not_allowed"),
        (
            Method::POST,
            "/v1/members",
            b"{not json".to_vec(),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/v1/members",
            br#"{"id": 0}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/v1/members",
            vec![b' '; 2000],
            413,
            "value_too_large",
        ),
        (
            Method::DELETE,
            "/v1/members/abc",
            vec![],
            400,
            "bad_request",
        ),
        (
            Method::POST,
            "/v1/leader/transfer",
            br#"{"target": "x"}"#.to_vec(),
            400,
            "bad_request",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, answer) = raw(&url, method.clone(), path, &[], &body).await;
        assert_eq!(
            (got, error_code(&answer).as_str()),
            (status, code),
            "{method} {path}"
        );
    }
    let (status, body) = raw(&url, Method::GET, "/healthz", &[], b"").await;
    assert_eq!((status, body.as_ref()), (200, b"ok\n".as_ref()));
    let mut c = client(&url);
    c.put(b"still", Bytes::from("serving"), WriteCondition::Always)
        .await
        .unwrap();
}

/// Goal: an admin request on a follower is forwarded to the leader's URL and answered with
/// the leader's answer; a request already forwarded is not forwarded again.
#[tokio::test]
async fn admin_requests_are_forwarded_to_the_leader() {
    let leader = Arc::new(MemoryBackend::new(small_config(), None));
    let leader_url = spawn_api(Arc::clone(&leader), small_limits()).await;
    let follower = MemoryBackend::new(
        small_config(),
        Some(LeaderRef {
            id: 2,
            url: Some(leader_url.clone()),
        }),
    );
    let follower_url = spawn_api(Arc::new(follower), small_limits()).await;
    let new_leader = client(&follower_url)
        .transfer_leader(Some(3))
        .await
        .unwrap();
    assert_eq!(new_leader, 3);
    assert_eq!(leader.transfers.load(Ordering::SeqCst), 1);
    let forwarded = vec![("x-raft-kv-forwarded", "1".to_string())];
    let (status, body) = raw(
        &follower_url,
        Method::POST,
        "/v1/leader/transfer",
        &forwarded,
        b"",
    )
    .await;
    assert_eq!((status, error_code(&body).as_str()), (503, "not_leader"));
    let error: ErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        error.leader.unwrap().url.as_deref(),
        Some(leader_url.as_str())
    );
}

/// Goal: /metrics is Prometheus text with the backend's and the HTTP layer's families.
#[tokio::test]
async fn metrics_are_prometheus_text() {
    let url = spawn_api(
        Arc::new(MemoryBackend::new(small_config(), None)),
        small_limits(),
    )
    .await;
    client(&url)
        .put(b"k", Bytes::from("v"), WriteCondition::Always)
        .await
        .unwrap();
    let (status, body) = raw(&url, Method::GET, "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("raft_term 1\n"), "{text}");
    assert!(
        text.contains("raft_kv_http_request_duration_seconds_count{route=\"put\"} 1\n"),
        "{text}"
    );
}

/// Goal: with no node listening anywhere the client gives up after about a second with a
/// connect error, instead of retrying for its whole retry window.
#[tokio::test]
async fn unreachable_cluster_fails_fast() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_for: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    let mut c = ClusterClient::new(&[closed.clone(), closed], options).unwrap();
    let started = std::time::Instant::now();
    let error = c.get(b"k", ReadConsistency::Stale).await.unwrap_err();
    assert!(
        matches!(error, crate::server::client::ClientError::Connect { .. }),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Goal: a bench run's cleanup removes every key it wrote, also when the values are 1 MB
/// (one page of the listing then carries far more value bytes than a small answer).
#[tokio::test]
async fn bench_cleanup_removes_one_megabyte_values() {
    let url = spawn_api(
        Arc::new(MemoryBackend::new(KvConfig::default(), None)),
        Limits::from_kv(&KvConfig::default()),
    )
    .await;
    let mut c = client(&url);
    let value = Bytes::from(vec![b'x'; 1_000_000]);
    for i in 0..40 {
        let key = format!("bench/1mb/{i:010}");
        c.put(key.as_bytes(), value.clone(), WriteCondition::Always)
            .await
            .unwrap();
    }
    let options = crate::server::bench::BenchOptions {
        endpoints: vec![url.clone()],
        clients: 1,
        duration: Duration::ZERO,
        warmup: Duration::ZERO,
        value_size: value.len(),
        keys: 40,
        read_ratio: 0.0,
        consistency: ReadConsistency::Linearizable,
        target: crate::server::bench::Target::All,
        sessions: false,
        credentials: Default::default(),
        key_prefix: "bench/1mb/".into(),
        keep: false,
        server_pids: Vec::new(),
    };
    let removed = crate::server::bench::remove_keys(&options).await.unwrap();
    assert_eq!(removed, 40);
    let left = c
        .list("bench/1mb/", None, 1000, ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert!(left.entries.is_empty(), "{} keys left", left.entries.len());
}
