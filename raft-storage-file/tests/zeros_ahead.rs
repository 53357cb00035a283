//! Zeros written ahead of the records into a segment's reserved space (on the real disk:
//! the simulated one has no block states to change, so it skips them). They must change
//! nothing a reader sees: no file grows past its reservation, the bytes after the last
//! record stay zeros, a write of several times the zeroed stretch lands whole, and a
//! reopen finds every entry and no torn tail.

mod common;

use std::path::{Path, PathBuf};

use common::commands;
use raft_core::Storage;
use raft_storage_file::{FileStorage, Options};

/// Several times the 64 KiB kept zeroed ahead, so zeroing reaches the reservation's end.
const SEGMENT_BYTES: u64 = 300 * 1024;

fn options() -> Options {
    Options {
        segment_bytes_max: SEGMENT_BYTES,
        recovery_threads: Some(0),
        ..Options::default()
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "seg"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn zeros_ahead_change_no_record_no_length_and_no_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStorage::open_with(dir.path(), options()).unwrap();
    store.restore().unwrap();
    // Small synced batches (~3.4 KiB) step through the zeroed stretch up to the end of
    // each reservation; two batches hold 200 KiB in one write, past the stretch.
    let mut next = 1;
    for batch in 0..250 {
        let (count, bytes) = if batch % 100 == 50 {
            (2, 100 * 1024)
        } else {
            (20, 150)
        };
        store
            .append(&commands(next, next + count - 1, 1, bytes))
            .unwrap();
        next += count;
        store.sync().unwrap();
        for path in segments(dir.path()) {
            let len = std::fs::metadata(&path).unwrap().len();
            assert_eq!(
                len,
                SEGMENT_BYTES,
                "{} is not its reserved length",
                path.display()
            );
        }
    }
    let last = next - 1;
    let expected = store.entries(1, last + 1, u64::MAX).unwrap();
    assert_eq!(expected.len() as u64, last);
    drop(store);

    let segment_paths = segments(dir.path());
    assert!(
        segment_paths.len() > 3,
        "the log rolled over several segments"
    );
    let mut store = FileStorage::open_with(dir.path(), options()).unwrap();
    store.restore().unwrap();
    assert_eq!(store.recovery_report().torn_tail, None);
    assert_eq!(store.entries(1, last + 1, u64::MAX).unwrap(), expected);

    // Writing goes on after the last record, and a second reopen finds that too.
    store.append(&commands(last + 1, last + 1, 1, 150)).unwrap();
    store.sync().unwrap();
    drop(store);
    let mut store = FileStorage::open_with(dir.path(), options()).unwrap();
    store.restore().unwrap();
    assert_eq!(store.recovery_report().torn_tail, None);
    assert_eq!(store.last_index(), last + 1);
    assert_eq!(store.entries(1, last + 1, u64::MAX).unwrap(), expected);
}
