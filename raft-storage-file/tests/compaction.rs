//! Compaction on a real disk: the segments a snapshot supersedes are removed after the
//! next sync, and a store reopened in the same process finds exactly the live log.

mod common;

use std::io::Write;

use common::{commands, segments};
use raft_core::{Membership, SnapshotMeta, Storage};
use raft_storage_file::{FileStorage, Options};

/// Goal: a snapshot's compaction frees the disk the superseded log took, and a restart
/// recovers the live log alone (no gap, no stale entry from a removed segment).
#[test]
fn compaction_removes_superseded_segments_and_a_reopen_sees_only_the_live_log() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        segment_bytes_max: 4096,
        ..Options::default()
    };
    let mut store = FileStorage::open_with(dir.path(), options.clone()).unwrap();
    store.restore().unwrap();
    for index in 1..=100 {
        store.append(&commands(index, index, 1, 500)).unwrap();
    }
    store.sync().unwrap();
    let before = segments(dir.path()).len();
    assert!(before > 10, "{before} segments");

    let meta = SnapshotMeta {
        index: 90,
        term: 1,
        membership: Membership::with_voters([1, 2, 3]),
    };
    let mut writer = store.begin_snapshot(&meta).unwrap();
    writer.write_all(b"state").unwrap();
    store.commit_snapshot(writer).unwrap();
    store.compact(90).unwrap();
    // Removals happen after the next sync, behind it.
    store.append(&commands(101, 101, 1, 500)).unwrap();
    store.sync().unwrap();
    drop(store);

    let after = segments(dir.path()).len();
    assert!(after < before / 2, "{after} of {before} segments left");
    let mut store = FileStorage::open_with(dir.path(), options).unwrap();
    let restored = store.restore().unwrap();
    assert_eq!(restored.snapshot, meta);
    assert!(restored.entries.first().is_some_and(|e| e.index <= 91));
    assert_eq!(restored.entries.last().map(|e| e.index), Some(101));
    let live: Vec<_> = restored
        .entries
        .iter()
        .filter(|e| e.index > 90)
        .cloned()
        .collect();
    let mut expected = commands(91, 100, 1, 500);
    expected.extend(commands(101, 101, 1, 500));
    assert_eq!(live, expected);
}
