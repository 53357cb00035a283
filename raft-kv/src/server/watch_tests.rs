//! The watch API over an in-memory backend (a real `KvStateMachine`, no replication) and
//! a real socket: order, filtering, waiting for new changes, `410 compacted`, the limits on
//! slow watchers and on the number of watches, shutdown, and JSON line ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use raft_core::StateMachine;
use tokio::sync::watch as notify;

use super::*;
use crate::server::backend::KvBackend;
use crate::server::client::{ClientOptions, Connection};
use crate::server::http::{ApiState, Limits, router};
use crate::server::prom::HttpMetrics;
use crate::server::watch_client::Watcher;
use crate::server::wire::{LeaderRef, MembersBody, StatusBody, WatchEvent, WatchEventKind};
use crate::{Command, KvConfig, KvStateMachine, Response as KvResponse};

/// One unreplicated store that announces every apply, as a node's status channel does.
struct MemoryBackend {
    machine: Mutex<KvStateMachine>,
    index: AtomicU64,
    applied: notify::Sender<u64>,
}

impl MemoryBackend {
    fn new(config: KvConfig) -> Arc<Self> {
        Arc::new(MemoryBackend {
            machine: Mutex::new(KvStateMachine::new(config).unwrap()),
            index: AtomicU64::new(0),
            applied: notify::Sender::new(0),
        })
    }

    fn put(&self, key: &str, value: &str) -> u64 {
        let command = Command::put(key.to_string(), value.to_string(), 1);
        self.apply(command)
    }

    fn apply(&self, command: Command) -> u64 {
        let index = self.index.fetch_add(1, Ordering::SeqCst) + 1;
        self.machine.lock().unwrap().apply(index, command);
        self.applied.send_replace(index);
        index
    }
}

#[async_trait]
impl KvBackend for MemoryBackend {
    fn id(&self) -> u64 {
        1
    }

    async fn write(&self, command: Command) -> Result<KvResponse, ApiError> {
        let index = self.index.fetch_add(1, Ordering::SeqCst) + 1;
        let response = self.machine.lock().unwrap().apply(index, command);
        self.applied.send_replace(index);
        Ok(response)
    }

    async fn read(&self, query: Query, _: ReadConsistency) -> Result<QueryResponse, ApiError> {
        Ok(self.machine.lock().unwrap().query(&query))
    }

    async fn wait_applied_beyond(&self, index: u64, timeout: Duration) -> Result<bool, ApiError> {
        let mut applied = self.applied.subscribe();
        let wait = applied.wait_for(|applied| *applied > index);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(_)) => Err(ApiError::new(ErrorCode::ShuttingDown, "stopped")),
            Err(_) => Ok(false),
        }
    }

    fn status(&self) -> StatusBody {
        StatusBody {
            id: 1,
            role: "leader".into(),
            term: 1,
            leader: Some(LeaderRef { id: 1, url: None }),
            commit: 0,
            applied: 0,
            last_index: 0,
            snapshot_index: 0,
            members: Vec::new(),
            progress: Default::default(),
            lifecycle: "running".into(),
        }
    }

    fn members(&self) -> MembersBody {
        MembersBody {
            members: Vec::new(),
            joint: false,
        }
    }

    async fn add_member(
        &self,
        _: crate::server::wire::AddMemberBody,
    ) -> Result<MembersBody, ApiError> {
        Ok(self.members())
    }

    async fn remove_member(&self, _: u64) -> Result<MembersBody, ApiError> {
        Ok(self.members())
    }

    async fn transfer_leader(&self, _: Option<u64>) -> Result<u64, ApiError> {
        Ok(1)
    }

    fn render_metrics(&self, _: &mut String) {}

    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

fn small_history() -> KvConfig {
    KvConfig {
        history_changes_max: 5,
        ..KvConfig::default()
    }
}

