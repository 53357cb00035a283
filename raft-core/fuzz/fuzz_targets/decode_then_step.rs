//! Decode-then-step: the bytes a transport would receive are decoded with postcard into
//! messages and stepped into a follower that holds committed entries, with a host that
//! carries out every write and apply at once. Nothing decoded may panic or halt the node.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use raft_core::{
    Action, Config, Entry, EntryPayload, HardState, Membership, Message, Node, RestoredState,
    SnapshotMeta,
};

/// Node 1 of {1, 2, 3}, in term 2, holding entries 1..=6 with 1..=4 committed: enough log
/// for appends to match, conflict, overwrite and be refused.
fn follower() -> Node {
    let entries = (1..=6)
        .map(|index| Entry {
            term: if index <= 3 { 1 } else { 2 },
            index,
            payload: EntryPayload::Command(Bytes::from_static(b"committed")),
        })
        .collect();
    let restored = RestoredState {
        hard_state: HardState {
            term: 2,
            vote: Some(2),
            commit: 4,
        },
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters([1, 2, 3]),
        },
        entries,
    };
    Node::new(Config::new(1, 7), restored).expect("valid configuration")
}

/// A host that makes every write durable and applies every entry at once.
fn carry_out(node: &mut Node, actions: &mut Vec<Action>) {
    for _ in 0..64 {
        node.drain_actions(actions);
        if actions.is_empty() {
            return;
        }
        for action in actions.drain(..) {
            match action {
                Action::Persist(batch) => node.on_persisted(batch.token),
                Action::WriteSnapshotChunk(chunk) => node.on_persisted(chunk.token),
                Action::Apply(entries) => {
                    if let Some(last) = entries.last() {
                        node.on_applied(last.index);
                    }
                }
                Action::RestoreStateMachine { meta } => node.on_applied(meta.index),
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut node = follower();
    let mut actions = Vec::new();
    let mut rest = data;
    // A tick between messages lets timers (elections, transfers) interleave with input.
    while let Ok((message, tail)) = postcard::take_from_bytes::<Message>(rest) {
        node.step(message);
        carry_out(&mut node, &mut actions);
        node.tick();
        carry_out(&mut node, &mut actions);
        rest = tail;
    }
    assert!(!node.is_halted(), "halted: {:?}", node.status().halted);
});
