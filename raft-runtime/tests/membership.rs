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