/// Serves only the watch route with `hub`; returns the URL.
async fn serve_watches(backend: Arc<MemoryBackend>, hub: WatchHub) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app: Router = routes(backend, hub, 1024);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn watcher(url: &str, prefix: &str, from: Option<u64>) -> Watcher {
    let options = ClientOptions {
        credentials: Default::default(),
        request_timeout: Duration::from_secs(10),
        retry_for: Duration::from_secs(10),
    };
    Watcher::new(&[url.to_string()], prefix, from, options).unwrap()
}

async fn next(watcher: &mut Watcher) -> (u64, WatchEventKind, String, Option<String>) {
    let event = tokio::time::timeout(Duration::from_secs(30), watcher.next())
        .await
        .expect("an event within 30 s")
        .expect("the watch keeps going");
    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8(b).unwrap());
    let key = text(event.key_bytes()).unwrap_or_default();
    (event.revision, event.kind, key, text(event.value_bytes()))
}

/// The next event line of a raw stream (lines may span frames).
async fn read_event(body: &mut hyper::body::Incoming, buffer: &mut Vec<u8>) -> WatchEvent {
    loop {
        if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            return serde_json::from_slice(&line[..end]).unwrap();
        }
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("a line within 30 s")
            .expect("the stream goes on")
            .unwrap();
        buffer.extend_from_slice(&frame.into_data().unwrap());
    }
}

/// Goal: a watch from a past revision replays the history under its prefix in revision
/// order, then delivers new changes as they are applied (woken by the apply notification).
#[tokio::test]
async fn replays_then_follows_new_changes() {
    let backend = MemoryBackend::new(KvConfig::default());
    backend.put("a/1", "x");
    backend.put("b/1", "y");
    backend.apply(Command::delete("a/1", 1));
    let url = serve_watches(Arc::clone(&backend), WatchHub::default()).await;
    let mut watch = watcher(&url, "a/", Some(1));
    assert_eq!(
        next(&mut watch).await,
        (1, WatchEventKind::Put, "a/1".into(), Some("x".into()))
    );
    assert_eq!(
        next(&mut watch).await,
        (3, WatchEventKind::Delete, "a/1".into(), None)
    );
    let writer = Arc::clone(&backend);
    tokio::spawn(async move {
        writer.put("b/2", "z");
        writer.put("a/2", "w");
    });
    assert_eq!(
        next(&mut watch).await,
        (5, WatchEventKind::Put, "a/2".into(), Some("w".into()))
    );
    assert_eq!(watch.next_revision(), Some(6));
}

/// Goal: without `from_revision` the watch starts after the current revision: nothing
/// older is shown, the next change is.
#[tokio::test]
async fn without_a_revision_the_watch_starts_now() {
    let backend = MemoryBackend::new(KvConfig::default());
    backend.put("k", "old");
    let url = serve_watches(Arc::clone(&backend), WatchHub::default()).await;
    let mut connection = Connection::new(&url).unwrap();
    let (status, mut body) = connection.open_stream("/v1/watch?prefix=k").await.unwrap();
    assert_eq!(status.as_u16(), 200);
    let mut buffer = Vec::new();
    let progress = read_event(&mut body, &mut buffer).await;
    assert_eq!(
        (progress.kind, progress.revision),
        (WatchEventKind::Progress, 1)
    );
    backend.put("k", "new");
    let event = read_event(&mut body, &mut buffer).await;
    assert_eq!((event.kind, event.revision), (WatchEventKind::Put, 2));
    assert_eq!(event.value.as_deref(), Some("new"));
}

/// Goal: a revision older than the retained history is refused with 410 `compacted` and the
/// oldest revision available, and the client reports it as final (no retry loop).
#[tokio::test]
async fn a_compacted_revision_answers_410_with_the_oldest() {
    let backend = MemoryBackend::new(small_history());
    for i in 0..8 {
        backend.put("k", &i.to_string());
    }
    let url = serve_watches(Arc::clone(&backend), WatchHub::default()).await;
    let mut connection = Connection::new(&url).unwrap();
    let answer = connection
        .send(Method::GET, "/v1/watch?from_revision=2", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(answer.status.as_u16(), 410);
    let body: crate::server::wire::CompactedBody = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        (body.error.as_str(), body.oldest_revision),
        ("compacted", 4)
    );
    let mut watch = watcher(&url, "", Some(3));
    let error = watch.next().await.expect_err("compacted");
    assert_eq!(error.status(), Some(410));
    let mut watch = watcher(&url, "", Some(4));
    assert_eq!(next(&mut watch).await.0, 4);
}

