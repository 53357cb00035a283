//! Preallocated segments: each segment's space is reserved when it is created, so the
//! file runs on in zeros past its last record. Those zeros are the segment's clean end,
//! never a torn tail or damage; a torn record before them still is one, and damage in the
//! written part of a sealed segment still stops the open.

mod common;

use std::path::{Path, PathBuf};

use common::commands;
use raft_core::{Entry, Storage};
use raft_storage_file::{FileStorage, FileSystem, FsFile, Options, SimFaults, SimFs, StorageError};

const SEGMENT_BYTES: u64 = 4096;
const DIR: &str = "/data";

fn options() -> Options {
    Options {
        segment_bytes_max: SEGMENT_BYTES,
        recovery_threads: Some(0),
        ..Options::default()
    }
}

fn open_with(fs: &SimFs, options: Options) -> Result<FileStorage<SimFs>, StorageError> {
    let mut store = FileStorage::open_on(fs.clone(), DIR, options)?;
    store.restore()?;
    Ok(store)
}

fn open(fs: &SimFs) -> Result<FileStorage<SimFs>, StorageError> {
    open_with(fs, options())
}

fn all_entries(store: &FileStorage<SimFs>) -> Vec<Entry> {
    store
        .entries(store.first_index(), store.last_index() + 1, u64::MAX)
        .unwrap()
}

/// The durable segment files and their lengths, in order.
fn segment_files(fs: &SimFs) -> Vec<(PathBuf, u64)> {
    fs.durable_files(Path::new(DIR))
        .into_iter()
        .filter(|(path, _)| path.extension().is_some_and(|e| e == "seg"))
        .collect()
}

#[test]
fn synced_entries_survive_a_power_loss_and_writing_goes_on_after_them() {
    let fs = SimFs::new(1);
    let mut store = open(&fs).unwrap();
    store.append(&commands(1, 10, 1, 100)).unwrap();
    store.sync().unwrap();
    drop(store);
    fs.crash();
    // The segment's space is reserved: the file runs on past its records.
    let segments = segment_files(&fs);
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].1, SEGMENT_BYTES);

    let mut store = open(&fs).unwrap();
    assert_eq!(all_entries(&store), commands(1, 10, 1, 100));
    assert_eq!(
        store.recovery_report().torn_tail,
        None,
        "a clean preallocated end is no torn tail"
    );
    store.append(&commands(11, 12, 1, 100)).unwrap();
    store.sync().unwrap();
    drop(store);
    fs.crash();
    let store = open(&fs).unwrap();
    assert_eq!(all_entries(&store), commands(1, 12, 1, 100));
    assert_eq!(store.recovery_report().torn_tail, None);
    assert_eq!(
        segment_files(&fs).len(),
        1,
        "the entries went into the same file"
    );
}

#[test]
fn a_torn_record_before_the_zeros_is_cut_and_the_store_recovers_after_more_appends() {
    let fs = SimFs::new(2);
    let mut store = open(&fs).unwrap();
    store.append(&commands(1, 9, 1, 100)).unwrap();
    store.sync().unwrap();
    let record_start = store.unsynced_tail().unwrap().written_bytes;
    store.append(&commands(10, 10, 1, 100)).unwrap();
    store.sync().unwrap();
    let tail = store.unsynced_tail().unwrap();
    drop(store);
    fs.crash();
    // A crash that kept the first 30 bytes of a record written after entry 10 (its header
    // and the start of its body) and not the rest: zeros follow, as they do in reserved
    // space.
    let file = fs.open(&tail.path).unwrap();
    let mut torn = vec![0u8; 30];
    file.read_exact_at(&mut torn, record_start).unwrap();
    file.write_all_at(&torn, tail.written_bytes).unwrap();
    file.sync_data().unwrap();
    drop(file);
    fs.crash();
    assert_eq!(
        segment_files(&fs)[0].1,
        SEGMENT_BYTES,
        "zeros follow the torn record"
    );

    let mut store = open(&fs).unwrap();
    assert_eq!(all_entries(&store), commands(1, 10, 1, 100));
    let cut = store
        .recovery_report()
        .torn_tail
        .clone()
        .expect("the torn record is reported");
    assert_eq!(cut.offset, tail.written_bytes);
    // New records go where the torn one was; no byte of it may follow them.
    store.append(&commands(11, 11, 1, 10)).unwrap();
    store.sync().unwrap();
    drop(store);
    fs.crash();
    // The cut file had its space reserved again.
    assert_eq!(segment_files(&fs)[0].1, SEGMENT_BYTES);
    let store = open(&fs).unwrap();
    let mut expected = commands(1, 10, 1, 100);
    expected.extend(commands(11, 11, 1, 10));
    assert_eq!(all_entries(&store), expected);
    assert_eq!(store.recovery_report().torn_tail, None);
}

