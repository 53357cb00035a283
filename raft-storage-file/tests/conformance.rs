//! Runs raft-core's storage conformance kit against `FileStorage`, once with clean
//! reopens and once with simulated power losses that cut the unsynced tail of the log.

use raft_core::conformance::{self, Harness};
use raft_storage_file::{FileStorage, StorageError};
use tempfile::TempDir;

/// Each store lives in its own temporary directory, kept until the harness is dropped.
#[derive(Default)]
struct Files {
    dirs: Vec<TempDir>,
    /// On reopen, cut the last segment to a length between its synced and written size,
    /// chosen from this counter (a power loss that kept part of the unsynced writes).
    power_loss: Option<u64>,
    /// Reopens that found (and cut) a torn tail.
    torn_tails_seen: usize,
}

impl Harness for Files {
    type Store = FileStorage;

    fn create(&mut self) -> Result<FileStorage, StorageError> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = FileStorage::open(dir.path());
        self.dirs.push(dir);
        store
    }

    fn reopen(&mut self, store: FileStorage) -> Result<FileStorage, StorageError> {
        let dir = store.dir().to_path_buf();
        let tail = store.unsynced_tail();
        drop(store);
        if let (Some(counter), Some(tail)) = (self.power_loss.as_mut(), tail) {
            *counter = counter
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unsynced = tail.written_bytes - tail.synced_bytes;
            let kept = if unsynced == 0 {
                0
            } else {
                (*counter >> 33) % (unsynced + 1)
            };
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&tail.path)
                .expect("open segment");
            file.set_len(tail.synced_bytes + kept).expect("cut segment");
        }
        let reopened = FileStorage::open(dir)?;
        self.torn_tails_seen += usize::from(reopened.recovery_report().torn_tail.is_some());
        Ok(reopened)
    }
}

#[test]
fn file_storage_conforms() {
    conformance::assert_conforms(&mut Files::default());
}

#[test]
fn file_storage_conforms_across_power_losses() {
    // Goal: whatever part of the unsynced tail survives, reopening yields a state the
    // model passed through since the last sync (never a mix, never less than synced).
    let mut files = Files {
        power_loss: Some(7),
        ..Files::default()
    };
    for seed in 10..16 {
        let ops = conformance::random_ops(seed, 120);
        conformance::check_ops(&mut files, &ops).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    assert!(
        files.torn_tails_seen > 5,
        "only {} reopens found a torn tail",
        files.torn_tails_seen
    );
}
