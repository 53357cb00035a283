//! Throughput of three in-memory nodes in one thread: messages routed in memory, writes
//! durable at once, 100-byte payloads, proposals in batches of 1, 64 and 1024. Reports
//! entries committed and applied (on every node) per second.
//!
//! The host loop is the one a real host runs: per node, take every queued input, then
//! drain the actions once and carry them out (a write is "durable" at once, entries are
//! applied by counting them).
#![allow(missing_docs)]

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raft_core::{Action, Config, Entry, Index, Membership, Message, Node, RestoredState, Role};

const PAYLOAD_BYTES: usize = 100;
const NODES: usize = 3;
const COMPACT_EVERY_ENTRIES: u64 = 100_000;

struct Host {
    node: Node,
    inbox: VecDeque<Message>,
    /// The "disk": entries written, kept short by truncating now and then.
    log: Vec<Entry>,
    applied: Index,
    /// Got an input since its actions were last drained.
    touched: bool,
}

struct Bench {
    hosts: Vec<Host>,
    actions: Vec<Action>,
}

impl Bench {
    fn new() -> Self {
        let membership = Membership::with_voters(1..=NODES as u64);
        let hosts = (1..=NODES as u64)
            .map(|id| {
                let config = Config {
                    max_inflight_bytes: 64 << 20,
                    max_append_bytes: 4 << 20,
                    ..Config::new(id, id)
                };
                let node = Node::new(config, RestoredState::bootstrap(membership.clone()))
                    .expect("config");
                Host {
                    node,
                    inbox: VecDeque::new(),
                    log: Vec::new(),
                    applied: 0,
                    touched: false,
                }
            })
            .collect();
        let mut bench = Bench {
            hosts,
            actions: Vec::new(),
        };
        while bench.hosts[0].node.role() != Role::Leader {
            bench.hosts[0].node.tick();
            bench.hosts[0].touched = true;
            bench.run();
        }
        bench
    }

    /// Runs host loops until no node has input or output left.
    fn run(&mut self) {
        loop {
            let mut progress = false;
            for index in 0..NODES {
                progress |= self.turn(index);
            }
            if !progress {
                return;
            }
        }
    }

    fn turn(&mut self, index: usize) -> bool {
        let host = &mut self.hosts[index];
        // As a real host does: drain only after inputs.
        if host.inbox.is_empty() && !host.touched {
            return false;
        }
        host.touched = false;
        while let Some(message) = host.inbox.pop_front() {
            host.node.step(message);
        }
        let progress = true;
        // One drain per turn, as the runtime's driver does; what carrying out the actions
        // feeds back (durability and apply notices) is drained on the next turn.
        let mut actions = std::mem::take(&mut self.actions);
        self.hosts[index].node.drain_actions(&mut actions);
        for action in actions.drain(..) {
            self.carry_out(index, action);
        }
        self.actions = actions;
        progress
    }

    fn carry_out(&mut self, index: usize, action: Action) {
        match action {
            Action::Send(message) => self.hosts[(message.to - 1) as usize]
                .inbox
                .push_back(message),
            Action::Persist(batch) => {
                let host = &mut self.hosts[index];
                if host.log.len() as u64 > COMPACT_EVERY_ENTRIES {
                    host.log.clear();
                }
                host.log.extend(batch.entries);
                host.node.on_persisted(batch.token);
                host.touched = true;
            }
            Action::Apply(entries) => {
                let host = &mut self.hosts[index];
                host.applied = entries.last().map_or(host.applied, |e| e.index);
                host.node.on_applied(host.applied);
                host.touched = true;
                // Snapshot and compact now and then, as a real host does.
                if host.applied - host.node.snapshot_meta().index >= COMPACT_EVERY_ENTRIES
                    && let Some(meta) = host.node.snapshot_meta_at(host.applied)
                {
                    host.node.on_snapshot_saved(meta);
                }
            }
            _ => {}
        }
    }
}

fn throughput(c: &mut Criterion) {
    let payload = Bytes::from(vec![7u8; PAYLOAD_BYTES]);
    let mut group = c.benchmark_group("three_nodes_commit_apply");
    for batch in [1usize, 64, 1024] {
        group.throughput(Throughput::Elements(batch as u64));
        let mut bench = Bench::new();
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter(|| {
                let target = bench.hosts[0].node.last_index() + batch as u64;
                for _ in 0..batch {
                    // Outcomes are not matched here: the bench measures throughput.
                    let _ = bench.hosts[0].node.propose(payload.clone());
                }
                bench.hosts[0].touched = true;
                bench.run();
                // The next append or heartbeat carries the commit index to followers; the
                // leader has committed and applied the whole batch.
                assert!(
                    bench.hosts[0].applied >= target,
                    "batch committed and applied"
                );
            });
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
