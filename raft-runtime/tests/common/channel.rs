//! A three-node cluster over the in-process channel network (links can be cut with
//! `ChannelNetwork::set_link`), for partition tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use raft_core::{NodeId, Role};
use raft_kv::{Command, KvConfig, KvStateMachine};
use raft_runtime::{AddressBook, Init, PeerInfo, RaftNode, RuntimeConfig, SnapshotPolicy};
use raft_storage_file::FileStorage;
use raft_transport_tcp::{ChannelNetwork, ChannelTransport};

use super::{PATIENCE, now_ms, runtime_config};

pub type Node = RaftNode<KvStateMachine, ChannelTransport>;

/// Nodes 1..=3 bootstrapped together, stores under `dir`, each config passed through
/// `adjust` first.
pub async fn start(
    dir: &Path,
    network: &ChannelNetwork,
    adjust: impl Fn(&mut RuntimeConfig),
) -> BTreeMap<NodeId, Node> {
    let members: AddressBook<()> = (1..=3).map(|id| (id, PeerInfo::new(()))).collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let mut config = runtime_config(id, SnapshotPolicy::disabled());
        adjust(&mut config);
        let node = RaftNode::start(
            config,
            Init::Bootstrap {
                members: members.clone(),
            },
            FileStorage::open(dir.join(id.to_string())).expect("storage"),
            network.endpoint(id),
            KvStateMachine::new(KvConfig::default()).unwrap(),
        )
        .await
        .expect("start");
        nodes.insert(id, node);
    }
    nodes
}

/// The one leader all of `ids` agree on, waited for.
pub async fn leader_among(nodes: &BTreeMap<NodeId, Node>, ids: &[NodeId]) -> NodeId {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let leaders: Vec<NodeId> = ids
            .iter()
            .copied()
            .filter(|id| nodes[id].status().raft.role == Role::Leader)
            .collect();
        if let [leader] = leaders[..]
            && ids.iter().all(|id| nodes[id].leader() == Some(leader))
        {
            return leader;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader among {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A put, retried while the cluster is between leaders (a re-sent put of the same value
/// leaves the same state, so no session is needed here).
pub async fn put(node: &Node, key: &str, value: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match node
            .propose(Command::put(key.to_string(), value.to_string(), now_ms()))
            .await
        {
            Ok(_) => return,
            Err(error) if error.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("put {key}: {error}"),
        }
    }
}
