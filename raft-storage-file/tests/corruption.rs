//! Damage a crash cannot explain stops the store from opening, with an error naming the
//! file and offset: bit flips in any region, missing segments, unknown format versions.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{commands, segments};
use raft_core::conformance::sample_bytes;
use raft_core::{Entry, EntryPayload, HardState, Membership, SnapshotMeta, Storage};
use raft_storage_file::{FileStorage, Options, StorageError};

/// These tests edit a segment's bytes as a crash or bad disk would, where its last record
/// ends the file: a segment written without reserved space, as by the store before it
/// preallocated or with `preallocate` off, which recovery keeps reading. Reserved space
/// (a tail of zeros) is tested in `preallocate.rs`.
fn unreserved() -> Options {
    Options {
        preallocate: false,
        ..Options::default()
    }
}

fn options() -> Options {
    Options {
        segment_bytes_max: 1200,
        ..unreserved()
    }
}

/// Reader threads and the snapshot check run in parallel; errors must still name the
/// damaged file. (Threads cost ~0.1 ms per open here, so the bit-flip test uses them for
/// one open in 16.)
fn threaded() -> Options {
    Options {
        recovery_threads: Some(2),
        ..options()
    }
}

/// A store in `dir` holding entries 1..=5, synced; and where the next record will start.
fn five_synced_entries(dir: &Path) -> (FileStorage, u64) {
    let mut store = FileStorage::open_with(dir, unreserved()).unwrap();
    store.restore().unwrap();
    store.append(&commands(1, 5, 1, 100)).unwrap();
    store.sync().unwrap();
    let start = store.unsynced_tail().unwrap().written_bytes;
    (store, start)
}

/// A store with every region: several segments (entries and hard state records), a
/// truncation, and a snapshot with data.
fn build_store(dir: &Path) {
    let mut store = FileStorage::open_with(dir, options()).unwrap();
    store.restore().unwrap();
    for index in 1..=12 {
        // One at a time, so the log rolls over to new segments.
        store.append(&commands(index, index, 1, 100)).unwrap();
    }
    store
        .save_hard_state(&HardState {
            term: 1,
            vote: Some(3),
            commit: 5,
        })
        .unwrap();
    store.truncate_suffix(11).unwrap();
    store.append(&commands(11, 16, 2, 100)).unwrap();
    let meta = SnapshotMeta {
        index: 4,
        term: 1,
        membership: Membership::with_voters([1, 2, 3]),
    };
    let mut writer = store.begin_snapshot(&meta).unwrap();
    std::io::Write::write_all(&mut writer, &sample_bytes(9, 3000)).unwrap();
    store.commit_snapshot(writer).unwrap();
    store
        .save_hard_state(&HardState {
            term: 2,
            vote: None,
            commit: 14,
        })
        .unwrap();
    store.sync().unwrap();
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
}

