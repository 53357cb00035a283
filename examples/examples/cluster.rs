//! Failover: three key-value nodes over TCP; the leader is stopped, the other two elect a
//! new leader and keep accepting writes; the old leader restarts from its data directory,
//! rejoins as a follower and catches up on everything it missed.
//!
//! Run: `cargo run -p examples --example cluster`
#![forbid(unsafe_code)]
// An example reports what happens on stdout.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Duration;

use examples::{KvNode, bind, get, init_logging, put, start_node};
use raft_core::{NodeId, Role};
use raft_runtime::{AddressBook, Consistency, Init, PeerInfo};

const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until one running node leads and the others follow it.
async fn agreed_leader(
    nodes: &BTreeMap<NodeId, KvNode>,
) -> Result<NodeId, Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let leaders: Vec<NodeId> = nodes
            .values()
            .filter(|n| n.status().raft.role == Role::Leader)
            .map(|n| n.id())
            .collect();
        if let [leader] = leaders[..]
            && nodes.values().all(|n| n.leader() == Some(leader))
        {
            return Ok(leader);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the nodes did not agree on a leader".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let mut transports = BTreeMap::new();
    let mut members = AddressBook::new();
    for id in 1..=3 {
        let transport = bind(id, "127.0.0.1:0".parse()?).await?;
        members.insert(id, PeerInfo::new(transport.0.local_addr()));
        transports.insert(id, transport);
    }
    let mut nodes = BTreeMap::new();
    for (id, transport) in transports {
        let init = Init::Bootstrap {
            members: members.clone(),
        };
        nodes.insert(id, start_node(id, dir.path(), init, transport).await?);
    }

    let first_leader = agreed_leader(&nodes).await?;
    println!("node {first_leader} leads");
    for i in 0..5 {
        put(&nodes[&first_leader], &format!("before-{i}"), "1").await?;
    }
    println!("wrote before-0..4 through node {first_leader}");

    let stopped = nodes.remove(&first_leader).ok_or("leader vanished")?;
    stopped.shutdown().await?;
    println!("stopped the leader, node {first_leader}");

    let second_leader = agreed_leader(&nodes).await?;
    println!("node {second_leader} was elected the new leader");
    for i in 0..5 {
        put(&nodes[&second_leader], &format!("after-{i}"), "2").await?;
    }
    println!("wrote after-0..4 through node {second_leader} while node {first_leader} was down");

    let address = members[&first_leader].address;
    let transport = bind(first_leader, address).await?;
    let restarted = start_node(first_leader, dir.path(), Init::Restart, transport).await?;
    nodes.insert(first_leader, restarted);
    println!("restarted node {first_leader} from its data directory");

    let commit = nodes[&second_leader].status().raft.commit;
    nodes[&first_leader]
        .wait_for(PATIENCE, |s| s.raft.applied >= commit)
        .await?;
    for i in 0..5 {
        for (key, value) in [(format!("before-{i}"), "1"), (format!("after-{i}"), "2")] {
            let got = get(&nodes[&first_leader], &key, Consistency::Stale).await?;
            if got.as_deref() != Some(value) {
                return Err(format!("node {first_leader} has {key} = {got:?}").into());
            }
        }
    }
    let status = nodes[&first_leader].status().raft;
    println!(
        "node {first_leader} rejoined as {:?} of node {:?} and caught up to index {}",
        status.role,
        status.leader.ok_or("no leader")?,
        status.applied
    );

    put(&nodes[&second_leader], "final", "3").await?;
    let final_value = get(&nodes[&first_leader], "final", Consistency::Linearizable).await?;
    println!("a new write reads back on node {first_leader}: final = {final_value:?}");
    for node in nodes.values() {
        node.shutdown().await?;
    }
    println!("all nodes shut down cleanly");
    Ok(())
}
