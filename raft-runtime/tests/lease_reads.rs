//! Lease reads beside the driver: the leader answers them from its state machine while the
//! engine's lease grant holds, and a leader cut off from the majority stops answering them
//! once its lease lapses, before the majority can elect anyone else and acknowledge a write.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{PATIENCE, init_tracing, now_ms, runtime_config};
use raft_core::{NodeId, Role};
use raft_kv::{Command, KvConfig, KvStateMachine, Query, QueryResponse};
use raft_runtime::{AddressBook, Consistency, Error, Init, PeerInfo, RaftNode, SnapshotPolicy};
use raft_storage_file::FileStorage;
use raft_transport_tcp::{ChannelNetwork, ChannelTransport};

type Node = RaftNode<KvStateMachine, ChannelTransport>;

async fn start(dir: &std::path::Path, network: &ChannelNetwork) -> BTreeMap<NodeId, Node> {
    let members: AddressBook<()> = (1..=3).map(|id| (id, PeerInfo::new(()))).collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let mut config = runtime_config(id, SnapshotPolicy::disabled());
        config.raft.lease_reads = true;
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

async fn leader_among(nodes: &BTreeMap<NodeId, Node>, ids: &[NodeId]) -> NodeId {
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

async fn lease_get(node: &Node, key: &str) -> Result<Option<String>, Error> {
    let query = Query::Get {
        key: key.to_string().into(),
    };
    match node.read(query, Consistency::Lease).await? {
        QueryResponse::Get(get) => Ok(get
            .entry
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())),
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn put(node: &Node, key: &str, value: &str) {
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

/// Lease reads on `node` until one is answered by the fast path with `value`.
async fn wait_fast_read(node: &Node, key: &str, value: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let before = node.metrics().reads_lease_fast;
        let read = lease_get(node, key).await;
        if node.metrics().reads_lease_fast > before {
            assert_eq!(read, Ok(Some(value.to_string())), "node {}", node.id());
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {} never served a lease read itself: {read:?}, {:?}",
            node.id(),
            node.metrics()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Goal: the leader serves lease reads without its driver and counts them; cut off from the
/// majority, it never answers a lease read with the old value once the majority has a new
/// leader that acknowledged a newer write; after the partition heals the new leader serves
/// the new value from its own lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_reads_follow_a_leader_change() {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let network = ChannelNetwork::new();
    let nodes = start(dir.path(), &network).await;
    let old_leader = leader_among(&nodes, &[1, 2, 3]).await;
    put(&nodes[&old_leader], "k", "old").await;
    wait_fast_read(&nodes[&old_leader], "k", "old").await;

    let others: Vec<NodeId> = (1..=3).filter(|id| *id != old_leader).collect();
    for other in &others {
        network.set_link(old_leader, *other, false);
        network.set_link(*other, old_leader, false);
    }
    let new_leader = leader_among(&nodes, &others).await;
    put(&nodes[&new_leader], "k", "new").await;

    // The write above is acknowledged: from now on no read anywhere may return "old".
    let fallback_before = nodes[&old_leader].metrics().reads_lease_fallback;
    let stale = lease_get(&nodes[&old_leader], "k").await;
    assert!(
        stale.is_err(),
        "the cut-off old leader answered a lease read after a newer write: {stale:?}"
    );
    assert!(
        nodes[&old_leader].metrics().reads_lease_fallback > fallback_before,
        "the lapsed lease sends the read through the driver"
    );

    for other in &others {
        network.set_link(old_leader, *other, true);
        network.set_link(*other, old_leader, true);
    }
    let leader = leader_among(&nodes, &[1, 2, 3]).await;
    wait_fast_read(&nodes[&leader], "k", "new").await;
    for node in nodes.values() {
        node.shutdown().await.expect("shutdown");
    }
}
