//! A three-(or more-)node cluster harness over real files (tempfile) and real sockets
//! (127.0.0.1, port 0), for the runtime's integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod channel;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use raft_core::{Config, NodeId, Role};
use raft_kv::{Command, KvConfig, KvStateMachine, Query, QueryResponse, Response};
use raft_runtime::{
    AddressBook, Consistency, Error, Init, PeerInfo, RaftNode, RuntimeConfig, SnapshotPolicy,
};
use raft_storage_file::FileStorage;
use raft_transport_tcp::{TcpConfig, TcpTransport};
use tempfile::TempDir;

pub type Kv = RaftNode<KvStateMachine, TcpTransport>;

pub const CLUSTER_ID: u64 = 0xC0FFEE;
/// Generous bound for anything that needs an election or two on a loaded 2-core machine
/// (a bound, not a wait: every use returns as soon as its condition holds).
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Short ticks so elections take ~200-400 ms: quick, yet long enough that a scheduler
/// stall of a loaded 2-core machine rarely looks like a dead leader.
pub fn runtime_config(id: NodeId, policy: SnapshotPolicy) -> RuntimeConfig {
    let mut raft = Config::new(id, 1000 + id);
    raft.election_ticks = 40;
    raft.heartbeat_ticks = 2;
    raft.request_timeout_ticks = 100;
    raft.snapshot_chunk_bytes = 4 << 10;
    let mut config = RuntimeConfig::new(raft);
    config.tick_interval = Duration::from_millis(5);
    config.snapshot_policy = policy;
    config.request_timeout = Duration::from_secs(3);
    config
}

pub struct Cluster {
    pub dir: TempDir,
    pub nodes: BTreeMap<NodeId, Kv>,
    pub addresses: BTreeMap<NodeId, SocketAddr>,
    pub policy: SnapshotPolicy,
    /// Applied to every node's configuration after the defaults above.
    pub tweak: fn(&mut RuntimeConfig),
}

impl Cluster {
    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    /// Binds every transport first (port 0), then bootstraps all nodes with the addresses.
    pub async fn start(ids: &[NodeId], policy: SnapshotPolicy) -> Cluster {
        Cluster::start_with(ids, policy, |_| {}).await
    }

    /// As [`Cluster::start`], with `tweak` applied to every node's configuration.
    pub async fn start_with(
        ids: &[NodeId],
        policy: SnapshotPolicy,
        tweak: fn(&mut RuntimeConfig),
    ) -> Cluster {
        init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut transports = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for &id in ids {
            let bound = bind(id, "127.0.0.1:0".parse().unwrap()).await;
            addresses.insert(id, bound.0.local_addr());
            transports.insert(id, bound);
        }
        let members: AddressBook<SocketAddr> = addresses
            .iter()
            .map(|(id, addr)| (*id, PeerInfo::new(*addr)))
            .collect();
        let mut cluster = Cluster {
            dir,
            nodes: BTreeMap::new(),
            addresses,
            policy,
            tweak,
        };
        for (id, transport) in transports {
            let init = Init::Bootstrap {
                members: members.clone(),
            };
            let node = cluster.launch(id, init, transport).await;
            cluster.nodes.insert(id, node);
        }
        cluster
    }

    async fn launch(
        &self,
        id: NodeId,
        init: Init<SocketAddr>,
        transport: (
            TcpTransport,
            tokio::sync::mpsc::Receiver<raft_core::Message>,
        ),
    ) -> Kv {
        let storage = FileStorage::open(self.data_dir(id)).expect("open storage");
        let machine = KvStateMachine::new(KvConfig::default()).expect("kv config");
        let mut config = runtime_config(id, self.policy.clone());
        (self.tweak)(&mut config);
        RaftNode::start(config, init, storage, transport, machine)
            .await
            .expect("start node")
    }

    /// Starts a brand-new node that will join (bound to a fresh port).
    pub async fn start_joiner(&mut self, id: NodeId) -> SocketAddr {
        let transport = bind(id, "127.0.0.1:0".parse().unwrap()).await;
        let address = transport.0.local_addr();
        let peers: AddressBook<SocketAddr> = self
            .addresses
            .iter()
            .map(|(id, addr)| (*id, PeerInfo::new(*addr)))
            .collect();
        let node = self.launch(id, Init::Join { peers }, transport).await;
        self.addresses.insert(id, address);
        self.nodes.insert(id, node);
        address
    }

