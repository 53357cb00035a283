//! Put, delete, conditions, validation and queries, one behaviour per test.

use bytes::Bytes;
use raft_core::StateMachine;
use raft_kv::{Command, CommandError, Condition, KeyRevision, Response};

use crate::support::{get, keys, machine, range};

#[test]
fn put_creates_then_updates_with_etcd_like_revisions() {
    let mut kv = machine();
    let created = kv.apply(3, Command::put("a", "1", 0));
    let first = KeyRevision {
        create_revision: 3,
        mod_revision: 3,
        version: 1,
    };
    assert_eq!(
        created,
        Response::Put {
            revision: 3,
            key_revision: first,
            previous: None
        }
    );
    let updated = kv.apply(5, Command::put("a", "2", 0));
    let second = KeyRevision {
        create_revision: 3,
        mod_revision: 5,
        version: 2,
    };
    assert_eq!(
        updated,
        Response::Put {
            revision: 5,
            key_revision: second,
            previous: Some(first)
        }
    );
    let entry = get(&kv, "a").expect("the key was put");
    assert_eq!(entry.value, Bytes::from("2"));
    assert_eq!(entry.key_revision, second);
    assert_eq!(kv.revision(), 5);
    assert_eq!(kv.applied_index(), 5);
}

#[test]
fn delete_removes_and_recreation_restarts_the_version() {
    let mut kv = machine();
    kv.apply(1, Command::put("a", "1", 0));
    kv.apply(2, Command::put("a", "2", 0));
    let deleted = kv.apply(3, Command::delete("a", 0));
    let before = KeyRevision {
        create_revision: 1,
        mod_revision: 2,
        version: 2,
    };
    assert_eq!(
        deleted,
        Response::Delete {
            revision: 3,
            previous: Some(before)
        }
    );
    assert_eq!(get(&kv, "a"), None);
    let recreated = kv.apply(4, Command::put("a", "3", 0));
    let fresh = KeyRevision {
        create_revision: 4,
        mod_revision: 4,
        version: 1,
    };
    assert_eq!(
        recreated,
        Response::Put {
            revision: 4,
            key_revision: fresh,
            previous: None
        }
    );
}

#[test]
fn deleting_an_absent_key_changes_nothing_and_keeps_the_revision() {
    let mut kv = machine();
    kv.apply(1, Command::put("a", "1", 0));
    let response = kv.apply(2, Command::delete("b", 0));
    assert_eq!(
        response,
        Response::Delete {
            revision: 1,
            previous: None
        }
    );
    assert_eq!(kv.revision(), 1);
    assert_eq!(kv.applied_index(), 2);
}

#[test]
fn if_absent_put_fails_on_an_existing_key_with_its_current_revision() {
    let mut kv = machine();
    let created = kv.apply(
        1,
        Command::put("a", "1", 0).with_condition(Condition::Absent),
    );
    assert!(matches!(created, Response::Put { revision: 1, .. }));
    let failed = kv.apply(
        2,
        Command::put("a", "2", 0).with_condition(Condition::Absent),
    );
    let current = KeyRevision {
        create_revision: 1,
        mod_revision: 1,
        version: 1,
    };
    assert_eq!(
        failed,
        Response::ConditionFailed {
            revision: 1,
            current: Some(current)
        }
    );
    assert_eq!(
        get(&kv, "a").map(|entry| entry.value),
        Some(Bytes::from("1"))
    );
}

#[test]
fn compare_and_set_on_revision() {
    let mut kv = machine();
    kv.apply(1, Command::put("a", "1", 0));
    let stale = kv.apply(
        2,
        Command::put("a", "x", 0).with_condition(Condition::ModRevision(7)),
    );
    assert!(matches!(
        stale,
        Response::ConditionFailed {
            revision: 1,
            current: Some(_)
        }
    ));
    let swapped = kv.apply(
        3,
        Command::put("a", "2", 0).with_condition(Condition::ModRevision(1)),
    );
    assert!(matches!(swapped, Response::Put { revision: 3, .. }));
    // Revision 0 means "absent": it creates a missing key and fails on an existing one.
    let absent = kv.apply(
        4,
        Command::put("b", "1", 0).with_condition(Condition::ModRevision(0)),
    );
    assert!(matches!(absent, Response::Put { revision: 4, .. }));
    let present = kv.apply(
        5,
        Command::put("b", "2", 0).with_condition(Condition::ModRevision(0)),
    );
    assert!(matches!(
        present,
        Response::ConditionFailed { revision: 4, .. }
    ));
}

