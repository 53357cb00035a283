//! A restarted node that fell far behind catches up by snapshot (over real TCP and files).

mod common;

use common::*;
use raft_runtime::SnapshotPolicy;

/// Goal: with small snapshot thresholds, a node that was down while the leader snapshotted
/// and compacted its log catches up by receiving a snapshot, and ends with every write.
/// Method: stop a follower, write 150 keys (snapshots every 20 entries), check the leader
/// compacted past the follower's log, restart the follower, wait for its state and check
/// it restored from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_behind_node_catches_up_by_snapshot() {
    let policy = SnapshotPolicy {
        every_entries: Some(20),
        every_bytes: None,
    };
    let mut cluster = Cluster::start(&[1, 2, 3], policy).await;
    cluster.put("first", "1").await;
    let leader = cluster.leader().await;
    let lagger = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let lagger_last = cluster.node(lagger).status().raft.last_index;
    cluster.stop(lagger).await;

    for i in 0..150 {
        cluster.put(&format!("key-{i}"), &i.to_string()).await;
    }
    let leader = cluster.leader().await;
    cluster
        .node(leader)
        .wait_for(PATIENCE, |s| s.raft.snapshot_index > lagger_last + 100)
        .await
        .expect("the leader snapshots and compacts");

    cluster.restart(lagger).await;
    let commit = cluster.node(leader).status().raft.commit;
    cluster.wait_applied(lagger, commit).await;
    wait_value(cluster.node(lagger), "key-149", "149").await;
    assert_eq!(
        local_get(cluster.node(lagger), "first").await.as_deref(),
        Some("1")
    );
    assert!(
        cluster.node(lagger).metrics().snapshots_restored >= 1,
        "the lagger must have caught up by snapshot: {:?}",
        cluster.node(lagger).metrics()
    );
    assert!(cluster.node(leader).metrics().snapshot_chunks_sent >= 1);
    cluster.shutdown().await;
}

/// Goal: a node restarted from its own snapshot plus log re-applies up to its persisted
/// commit index without any peer (the state machine never goes backwards).
/// Method: a single-node cluster writes 50 keys (snapshots every 20), restarts, and must
/// serve every key from local state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reapplies_from_snapshot_and_log() {
    let policy = SnapshotPolicy {
        every_entries: Some(20),
        every_bytes: None,
    };
    let mut cluster = Cluster::start(&[1], policy).await;
    for i in 0..50 {
        cluster.put(&format!("key-{i}"), &i.to_string()).await;
    }
    let before = cluster.node(1).status().raft;
    cluster
        .node(1)
        .wait_for(PATIENCE, |s| s.raft.snapshot_index > 0)
        .await
        .expect("snapshot");
    cluster.stop(1).await;
    cluster.restart(1).await;
    cluster.wait_applied(1, before.applied).await;
    for i in 0..50 {
        assert_eq!(
            local_get(cluster.node(1), &format!("key-{i}")).await,
            Some(i.to_string())
        );
    }
    cluster.shutdown().await;
}
