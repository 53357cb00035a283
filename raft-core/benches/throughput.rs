//! Throughput of three in-memory nodes in one thread: messages routed in memory, writes
//! durable at once, 100-byte payloads, proposals in batches of 1, 64 and 1024. Reports
//! entries committed and applied (on the leader, with both followers acknowledging) per
//! second.
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use bytes::Bytes;
use common::{Cluster, config};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use raft_core::Config;

const PAYLOAD_BYTES: usize = 100;

fn bench_config(id: u64) -> Config {
    // Large enough windows that one batch is never throttled by flow control.
    Config {
        max_inflight_bytes: 64 << 20,
        max_append_bytes: 4 << 20,
        ..config(id)
    }
}

fn leader_cluster() -> Cluster {
    let mut cluster = Cluster::with_config(&[1, 2, 3], bench_config);
    cluster.record_events = false;
    cluster.elect(1);
    cluster
}

fn throughput(c: &mut Criterion) {
    let payload = Bytes::from(vec![7u8; PAYLOAD_BYTES]);
    let mut group = c.benchmark_group("three_nodes_commit_apply");
    for batch in [1usize, 64, 1024] {
        group.throughput(Throughput::Elements(batch as u64));
        let mut cluster = leader_cluster();
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter_batched(
                || (),
                |()| {
                    let target = cluster.node(1).last_index() + batch as u64;
                    for _ in 0..batch {
                        cluster.node_mut(1).propose(payload.clone());
                    }
                    cluster.process(1);
                    cluster.settle();
                    assert!(
                        cluster.applied[&1].last_index >= target,
                        "batch committed and applied"
                    );
                    // Bound memory: snapshot and compact every node now and then, as a
                    // host would.
                    if cluster.applied[&1].entries.len() > 100_000 {
                        for id in [1, 2, 3] {
                            cluster.applied.get_mut(&id).expect("node").entries.clear();
                            cluster.snapshot(id);
                        }
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