#[test]
fn a_bit_flip_anywhere_stops_the_open() {
    // Method: flip one bit in every byte of every file in turn (the bit varies with the
    // offset); opening must fail with a corruption error naming that file, never panic and
    // never open on the damaged data.
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let paths = files(dir.path());
    assert!(
        paths.len() >= 4,
        "want several segments and a snapshot: {paths:?}"
    );
    for path in &paths {
        let original = std::fs::read(path).unwrap();
        // Flip in place: rewriting the whole file would make ext4 flush it every time.
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        for offset in 0..original.len() {
            let damaged = original[offset] ^ (1 << (offset % 8));
            file.write_all_at(&[damaged], offset as u64).unwrap();
            let options = if offset % 16 == 0 {
                threaded()
            } else {
                options()
            };
            let opened = FileStorage::open_with(dir.path(), options);
            file.write_all_at(&original[offset..=offset], offset as u64)
                .unwrap();
            match opened {
                Err(StorageError::Corrupt { path: named, .. })
                | Err(StorageError::UnsupportedVersion { path: named, .. }) => {
                    assert_eq!(&named, path, "flip at {offset} blamed on the wrong file");
                }
                Err(StorageError::MissingEntries { .. }) => {}
                Err(other) => panic!(
                    "flip at {offset} of {}: unexpected error {other}",
                    path.display()
                ),
                Ok(_) => panic!("flip at {offset} of {} went unnoticed", path.display()),
            }
        }
    }
    let mut store = FileStorage::open_with(dir.path(), options()).unwrap();
    assert_eq!(
        store.restore().unwrap().entries,
        commands(5, 16, 1, 100)[..6]
            .iter()
            .cloned()
            .chain(commands(11, 16, 2, 100))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_bit_flip_in_the_last_record_is_not_taken_for_a_torn_write() {
    // Method: the last record is where a torn write would be; a flipped bit there has no
    // trace of one (no cut, no zeros) and must be an error at its offset.
    let dir = tempfile::tempdir().unwrap();
    let (mut store, start) = five_synced_entries(dir.path());
    store.append(&commands(6, 6, 1, 100)).unwrap();
    store.sync().unwrap();
    let path = store.unsynced_tail().unwrap().path;
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    match FileStorage::open_with(dir.path(), unreserved()) {
        Err(StorageError::Corrupt {
            path: named,
            offset,
            ..
        }) => assert_eq!((named, offset), (path, start)),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn a_missing_segment_stops_the_open() {
    // A missing middle segment leaves a hole; (a missing last segment cannot be told from
    // one a crash kept from being created: see FORMAT.md).
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let paths = segments(dir.path());
    assert!(paths.len() >= 3, "{paths:?}");
    std::fs::remove_file(&paths[1]).unwrap();
    match FileStorage::open_with(dir.path(), threaded()) {
        Err(StorageError::MissingEntries { .. }) => {}
        other => panic!("expected missing entries, got {other:?}"),
    }
}

#[test]
fn a_file_from_another_format_version_is_refused_by_name() {
    // Method: rewrite the first segment header with version 2 and a valid checksum.
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let path = segments(dir.path()).remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..32]);
    bytes[32..36].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    match FileStorage::open_with(dir.path(), threaded()) {
        Err(StorageError::UnsupportedVersion {
            path: named,
            found: 2,
            supported: 1,
        }) => assert_eq!(named, path),
        other => panic!("expected an unsupported version, got {other:?}"),
    }
}

#[test]
fn a_snapshot_damaged_after_opening_fails_its_reader() {
    // Method: damage the data under an open store; the reader must fail at the end
    // rather than hand out wrong bytes.
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let store = FileStorage::open_with(dir.path(), options()).unwrap();
    let path = dir.path().join("snapshot");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let (_, mut reader) = store.open_snapshot().unwrap().unwrap();
    let mut data = Vec::new();
    let error = std::io::Read::read_to_end(&mut reader, &mut data).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn every_pass_over_a_damaged_snapshot_from_its_start_fails() {
    // Method: damage one data byte under an open store. A reader that seeks into the middle
    // returns bytes unchecked (it never saw the data before them), but any pass that reads
    // from offset 0 to the end, with seeks to the current position or back to 0 in
    // between, fails with InvalidData, and keeps failing.
    let dir = tempfile::tempdir().unwrap();
    build_store(dir.path());
    let store = FileStorage::open_with(dir.path(), options()).unwrap();
    let path = dir.path().join("snapshot");
    let mut bytes = std::fs::read(&path).unwrap();
    let data_len = 3000;
    let data_start = bytes.len() - data_len;
    bytes[data_start + 1500] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let (_, mut reader) = store.open_snapshot().unwrap().unwrap();
    reader.seek(SeekFrom::Start(1000)).unwrap();
    let mut chunk = vec![0u8; 1000];
    reader.read_exact(&mut chunk).unwrap();
    assert_eq!(chunk, bytes[data_start + 1000..data_start + 2000]);

    reader.seek(SeekFrom::Start(0)).unwrap();
    let mut head = vec![0u8; 700];
    reader.read_exact(&mut head).unwrap();
    reader.seek(SeekFrom::Start(700)).unwrap(); // the current position
    let mut data = Vec::new();
    let error = reader.read_to_end(&mut data).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    let again = reader.read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn a_bit_flip_in_a_last_record_that_ends_in_zeros_is_not_taken_for_a_torn_write() {
    // Goal: a crash may leave zeros from a sector boundary to the end of the file (a torn
    // last sector), and recovery cuts such a record off; a record that was synced whole and
    // merely ends in zeros of its own must still be reported when a bit of it flips.
    // Method: a last entry whose payload ends in 30 zero bytes, 10 of them past a sector
    // boundary, synced; flip bits before the boundary, one at a time.
    let dir = tempfile::tempdir().unwrap();
    let (mut store, start) = five_synced_entries(dir.path());
    let entry = |payload_bytes: usize| {
        let mut payload = sample_bytes(6, payload_bytes);
        payload[payload_bytes - 30..].fill(0);
        Entry {
            term: 1,
            index: 6,
            payload: EntryPayload::Command(Bytes::from(payload)),
        }
    };
    store.append(&[entry(200)]).unwrap();
    let probe_end = store.unsynced_tail().unwrap().written_bytes;
    store.truncate_suffix(6).unwrap();
    store.sync().unwrap();
    let start_after_roll = store.unsynced_tail().unwrap().written_bytes;
    let boundary = (start_after_roll + 250).div_ceil(512) * 512;
    let payload_bytes = (200 + boundary + 10 - (start_after_roll + probe_end - start)) as usize;
    store.append(&[entry(payload_bytes)]).unwrap();
    store.sync().unwrap();
    let tail = store.unsynced_tail().unwrap();
    assert_eq!(tail.written_bytes, boundary + 10);
    drop(store);
    let original = std::fs::read(&tail.path).unwrap();
    for bit in (start_after_roll * 8..boundary * 8).step_by(5) {
        let mut bytes = original.clone();
        bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
        std::fs::write(&tail.path, &bytes).unwrap();
        match FileStorage::open_with(dir.path(), unreserved()) {
            Err(StorageError::Corrupt {
                path: named,
                offset,
                ..
            }) => assert_eq!((named, offset), (tail.path.clone(), start_after_roll)),
            other => panic!("bit {bit}: expected a corruption error, got {other:?}"),
        }
    }
    // The same record with its last sector unwritten is a torn tail.
    let mut bytes = original;
    bytes[boundary as usize - 40..].fill(0);
    std::fs::write(&tail.path, &bytes).unwrap();
    let mut store = FileStorage::open_with(dir.path(), unreserved()).unwrap();
    assert_eq!(
        store.recovery_report().torn_tail.as_ref().map(|t| t.offset),
        Some(start_after_roll)
    );
    assert_eq!(store.restore().unwrap().entries, commands(1, 5, 1, 100));
}
