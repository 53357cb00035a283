//! Runnable examples of the workspace (see the `examples/` directory) and the small helpers
//! they share: starting key-value nodes over TCP with file storage, and typed KV calls.
//!
//! ```sh
//! cargo run -p examples --example simple    # one node, a few writes and reads
//! cargo run -p examples --example client    # three nodes over TCP on 127.0.0.1
//! cargo run -p examples --example cluster   # failover, writes continue, old leader catches up
//! ```
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use raft_core::{Config, Message, NodeId};
use raft_kv::{Command, KvConfig, KvStateMachine, Query, QueryResponse, Response};
use raft_runtime::{Consistency, Error, Init, RaftNode, RuntimeConfig};
use raft_storage_file::FileStorage;
use raft_transport_tcp::{TcpConfig, TcpTransport};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// A key-value node over TCP.
pub type KvNode = RaftNode<KvStateMachine, TcpTransport>;

/// The cluster id every example node presents in its transport handshake.
pub const CLUSTER_ID: u64 = 0xE8A3_91E5;

/// Logs warnings and errors to stderr (override with `RUST_LOG`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,raft_transport_tcp=error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The runtime configuration the examples use: the defaults (10 ms ticks) with a short
/// client timeout so a failure shows quickly.
pub fn runtime_config(id: NodeId) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(Config::new(id, 0x5EED + id));
    config.request_timeout = Duration::from_secs(3);
    config
}

/// Binds node `id`'s TCP transport at `address` (port 0 picks a free port). Retries for a
/// moment, since a restarted node rebinds the port its previous life just released.
pub async fn bind(
    id: NodeId,
    address: SocketAddr,
) -> Result<(TcpTransport, mpsc::Receiver<Message>), raft_transport_tcp::StartError> {
    let mut config = TcpConfig::new(id, CLUSTER_ID, address);
    config.backoff_max = Duration::from_millis(250);
    let mut attempts = 0;
    loop {
        match TcpTransport::bind(config.clone()).await {
            Ok(bound) => return Ok(bound),
            Err(_) if attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Starts a key-value node with file storage in `dir`.
pub async fn start_node(
    id: NodeId,
    dir: &Path,
    init: Init<SocketAddr>,
    transport: (TcpTransport, mpsc::Receiver<Message>),
) -> Result<KvNode, Box<dyn std::error::Error>> {
    let storage = FileStorage::open(dir.join(format!("node-{id}")))?;
    let machine = KvStateMachine::new(KvConfig::default())?;
    Ok(RaftNode::start(runtime_config(id), init, storage, transport, machine).await?)
}

/// Milliseconds since the Unix epoch: the clock KV commands carry (it drives session
/// expiry identically on every replica).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Puts `key = value` through `node`, retrying while the cluster elects a leader.
pub async fn put<T>(
    node: &RaftNode<KvStateMachine, T>,
    key: &str,
    value: &str,
) -> Result<u64, Error>
where
    T: raft_transport_tcp::Transport,
    T::Address: Serialize + DeserializeOwned,
{
    let mut attempts = 0;
    loop {
        let command = Command::put(key.to_string(), value.to_string(), now_ms());
        match node.propose(command).await {
            Ok(Response::Put { revision, .. }) => return Ok(revision),
            Ok(other) => {
                return Err(Error::OutcomeUnknown {
                    reason: format!("unexpected response {other:?}"),
                });
            }
            Err(error) if error.is_retryable() && attempts < 100 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Reads `key` through `node` at `consistency`; the value as text, if present.
pub async fn get<T>(
    node: &RaftNode<KvStateMachine, T>,
    key: &str,
    consistency: Consistency,
) -> Result<Option<String>, Error>
where
    T: raft_transport_tcp::Transport,
    T::Address: Serialize + DeserializeOwned,
{
    let query = Query::Get {
        key: key.to_string().into(),
    };
    match node.read(query, consistency).await? {
        QueryResponse::Get(answer) => Ok(answer
            .entry
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())),
        QueryResponse::Range(_) | QueryResponse::Changes(_) => Err(Error::OutcomeUnknown {
            reason: "a get was answered with another kind of answer".into(),
        }),
    }
}