/// Goal: a client that reads nothing is not buffered without limit: after the stall
/// timeout its stream holds at most the buffered batches, then an `error` event
/// `slow_watcher` naming the last revision it was given, then ends.
#[tokio::test]
async fn a_slow_watcher_is_dropped_with_an_error_event() {
    let backend = MemoryBackend::new(KvConfig::default());
    let limits = WatchLimits {
        batch_changes_max: 1,
        buffered_batches_max: 2,
        stall_timeout: Duration::from_millis(100),
        ..WatchLimits::default()
    };
    for i in 0..20 {
        backend.put("k", &i.to_string());
    }
    let hub = WatchHub::new(limits);
    let state = WatchState {
        backend: backend.clone(),
        hub: hub.clone(),
        key_bytes_max: 1024,
    };
    let uri: Uri = "/v1/watch?from_revision=1".parse().unwrap();
    let Ok(mut body) = open(&state, &uri).await else {
        panic!("the watch opens");
    };
    // Wait (by condition) until the producer has given up on this reader.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while hub.active() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow watch was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut events = Vec::new();
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            events.push(serde_json::from_slice::<WatchEvent>(line).unwrap());
        }
    }
    assert!(
        events.len() <= 3,
        "at most the progress line and 2 batches: {events:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last.kind, WatchEventKind::Error);
    assert_eq!(last.error.as_deref(), Some("slow_watcher"));
    let given = events
        .iter()
        .filter(|e| e.kind == WatchEventKind::Put)
        .map(|e| e.revision)
        .max()
        .unwrap_or(0);
    assert_eq!(
        last.revision, given,
        "resume right after the last change given"
    );
}

/// Goal: the number of watches is bounded (503 `overloaded` beyond it), and closing the hub
/// ends every stream with `shutting_down` so a graceful shutdown does not wait forever.
#[tokio::test]
async fn watches_are_bounded_and_end_at_shutdown() {
    let backend = MemoryBackend::new(KvConfig::default());
    let hub = WatchHub::new(WatchLimits {
        watches_max: 1,
        ..WatchLimits::default()
    });
    let url = serve_watches(Arc::clone(&backend), hub.clone()).await;
    let mut first = Connection::new(&url).unwrap();
    let (status, body) = first.open_stream("/v1/watch").await.unwrap();
    assert_eq!(status.as_u16(), 200);
    let mut second = Connection::new(&url).unwrap();
    let answer = second
        .send(Method::GET, "/v1/watch", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(answer.status.as_u16(), 503);
    hub.close();
    let all = body.collect().await.unwrap().to_bytes();
    let last = all.split(|b| *b == b'\n').rfind(|l| !l.is_empty());
    let last: WatchEvent = serde_json::from_slice(last.expect("at least one line")).unwrap();
    assert_eq!(last.error.as_deref(), Some("shutting_down"));
}

/// Goal: every JSON answer of the API, success or error, ends with a newline.
#[tokio::test]
async fn json_answers_end_with_a_newline() {
    let backend = MemoryBackend::new(KvConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let limits = Limits::from_kv(&KvConfig::default());
    let state = ApiState::new(backend, limits, Arc::new(HttpMetrics::default()));
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let mut connection = Connection::new(&url).unwrap();
    for (method, path) in [
        (Method::GET, "/v1/status"),
        (Method::PUT, "/v1/kv/k"),
        (Method::GET, "/v1/kv/absent"),
        (Method::GET, "/nowhere"),
    ] {
        let answer = connection
            .send(method, path, &[], Bytes::new())
            .await
            .unwrap();
        assert!(answer.body.ends_with(b"}\n"), "{path}: {:?}", answer.body);
    }
}
