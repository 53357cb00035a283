//! The watch history as the host sees it through queries: what is recorded, its bounds,
//! its survival through snapshots, and that replicas agree on it.

use proptest::prelude::*;
use raft_core::StateMachine;
use raft_kv::{Command, Condition, KvStateMachine};

use crate::support::{changes, described, machine};

fn put(revision: u64, key: &str, value: &str) -> (u64, String, Option<String>) {
    (revision, key.into(), Some(value.into()))
}

/// Goal: puts and deletes of existing keys are recorded at their revision; failed
/// conditions, rejected commands, session retries and deletes of absent keys are not.
#[test]
fn only_changes_are_recorded() {
    let mut kv = machine();
    kv.apply(1, Command::put("a/1", "x", 10).with_session(7, 1));
    kv.apply(2, Command::put("a/1", "x", 10).with_session(7, 1)); // retry: replayed
    kv.apply(3, Command::delete("a/none", 10));
    kv.apply(
        4,
        Command::put("a/1", "y", 10).with_condition(Condition::ModRevision(99)),
    );
    kv.apply(5, Command::put("", "y", 10));
    kv.apply(6, Command::put("b/1", "z", 10));
    kv.apply(7, Command::delete("a/1", 10));
    let all = changes(&kv, "", 1, 100);
    let described: Vec<_> = all.changes.iter().map(described).collect();
    assert_eq!(
        described,
        [
            put(1, "a/1", "x"),
            put(6, "b/1", "z"),
            (7, "a/1".into(), None)
        ]
    );
    assert_eq!(
        (all.revision, all.applied_index, all.next_revision),
        (7, 7, 8)
    );
    let only_a: Vec<u64> = changes(&kv, "a/", 1, 100)
        .changes
        .iter()
        .map(|c| c.revision)
        .collect();
    assert_eq!(only_a, [1, 7]);
}

/// Goal: past the count bound the oldest changes go, and asking for them says `compacted`
/// with the oldest revision still available, instead of silently starting later.
#[test]
fn evicted_revisions_answer_compacted() {
    let mut kv = machine(); // history_changes_max = 6
    for index in 1..=10 {
        kv.apply(index, Command::put("k", "v", 10));
    }
    assert_eq!(kv.history_len(), 6);
    assert_eq!(kv.history_oldest_revision(), 5);
    let old = changes(&kv, "", 4, 100);
    assert!(old.compacted);
    assert!(old.changes.is_empty());
    assert_eq!(old.oldest_revision, 5);
    let kept = changes(&kv, "", 5, 100);
    assert!(!kept.compacted);
    // One page holds at most range_limit_max (5) changes and says where to go on.
    assert_eq!(kept.changes.len(), 5);
    assert_eq!(kept.next_revision, 10);
    assert_eq!(changes(&kv, "", 10, 100).changes.len(), 1);
}

/// Goal: the history survives a snapshot: a restored replica answers every watch query
/// exactly as the source does, before and after more applies.
#[test]
fn history_survives_a_snapshot() {
    let mut source = machine();
    for index in 1..=8 {
        let key = format!("k{}", index % 3);
        source.apply(index, Command::put(key, "v", 10));
    }
    source.apply(9, Command::delete("k1", 10));
    let mut bytes = Vec::new();
    KvStateMachine::write_snapshot(source.snapshot(), &mut bytes).expect("Vec write");
    let mut restored = machine();
    restored.restore(&mut bytes.as_slice()).expect("restores");
    assert_eq!(restored, source);
    for from in 0..12 {
        assert_eq!(
            changes(&restored, "", from, 3),
            changes(&source, "", from, 3)
        );
    }
    for machine in [&mut source, &mut restored] {
        machine.apply(10, Command::put("k9", "w", 10));
    }
    assert_eq!(
        changes(&restored, "k", 4, 100),
        changes(&source, "k", 4, 100)
    );
}

proptest! {
    /// Goal: the history is deterministic replicated state: two replicas that apply the same
    /// commands, one of them through a snapshot taken at any point, hold equal histories.
    #[test]
    fn replicas_hold_the_same_history(
        ops in proptest::collection::vec((0u8..4, 0u8..3, proptest::bool::ANY), 1..40),
        cut in 0usize..40,
    ) {
        let commands: Vec<Command> = ops
            .iter()
            .map(|(key, value, delete)| {
                let key = format!("k{key}");
                if *delete {
                    Command::delete(key, 10)
                } else {
                    Command::put(key, format!("v{value}"), 10)
                }
            })
            .collect();
        let mut first = machine();
        let mut second = machine();
        for (position, command) in commands.iter().enumerate() {
            let index = position as u64 + 1;
            first.apply(index, command.clone());
            second.apply(index, command.clone());
            if position == cut {
                let mut bytes = Vec::new();
                KvStateMachine::write_snapshot(second.snapshot(), &mut bytes).expect("Vec write");
                second = machine();
                second.restore(&mut bytes.as_slice()).expect("restores");
            }
        }
        prop_assert_eq!(&first, &second);
        let oldest = first.history_oldest_revision();
        prop_assert_eq!(changes(&first, "", oldest, 100), changes(&second, "", oldest, 100));
    }
}
