//! Lease reads beside the driver: the leader answers them from its state machine while the
//! engine's lease grant holds, and a leader cut off from the majority stops answering them
//! once its lease lapses, before the majority can elect anyone else and acknowledge a write.

mod common;

use std::time::Duration;

use common::channel::{Node, leader_among, put, start};
use common::{PATIENCE, init_tracing, read_with};
use raft_core::NodeId;
use raft_runtime::{Consistency, Error};
use raft_transport_tcp::ChannelNetwork;

async fn lease_get(node: &Node, key: &str) -> Result<Option<String>, Error> {
    read_with(node, key, Consistency::Lease).await
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
    let nodes = start(dir.path(), &network, |config| {
        config.raft.lease_reads = true
    })
    .await;
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
