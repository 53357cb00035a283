//! The kit checks the reference store, and catches stores that break the contract.

use std::io::{Cursor, Read, Seek, SeekFrom};

use bytes::Bytes;

use super::samples::run_of;
use super::*;
use crate::storage::Storage;
use crate::types::{Entry, HardState, Index, RestoredState, SnapshotMeta, Term};

struct Mem {
    crash_on_reopen: bool,
}

impl Harness for Mem {
    type Store = MemStorage;
    fn create(&mut self) -> Result<MemStorage, MemStorageError> {
        Ok(MemStorage::new())
    }
    fn reopen(&mut self, mut store: MemStorage) -> Result<MemStorage, MemStorageError> {
        if self.crash_on_reopen {
            store.crash();
        }
        Ok(store)
    }
}

#[test]
fn mem_storage_conforms_with_and_without_crashes() {
    assert_conforms(&mut Mem {
        crash_on_reopen: false,
    });
    assert_conforms(&mut Mem {
        crash_on_reopen: true,
    });
}

#[test]
fn model_run_follows_a_torn_crash() {
    // Goal: a store that keeps any prefix of its unsynced writes is accepted, and one
    // that loses synced writes is not.
    struct Torn(usize);
    impl Harness for Torn {
        type Store = MemStorage;
        fn create(&mut self) -> Result<MemStorage, MemStorageError> {
            Ok(MemStorage::new())
        }
        fn reopen(&mut self, mut store: MemStorage) -> Result<MemStorage, MemStorageError> {
            store.crash_keeping(self.0);
            Ok(store)
        }
    }
    let ops = [
        Op::Append {
            count: 3,
            term_step: 1,
            payload_bytes: 10,
        },
        Op::Sync,
        Op::Append {
            count: 5,
            term_step: 0,
            payload_bytes: 10,
        },
        Op::SaveHardState {
            term_step: 1,
            vote: Some(2),
        },
        Op::Reopen,
        Op::Append {
            count: 2,
            term_step: 0,
            payload_bytes: 10,
        },
    ];
    for kept in 0..=6 {
        check_ops(&mut Torn(kept), &ops).unwrap_or_else(|e| panic!("kept {kept}: {e}"));
    }
    let error = check_ops(&mut FlawedHarness(Flaw::LosesSyncedEntries), &ops)
        .expect_err("a store that loses synced entries passed");
    assert!(error.contains("never passed through"), "{error}");
}

/// A store with one deliberate flaw, to prove the kit is not vacuous.
struct Flawed {
    inner: MemStorage,
    flaw: Flaw,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flaw {
    /// Loses the hard state on reopen.
    ForgetsHardState,
    /// Accepts appends with gaps (by silently renumbering nothing: it drops them).
    IgnoresGaps,
    /// Forgets synced entries on reopen (keeps only the first half).
    LosesSyncedEntries,
    /// Does not drop a conflicting log on restore.
    NoRestoreNormalization,
    /// Seeks in file coordinates: forgets a 32-byte header in front of the data.
    SeeksPastAHeader,
}

/// The flawed store's snapshot reader: a cursor whose seeks may be shifted.
struct FlawedReader {
    inner: Cursor<Bytes>,
    shift: u64,
}

impl Read for FlawedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Seek for FlawedReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match to {
            SeekFrom::Start(offset) => self.inner.seek(SeekFrom::Start(offset + self.shift)),
            other => self.inner.seek(other),
        }
    }
}

struct FlawedHarness(Flaw);

impl Harness for FlawedHarness {
    type Store = Flawed;
    fn create(&mut self) -> Result<Flawed, MemStorageError> {
        Ok(Flawed {
            inner: MemStorage::new(),
            flaw: self.0,
        })
    }
    fn reopen(&mut self, mut store: Flawed) -> Result<Flawed, MemStorageError> {
        store.inner.crash();
        match store.flaw {
            Flaw::ForgetsHardState => {
                store.inner.save_hard_state(&HardState::default())?;
                store.inner.sync()?;
            }
            Flaw::LosesSyncedEntries if store.inner.first_index() < store.inner.last_index() => {
                let half = store.inner.first_index()
                    + (store.inner.last_index() - store.inner.first_index()) / 2;
                store
                    .inner
                    .truncate_suffix(half.max(store.inner.first_index()))?;
                store.inner.sync()?;
            }
            _ => {}
        }
        Ok(store)
    }
}

