//! Property tests with a hostile network: a three-node honest cluster (1, 2, 3) runs random
//! ticks, deliveries, losses, durability notices and proposals, while messages an attacker
//! made up are stepped into the honest nodes between them.
//!
//! What can be asserted depends on who the attacker claims to be, so there are three
//! properties:
//!
//! * **Invalid messages** (a term beyond `MAX_TERM` or too far ahead, an index gap, entry
//!   terms out of order, a malformed snapshot, a misaddressed or self-sent message, an
//!   answer from a term the receiver never reached, a leader message of the receiver's term
//!   from someone other than its leader): each must be refused by validation, counted
//!   against its sender, and leave the receiver's term, vote, role, log and commit exactly
//!   as they were. The honest cluster stays safe and, once the attack stops, elects a
//!   leader and commits.
//! * **Strangers** (ids that are no member, 4 and up): any message that does not claim
//!   leadership or answer as a follower it is not (votes, vote requests, acknowledgements,
//!   forwarded requests and answers, `TimeoutNow`), with arbitrary terms and fields. The
//!   honest nodes must keep election safety, log matching and state machine safety on
//!   committed entries, never halt, and recover once the attack stops.
//! * **Anything from anyone**, including the honest ids, with any body: only no panic and
//!   no halt are asserted. A forged append that claims the id of the real leader of the
//!   current term and agrees with everything the receiver knows is indistinguishable from a
//!   real one, so it can plant entries; nor can a follower refuse leader messages from ids
//!   outside its configuration (a lagging follower hears from leaders added by
//!   configurations it has not received yet). That is what authenticated peers (mutual TLS
//!   in the transport) are for; the core's part is that nothing it is sent makes it crash
//!   or stop.

#[path = "../common/mod.rs"]
mod common;
mod forgeries;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{Cluster, config};
use proptest::prelude::*;
use raft_core::{
    Config, ConflictHint, Entry, EntryPayload, Index, MAX_INDEX, MAX_TERM, MAX_TERM_JUMP,
    Membership, Message, MessageBody, NodeId, ProposalError, ReadError, Role, SnapshotMeta, Term,
};

use forgeries::*;

const HONEST: [NodeId; 3] = [1, 2, 3];

/// Honest steps of the cluster, or an injection.
#[derive(Clone, Debug)]
enum Op {
    Tick(usize),
    Deliver(usize),
    Drop(usize),
    Persist(usize),
    Propose(usize),
    Inject(usize, Forgery),
}

/// A made-up message, before it is aimed at its receiver.
#[derive(Clone, Debug)]
struct Forgery {
    from: NodeId,
    to_other: bool,
    term: TermChoice,
    body: BodySpec,
    /// How to break it, for the "invalid" property.
    defect: Defect,
}

/// Terms chosen relative to the receiver's, so that injections hit its current term.
#[derive(Clone, Copy, Debug)]
enum TermChoice {
    Absolute(Term),
    Relative(i8),
}

