//! Three key-value nodes in one process, talking over real TCP on 127.0.0.1. Writes go in
//! through every node (followers forward them to the leader), and every write is read back
//! from every node with a linearizable read.
//!
//! Run: `cargo run -p examples --example client`
#![forbid(unsafe_code)]
// An example reports what happens on stdout.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Duration;

use examples::{KvNode, bind, get, init_logging, put, start_node};
use raft_runtime::{AddressBook, Consistency, Init, PeerInfo};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let dir = tempfile::tempdir()?;
    // Bind every transport first (port 0 picks a free port), so each founder can be told
    // every member's address.
    let mut transports = BTreeMap::new();
    let mut members = AddressBook::new();
    for id in 1..=3 {
        let transport = bind(id, "127.0.0.1:0".parse()?).await?;
        let address = transport.0.local_addr();
        println!("node {id} listens on {address}");
        members.insert(id, PeerInfo::new(address));
        transports.insert(id, transport);
    }
    let mut nodes: BTreeMap<u64, KvNode> = BTreeMap::new();
    for (id, transport) in transports {
        let init = Init::Bootstrap {
            members: members.clone(),
        };
        nodes.insert(id, start_node(id, dir.path(), init, transport).await?);
    }
    let status = nodes[&1]
        .wait_for(Duration::from_secs(30), |s| s.raft.leader.is_some())
        .await?;
    let leader = status.raft.leader.ok_or("no leader")?;
    println!(
        "node {leader} was elected leader in term {}",
        status.raft.term
    );

    for (id, node) in &nodes {
        let key = format!("written-via-{id}");
        let revision = put(node, &key, &format!("hello from node {id}")).await?;
        let role = if *id == leader {
            "leader"
        } else {
            "follower, forwarded"
        };
        println!("node {id} ({role}): put {key} at revision {revision}");
    }

    for (reader, node) in &nodes {
        for writer in 1..=3 {
            let key = format!("written-via-{writer}");
            let value = get(node, &key, Consistency::Linearizable).await?;
            let expected = format!("hello from node {writer}");
            if value.as_deref() != Some(expected.as_str()) {
                return Err(format!("node {reader} read {key} = {value:?}").into());
            }
        }
        println!("node {reader} reads all three writes back");
    }

    for node in nodes.values() {
        node.shutdown().await?;
    }
    println!("all nodes shut down cleanly");
    Ok(())
}
