//! A load for counting the heap allocations the HTTP layer makes per request: the production
//! listener (`serve_http`: TLS, bearer tokens, limits, the one request layer) in front of an
//! in-memory store on threads named `kv-server`, driven by the crate's own client over one
//! loopback connection on the main thread. It uses the system allocator, so the calls can be
//! counted per thread from outside, e.g. with uprobes on libc's `malloc`, `calloc` and
//! `realloc` and `perf record` (see BENCHMARKS.md); two runs with different request counts,
//! subtracted, give the cost of one request without the set-up.
//!
//! `cargo run -p raft-kv --features server --example http_allocs -- put|get tls|plain N`

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use bytes::Bytes;
use hyper::Method;
use raft_core::StateMachine;
use raft_kv::server::auth::Auth;
use raft_kv::server::backend::KvBackend;
use raft_kv::server::client::Connection;
use raft_kv::server::credentials::{CredentialSources, files};
use raft_kv::server::error::{ApiError, ErrorCode};
use raft_kv::server::http::{ApiState, Limits, service};
use raft_kv::server::limits::{HttpLimits, serve_http};
use raft_kv::server::prom::HttpMetrics;
use raft_kv::server::tls::{TlsFiles, server_config};
use raft_kv::server::wire::{
    AddMemberBody, LeaderRef, MemberBody, MembersBody, ReadConsistency, StatusBody, encode_key,
};
use raft_kv::{Command, KvConfig, KvStateMachine, Query, QueryResponse, Response};

/// One unreplicated store: the HTTP layer's cost without any of the node's.
struct Memory {
    machine: Mutex<KvStateMachine>,
    index: AtomicU64,
}

#[async_trait]
impl KvBackend for Memory {
    fn id(&self) -> u64 {
        1
    }
    async fn write(&self, command: Command) -> Result<Response, ApiError> {
        let index = self.index.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(self
            .machine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(index, command))
    }
    async fn read(&self, query: Query, _: ReadConsistency) -> Result<QueryResponse, ApiError> {
        Ok(self
            .machine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .query(&query))
    }
    /// A lone voter that leads term 1 and has applied every write.
    fn status(&self) -> StatusBody {
        let applied = self.index.load(Ordering::Relaxed);
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
                raft_addr: None,
                url: None,
            }],
            joint: false,
        }
    }
    // An unreplicated store has no cluster to change: membership and leadership requests
    // are refused with a clear answer rather than served.
    async fn add_member(&self, _: AddMemberBody) -> Result<MembersBody, ApiError> {
        Err(no_cluster())
    }
    async fn remove_member(&self, _: u64) -> Result<MembersBody, ApiError> {
        Err(no_cluster())
    }
    async fn transfer_leader(&self, _: Option<u64>) -> Result<u64, ApiError> {
        Err(no_cluster())
    }
    fn render_metrics(&self, _: &mut String) {}
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The answer to a membership or leadership request: this store is one unreplicated node.
fn no_cluster() -> ApiError {
    ApiError::new(
        ErrorCode::MembershipRefused,
        "this example's store is one unreplicated node: it has no membership to change",
    )
}

/// Starts the server on its own runtime (its threads counted) with or without TLS and
/// tokens; returns its URL.
fn start_server(dir: &std::path::Path, secure: bool) -> String {
    let (url_tx, url_rx) = mpsc::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("kv-server")
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            let address = listener.local_addr().expect("a bound address");
            let backend = Arc::new(Memory {
                machine: Mutex::new(KvStateMachine::new(KvConfig::default()).expect("config")),
                index: AtomicU64::new(0),
            });
            let metrics = Arc::new(HttpMetrics::default());
            let mut state = ApiState::new(
                backend,
                Limits::from_kv(&KvConfig::default()),
                Arc::clone(&metrics),
            );
            let mut tls = None;
            if secure {
                let auth = Auth::from_file(&dir.join(files::TOKENS)).expect("tokens");
                state = state.with_security(auth, None);
                let config = server_config(&TlsFiles {
                    ca: dir.join(files::CA_CERT),
                    cert: dir.join(files::node_cert(1)),
                    key: dir.join(files::node_key(1)),
                })
                .expect("TLS config");
                tls = Some(tokio_rustls::TlsAcceptor::from(config));
            }
            let scheme = if secure { "https" } else { "http" };
            url_tx
                .send(format!("{scheme}://{address}"))
                .expect("main waits");
            serve_http(
                listener,
                service(state),
                tls,
                HttpLimits::default(),
                metrics,
                std::future::pending(),
            )
            .await;
        });
    });
    url_rx.recv().expect("the server starts")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mode, security, requests) = (args.next(), args.next(), args.next());
    let (Some(mode), Some(security), Some(Ok(requests))) =
        (mode, security, requests.map(|n| n.parse::<u64>()))
    else {
        eprintln!("usage: http_allocs <put|get> <tls|plain> <requests>");
        std::process::exit(2);
    };
    let secure = security == "tls";
    let dir = tempfile::tempdir().expect("a temp dir");
    raft_kv::server::devcerts::generate(dir.path(), 1, &[]).expect("dev certificates");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let url = start_server(dir.path(), secure);
        let credentials = if secure {
            CredentialSources {
                dir: Some(dir.path().to_path_buf()),
                ..CredentialSources::default()
            }
            .load()
            .expect("credentials")
        } else {
            Default::default()
        };
        let mut connection =
            Connection::with_credentials(&url, &credentials).expect("a connection");
        let key = |i: u64| encode_key(format!("bench/{:010}", i % 1_000).as_bytes());
        let value = Bytes::from(vec![b'x'; 100]);
        // The store holds every key before the gets.
        let puts = if mode == "put" { requests } else { 1_000 };
        for i in 0..puts {
            let path = format!("/v1/kv/{}", key(i));
            let answer = connection
                .send(Method::PUT, &path, &[], value.clone())
                .await
                .expect("an answer");
            assert!(answer.status.is_success(), "{}", answer.status);
        }
        if mode == "get" {
            for i in 0..requests {
                let path = format!("/v1/kv/{}?consistency=lease", key(i));
                let answer = connection
                    .send(Method::GET, &path, &[], Bytes::new())
                    .await
                    .expect("an answer");
                assert!(answer.status.is_success(), "{}", answer.status);
            }
        }
    });
}
