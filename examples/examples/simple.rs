//! One key-value node in one process: it founds a single-member cluster, elects itself,
//! and serves a few writes and reads. Storage is a temporary directory; the "network" is an
//! in-process channel (a single node has nobody to talk to).
//!
//! Run: `cargo run -p examples --example simple`
#![forbid(unsafe_code)]
// An example reports what happens on stdout.
#![allow(clippy::print_stdout)]

use examples::{get, init_logging, put, runtime_config};
use raft_kv::{KvConfig, KvStateMachine};
use raft_runtime::{AddressBook, Consistency, Init, PeerInfo, RaftNode};
use raft_storage_file::FileStorage;
use raft_transport_tcp::{ChannelNetwork, ChannelTransport};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let network = ChannelNetwork::new();
    let mut members = AddressBook::new();
    members.insert(1, PeerInfo::new(()));
    let node: RaftNode<KvStateMachine, ChannelTransport> = RaftNode::start(
        runtime_config(1),
        Init::Bootstrap { members },
        FileStorage::open(dir.path())?,
        network.endpoint(1),
        KvStateMachine::new(KvConfig::default())?,
    )
    .await?;
    println!("started node 1 with its data in {}", dir.path().display());

    let status = node
        .wait_for(std::time::Duration::from_secs(30), |s| s.is_leader())
        .await?;
    println!("node 1 leads term {}", status.raft.term);

    for (key, value) in [
        ("apple", "red"),
        ("banana", "yellow"),
        ("cherry", "dark red"),
    ] {
        let revision = put(&node, key, value).await?;
        println!("put {key} = {value:?} at revision {revision}");
    }
    put(&node, "apple", "green").await?;
    println!("put apple = \"green\" (overwrites)");

    for key in ["apple", "banana", "cherry", "durian"] {
        let value = get(&node, key, Consistency::Linearizable).await?;
        println!("get {key} -> {value:?}");
    }
    let apple = get(&node, "apple", Consistency::Linearizable).await?;
    if apple.as_deref() != Some("green") {
        return Err(format!("expected apple = green, got {apple:?}").into());
    }

    let metrics = node.metrics();
    println!(
        "applied {} entries with {} fsyncs (p50 {} us)",
        metrics.entries_applied, metrics.fsyncs, metrics.fsync_latency.p50_us
    );
    node.shutdown().await?;
    println!("node 1 shut down cleanly");
    Ok(())
}