    /// Stops a node gracefully and forgets its handle (its data stays).
    pub async fn stop(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).expect("running node");
        node.shutdown().await.expect("clean shutdown");
    }

    /// Restarts a stopped node from its data directory on its old port.
    pub async fn restart(&mut self, id: NodeId) {
        let transport = bind(id, self.addresses[&id]).await;
        let node = self.launch(id, Init::Restart, transport).await;
        self.nodes.insert(id, node);
    }

    pub fn node(&self, id: NodeId) -> &Kv {
        &self.nodes[&id]
    }

    /// Waits until the running nodes agree on one leader; returns it.
    pub async fn leader(&self) -> NodeId {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            // Only members count: a joiner not yet added knows nobody.
            let members: Vec<&Kv> = self
                .nodes
                .values()
                .filter(|n| {
                    let s = n.status().raft;
                    s.membership.contains(s.id)
                })
                .collect();
            let leaders: Vec<NodeId> = members
                .iter()
                .filter(|n| n.status().raft.role == Role::Leader)
                .map(|n| n.id())
                .collect();
            if let [leader] = leaders[..] {
                let term = self.nodes[&leader].status().raft.term;
                let agreed = members.iter().all(|n| {
                    let s = n.status().raft;
                    s.leader == Some(leader) && s.term == term
                });
                if agreed {
                    return leader;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader: {:?}",
                self.nodes
                    .values()
                    .map(|n| n.status().raft)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Puts through any node, retrying on retryable errors (the write may be re-sent, so
    /// use sessions where duplicates matter).
    pub async fn put(&self, key: &str, value: &str) -> Response {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let leader = self.leader().await;
            match self.nodes[&leader]
                .propose(Command::put(key.to_string(), value.to_string(), now_ms()))
                .await
            {
                Ok(response) => return response,
                Err(error) if error.is_retryable() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("put {key} failed: {error}"),
            }
        }
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: NodeId, index: u64) {
        self.nodes[&id]
            .wait_for(PATIENCE, |s| s.raft.applied >= index)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "node {id} did not apply {index}: {e}: {:?}",
                    self.nodes[&id].status()
                )
            });
    }

    pub async fn shutdown(self) {
        for node in self.nodes.values() {
            node.shutdown().await.expect("clean shutdown");
        }
    }
}

pub async fn bind(
    id: NodeId,
    address: SocketAddr,
) -> (
    TcpTransport,
    tokio::sync::mpsc::Receiver<raft_core::Message>,
) {
    let mut config = TcpConfig::new(id, CLUSTER_ID, address);
    config.backoff_min = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(200);
    config.connect_timeout = Duration::from_millis(500);
    // A restarted node rebinds its old port; the old listener is closed, so retry briefly.
    for _ in 0..50 {
        match TcpTransport::bind(config.clone()).await {
            Ok(bound) => return bound,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    TcpTransport::bind(config).await.expect("bind transport")
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A stale read of `key` on `node`: the value as a string, if present.
pub async fn local_get(node: &Kv, key: &str) -> Option<String> {
    read_with(node, key, Consistency::Stale)
        .await
        .expect("stale read")
}

/// A read of `key` on `node` (over any transport) at `consistency`: the value as a string,
/// if present.
pub async fn read_with<T>(
    node: &RaftNode<KvStateMachine, T>,
    key: &str,
    consistency: Consistency,
) -> Result<Option<String>, Error>
where
    T: raft_transport::Transport,
    T::Address: serde::Serialize + serde::de::DeserializeOwned,
{
    match node
        .read(
            Query::Get {
                key: key.to_string().into(),
            },
            consistency,
        )
        .await?
    {
        QueryResponse::Get(get) => Ok(get
            .entry
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Waits until a stale read of `key` on `node` returns `value`.
pub async fn wait_value(node: &Kv, key: &str, value: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if local_get(node, key).await.as_deref() == Some(value) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {} never saw {key}={value}: {:?}",
            node.id(),
            node.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