#[test]
fn compare_and_set_on_value() {
    let mut kv = machine();
    let missing = kv.apply(
        1,
        Command::put("a", "2", 0).with_condition(Condition::Value("1".into())),
    );
    assert_eq!(
        missing,
        Response::ConditionFailed {
            revision: 0,
            current: None
        }
    );
    kv.apply(2, Command::put("a", "1", 0));
    let wrong = kv.apply(
        3,
        Command::put("a", "2", 0).with_condition(Condition::Value("9".into())),
    );
    assert!(matches!(
        wrong,
        Response::ConditionFailed { revision: 2, .. }
    ));
    let right = kv.apply(
        4,
        Command::put("a", "2", 0).with_condition(Condition::Value("1".into())),
    );
    assert!(matches!(right, Response::Put { revision: 4, .. }));
    assert_eq!(
        get(&kv, "a").map(|entry| entry.value),
        Some(Bytes::from("2"))
    );
}

#[test]
fn conditional_delete_only_deletes_the_expected_version() {
    let mut kv = machine();
    kv.apply(1, Command::put("a", "1", 0));
    let failed = kv.apply(
        2,
        Command::delete("a", 0).with_condition(Condition::ModRevision(9)),
    );
    assert!(matches!(failed, Response::ConditionFailed { .. }));
    assert!(get(&kv, "a").is_some());
    let done = kv.apply(
        3,
        Command::delete("a", 0).with_condition(Condition::ModRevision(1)),
    );
    assert!(matches!(
        done,
        Response::Delete {
            revision: 3,
            previous: Some(_)
        }
    ));
}

#[test]
fn invalid_commands_are_rejected_without_changing_anything() {
    let mut kv = machine();
    kv.apply(1, Command::put("a", "1", 0));
    let before = kv.clone();
    let cases = [
        (Command::put("", "v", 0), CommandError::EmptyKey),
        (Command::delete("", 0), CommandError::EmptyKey),
        (
            Command::put("k".repeat(17), "v", 0),
            CommandError::KeyTooLarge {
                size_bytes: 17,
                max_bytes: 16,
            },
        ),
        (
            Command::put("k", vec![0u8; 65], 0),
            CommandError::ValueTooLarge {
                size_bytes: 65,
                max_bytes: 64,
            },
        ),
        (
            Command::delete("k", 0).with_condition(Condition::Value(vec![0u8; 65].into())),
            CommandError::ValueTooLarge {
                size_bytes: 65,
                max_bytes: 64,
            },
        ),
    ];
    for (offset, (command, error)) in (0..).zip(cases) {
        let index = 2 + offset;
        assert_eq!(kv.apply(index, command), Response::Rejected(error));
    }
    assert_eq!(kv.revision(), before.revision());
    assert_eq!(get(&kv, "a"), get(&before, "a"));
    assert_eq!(kv.len(), 1);
    // The machine keeps serving after rejections.
    assert!(matches!(
        kv.apply(10, Command::put("b", "2", 0)),
        Response::Put { revision: 10, .. }
    ));
}

#[test]
fn a_non_increasing_index_is_refused_and_ignored() {
    let mut kv = machine();
    kv.apply(5, Command::put("a", "1", 0));
    let before = kv.clone();
    let response = kv.apply(5, Command::put("a", "2", 0));
    assert_eq!(
        response,
        Response::Rejected(CommandError::IndexNotIncreasing {
            index: 5,
            applied_index: 5
        })
    );
    assert_eq!(kv, before);
}

#[test]
fn range_lists_a_prefix_in_key_order_and_pages() {
    let mut kv = machine();
    for (index, key) in (1..).zip(["b/3", "a/1", "b/1", "b/2", "c/1", "b/22"]) {
        kv.apply(index, Command::put(key, "v", 0));
    }
    let all_b = range(&kv, "b/", None, 10);
    assert_eq!(keys(&all_b), ["b/1", "b/2", "b/22", "b/3"]);
    assert!(!all_b.more);
    assert_eq!(all_b.revision, 6);
    let page = range(&kv, "b/", None, 2);
    assert_eq!(keys(&page), ["b/1", "b/2"]);
    assert!(page.more);
    let next = range(&kv, "b/", Some("b/2"), 2);
    assert_eq!(keys(&next), ["b/22", "b/3"]);
    assert!(!next.more);
    // A paging key before the prefix starts at the prefix.
    assert_eq!(keys(&range(&kv, "b/", Some("a"), 1)), ["b/1"]);
    // Limits are clamped to the configured maximum (5).
    let everything = range(&kv, "", None, 1_000);
    assert_eq!(everything.entries.len(), 5);
    assert!(everything.more);
    // Limit 0 returns no entries but says whether any match.
    let probe = range(&kv, "c", None, 0);
    assert!(probe.entries.is_empty());
    assert!(probe.more);
    assert!(!range(&kv, "z", None, 0).more);
}

#[test]
fn get_of_an_absent_key_is_not_found() {
    let mut kv = machine();
    kv.apply(1, Command::put("a", "1", 0));
    assert_eq!(get(&kv, "b"), None);
    assert_eq!(get(&kv, ""), None);
}
