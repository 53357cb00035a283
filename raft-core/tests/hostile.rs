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

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{Cluster, config};
use proptest::prelude::*;
use raft_core::{
    Config, ConflictHint, Entry, EntryPayload, Index, MAX_INDEX, MAX_TERM, MAX_TERM_JUMP,
    Membership, Message, MessageBody, NodeId, ProposalError, ReadError, Role, SnapshotMeta, Term,
};

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

fn index() -> impl Strategy<Value = Index> {
    prop_oneof![
        4 => 0u64..24,
        1 => Just(MAX_INDEX),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

fn term() -> impl Strategy<Value = Term> {
    prop_oneof![
        6 => 0u64..12,
        1 => Just(MAX_TERM),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

fn term_choice() -> impl Strategy<Value = TermChoice> {
    prop_oneof![
        3 => (-2i8..3).prop_map(TermChoice::Relative),
        1 => term().prop_map(TermChoice::Absolute),
    ]
}

fn body() -> impl Strategy<Value = BodySpec> {
    (
        0u8..15,
        any::<[bool; 3]>(),
        [index(), index(), index()],
        [term(), term()],
        prop::collection::vec((index(), term()), 0..4),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(
            |(kind, flags, indices, terms, entries, contiguous, data)| BodySpec {
                kind,
                flags,
                indices,
                terms,
                entries,
                contiguous,
                data,
            },
        )
}

fn defect() -> impl Strategy<Value = Defect> {
    prop_oneof![
        (0u64..1000).prop_map(Defect::TermBeyondMax),
        (0u64..1000).prop_map(Defect::TermTooFarAhead),
        Just(Defect::Misaddressed),
        Just(Defect::FromSelf),
        Just(Defect::FromZero),
        (1u64..1_000_000).prop_map(Defect::EntryGap),
        Just(Defect::EntryTermAboveMessage),
        Just(Defect::SnapshotAtZero),
        Just(Defect::SnapshotChunkOverflow),
        (0u8..7, 0u8..4).prop_map(|(kind, ahead)| Defect::AnswerFromTheFuture(kind, ahead)),
        Just(Defect::NotFromTheLeader),
    ]
}

fn sender() -> impl Strategy<Value = NodeId> {
    prop_oneof![
        3 => 1u64..=3,
        2 => 4u64..=7,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

fn forgery() -> impl Strategy<Value = Forgery> {
    (
        sender(),
        prop::bool::weighted(0.05),
        term_choice(),
        body(),
        defect(),
    )
        .prop_map(|(from, to_other, term, body, defect)| Forgery {
            from,
            to_other,
            term,
            body,
            defect,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..3).prop_map(Op::Tick),
        20 => (0usize..4).prop_map(Op::Deliver),
        3 => (0usize..64).prop_map(Op::Deliver),
        2 => (0usize..64).prop_map(Op::Drop),
        10 => (0usize..3).prop_map(Op::Persist),
        3 => (0usize..3).prop_map(Op::Propose),
        6 => (0usize..3, forgery()).prop_map(|(k, f)| Op::Inject(k, f)),
    ]
}

fn entries_of(spec: &BodySpec, prev: Index, message_term: Term) -> Vec<Entry> {
    let payload = |k: usize| match k % 3 {
        0 => EntryPayload::Command(Bytes::copy_from_slice(&spec.data)),
        1 => EntryPayload::Noop,
        _ => EntryPayload::Membership(Box::new(Membership::with_voters([1, 2, 3]))),
    };
    spec.entries
        .iter()
        .enumerate()
        .map(|(k, &(index, term))| {
            if spec.contiguous {
                // Plausible: contiguous from prev + 1, terms up to the message's.
                Entry {
                    index: prev.saturating_add(1 + k as u64),
                    term: message_term.min(term.max(spec.terms[0])),
                    payload: payload(k),
                }
            } else {
                Entry {
                    index,
                    term,
                    payload: payload(k),
                }
            }
        })
        .collect()
}

/// The body of a forgery; `kind` picks one of the fifteen message kinds.
fn build_body(spec: &BodySpec, kind: u8, message_term: Term) -> MessageBody {
    let [a, b, c] = spec.indices;
    let [t0, t1] = spec.terms;
    let [f0, f1, f2] = spec.flags;
    let data = Bytes::copy_from_slice(&spec.data);
    match kind % 15 {
        0 => MessageBody::VoteRequest {
            pre_vote: f0,
            last_log_index: a,
            last_log_term: t0,
            transfer: f1,
        },
        1 => MessageBody::VoteResponse {
            pre_vote: f0,
            granted: f1,
        },
        2 => MessageBody::AppendResponse {
            success: f0,
            match_index: a,
            hint: f1.then_some(ConflictHint { index: b, term: t0 }),
        },
        3 => MessageBody::HeartbeatResponse { round: c },
        4 => MessageBody::SnapshotResponse {
            index: a,
            next_offset: b,
            installed: f0,
        },
        5 => MessageBody::TimeoutNow,
        6 => MessageBody::ForwardProposal { id: c, data },
        7 => MessageBody::ForwardProposalResponse {
            id: c,
            result: if f0 {
                Ok((a, t0))
            } else {
                Err(ProposalError::Dropped)
            },
        },
        8 => MessageBody::ReadIndexRequest { id: c },
        9 => MessageBody::ReadIndexResponse {
            id: c,
            result: if f0 { Ok(a) } else { Err(ReadError::Timeout) },
        },
        10 | 11 => MessageBody::Append {
            prev_log_index: a,
            prev_log_term: if a == 0 { 0 } else { t1 },
            entries: entries_of(spec, a, message_term),
            leader_commit: b,
        },
        12 => MessageBody::Heartbeat {
            commit: a,
            round: c,
        },
        // No data: the harness's state machine decodes restored snapshot bytes, and garbage
        // would fail the harness rather than the core (offsets and metadata stay arbitrary).
        _ => MessageBody::SnapshotChunk {
            meta: Box::new(SnapshotMeta {
                index: a,
                term: t0,
                membership: Membership::with_voters([1, 2, 3]),
            }),
            offset: b % 64,
            data: Bytes::new(),
            done: f2,
        },
    }
}

/// True for kinds a stranger may send in the "strangers" property: nothing that claims
/// leadership (append, heartbeat, snapshot chunk).
fn stranger_kind(kind: u8) -> bool {
    !matches!(kind % 15, 10..=14)
}

fn resolve_term(choice: TermChoice, own: Term) -> Term {
    match choice {
        TermChoice::Absolute(term) => term,
        TermChoice::Relative(delta) if delta < 0 => own.saturating_sub(delta.unsigned_abs().into()),
        TermChoice::Relative(delta) => own.saturating_add(delta as u64),
    }
}

/// The forgery as sent, unbroken.
fn aim(forgery: &Forgery, cluster: &Cluster, to: NodeId, kind_filter: fn(u8) -> bool) -> Message {
    let own = cluster.node(to).term();
    let term = resolve_term(forgery.term, own);
    let mut kind = forgery.body.kind;
    while !kind_filter(kind) {
        kind = kind.wrapping_add(1) % 15;
    }
    let to_field = if forgery.to_other { to % 3 + 1 } else { to };
    Message {
        from: forgery.from,
        to: to_field,
        term,
        body: build_body(&forgery.body, kind, term),
    }
}

/// The forgery, broken by its defect so that validation must refuse it.
fn aim_invalid(forgery: &Forgery, cluster: &Cluster, to: NodeId) -> Message {
    let node = cluster.node(to);
    let own = node.term();
    let mut message = aim(forgery, cluster, to, |_| true);
    message.to = to;
    if message.from == to || message.from == 0 {
        message.from = to % 3 + 1;
    }
    let leader_message = |kind: u8| build_body(&forgery.body, 10 + kind % 5, own);
    match forgery.defect {
        Defect::TermBeyondMax(extra) => message.term = MAX_TERM + 1 + extra,
        Defect::TermTooFarAhead(extra) => message.term = own + MAX_TERM_JUMP + 1 + extra,
        Defect::Misaddressed => message.to = [7, 0, to % 3 + 1][forgery.body.kind as usize % 3],
        Defect::FromSelf => message.from = to,
        Defect::FromZero => message.from = 0,
        Defect::EntryGap(gap) => {
            message.term = own.max(1);
            let prev = forgery.body.indices[0] % 32;
            message.body = MessageBody::Append {
                prev_log_index: prev,
                prev_log_term: if prev == 0 { 0 } else { 1 },
                entries: vec![Entry {
                    index: prev + 1 + gap,
                    term: message.term,
                    payload: EntryPayload::Noop,
                }],
                leader_commit: prev + 1 + gap,
            };
        }
        Defect::EntryTermAboveMessage => {
            message.term = own.max(1);
            message.body = MessageBody::Append {
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![Entry {
                    index: 1,
                    term: message.term + 1,
                    payload: EntryPayload::Noop,
                }],
                leader_commit: 1,
            };
        }
        Defect::SnapshotAtZero | Defect::SnapshotChunkOverflow => {
            let overflow = matches!(forgery.defect, Defect::SnapshotChunkOverflow);
            message.term = own.max(1);
            message.body = MessageBody::SnapshotChunk {
                meta: Box::new(SnapshotMeta {
                    index: if overflow { 5 } else { 0 },
                    term: if overflow { 1 } else { 0 },
                    membership: Membership::with_voters([1, 2, 3]),
                }),
                offset: if overflow { u64::MAX } else { 0 },
                data: Bytes::from_static(b"x"),
                done: true,
            };
        }
        Defect::AnswerFromTheFuture(kind, ahead) => {
            // Kinds that only answer something the receiver sent in its own term.
            let answers = [1, 3, 4, 5, 6, 7, 8];
            let kind = answers[kind as usize % answers.len()];
            message.body = build_body(&forgery.body, kind, own);
            if let MessageBody::VoteResponse {
                pre_vote: true,
                granted,
            } = &mut message.body
            {
                *granted = true; // a refused pre-vote may announce a newer term
            }
            let granted_pre_vote = matches!(
                message.body,
                MessageBody::VoteResponse {
                    pre_vote: true,
                    granted: true
                }
            );
            let margin = if granted_pre_vote { 2 } else { 1 };
            message.term = own + margin + u64::from(ahead);
            if let MessageBody::ForwardProposalResponse { result: Ok(r), .. } = &mut message.body {
                *r = (1, 1);
            }
        }
        Defect::NotFromTheLeader => {
            let known = if node.role() == Role::Leader {
                Some(to)
            } else {
                node.leader()
            };
            match known {
                Some(leader) if own > 0 => {
                    message.term = own;
                    message.from = if leader == 3 { 5 } else { 3 }.max(1);
                    if message.from == to {
                        message.from = 6;
                    }
                    message.body = leader_message(forgery.body.kind);
                    if let MessageBody::SnapshotChunk { meta, offset, .. } = &mut message.body {
                        // Keep the snapshot well-formed: the sender is what is wrong.
                        meta.index = meta.index.clamp(1, 64);
                        meta.term = meta.term.clamp(1, own);
                        *offset = 0;
                    }
                    if let MessageBody::Append {
                        prev_log_index,
                        prev_log_term,
                        entries,
                        leader_commit,
                    } = &mut message.body
                    {
                        *prev_log_index = 0;
                        *prev_log_term = 0;
                        entries.clear();
                        *leader_commit = 0;
                    }
                    if let MessageBody::Heartbeat { commit, .. } = &mut message.body {
                        *commit = 0;
                    }
                }
                _ => message.term = u64::MAX,
            }
        }
    }
    message
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