impl Storage for Flawed {
    type Error = MemStorageError;
    type SnapshotReader = FlawedReader;
    type SnapshotWriter = MemSnapshotWriter;
    fn restore(&mut self) -> Result<RestoredState, MemStorageError> {
        if self.flaw == Flaw::NoRestoreNormalization {
            let entries = if self.inner.first_index() <= self.inner.last_index() {
                self.inner.entries(
                    self.inner.first_index(),
                    self.inner.last_index() + 1,
                    u64::MAX,
                )?
            } else {
                Vec::new()
            };
            let snapshot = self.inner.snapshot_meta();
            let entries = entries
                .into_iter()
                .filter(|e| e.index > snapshot.index)
                .collect();
            return Ok(RestoredState {
                hard_state: self.inner.hard_state(),
                snapshot,
                entries,
            });
        }
        self.inner.restore()
    }
    fn append(&mut self, entries: &[Entry]) -> Result<(), MemStorageError> {
        match entries.first() {
            Some(e) if self.flaw == Flaw::IgnoresGaps && e.index > self.inner.last_index() + 1 => {
                Ok(())
            }
            _ => self.inner.append(entries),
        }
    }
    fn truncate_suffix(&mut self, from: Index) -> Result<(), MemStorageError> {
        self.inner.truncate_suffix(from)
    }
    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), MemStorageError> {
        self.inner.save_hard_state(hard_state)
    }
    fn sync(&mut self) -> Result<(), MemStorageError> {
        self.inner.sync()
    }
    fn compact(&mut self, through: Index) -> Result<(), MemStorageError> {
        self.inner.compact(through)
    }
    fn first_index(&self) -> Index {
        self.inner.first_index()
    }
    fn last_index(&self) -> Index {
        self.inner.last_index()
    }
    fn term(&self, index: Index) -> Result<Option<Term>, MemStorageError> {
        self.inner.term(index)
    }
    fn entries(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, MemStorageError> {
        self.inner.entries(low, high, max_bytes)
    }
    fn begin_snapshot(
        &mut self,
        meta: &SnapshotMeta,
    ) -> Result<MemSnapshotWriter, MemStorageError> {
        self.inner.begin_snapshot(meta)
    }
    fn commit_snapshot(&mut self, writer: MemSnapshotWriter) -> Result<(), MemStorageError> {
        self.inner.commit_snapshot(writer)
    }
    fn snapshot_meta(&self) -> SnapshotMeta {
        self.inner.snapshot_meta()
    }
    fn open_snapshot(&self) -> Result<Option<(SnapshotMeta, FlawedReader)>, MemStorageError> {
        let shift = if self.flaw == Flaw::SeeksPastAHeader {
            32
        } else {
            0
        };
        Ok(self
            .inner
            .open_snapshot()?
            .map(|(meta, inner)| (meta, FlawedReader { inner, shift })))
    }
}

#[test]
fn kit_catches_flawed_stores() {
    let expectations = [
        (Flaw::ForgetsHardState, "hard_state_survives_reopen"),
        (Flaw::IgnoresGaps, "append_rejects_gaps_and_overlaps"),
        (Flaw::LosesSyncedEntries, "synced_writes_survive_reopen"),
        (
            Flaw::NoRestoreNormalization,
            "restore_drops_log_conflicting_with_snapshot",
        ),
        (
            Flaw::SeeksPastAHeader,
            "snapshot_reader_seeks_within_the_data",
        ),
    ];
    for (flaw, check) in expectations {
        let failures = run_all(&mut FlawedHarness(flaw)).expect_err("a flawed store passed");
        assert!(
            failures.iter().any(|f| f.check == check),
            "{flaw:?} was not caught by {check}; failures: {failures:?}"
        );
    }
}

#[test]
fn crash_drops_only_unsynced_writes() {
    let mut store = MemStorage::new();
    store.append(&run_of(1, 3, 1)).unwrap();
    store.sync().unwrap();
    store.append(&run_of(4, 6, 1)).unwrap();
    assert_eq!(store.unsynced_writes(), 3);
    store.crash_keeping(1);
    let restored = store.restore().unwrap();
    assert_eq!(restored.entries, run_of(1, 4, 1));
}
