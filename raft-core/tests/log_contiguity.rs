//! The log's contiguity is never given up silently: a restored log with a gap is refused (a
//! panic or an error: it is the host's own storage that is corrupt), and an append whose
//! entries skip an index is dropped by validation (issue 14) in every build, without a
//! panic; behind validation, the log's own contiguity checks are release assertions.
//!
//! Method: feed the bad input through the public API (the restored log inside
//! `catch_unwind`); a node that accepted the gap fails.

use std::panic::catch_unwind;

use raft_core::{
    Config, Entry, EntryPayload, HardState, Membership, Message, MessageBody, Node, RestoredState,
    SnapshotMeta,
};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: EntryPayload::Noop,
    }
}

fn restored(entries: Vec<Entry>) -> RestoredState {
    RestoredState {
        hard_state: HardState {
            term: 1,
            vote: None,
            commit: 0,
        },
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters([1, 2, 3]),
        },
        entries,
    }
}

fn is_contiguous(node: &Node) -> bool {
    let entries = node.entries(node.first_index(), node.last_index() + 1);
    let starts_right = entries
        .first()
        .is_none_or(|e| e.index == node.first_index());
    starts_right && entries.windows(2).all(|w| w[1].index == w[0].index + 1)
}

/// A host whose storage hands back a log with a hole (1, then 3) gets no node that runs on
/// it.
#[test]
fn restored_log_with_a_gap_is_refused() {
    let outcome =
        catch_unwind(|| Node::new(Config::new(1, 7), restored(vec![entry(1, 1), entry(3, 1)])));
    match outcome {
        Err(_panic) => {}
        Ok(Err(_refused)) => {}
        Ok(Ok(node)) => panic!(
            "a log with a gap was accepted: {:?}",
            node.entries(node.first_index(), node.last_index() + 1)
        ),
    }
}

/// An append carrying entries 1 and 3 (no 2) must not leave a hole in the follower's log,
/// in debug and release builds alike: validation drops it, counts it against the sender
/// and the node carries on (no panic; `step` runs outside `catch_unwind` on purpose).
#[test]
fn append_with_a_gap_is_never_stored() {
    let mut node = Node::new(Config::new(1, 7), restored(Vec::new())).expect("valid node");
    let message = Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::Append {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![entry(1, 1), entry(3, 1)],
            leader_commit: 0,
        },
    };
    node.step(message);
    let mut actions = Vec::new();
    node.drain_actions(&mut actions);
    assert!(is_contiguous(&node), "the append left a hole in the log");
    assert_eq!(node.last_index(), 0, "nothing of the append was stored");
    assert_eq!(
        node.rejected_messages().get(&2),
        Some(&1),
        "the append is counted against its sender"
    );
}
