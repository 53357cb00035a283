//! Client sessions: exactly-once writes, expiry by log time, eviction.

use bytes::Bytes;
use raft_core::StateMachine;
use raft_kv::{Command, CommandError, Condition, Response};

use crate::support::{get, machine};

fn value(kv: &raft_kv::KvStateMachine, key: &str) -> Option<Bytes> {
    get(kv, key).map(|entry| entry.value)
}

#[test]
fn a_retried_write_returns_the_original_response_and_applies_once() {
    let mut kv = machine();
    let original = kv.apply(1, Command::put("a", "1", 10).with_session(7, 1));
    kv.apply(2, Command::put("a", "other", 11));
    let retry = kv.apply(3, Command::put("a", "1", 12).with_session(7, 1));
    assert_eq!(retry, original);
    // The retry did not overwrite the other client's later write.
    assert_eq!(value(&kv, "a"), Some(Bytes::from("other")));
    assert_eq!(kv.revision(), 2);
}

#[test]
fn a_cached_condition_failed_response_is_still_a_duplicate() {
    let mut kv = machine();
    kv.apply(1, Command::put("a", "1", 0));
    let create_only = Command::put("a", "mine", 0).with_condition(Condition::Absent);
    let failed = kv.apply(2, create_only.clone().with_session(7, 1));
    assert!(matches!(failed, Response::ConditionFailed { .. }));
    kv.apply(3, Command::delete("a", 0));
    // Now the condition would hold, but the retry must replay the original failure.
    assert_eq!(kv.apply(4, create_only.with_session(7, 1)), failed);
    assert_eq!(value(&kv, "a"), None);
}

#[test]
fn a_cached_empty_delete_response_is_still_a_duplicate() {
    // raftz treated a cached empty response as "not seen" and applied the retry again.
    let mut kv = machine();
    let empty = kv.apply(1, Command::delete("a", 0).with_session(7, 1));
    assert_eq!(
        empty,
        Response::Delete {
            revision: 0,
            previous: None
        }
    );
    kv.apply(2, Command::put("a", "1", 0));
    assert_eq!(
        kv.apply(3, Command::delete("a", 0).with_session(7, 1)),
        empty
    );
    assert_eq!(value(&kv, "a"), Some(Bytes::from("1")));
}

#[test]
fn a_cached_rejection_is_replayed_and_the_session_moves_on() {
    let mut kv = machine();
    let rejected = kv.apply(1, Command::put("", "1", 0).with_session(7, 1));
    assert_eq!(rejected, Response::Rejected(CommandError::EmptyKey));
    assert_eq!(
        kv.apply(2, Command::put("", "1", 0).with_session(7, 1)),
        rejected
    );
    assert!(matches!(
        kv.apply(3, Command::put("a", "1", 0).with_session(7, 2)),
        Response::Put { .. }
    ));
}

#[test]
fn an_older_sequence_is_refused_as_stale() {
    let mut kv = machine();
    kv.apply(1, Command::put("a", "1", 0).with_session(7, 1));
    kv.apply(2, Command::put("a", "3", 0).with_session(7, 3));
    let stale = kv.apply(3, Command::put("a", "2", 0).with_session(7, 2));
    let error = CommandError::StaleSequence {
        client_id: 7,
        sequence: 2,
        last_sequence: 3,
    };
    assert_eq!(stale, Response::Rejected(error));
    assert_eq!(value(&kv, "a"), Some(Bytes::from("3")));
}

#[test]
fn sessions_start_at_sequence_one_only() {
    let mut kv = machine();
    let unknown = kv.apply(1, Command::put("a", "1", 0).with_session(7, 5));
    assert_eq!(
        unknown,
        Response::Rejected(CommandError::SessionUnknown {
            client_id: 7,
            sequence: 5
        })
    );
    let zero = kv.apply(2, Command::put("a", "1", 0).with_session(8, 0));
    assert_eq!(
        zero,
        Response::Rejected(CommandError::InvalidSequence { client_id: 8 })
    );
    assert_eq!(kv.session_count(), 0);
    assert!(kv.is_empty());
}

#[test]
fn sessions_expire_by_log_time_only() {
    // TTL is 1,000 ms. Time moves only with the commands' now_ms, and never backwards.
    let mut kv = machine();
    kv.apply(1, Command::put("a", "1", 5_000).with_session(7, 1));
    // A command from a proposer with a slow clock does not move the clock back.
    kv.apply(2, Command::put("b", "1", 100));
    assert_eq!(kv.clock_ms(), 5_000);
    // Idle for exactly the TTL: still alive, so the retry is recognised.
    assert!(matches!(
        kv.apply(3, Command::put("a", "1", 6_000).with_session(7, 1)),
        Response::Put { revision: 1, .. }
    ));
    // That retry counted as activity at 6,000; idle 1,001 ms later it is gone.
    kv.apply(4, Command::put("b", "2", 7_001));
    assert_eq!(kv.session_count(), 0);
    let late = kv.apply(5, Command::put("a", "2", 7_001).with_session(7, 2));
    assert_eq!(
        late,
        Response::Rejected(CommandError::SessionUnknown {
            client_id: 7,
            sequence: 2
        })
    );
}

#[test]
fn a_full_table_evicts_the_least_recently_active_session() {
    // At most 4 sessions. Clients 1..=4 write at times 10..=40; client 1 retries at 50, so
    // client 2 is the least recently active when client 5 arrives.
    let mut kv = machine();
    for client in 1..=4u64 {
        kv.apply(
            client,
            Command::put("k", "v", client * 10).with_session(client, 1),
        );
    }
    kv.apply(5, Command::put("k", "v", 50).with_session(1, 1));
    kv.apply(6, Command::put("k", "v", 60).with_session(5, 1));
    assert_eq!(kv.session_count(), 4);
    let evicted = kv.apply(7, Command::put("k", "v", 70).with_session(2, 2));
    assert_eq!(
        evicted,
        Response::Rejected(CommandError::SessionUnknown {
            client_id: 2,
            sequence: 2
        })
    );
    assert!(matches!(
        kv.apply(8, Command::put("k", "x", 80).with_session(1, 1)),
        Response::Put { revision: 1, .. }
    ));
    assert!(matches!(
        kv.apply(9, Command::put("k", "x", 90).with_session(3, 2)),
        Response::Put { revision: 9, .. }
    ));
}
