//! Helpers shared by the integration tests: a conformance harness over temporary
//! directories, and small builders.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use raft_core::conformance::{Harness, sample_bytes};
use raft_core::{Entry, EntryPayload, Storage};
use raft_storage_file::{FileStorage, Options, StorageError};
use tempfile::TempDir;

/// Each store lives in its own temporary directory, kept until the harness is dropped.
#[derive(Default)]
pub struct Files {
    pub dirs: Vec<TempDir>,
    pub segment_bytes_max: Option<u64>,
    /// `Options::recovery_threads`.
    pub recovery_threads: Option<usize>,
    /// On reopen, cut the last segment to a length between its synced and written size,
    /// drawn from this state (a power loss that kept part of the unsynced writes).
    pub power_loss: Option<u64>,
    /// Reopens that found (and cut) a torn tail.
    pub torn_tails_seen: usize,
}

impl Files {
    fn options(&self) -> Options {
        let mut options = Options::default();
        if let Some(bytes) = self.segment_bytes_max {
            options.segment_bytes_max = bytes;
        }
        options.recovery_threads = self.recovery_threads;
        options
    }
}

impl Harness for Files {
    type Store = FileStorage;

    fn create(&mut self) -> Result<FileStorage, StorageError> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = FileStorage::open_with(dir.path(), self.options());
        self.dirs.push(dir);
        store
    }

    fn reopen(&mut self, store: FileStorage) -> Result<FileStorage, StorageError> {
        let dir = store.dir().to_path_buf();
        let tail = store.unsynced_tail();
        drop(store);
        if let (Some(state), Some(tail)) = (self.power_loss.as_mut(), tail) {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unsynced = tail.written_bytes - tail.synced_bytes;
            let kept = if unsynced == 0 {
                0
            } else {
                (*state >> 33) % (unsynced + 1)
            };
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&tail.path)
                .expect("open segment");
            file.set_len(tail.synced_bytes + kept).expect("cut segment");
        }
        let reopened = FileStorage::open_with(dir, self.options())?;
        self.torn_tails_seen += usize::from(reopened.recovery_report().torn_tail.is_some());
        Ok(reopened)
    }
}

/// Entries `low..=high` in `term`, each a command of `payload_bytes` non-zero bytes.
pub fn commands(low: u64, high: u64, term: u64, payload_bytes: usize) -> Vec<Entry> {
    (low..=high)
        .map(|index| Entry {
            term,
            index,
            payload: EntryPayload::Command(Bytes::from(sample_bytes(index, payload_bytes))),
        })
        .collect()
}

/// The segment files of a store, in order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    paths.sort();
    paths
}

/// All entries of a store.
pub fn all_entries(store: &FileStorage) -> Vec<Entry> {
    if store.first_index() > store.last_index() {
        return Vec::new();
    }
    store
        .entries(store.first_index(), store.last_index() + 1, u64::MAX)
        .expect("entries")
}
