//! Property tests: random interleavings of ticks, deliveries, losses, duplications,
//! durability notices, proposals, snapshots and crashes on a small in-memory cluster. After
//! every step the four safety properties of Raft (Figure 3) must hold: election safety, log
//! matching, leader completeness and state machine safety.

mod common;

use std::collections::BTreeMap;

use common::{Cluster, config};
use proptest::prelude::*;
use raft_core::{Config, Index, NodeId, Role, Term};

#[derive(Clone, Debug)]
enum Op {
    Tick(usize),
    Deliver(usize),
    Drop(usize),
    Duplicate(usize),
    Persist(usize),
    Propose(usize),
    Crash(usize),
    Snapshot(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..5).prop_map(Op::Tick),
        12 => (0usize..64).prop_map(Op::Deliver),
        2 => (0usize..64).prop_map(Op::Drop),
        2 => (0usize..64).prop_map(Op::Duplicate),
        6 => (0usize..5).prop_map(Op::Persist),
        3 => (0usize..5).prop_map(Op::Propose),
        1 => (0usize..5).prop_map(Op::Crash),
        1 => (0usize..5).prop_map(Op::Snapshot),
    ]
}

/// Everything observed so far that the properties are checked against.
#[derive(Default)]
struct Observed {
    /// term -> the node that led it.
    leaders: BTreeMap<Term, NodeId>,
    /// index -> (entry term, an upper bound of the term in which it committed).
    committed: BTreeMap<Index, (Term, Term)>,
}

impl Observed {
    fn check(&mut self, cluster: &Cluster) {
        for (id, node) in &cluster.nodes {
            if node.role() == Role::Leader {
                let previous = self.leaders.insert(node.term(), *id);
                assert!(
                    previous.is_none_or(|p| p == *id),
                    "two leaders in term {}: {:?} and {id}",
                    node.term(),
                    previous
                );
            }
            for index in node.first_index()..=node.commit_index() {
                let Some(term) = node.entry_term(index) else {
                    continue;
                };
                let entry = self.committed.entry(index).or_insert((term, node.term()));
                assert_eq!(
                    entry.0, term,
                    "node {id} committed term {term} at {index}, another committed {}",
                    entry.0
                );
                entry.1 = entry.1.min(node.term());
            }
        }
        self.check_log_matching(cluster);
        self.check_leader_completeness(cluster);
        cluster.assert_state_machine_safety();
    }

    fn check_log_matching(&self, cluster: &Cluster) {
        let nodes: Vec<_> = cluster.nodes.iter().collect();
        for (i, (a_id, a)) in nodes.iter().enumerate() {
            for (b_id, b) in &nodes[i + 1..] {
                let high = a.last_index().min(b.last_index());
                let low = a.first_index().max(b.first_index());
                // Find the highest common index with equal terms; everything below must match.
                let Some(top) = (low..=high)
                    .rev()
                    .find(|&k| a.entry_term(k).is_some() && a.entry_term(k) == b.entry_term(k))
                else {
                    continue;
                };
                assert_eq!(
                    a.entries(low, top + 1),
                    b.entries(low, top + 1),
                    "log matching between {a_id} and {b_id} below {top}"
                );
            }
        }
    }

    fn check_leader_completeness(&self, cluster: &Cluster) {
        for (id, node) in &cluster.nodes {
            if node.role() != Role::Leader {
                continue;
            }
            for (&index, &(term, commit_term)) in self.committed.range(node.first_index()..) {
                if node.term() > commit_term {
                    assert_eq!(
                        node.entry_term(index),
                        Some(term),
                        "leader {id} of term {} lacks committed {index}",
                        node.term()
                    );
                }
            }
        }
    }
}

fn pick(cluster: &Cluster, k: usize) -> NodeId {
    let ids: Vec<NodeId> = cluster.nodes.keys().copied().collect();
    ids[k % ids.len()]
}

fn run(size: usize, ops: Vec<Op>, make: fn(NodeId) -> Config) {
    let ids: Vec<NodeId> = (1..=size as u64).collect();
    let mut cluster = Cluster::with_config(&ids, make);
    cluster.auto_persist = false;
    cluster.record_events = false;
    let mut observed = Observed::default();
    for op in ops {
        match op {
            Op::Tick(k) => {
                let id = pick(&cluster, k);
                cluster.tick(id);
            }
            Op::Deliver(k) if !cluster.network.is_empty() => {
                let message = cluster
                    .network
                    .remove(k % cluster.network.len())
                    .expect("in range");
                cluster.deliver(message);
            }
            Op::Drop(k) if !cluster.network.is_empty() => {
                cluster.network.remove(k % cluster.network.len());
            }
            Op::Duplicate(k) if !cluster.network.is_empty() => {
                let message = cluster.network[k % cluster.network.len()].clone();
                cluster.network.push_back(message);
            }
            Op::Persist(k) => cluster.persist(pick(&cluster, k)),
            Op::Propose(k) => {
                let id = pick(&cluster, k);
                cluster.propose(id, b"cmd");
            }
            Op::Crash(k) => cluster.restart(pick(&cluster, k)),
            Op::Snapshot(k) => {
                let id = pick(&cluster, k);
                let applied = cluster.applied[&id].last_index;
                if applied > cluster.node(id).snapshot_meta().index
                    && cluster.node(id).snapshot_meta_at(applied).is_some()
                {
                    cluster.snapshot(id);
                }
            }
            _ => {}
        }
        observed.check(&cluster);
    }
}

fn small_config(id: NodeId) -> Config {
    Config {
        election_ticks: 4,
        heartbeat_ticks: 1,
        max_append_bytes: 64,
        max_inflight_appends: 4,
        snapshot_chunk_bytes: 16,
        snapshot_retry_ticks: 3,
        ..config(id)
    }
}

fn no_prevote_config(id: NodeId) -> Config {
    Config {
        pre_vote: false,
        check_quorum: false,
        ..small_config(id)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn safety_holds_with_three_nodes(ops in proptest::collection::vec(op(), 1..400)) {
        run(3, ops, small_config);
    }

    #[test]
    fn safety_holds_with_five_nodes(ops in proptest::collection::vec(op(), 1..400)) {
        run(5, ops, small_config);
    }

    #[test]
    fn safety_holds_without_prevote_or_check_quorum(ops in proptest::collection::vec(op(), 1..400)) {
        run(3, ops, no_prevote_config);
    }
}