#[test]
fn damage_in_the_written_part_of_a_sealed_preallocated_segment_stops_the_open() {
    let fs = SimFs::new(3);
    let mut store = open(&fs).unwrap();
    for index in 1..=60 {
        store.append(&commands(index, index, 1, 100)).unwrap();
    }
    store.sync().unwrap();
    drop(store);
    fs.crash();
    let segments = segment_files(&fs);
    assert!(segments.len() >= 2, "want a sealed segment: {segments:?}");
    let (sealed, len) = segments[0].clone();
    assert_eq!(
        len, SEGMENT_BYTES,
        "the sealed segment keeps its reserved tail"
    );
    assert!(fs.flip_durable_bit(&sealed, 500 | (2 << 32)));
    fs.crash();
    match open(&fs) {
        Err(StorageError::Corrupt { path, .. }) => assert_eq!(path, sealed),
        other => panic!("expected corruption to be reported, got {other:?}"),
    }
}

#[test]
fn a_power_loss_right_after_a_segment_is_created_and_reserved_recovers() {
    // Method: fill a segment and sync, then append what rolls to a new (reserved, never
    // synced) segment and lose power, tearing what survives; on many seeds the store
    // must open with everything synced and go on.
    for seed in 0..40 {
        let fs = SimFs::new(seed);
        let mut store = open(&fs).unwrap();
        let mut index = 1;
        while segment_files(&fs).len() < 2 && index < 200 {
            store.append(&commands(index, index, 1, 100)).unwrap();
            store.sync().unwrap();
            index += 1;
        }
        let synced = index - 1;
        fs.set_faults(SimFaults {
            torn_write: 1.0,
            ..SimFaults::default()
        });
        store.append(&commands(index, index + 40, 1, 100)).unwrap();
        drop(store);
        fs.crash();
        fs.set_faults(SimFaults::default());
        let mut store = open(&fs).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let entries = all_entries(&store);
        assert!(
            entries.len() as u64 >= synced,
            "seed {seed}: lost synced entries"
        );
        let last = entries.len() as u64;
        assert_eq!(entries, commands(1, last, 1, 100), "seed {seed}");
        store.append(&commands(last + 1, last + 1, 1, 100)).unwrap();
        store.sync().unwrap();
        drop(store);
        fs.crash();
        let store = open(&fs).unwrap();
        assert_eq!(
            all_entries(&store),
            commands(1, last + 1, 1, 100),
            "seed {seed}"
        );
    }
}

#[test]
fn a_directory_written_without_reserved_space_keeps_opening() {
    let fs = SimFs::new(5);
    let unreserved = Options {
        preallocate: false,
        ..options()
    };
    let mut store = open_with(&fs, unreserved).unwrap();
    store.append(&commands(1, 10, 1, 100)).unwrap();
    store.sync().unwrap();
    let written = store.unsynced_tail().unwrap().written_bytes;
    drop(store);
    fs.crash();
    assert_eq!(segment_files(&fs)[0].1, written, "no space reserved");

    let mut store = open(&fs).unwrap();
    assert_eq!(all_entries(&store), commands(1, 10, 1, 100));
    assert_eq!(store.recovery_report().torn_tail, None);
    store.append(&commands(11, 12, 1, 100)).unwrap();
    store.sync().unwrap();
    drop(store);
    fs.crash();
    assert_eq!(
        segment_files(&fs)[0].1,
        SEGMENT_BYTES,
        "reserved on reopening"
    );
    let store = open(&fs).unwrap();
    assert_eq!(all_entries(&store), commands(1, 12, 1, 100));
}
