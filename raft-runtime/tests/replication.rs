//! Three nodes over real TCP and real files: election, replication, reads at every level.

mod common;

use common::*;
use raft_kv::Response;
use raft_runtime::{Consistency, SnapshotPolicy};

/// Goal: a three-node cluster elects one leader, replicates writes to every node, and
/// serves linearizable reads from any node (followers included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_and_replicate() {
    let cluster = Cluster::start(&[1, 2, 3], SnapshotPolicy::disabled()).await;
    let leader = cluster.leader().await;
    for i in 0..20 {
        let response = cluster
            .put(&format!("key-{i}"), &format!("value-{i}"))
            .await;
        assert!(matches!(response, Response::Put { .. }), "{response:?}");
    }
    for id in [1, 2, 3] {
        let value = read_with(cluster.node(id), "key-19", Consistency::Linearizable)
            .await
            .expect("linearizable read");
        assert_eq!(value.as_deref(), Some("value-19"), "node {id}");
        wait_value(cluster.node(id), "key-0", "value-0").await;
    }
    let status = cluster.node(leader).status();
    assert_eq!(
        status.raft.progress.len(),
        2,
        "leader tracks both followers"
    );
    cluster.shutdown().await;
}

/// Goal: lease reads are refused with a clear error unless enabled, and served by leader
/// and followers once enabled; stale reads answer from local state at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_and_stale_reads() {
    let plain = Cluster::start(&[1, 2, 3], SnapshotPolicy::disabled()).await;
    let leader = plain.leader().await;
    plain.put("k", "v").await;
    assert_eq!(
        read_with(plain.node(leader), "k", Consistency::Lease).await,
        Err(raft_runtime::Error::LeaseDisabled)
    );
    plain.shutdown().await;

    let leased = Cluster::start_with(&[1, 2, 3], SnapshotPolicy::disabled(), |config| {
        config.raft.lease_reads = true;
    })
    .await;
    leased.put("k", "leased").await;
    for id in [1, 2, 3] {
        let value = read_with(leased.node(id), "k", Consistency::Lease)
            .await
            .expect("lease read");
        assert_eq!(value.as_deref(), Some("leased"), "node {id}");
    }
    leased.shutdown().await;
}