#[derive(Clone, Debug)]
struct BodySpec {
    kind: u8,
    flags: [bool; 3],
    indices: [Index; 3],
    terms: [Term; 2],
    entries: Vec<(Index, Term)>,
    contiguous: bool,
    data: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
enum Defect {
    TermBeyondMax(u64),
    TermTooFarAhead(u64),
    Misaddressed,
    FromSelf,
    FromZero,
    EntryGap(u64),
    EntryTermAboveMessage,
    SnapshotAtZero,
    SnapshotChunkOverflow,
    AnswerFromTheFuture(u8, u8),
    NotFromTheLeader,
}

/// What an invalid message must leave untouched on its receiver.
fn fingerprint(cluster: &Cluster, id: NodeId) -> (Term, Option<NodeId>, Role, Index, Index, u64) {
    let node = cluster.node(id);
    let rejected = node.rejected_messages().values().sum();
    (
        node.term(),
        node.hard_state().vote,
        node.role(),
        node.commit_index(),
        node.last_index(),
        rejected,
    )
}

/// Election safety, log matching on committed prefixes, state machine safety, no halts.
#[derive(Default)]
struct Safety {
    leaders: BTreeMap<Term, NodeId>,
}

impl Safety {
    fn check(&mut self, cluster: &Cluster) {
        for (id, node) in &cluster.nodes {
            assert!(
                !node.is_halted(),
                "node {id} halted: {:?}",
                node.status().halted
            );
            if node.role() == Role::Leader {
                let previous = self.leaders.insert(node.term(), *id);
                assert!(
                    previous.is_none_or(|p| p == *id),
                    "two leaders in term {}",
                    node.term()
                );
            }
        }
        for a in HONEST {
            for b in HONEST.iter().copied().filter(|&b| b > a) {
                let (x, y) = (cluster.node(a), cluster.node(b));
                let low = x.first_index().max(y.first_index());
                let high = x.commit_index().min(y.commit_index());
                let elided =
                    |entries: &[Entry]| entries.iter().map(Entry::elided).collect::<Vec<_>>();
                assert_eq!(
                    elided(x.entries(low, high + 1)),
                    elided(y.entries(low, high + 1)),
                    "committed logs of {a} and {b} differ in {low}..={high}"
                );
            }
        }
        cluster.assert_state_machine_safety();
    }
}

fn small_config(id: NodeId) -> Config {
    Config {
        election_ticks: 4,
        heartbeat_ticks: 1,
        max_append_bytes: 64,
        max_inflight_appends: 4,
        ..config(id)
    }
}

fn honest_step(cluster: &mut Cluster, op: &Op) {
    let pick = |k: usize| HONEST[k % HONEST.len()];
    match *op {
        Op::Tick(k) => cluster.tick(pick(k)),
        Op::Deliver(k) if !cluster.network.is_empty() => {
            let message = cluster.network.remove(k % cluster.network.len());
            cluster.deliver(message.expect("in range"));
        }
        Op::Drop(k) if !cluster.network.is_empty() => {
            cluster.network.remove(k % cluster.network.len());
        }
        Op::Persist(k) => cluster.persist(pick(k)),
        Op::Propose(k) => {
            let _ = cluster.propose(pick(k), b"honest");
        }
        _ => {}
    }
}

/// The attack is over: the honest cluster must elect a leader and commit a new command.
fn assert_recovers(cluster: &mut Cluster) {
    cluster.auto_persist = true;
    for id in HONEST {
        cluster.persist(id);
    }
    for _ in 0..400 {
        cluster.tick_all();
        cluster.settle();
        if cluster.leader().is_some() {
            break;
        }
    }
    let leader = cluster.leader().expect("a leader after the attack");
    let before = cluster.node(leader).commit_index();
    let _ = cluster.propose(leader, b"after");
    for _ in 0..10 {
        cluster.tick_all();
        cluster.settle();
    }
    let leader = cluster.leader().expect("a leader");
    assert!(
        cluster.node(leader).commit_index() > before,
        "the cluster commits again"
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Invalid,
    Strangers,
    Anything,
}

fn run(ops: Vec<Op>, mode: Mode) {
    let mut cluster = Cluster::with_config(&HONEST, small_config);
    cluster.auto_persist = false;
    cluster.record_events = false;
    let mut safety = Safety::default();
    for op in &ops {
        let Op::Inject(k, forgery) = op else {
            honest_step(&mut cluster, op);
            if mode != Mode::Anything {
                safety.check(&cluster);
            }
            continue;
        };
        let to = HONEST[k % HONEST.len()];
        match mode {
            Mode::Invalid => {
                let message = aim_invalid(forgery, &cluster, to);
                let before = fingerprint(&cluster, to);
                cluster.node_mut(to).step(message.clone());
                let after = fingerprint(&cluster, to);
                assert_eq!(
                    after.5,
                    before.5 + 1,
                    "not rejected: {forgery:?} {message:?}"
                );
                assert_eq!(
                    after.0..after.4,
                    before.0..before.4,
                    "changed by {message:?}"
                );
                assert_eq!((after.1, after.2, after.4), (before.1, before.2, before.4));
                cluster.process(to);
            }
            Mode::Strangers => {
                let mut message = aim(forgery, &cluster, to, stranger_kind);
                message.from = 4 + message.from % 1000;
                cluster.deliver(message);
            }
            Mode::Anything => {
                let message = aim(forgery, &cluster, to, |_| true);
                cluster.node_mut(to).step(message);
                cluster.process(to);
            }
        }
        if mode != Mode::Anything {
            safety.check(&cluster);
        }
    }
    for (id, node) in &cluster.nodes {
        assert!(
            !node.is_halted(),
            "node {id} halted: {:?}",
            node.status().halted
        );
    }
    if mode != Mode::Anything {
        assert_recovers(&mut cluster);
        safety.check(&cluster);
    }
}

/// The fuzz target's scenario (raft-core/fuzz) on stable: bytes decoded with postcard into
/// messages, stepped into a follower of {1, 2, 3} in term 2 holding entries 1..=6 with
/// 1..=4 committed, with a host that makes every write durable and applies at once.
fn decode_then_step(data: &[u8], seeds: &[Message]) {
    let entries = (1..=6)
        .map(|index| Entry {
            term: if index <= 3 { 1 } else { 2 },
            index,
            payload: EntryPayload::Command(Bytes::from_static(b"committed")),
        })
        .collect();
    let restored = raft_core::RestoredState {
        hard_state: raft_core::HardState {
            term: 2,
            vote: Some(2),
            commit: 4,
        },
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters(HONEST),
        },
        entries,
    };
    let mut node = raft_core::Node::new(Config::new(1, 7), restored).expect("valid config");
    let mut bytes = Vec::new();
    for seed in seeds {
        bytes.extend(postcard::to_stdvec(seed).expect("encodes"));
    }
    bytes.extend_from_slice(data);
    let mut rest = bytes.as_slice();
    let mut actions = Vec::new();
    while let Ok((message, tail)) = postcard::take_from_bytes::<Message>(rest) {
        node.step(message);
        node.tick();
        for _ in 0..64 {
            node.drain_actions(&mut actions);
            if actions.is_empty() {
                break;
            }
            for action in actions.drain(..) {
                match action {
                    raft_core::Action::Persist(batch) => node.on_persisted(batch.token),
                    raft_core::Action::WriteSnapshotChunk(chunk) => node.on_persisted(chunk.token),
                    raft_core::Action::Apply(entries) => {
                        node.on_applied(entries.last().map_or(0, |e| e.index))
                    }
                    raft_core::Action::RestoreStateMachine { meta } => node.on_applied(meta.index),
                    _ => {}
                }
            }
        }
        rest = tail;
    }
    assert!(!node.is_halted(), "halted: {:?}", node.status().halted);
}

/// Cases per property: 96 by default; `HOSTILE_CASES=5000` for a long hunt.
fn cases() -> u32 {
    std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn invalid_messages_are_refused_and_change_nothing(ops in prop::collection::vec(op(), 1..300)) {
        run(ops, Mode::Invalid);
    }

    #[test]
    fn strangers_cannot_break_safety_or_stop_the_cluster(ops in prop::collection::vec(op(), 1..300)) {
        run(ops, Mode::Strangers);
    }

    #[test]
    fn decoded_bytes_never_panic_or_halt_a_node(
        seeds in prop::collection::vec((sender(), term_choice(), body()), 0..6),
        data in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        // Seeded with well-formed messages (random bytes alone rarely decode to one) and
        // followed by raw bytes.
        let seeds: Vec<Message> = seeds
            .iter()
            .map(|(from, term, spec)| {
                let term = resolve_term(*term, 2);
                Message { from: *from, to: 1, term, body: build_body(spec, spec.kind, term) }
            })
            .collect();
        decode_then_step(&data, &seeds);
    }

    #[test]
    fn anything_from_anyone_never_panics_or_halts(ops in prop::collection::vec(op(), 1..300)) {
        run(ops, Mode::Anything);
    }
}
