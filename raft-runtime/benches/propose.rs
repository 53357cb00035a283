//! Propose latency and throughput through the whole runtime: KV puts of 100-byte values on
//! file storage (real fsyncs), for one node and for three nodes over loopback TCP, with one
//! client (latency: one fsync + apply per write) and with many concurrent clients (group
//! commit: many writes per fsync).
//!
//! Run: `cargo bench -p raft-runtime --bench propose` (release build). Set
//! `RAFT_BENCH_DIR` to put the data on another disk; `RAFT_BENCH_OPS` scales the run.
#![allow(clippy::print_stdout, missing_docs, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use raft_core::{Config, Message, NodeId};
use raft_kv::{Command, KvConfig, KvStateMachine};
use raft_runtime::{AddressBook, Init, PeerInfo, RaftNode, RuntimeConfig};
use raft_storage_file::FileStorage;
use raft_transport_tcp::{TcpConfig, TcpTransport};
use tokio::sync::mpsc;

type Kv = RaftNode<KvStateMachine, TcpTransport>;

const VALUE_BYTES: usize = 100;

async fn bind(id: NodeId) -> (TcpTransport, mpsc::Receiver<Message>) {
    let config = TcpConfig::new(id, 1, "127.0.0.1:0".parse().unwrap());
    TcpTransport::bind(config).await.expect("bind")
}

async fn start_cluster(size: u64, dir: &Path) -> BTreeMap<NodeId, Kv> {
    let mut transports = BTreeMap::new();
    let mut members: AddressBook<SocketAddr> = AddressBook::new();
    for id in 1..=size {
        let transport = bind(id).await;
        members.insert(id, PeerInfo::new(transport.0.local_addr()));
        transports.insert(id, transport);
    }
    let mut nodes = BTreeMap::new();
    for (id, transport) in transports {
        let storage = FileStorage::open(dir.join(format!("node-{id}"))).expect("storage");
        let mut config = RuntimeConfig::new(Config::new(id, id));
        config.request_timeout = Duration::from_secs(30);
        let node = RaftNode::start(
            config,
            Init::Bootstrap {
                members: members.clone(),
            },
            storage,
            transport,
            KvStateMachine::new(KvConfig::default()).unwrap(),
        )
        .await
        .expect("start");
        nodes.insert(id, node);
    }
    nodes
}

async fn leader(nodes: &BTreeMap<NodeId, Kv>) -> Kv {
    loop {
        if let Some(node) = nodes.values().find(|n| n.status().is_leader()) {
            return node.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

/// `clients` tasks each put `per_client` keys; returns (ops/s, p50 us, p99 us).
async fn run(node: &Kv, clients: usize, per_client: usize) -> (f64, f64, f64) {
    let value = "v".repeat(VALUE_BYTES);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let node = node.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let command = Command::put(format!("c{client}-k{i}"), value.clone(), 0);
                let sent = Instant::now();
                node.propose(command).await.expect("propose");
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    (
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    )
}

async fn scenario(size: u64, clients: usize, total_ops: usize, base: &Path) {
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let nodes = start_cluster(size, dir.path()).await;
    let node = leader(&nodes).await;
    let per_client = (total_ops / clients).max(1);
    // Warm up connections, caches and the first segment.
    run(&node, clients.min(8), 20).await;
    let before = node.metrics();
    let (ops_per_second, p50_us, p99_us) = run(&node, clients, per_client).await;
    let after = node.metrics();
    let writes = (per_client * clients) as f64;
    let fsyncs = (after.fsyncs - before.fsyncs).max(1) as f64;
    println!(
        "nodes={size} clients={clients:>3} ops={:>6}: {ops_per_second:>8.0} ops/s  p50 {p50_us:>7.0} us  p99 {p99_us:>7.0} us  writes/fsync {:>6.1}  fsync p50 {} us p99 {} us max {} us",
        per_client * clients,
        writes / fsyncs,
        after.fsync_latency.p50_us,
        after.fsync_latency.p99_us,
        after.fsync_latency.max_us,
    );
    for node in nodes.values() {
        node.shutdown().await.expect("shutdown");
    }
}

fn main() {
    // `cargo test --benches` passes `--bench`-less flags; run only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let base = std::env::var("RAFT_BENCH_DIR")
        .unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let total_ops: usize = std::env::var("RAFT_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("propose benchmark: KV puts of {VALUE_BYTES}-byte values, data in {base}");
        for size in [1, 3] {
            for clients in [1, 16, 64] {
                let ops = if clients == 1 {
                    total_ops / 4
                } else {
                    total_ops
                };
                scenario(size, clients, ops, Path::new(&base)).await;
            }
        }
    });
}
