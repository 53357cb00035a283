//! Membership changes and leadership transfer over real TCP and files.

mod common;

use common::*;
use raft_runtime::{Error, PeerInfo, SnapshotPolicy};

/// Goal: a fourth node joins as a learner (learning its peers' addresses through the log),
/// is promoted to voter, and a node is then removed; writes keep flowing to the members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_learner_promote_and_remove() {
    let mut cluster = Cluster::start(&[1, 2, 3], SnapshotPolicy::disabled()).await;
    for i in 0..10 {
        cluster.put(&format!("key-{i}"), "x").await;
    }
    let address = cluster.start_joiner(4).await;
    let leader = cluster.leader().await;
    let membership = cluster
        .node(leader)
        .add_learner(4, PeerInfo::new(address).with_client_url("http://node-4"))
        .await
        .expect("add learner");
    assert!(membership.is_learner(4), "{}", membership.describe());
    wait_value(cluster.node(4), "key-9", "x").await;
    assert!(
        cluster.node(4).peers().len() >= 4,
        "{:?}",
        cluster.node(4).peers()
    );

    let membership = cluster
        .node(leader)
        .promote_learner(4)
        .await
        .expect("promote");
    assert!(membership.is_voter(4) && !membership.is_learner(4));

    let removed = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let membership = cluster
        .node(leader)
        .remove_node(removed)
        .await
        .expect("remove");
    assert!(!membership.contains(removed), "{}", membership.describe());
    cluster.stop(removed).await;

    cluster.put("after-change", "y").await;
    wait_value(cluster.node(4), "after-change", "y").await;
    let leader = cluster.leader().await;
    assert_eq!(
        cluster.node(leader).status().raft.membership.incoming.len(),
        3
    );
    assert!(!cluster.node(leader).peers().contains_key(&removed));
    cluster.shutdown().await;
}

/// Goal: leadership moves to the node asked for, and a follower asked to transfer says who
/// leads instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfer() {
    let cluster = Cluster::start(&[1, 2, 3], SnapshotPolicy::disabled()).await;
    cluster.put("k", "v").await;
    let leader = cluster.leader().await;
    let target = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let follower = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader && *id != target)
        .unwrap();

    match cluster
        .node(follower)
        .transfer_leadership(Some(target))
        .await
    {
        Err(Error::NotLeader {
            leader_hint,
            leader_addr,
            ..
        }) => {
            assert_eq!(leader_hint, Some(leader));
            assert_eq!(leader_addr, Some(cluster.addresses[&leader].to_string()));
        }
        other => panic!("a follower must refuse with NotLeader, got {other:?}"),
    }

    let new_leader = cluster
        .node(leader)
        .transfer_leadership(Some(target))
        .await
        .expect("transfer");
    assert_eq!(new_leader, target);
    assert_eq!(cluster.leader().await, target);
    cluster.put("after-transfer", "w").await;
    cluster.shutdown().await;
}

/// Goal: a witness joins after the log was compacted (it receives a metadata-only
/// snapshot), and then counts toward the quorum: with one full voter down, the other full
/// voter and the witness still commit writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_joins_and_keeps_the_quorum() {
    let policy = SnapshotPolicy {
        every_entries: Some(10),
        every_bytes: None,
    };
    let mut cluster = Cluster::start(&[1, 2], policy).await;
    for i in 0..30 {
        cluster.put(&format!("key-{i}"), "x").await;
    }
    let leader = cluster.leader().await;
    cluster
        .node(leader)
        .wait_for(PATIENCE, |s| s.raft.snapshot_index > 0)
        .await
        .expect("the log is compacted");
    let address = cluster.start_joiner(3).await;
    let membership = cluster
        .node(leader)
        .add_witness(3, PeerInfo::new(address))
        .await
        .expect("add witness");
    assert!(membership.is_witness(3) && membership.is_voter(3));
    let commit = cluster.node(leader).status().raft.commit;
    cluster.wait_applied(3, commit).await;
    // A witness answers no reads: its state machine sees no payloads. (It should also
    // hold none; see /work/notes/core-bugs.md #1: the core sends them during catch-up.)
    assert_eq!(
        read_with(
            cluster.node(3),
            "key-0",
            raft_runtime::Consistency::Linearizable
        )
        .await,
        Err(Error::Witness)
    );
    assert_eq!(
        cluster
            .node(3)
            .propose(raft_kv::Command::put("w", "x", now_ms()))
            .await,
        Err(Error::Witness)
    );

    let follower = if leader == 1 { 2 } else { 1 };
    cluster.stop(follower).await;
    cluster.put("with-witness", "y").await;
    assert_eq!(cluster.leader().await, leader, "a witness never leads");
    cluster.shutdown().await;
}

/// Goal: a leader that removes itself steps down; the remaining nodes elect a leader and
/// keep serving writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_removes_itself() {
    let mut cluster = Cluster::start(&[1, 2, 3], SnapshotPolicy::disabled()).await;
    cluster.put("before", "1").await;
    let leader = cluster.leader().await;
    let membership = cluster
        .node(leader)
        .remove_node(leader)
        .await
        .expect("remove the leader");
    assert!(!membership.contains(leader));
    cluster.stop(leader).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    cluster.put("after", "2").await;
    for id in cluster.nodes.keys() {
        wait_value(cluster.node(*id), "after", "2").await;
    }
    cluster.shutdown().await;
}
