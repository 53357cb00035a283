//! A conformance kit for [`crate::Storage`] implementations, and [`MemStorage`], the
//! in-memory reference store it measures them against.
//!
//! Every store (the file store in `raft-storage-file`, the simulator's, a user's own) must
//! behave the same way as far as the core can tell. This module states that behaviour as
//! executable checks, written against the trait only, with no IO of its own:
//!
//! * [`checks`] lists named scenario checks (append and read back, truncation, compaction,
//!   hard state, snapshots, `install_snapshot_log`, reopen semantics, misuse that must be an
//!   error rather than a panic); [`run_all`] runs them and collects every failure;
//!   [`assert_conforms`] panics with a readable list, for use in a `#[test]`.
//! * [`check_ops`] runs a sequence of [`Op`]s on the store and on a [`MemStorage`] model side
//!   by side and compares everything observable after each one; [`random_ops`] draws such a
//!   sequence from a seed (property-test frameworks can build their own [`Op`] lists).
//!
//! The store is created and reopened through a [`Harness`] the user writes, for example:
//!
//! ```
//! use raft_core::conformance::{self, Harness, MemStorage, MemStorageError};
//!
//! /// Reopening a `MemStorage` models a crash: everything not synced is lost.
//! struct CrashingMem;
//!
//! impl Harness for CrashingMem {
//!     type Store = MemStorage;
//!     fn create(&mut self) -> Result<MemStorage, MemStorageError> {
//!         Ok(MemStorage::new())
//!     }
//!     fn reopen(&mut self, mut store: MemStorage) -> Result<MemStorage, MemStorageError> {
//!         store.crash();
//!         Ok(store)
//!     }
//! }
//!
//! conformance::assert_conforms(&mut CrashingMem);
//! ```
//!
//! # The contract the kit checks
//!
//! * The log is contiguous. It starts after a *base* entry (index 0 and term 0 for a new
//!   store, else the last compacted entry); [`crate::Storage::first_index`] is base + 1 and
//!   [`crate::Storage::last_index`] is the last entry, or the base when the log is empty.
//!   Whenever the log becomes empty the base becomes the snapshot's (index, term), so the
//!   next append follows the snapshot.
//! * `term(i)` is known for the base and every stored entry, and for the snapshot's index;
//!   everything else is `None`.
//! * Misuse is an error that changes nothing: an append that does not follow the last
//!   index (a gap or an overlap) or is not contiguous in itself; `truncate_suffix` below the
//!   first index; `compact` beyond the snapshot's index; committing a snapshot older than
//!   the current one; reading outside `[first_index, last_index + 1)`.
//! * `entries(low, high, max_bytes)` returns a non-empty prefix of the range, adding entries
//!   while their total [`Entry::size_bytes`] stays within `max_bytes` (the first entry is
//!   always returned).
//! * Durability: [`crate::Storage::sync`] and [`crate::Storage::commit_snapshot`] make every
//!   earlier write durable. After a reopen, `restore` shows the state as it was at some
//!   moment between the last sync and the reopen, with writes applied in order (an append
//!   of several entries may be cut after any of them).
//! * `restore` returns the entries after the snapshot: if the log's own entry at the
//!   snapshot's index has the snapshot's term, the entries after it are kept, otherwise the
//!   whole log is dropped (it conflicts with the snapshot, e.g. a crash came between
//!   `commit_snapshot` and `install_snapshot_log`). The store's first index then follows
//!   the snapshot.
//! * A fresh store restores [`HardState::default`] and a snapshot at index 0, term 0 with an
//!   empty membership; the host substitutes its bootstrap membership (see
//!   [`RestoredState::bootstrap`]).

use std::collections::VecDeque;
use std::fmt;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::membership::Membership;
use crate::storage::Storage;
use crate::types::{
    Entry, EntryPayload, HardState, Index, NodeId, RestoredState, SnapshotMeta, Term,
};

pub use memory::{MemSnapshotWriter, MemStorage, MemStorageError};

/// Creates and reopens the store under test.
pub trait Harness {
    /// The store under test.
    type Store: Storage;

    /// A new, empty store (e.g. in a fresh temporary directory).
    fn create(&mut self) -> Result<Self::Store, <Self::Store as Storage>::Error>;

    /// Closes `store` without syncing it and opens it again from what it left behind, as a
    /// process restart (or, for a simulated store, a crash) would. The kit calls
    /// [`Storage::restore`] on the result itself.
    fn reopen(
        &mut self,
        store: Self::Store,
    ) -> Result<Self::Store, <Self::Store as Storage>::Error>;
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The check's name, as listed by [`checks`].
    pub check: &'static str,
    /// What went wrong, with the values involved.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.message)
    }
}

/// A named check: runs on a harness and returns what went wrong.
pub struct Check<H: Harness> {
    /// A name that says what is checked, e.g. `append_rejects_gaps_and_overlaps`.
    pub name: &'static str,
    /// Runs the check.
    pub run: fn(&mut H) -> Result<(), String>,
}

/// Every scenario check, in a fixed order.
pub fn checks<H: Harness>() -> Vec<Check<H>> {
    vec![
        Check {
            name: "fresh_store_is_empty",
            run: scenarios::fresh_store_is_empty::<H>,
        },
        Check {
            name: "append_then_read_back",
            run: scenarios::append_then_read_back::<H>,
        },
        Check {
            name: "append_rejects_gaps_and_overlaps",
            run: scenarios::append_rejects_gaps_and_overlaps::<H>,
        },
        Check {
            name: "truncate_suffix_then_append",
            run: scenarios::truncate_suffix_then_append::<H>,
        },
        Check {
            name: "compact_prefix",
            run: scenarios::compact_prefix::<H>,
        },
        Check {
            name: "misuse_after_compaction_is_an_error",
            run: scenarios::misuse_after_compaction::<H>,
        },
        Check {
            name: "hard_state_survives_reopen",
            run: scenarios::hard_state_survives_reopen::<H>,
        },
        Check {
            name: "synced_writes_survive_reopen",
            run: scenarios::synced_writes_survive_reopen::<H>,
        },
        Check {
            name: "unsynced_writes_reopen_to_a_prefix",
            run: scenarios::unsynced_writes_reopen_to_a_prefix::<H>,
        },
        Check {
            name: "snapshot_round_trip",
            run: scenarios::snapshot_round_trip::<H>,
        },
        Check {
            name: "snapshot_reader_seeks_within_the_data",
            run: scenarios::snapshot_reader_seeks::<H>,
        },
        Check {
            name: "abandoned_snapshot_is_invisible",
            run: scenarios::abandoned_snapshot_is_invisible::<H>,
        },
        Check {
            name: "stale_snapshot_is_rejected",
            run: scenarios::stale_snapshot_is_rejected::<H>,
        },
        Check {
            name: "install_snapshot_log_keeps_matching_suffix",
            run: scenarios::install_keeps_matching_suffix::<H>,
        },
        Check {
            name: "install_snapshot_log_drops_conflicting_log",
            run: scenarios::install_drops_conflicting_log::<H>,
        },
        Check {
            name: "restore_drops_log_conflicting_with_snapshot",
            run: scenarios::restore_drops_conflicting_log::<H>,
        },
        Check {
            name: "random_ops_agree_with_model",
            run: scenarios::random_ops_agree_with_model::<H>,
        },
    ]
}

/// Runs every check in [`checks`], returning all failures.
pub fn run_all<H: Harness>(harness: &mut H) -> Result<(), Vec<Failure>> {
    let failures: Vec<Failure> = checks::<H>()
        .into_iter()
        .filter_map(|check| {
            (check.run)(harness).err().map(|message| Failure {
                check: check.name,
                message,
            })
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Runs every check and panics with the list of failures, if any. Meant for a `#[test]`.
///
/// # Panics
///
/// When the store fails any check.
pub fn assert_conforms<H: Harness>(harness: &mut H) {
    if let Err(failures) = run_all(harness) {
        let lines: Vec<String> = failures.iter().map(|f| format!("  - {f}")).collect();
        panic!(
            "storage conformance failed ({} checks):\n{}",
            failures.len(),
            lines.join("\n")
        );
    }
}

/// Builds a sample entry: a command of `payload_bytes` bytes (never all zero), a no-op when
/// `payload_bytes` is 0, and a membership entry at every index that is 3 modulo 11, so every
/// payload kind reaches the store.
pub fn sample_entry(index: Index, term: Term, payload_bytes: usize) -> Entry {
    let payload = if index % 11 == 3 {
        EntryPayload::Membership(Box::new(Membership::with_voters([1, 2, index % 5 + 3])))
    } else if payload_bytes == 0 {
        EntryPayload::Noop
    } else {
        EntryPayload::Command(Bytes::from(sample_bytes(index, payload_bytes)))
    };
    Entry {
        term,
        index,
        payload,
    }
}

/// Deterministic, non-zero bytes derived from `seed`.
pub fn sample_bytes(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((seed.wrapping_mul(31).wrapping_add(i as u64 * 7)) % 251) as u8 + 1)
        .collect()
}

/// Adds what was being done to a store error.
trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what} failed: {e}"))
    }
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($arg:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!("{}: expected {:?}, got {:?}", format!($($arg)+), want, got));
        }
    }};
}

/// Small helpers shared by the scenarios and the model run.
mod util {
    use super::*;

    pub(super) fn run_of(low: Index, high: Index, term: Term) -> Vec<Entry> {
        (low..=high)
            .map(|i| sample_entry(i, term, 40 + (i % 9) as usize * 10))
            .collect()
    }

    pub(super) fn all_entries<S: Storage>(store: &S) -> Result<Vec<Entry>, String> {
        let (first, last) = (store.first_index(), store.last_index());
        if first > last {
            return Ok(Vec::new());
        }
        store
            .entries(first, last + 1, u64::MAX)
            .ctx("entries(first, last + 1)")
    }

    pub(super) fn write_snapshot<S: Storage>(
        store: &mut S,
        meta: &SnapshotMeta,
        data: &[u8],
    ) -> Result<S::SnapshotWriter, String> {
        let mut writer = store.begin_snapshot(meta).ctx("begin_snapshot")?;
        // Several writes, as chunks arrive from a leader.
        for chunk in data.chunks(7919) {
            writer.write_all(chunk).ctx("snapshot write_all")?;
        }
        writer.flush().ctx("snapshot flush")?;
        Ok(writer)
    }

    pub(super) fn commit_snapshot<S: Storage>(
        store: &mut S,
        meta: &SnapshotMeta,
        data: &[u8],
    ) -> Result<(), String> {
        let writer = write_snapshot(store, meta, data)?;
        store.commit_snapshot(writer).ctx("commit_snapshot")
    }

    pub(super) fn read_snapshot<S: Storage>(
        store: &S,
    ) -> Result<Option<(SnapshotMeta, Vec<u8>)>, String> {
        match store.open_snapshot().ctx("open_snapshot")? {
            None => Ok(None),
            Some((meta, mut reader)) => {
                let mut data = Vec::new();
                reader.read_to_end(&mut data).ctx("reading the snapshot")?;
                Ok(Some((meta, data)))
            }
        }
    }

    pub(super) fn meta(index: Index, term: Term) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term,
            membership: Membership::with_voters([1, 2, 3]),
        }
    }

    pub(super) fn fresh<H: Harness>(harness: &mut H) -> Result<H::Store, String> {
        let mut store = harness.create().ctx("create")?;
        store.restore().ctx("restore of a new store")?;
        Ok(store)
    }

    pub(super) fn reopen<H: Harness>(
        harness: &mut H,
        store: H::Store,
    ) -> Result<(H::Store, RestoredState), String> {
        let mut store = harness.reopen(store).ctx("reopen")?;
        let restored = store.restore().ctx("restore after reopen")?;
        Ok((store, restored))
    }

    /// The log bounds and contents, for "nothing changed" comparisons.
    pub(super) fn log_view<S: Storage>(store: &S) -> Result<(Index, Index, Vec<Entry>), String> {
        Ok((store.first_index(), store.last_index(), all_entries(store)?))
    }
}

/// The named scenario checks listed by [`checks`].
mod scenarios {
    use super::util::*;
    use super::*;

    pub(super) fn fresh_store_is_empty<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = h.create().ctx("create")?;
        let restored = store.restore().ctx("restore")?;
        ensure_eq!(
            restored.hard_state,
            HardState::default(),
            "hard state of a new store"
        );
        ensure_eq!(
            (restored.snapshot.index, restored.snapshot.term),
            (0, 0),
            "snapshot of a new store"
        );
        ensure!(
            restored.entries.is_empty(),
            "a new store restored {} entries",
            restored.entries.len()
        );
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (1, 0),
            "(first, last) of a new store"
        );
        ensure_eq!(store.term(0).ctx("term(0)")?, Some(0), "term(0)");
        ensure_eq!(
            store.term(1).ctx("term(1)")?,
            None,
            "term(1) of a new store"
        );
        ensure!(
            store.open_snapshot().ctx("open_snapshot")?.is_none(),
            "a new store has a snapshot"
        );
        ensure!(
            store
                .entries(1, 1, u64::MAX)
                .ctx("entries(1, 1)")?
                .is_empty(),
            "entries(1, 1) not empty"
        );
        Ok(())
    }

    pub(super) fn append_then_read_back<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        let mut log = run_of(1, 3, 1);
        log.extend(run_of(4, 10, 2));
        store.append(&log[..3]).ctx("append 1..=3")?;
        store.append(&[]).ctx("append of nothing")?;
        store.append(&log[3..]).ctx("append 4..=10")?;
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (1, 10),
            "(first, last)"
        );
        for entry in &log {
            ensure_eq!(
                store.term(entry.index).ctx("term")?,
                Some(entry.term),
                "term({})",
                entry.index
            );
        }
        ensure_eq!(store.term(11).ctx("term(11)")?, None, "term past the end");
        ensure_eq!(all_entries(&store)?, log, "entries 1..=10");
        ensure_eq!(
            store.entries(3, 7, u64::MAX).ctx("entries(3, 7)")?,
            log[2..6].to_vec(),
            "entries 3..7"
        );
        ensure!(
            store.entries(4, 4, 0).ctx("entries(4, 4)")?.is_empty(),
            "entries(4, 4) not empty"
        );
        ensure!(
            store.entries(0, 5, u64::MAX).is_err(),
            "entries(0, 5) below the first index succeeded"
        );
        ensure!(
            store.entries(5, 12, u64::MAX).is_err(),
            "entries(5, 12) past the end succeeded"
        );
        check_max_bytes(&store, &log)
    }

    /// `entries` honours `max_bytes`: a non-empty prefix, at most one entry beyond the limit.
    fn check_max_bytes<S: Storage>(store: &S, log: &[Entry]) -> Result<(), String> {
        let sizes: Vec<u64> = log.iter().map(Entry::size_bytes).collect();
        for max_bytes in [
            0,
            1,
            sizes[0] + sizes[1],
            sizes[0] + sizes[1] + 1,
            500,
            100_000,
        ] {
            let got = store
                .entries(1, 11, max_bytes)
                .ctx("entries with max_bytes")?;
            ensure!(
                !got.is_empty(),
                "entries(1, 11, {max_bytes}) returned nothing"
            );
            ensure_eq!(
                got,
                log[..got.len()].to_vec(),
                "entries(1, 11, {max_bytes}) is not a prefix"
            );
            let total: u64 = sizes[..got.len()].iter().sum();
            ensure!(
                total - sizes[got.len() - 1] <= max_bytes,
                "entries(1, 11, {max_bytes}) returned {} bytes in {} entries",
                total,
                got.len()
            );
            if got.len() < log.len() {
                ensure!(
                    total + sizes[got.len()] > max_bytes,
                    "entries(1, 11, {max_bytes}) stopped early at {} entries",
                    got.len()
                );
            }
        }
        Ok(())
    }

    pub(super) fn append_rejects_gaps_and_overlaps<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        store.append(&run_of(1, 5, 1)).ctx("append 1..=5")?;
        let before = log_view(&store)?;
        ensure!(
            store.append(&run_of(7, 7, 1)).is_err(),
            "append at 7 after 5 (a gap) succeeded"
        );
        ensure!(
            store.append(&run_of(5, 5, 1)).is_err(),
            "append at 5 after 5 (an overlap) succeeded"
        );
        let skipping = vec![sample_entry(6, 1, 10), sample_entry(8, 1, 10)];
        ensure!(
            store.append(&skipping).is_err(),
            "append of 6 then 8 (not contiguous) succeeded"
        );
        ensure_eq!(log_view(&store)?, before, "log after rejected appends");
        store
            .append(&run_of(6, 6, 1))
            .ctx("append 6 after rejected appends")?;
        ensure_eq!(store.last_index(), 6, "last index");
        Ok(())
    }

    pub(super) fn truncate_suffix_then_append<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        store.append(&run_of(1, 10, 1)).ctx("append 1..=10")?;
        store.truncate_suffix(6).ctx("truncate_suffix(6)")?;
        ensure_eq!(store.last_index(), 5, "last index after truncate_suffix(6)");
        ensure_eq!(
            store.term(6).ctx("term(6)")?,
            None,
            "term of a removed entry"
        );
        let mut log = run_of(1, 5, 1);
        log.extend(run_of(6, 8, 2));
        store.append(&log[5..]).ctx("append 6..=8 in term 2")?;
        ensure_eq!(all_entries(&store)?, log, "log after truncate and append");
        store
            .truncate_suffix(20)
            .ctx("truncate_suffix past the end")?;
        ensure_eq!(
            all_entries(&store)?,
            log,
            "log after truncate_suffix past the end"
        );
        store.sync().ctx("sync")?;
        let (store, restored) = reopen(h, store)?;
        ensure_eq!(restored.entries, log, "restored log");
        let mut store = store;
        store.truncate_suffix(1).ctx("truncate_suffix(1)")?;
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (1, 0),
            "(first, last) of an emptied log"
        );
        store
            .append(&run_of(1, 2, 3))
            .ctx("append 1..=2 to an emptied log")?;
        store.sync().ctx("sync")?;
        let (_, restored) = reopen(h, store)?;
        ensure_eq!(
            restored.entries,
            run_of(1, 2, 3),
            "restored log after emptying"
        );
        Ok(())
    }

    pub(super) fn compact_prefix<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        let mut log = run_of(1, 4, 1);
        log.extend(run_of(5, 10, 2));
        store.append(&log).ctx("append 1..=10")?;
        commit_snapshot(&mut store, &meta(7, 2), b"state at 7")?;
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (1, 10),
            "committing a snapshot changed the log"
        );
        store.compact(4).ctx("compact(4)")?;
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (5, 10),
            "(first, last) after compact(4)"
        );
        ensure_eq!(
            store.term(4).ctx("term(4)")?,
            Some(1),
            "term of the last compacted entry"
        );
        ensure_eq!(
            store.term(3).ctx("term(3)")?,
            None,
            "term of a compacted entry"
        );
        ensure_eq!(
            all_entries(&store)?,
            log[4..].to_vec(),
            "entries after compact(4)"
        );
        ensure!(
            store.entries(4, 6, u64::MAX).is_err(),
            "entries(4, 6) of compacted entries succeeded"
        );
        store.compact(2).ctx("compact(2) below the first index")?;
        ensure_eq!(
            store.first_index(),
            5,
            "compact below the first index changed it"
        );
        store.compact(7).ctx("compact(7)")?;
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (8, 10),
            "(first, last) after compact(7)"
        );
        store
            .save_hard_state(&HardState {
                term: 2,
                vote: Some(1),
                commit: 9,
            })
            .ctx("save_hard_state")?;
        store.sync().ctx("sync")?;
        let (store, restored) = reopen(h, store)?;
        ensure_eq!(restored.snapshot, meta(7, 2), "restored snapshot");
        ensure_eq!(restored.entries, log[7..].to_vec(), "restored entries");
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (8, 10),
            "(first, last) after reopen"
        );
        Ok(())
    }

    pub(super) fn misuse_after_compaction<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        store.append(&run_of(1, 10, 1)).ctx("append 1..=10")?;
        commit_snapshot(&mut store, &meta(5, 1), b"state at 5")?;
        store.compact(5).ctx("compact(5)")?;
        let before = log_view(&store)?;
        ensure!(
            store.truncate_suffix(5).is_err(),
            "truncate_suffix(5) below the first index 6 succeeded"
        );
        ensure!(
            store.truncate_suffix(2).is_err(),
            "truncate_suffix(2) below the first index 6 succeeded"
        );
        ensure!(
            store.compact(6).is_err(),
            "compact(6) beyond the snapshot at 5 succeeded"
        );
        ensure_eq!(log_view(&store)?, before, "log after rejected calls");
        Ok(())
    }

    pub(super) fn hard_state_survives_reopen<H: Harness>(h: &mut H) -> Result<(), String> {
        let store = fresh(h)?;
        let (mut store, restored) = reopen(h, store)?;
        ensure_eq!(
            restored.hard_state,
            HardState::default(),
            "hard state never saved"
        );
        let states = [
            HardState {
                term: 1,
                vote: Some(2),
                commit: 0,
            },
            HardState {
                term: 3,
                vote: None,
                commit: 0,
            },
            HardState {
                term: 3,
                vote: Some(7),
                commit: 0,
            },
        ];
        for hard_state in states {
            store.save_hard_state(&hard_state).ctx("save_hard_state")?;
            store.sync().ctx("sync")?;
            let (reopened, restored) = reopen(h, store)?;
            store = reopened;
            ensure_eq!(restored.hard_state, hard_state, "restored hard state");
        }
        Ok(())
    }

    pub(super) fn synced_writes_survive_reopen<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        let hard_state = HardState {
            term: 2,
            vote: Some(1),
            commit: 3,
        };
        store.append(&run_of(1, 4, 1)).ctx("append")?;
        store.save_hard_state(&hard_state).ctx("save_hard_state")?;
        store.append(&run_of(5, 6, 2)).ctx("append")?;
        store.sync().ctx("sync")?;
        let mut log = run_of(1, 4, 1);
        log.extend(run_of(5, 6, 2));
        for round in 0..2 {
            let (reopened, restored) = reopen(h, store)?;
            store = reopened;
            ensure_eq!(
                restored.hard_state,
                hard_state,
                "hard state after reopen {round}"
            );
            ensure_eq!(restored.entries, log, "entries after reopen {round}");
            ensure_eq!(
                (store.first_index(), store.last_index()),
                (1, 6),
                "(first, last) after reopen"
            );
            ensure_eq!(all_entries(&store)?, log, "entries() after reopen {round}");
        }
        Ok(())
    }

    pub(super) fn unsynced_writes_reopen_to_a_prefix<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        let synced = HardState {
            term: 1,
            vote: Some(1),
            commit: 2,
        };
        let unsynced = HardState {
            term: 2,
            vote: Some(2),
            commit: 5,
        };
        store.append(&run_of(1, 5, 1)).ctx("append")?;
        store.save_hard_state(&synced).ctx("save_hard_state")?;
        store.sync().ctx("sync")?;
        store.append(&run_of(6, 10, 2)).ctx("append")?;
        store.save_hard_state(&unsynced).ctx("save_hard_state")?;
        let (_, restored) = reopen(h, store)?;
        let count = restored.entries.len() as u64;
        ensure!(
            (5..=10).contains(&count),
            "restored {count} entries; 5 were synced, 10 written"
        );
        let mut log = run_of(1, 5, 1);
        log.extend(run_of(6, 10, 2));
        ensure_eq!(
            restored.entries,
            log[..count as usize].to_vec(),
            "restored entries are not a prefix"
        );
        ensure!(
            restored.hard_state == synced || restored.hard_state == unsynced,
            "restored hard state {:?} was never saved",
            restored.hard_state
        );
        ensure!(
            restored.hard_state == synced || count == 10,
            "the later hard state survived but {} of the entries written before it were lost",
            10 - count
        );
        Ok(())
    }

    pub(super) fn snapshot_round_trip<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        store.append(&run_of(1, 10, 1)).ctx("append")?;
        let data = sample_bytes(6, 100_000);
        let writer = write_snapshot(&mut store, &meta(6, 1), &data)?;
        ensure_eq!(
            store.snapshot_meta().index,
            0,
            "snapshot index before commit"
        );
        ensure!(
            store.open_snapshot().ctx("open_snapshot")?.is_none(),
            "uncommitted snapshot readable"
        );
        store.commit_snapshot(writer).ctx("commit_snapshot")?;
        ensure_eq!(
            store.snapshot_meta(),
            meta(6, 1),
            "snapshot meta after commit"
        );
        ensure_eq!(
            read_snapshot(&store)?,
            Some((meta(6, 1), data.clone())),
            "snapshot read back"
        );
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (1, 10),
            "commit_snapshot changed the log"
        );
        let (mut store, restored) = reopen(h, store)?;
        ensure_eq!(restored.snapshot, meta(6, 1), "restored snapshot meta");
        ensure_eq!(
            restored.entries,
            run_of(7, 10, 1),
            "restored entries after the snapshot"
        );
        ensure_eq!(
            read_snapshot(&store)?,
            Some((meta(6, 1), data)),
            "snapshot after reopen"
        );
        commit_snapshot(&mut store, &meta(8, 1), &[])?;
        ensure_eq!(
            read_snapshot(&store)?,
            Some((meta(8, 1), Vec::new())),
            "empty snapshot read back"
        );
        Ok(())
    }

    pub(super) fn snapshot_reader_seeks<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        store.append(&run_of(1, 10, 1)).ctx("append")?;
        let data = sample_bytes(5, 100_000);
        commit_snapshot(&mut store, &meta(5, 1), &data)?;
        check_seeks(&store, &data, "")?;
        let (mut store, _) = reopen(h, store)?;
        check_seeks(&store, &data, " after reopen")?;
        // A second snapshot with other metadata: offsets stay relative to its data.
        let data = sample_bytes(8, 30_000);
        let mut later = meta(8, 1);
        later.membership = Membership::with_voters([1, 2, 3, 4, 5, 6, 7]);
        commit_snapshot(&mut store, &later, &data)?;
        check_seeks(&store, &data, " of a second snapshot")
    }

    /// Chunks read after seeking equal the same bytes of a full read.
    fn check_seeks<S: Storage>(store: &S, data: &[u8], when: &str) -> Result<(), String> {
        let Some((_, full)) = read_snapshot(store)? else {
            return Err(format!("no snapshot to read{when}"));
        };
        ensure!(
            full == data,
            "full read{when} differs from the data written"
        );
        let len = data.len() as u64;
        let Some((_, mut reader)) = store.open_snapshot().ctx("open_snapshot")? else {
            return Err(format!("no snapshot to open{when}"));
        };
        let chunk_bytes = 4096u64;
        // Chunks out of order, as retries to several peers would ask for them.
        for offset in [len / 2, 0, len - 100, 1, 8191, len - chunk_bytes, 4096] {
            let at = reader.seek(SeekFrom::Start(offset)).ctx("seek")?;
            ensure_eq!(at, offset, "position after seek to {offset}{when}");
            let chunk = read_up_to(&mut reader, chunk_bytes)?;
            let end = (offset + chunk_bytes).min(len) as usize;
            ensure!(
                chunk == data[offset as usize..end],
                "{} bytes read after seeking to {offset}{when} differ from a full read",
                chunk.len()
            );
        }
        let at = reader.seek(SeekFrom::End(-10)).ctx("seek from the end")?;
        ensure_eq!(
            at,
            len - 10,
            "position after seeking 10 bytes before the end{when}"
        );
        ensure_eq!(
            read_up_to(&mut reader, 64)?,
            data[data.len() - 10..].to_vec(),
            "last 10 bytes{when}"
        );
        reader.seek(SeekFrom::Start(100)).ctx("seek")?;
        let at = reader.seek(SeekFrom::Current(-50)).ctx("seek back")?;
        ensure_eq!(at, 50, "position after seeking 50 back from 100{when}");
        ensure_eq!(
            read_up_to(&mut reader, 10)?,
            data[50..60].to_vec(),
            "bytes 50..60{when}"
        );
        ensure!(
            reader.seek(SeekFrom::Current(-1000)).is_err(),
            "seek before the first byte succeeded{when}"
        );
        reader
            .seek(SeekFrom::Start(len + 5))
            .ctx("seek past the end")?;
        ensure!(
            read_up_to(&mut reader, 10)?.is_empty(),
            "read past the end returned bytes{when}"
        );
        reader.seek(SeekFrom::Start(0)).ctx("seek to 0")?;
        ensure!(
            read_up_to(&mut reader, u64::MAX)? == data,
            "read from 0 after seeks differs from the data{when}"
        );
        Ok(())
    }

    fn read_up_to<R: Read>(reader: &mut R, max_bytes: u64) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        reader
            .take(max_bytes)
            .read_to_end(&mut out)
            .ctx("snapshot read")?;
        Ok(out)
    }

    pub(super) fn abandoned_snapshot_is_invisible<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        store.append(&run_of(1, 5, 1)).ctx("append")?;
        commit_snapshot(&mut store, &meta(2, 1), b"two")?;
        let writer = write_snapshot(&mut store, &meta(4, 1), &sample_bytes(4, 5000))?;
        drop(writer);
        ensure_eq!(
            read_snapshot(&store)?,
            Some((meta(2, 1), b"two".to_vec())),
            "after abandoning"
        );
        let (mut store, _) = reopen(h, store)?;
        ensure_eq!(
            read_snapshot(&store)?,
            Some((meta(2, 1), b"two".to_vec())),
            "after reopen"
        );
        commit_snapshot(&mut store, &meta(4, 1), b"four")?;
        ensure_eq!(
            read_snapshot(&store)?,
            Some((meta(4, 1), b"four".to_vec())),
            "next snapshot"
        );
        Ok(())
    }

    pub(super) fn stale_snapshot_is_rejected<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        store.append(&run_of(1, 8, 1)).ctx("append")?;
        commit_snapshot(&mut store, &meta(6, 1), b"six")?;
        let writer = write_snapshot(&mut store, &meta(4, 1), b"four")?;
        ensure!(
            store.commit_snapshot(writer).is_err(),
            "committing a snapshot at 4 over one at 6 succeeded"
        );
        ensure_eq!(
            read_snapshot(&store)?,
            Some((meta(6, 1), b"six".to_vec())),
            "current snapshot"
        );
        Ok(())
    }

    pub(super) fn install_keeps_matching_suffix<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        let mut log = run_of(1, 5, 1);
        log.extend(run_of(6, 10, 2));
        store.append(&log).ctx("append")?;
        commit_snapshot(&mut store, &meta(6, 2), b"leader state")?;
        store
            .install_snapshot_log(&meta(6, 2))
            .ctx("install_snapshot_log")?;
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (7, 10),
            "(first, last)"
        );
        ensure_eq!(all_entries(&store)?, log[6..].to_vec(), "kept entries");
        store.sync().ctx("sync")?;
        let (_, restored) = reopen(h, store)?;
        ensure_eq!(restored.entries, log[6..].to_vec(), "restored entries");
        Ok(())
    }

    pub(super) fn install_drops_conflicting_log<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        store.append(&run_of(1, 10, 1)).ctx("append")?;
        commit_snapshot(&mut store, &meta(6, 2), b"leader state")?;
        store
            .install_snapshot_log(&meta(6, 2))
            .ctx("install_snapshot_log")?;
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (7, 6),
            "(first, last) after a conflict"
        );
        ensure_eq!(
            store.term(6).ctx("term(6)")?,
            Some(2),
            "term at the snapshot"
        );
        store
            .append(&run_of(7, 7, 2))
            .ctx("append 7 after the snapshot")?;
        store.sync().ctx("sync")?;
        let (mut store, restored) = reopen(h, store)?;
        ensure_eq!(restored.entries, run_of(7, 7, 2), "restored entries");
        commit_snapshot(&mut store, &meta(15, 3), b"far ahead")?;
        store
            .install_snapshot_log(&meta(15, 3))
            .ctx("install_snapshot_log(15)")?;
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (16, 15),
            "(first, last) after a snapshot past the log"
        );
        store
            .append(&run_of(16, 17, 3))
            .ctx("append after the snapshot")?;
        store.sync().ctx("sync")?;
        let (_, restored) = reopen(h, store)?;
        ensure_eq!(restored.entries, run_of(16, 17, 3), "restored entries");
        Ok(())
    }

    pub(super) fn restore_drops_conflicting_log<H: Harness>(h: &mut H) -> Result<(), String> {
        let mut store = fresh(h)?;
        store.append(&run_of(1, 10, 1)).ctx("append")?;
        store.sync().ctx("sync")?;
        // A crash between commit_snapshot and install_snapshot_log.
        commit_snapshot(&mut store, &meta(6, 2), b"leader state")?;
        let (store, restored) = reopen(h, store)?;
        ensure_eq!(restored.snapshot, meta(6, 2), "restored snapshot");
        ensure!(
            restored.entries.is_empty(),
            "restored {} entries that conflict with the snapshot",
            restored.entries.len()
        );
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (7, 6),
            "(first, last)"
        );
        Ok(())
    }

    pub(super) fn random_ops_agree_with_model<H: Harness>(h: &mut H) -> Result<(), String> {
        for seed in 1..=4 {
            let ops = random_ops(seed, 80);
            check_ops(h, &ops).map_err(|e| format!("seed {seed}: {e}"))?;
        }
        Ok(())
    }
}

/// One step of a model-based run. Indices and terms are chosen relative to the model's state
/// when the step runs, so any sequence of steps is meaningful.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Append `count` (at least 1) entries after the last index, in the last term plus
    /// `term_step`, each with `payload_bytes` of command bytes.
    Append {
        /// How many entries.
        count: u8,
        /// Added to the last entry's term.
        term_step: u8,
        /// Command size of each entry.
        payload_bytes: u16,
    },
    /// Misuse: append an entry one past the next index (a gap). Must fail.
    AppendGap,
    /// Misuse: append at the last index without truncating. Must fail.
    AppendOverlap,
    /// Remove the last `count` entries (as far as the first index).
    TruncateSuffix {
        /// How many entries to remove.
        count: u8,
    },
    /// Misuse: truncate from the index before the first. Must fail.
    TruncateBelowFirst,
    /// Save a hard state with the term raised by `term_step`.
    SaveHardState {
        /// Added to the current term.
        term_step: u8,
        /// The vote.
        vote: Option<NodeId>,
    },
    /// Make everything durable.
    Sync,
    /// Take and commit a snapshot of the local log `back` entries before its end (never
    /// before the current snapshot).
    LocalSnapshot {
        /// Distance from the last index.
        back: u8,
        /// Size of the snapshot's data.
        data_bytes: u16,
    },
    /// Receive a snapshot from a leader at `offset` from the last index (at least one past
    /// the current snapshot), commit it and call `install_snapshot_log`.
    LeaderSnapshot {
        /// Added to the last index.
        offset: i8,
        /// Use a term that differs from the local entry at that index.
        conflicting: bool,
        /// Size of the snapshot's data.
        data_bytes: u16,
    },
    /// Misuse: commit a snapshot older than the current one. Must fail (when there is one).
    StaleSnapshot,
    /// Write a snapshot and drop the writer without committing it.
    AbandonSnapshot {
        /// Size of the data written.
        data_bytes: u16,
    },
    /// Compact through `back` entries before the snapshot's index.
    Compact {
        /// Distance from the snapshot's index.
        back: u8,
    },
    /// Misuse: compact past the snapshot's index. Must fail.
    CompactBeyondSnapshot,
    /// Call `restore` on both and compare.
    Restore,
    /// Reopen the store through the harness; the model follows whatever the store kept, if
    /// that is allowed by the contract.
    Reopen,
}

/// Draws `count` operations from `seed`, weighted towards appends and syncs.
pub fn random_ops(seed: u64, count: usize) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| random_op(&mut rng)).collect()
}

fn random_op(rng: &mut ChaCha8Rng) -> Op {
    match rng.random_range(0..100u32) {
        0..=29 => Op::Append {
            count: rng.random_range(1..=8),
            term_step: u8::from(rng.random_bool(0.15)),
            payload_bytes: rng.random_range(0..=300),
        },
        30..=41 => Op::Sync,
        42..=49 => Op::SaveHardState {
            term_step: rng.random_range(0..=1),
            vote: rng.random_bool(0.7).then(|| rng.random_range(1..=5)),
        },
        50..=57 => Op::TruncateSuffix {
            count: rng.random_range(0..=6),
        },
        58..=63 => Op::LocalSnapshot {
            back: rng.random_range(0..=5),
            data_bytes: rng.random_range(0..=2000),
        },
        64..=68 => Op::Compact {
            back: rng.random_range(0..=4),
        },
        69..=73 => Op::LeaderSnapshot {
            offset: rng.random_range(-6..=4),
            conflicting: rng.random_bool(0.5),
            data_bytes: rng.random_range(0..=2000),
        },
        74..=83 => Op::Reopen,
        84..=86 => Op::Restore,
        87..=88 => Op::AppendGap,
        89..=90 => Op::AppendOverlap,
        91..=92 => Op::TruncateBelowFirst,
        93..=94 => Op::CompactBeyondSnapshot,
        95..=96 => Op::StaleSnapshot,
        _ => Op::AbandonSnapshot {
            data_bytes: rng.random_range(0..=500),
        },
    }
}

/// Runs `ops` on a new store from `harness` and on a [`MemStorage`] model, comparing the
/// outcome of every call (success or error) and everything observable after every step:
/// bounds, terms, entries, snapshot metadata and bytes. After [`Op::Reopen`] the store must
/// show a state the model passed through since its last sync (see the module docs).
pub fn check_ops<H: Harness>(harness: &mut H, ops: &[Op]) -> Result<(), String> {
    let mut store = model_run::fresh_pair(harness)?;
    let mut run = model_run::ModelRun::new();
    for (step, op) in ops.iter().enumerate() {
        let outcome = if *op == Op::Reopen {
            match util::reopen(harness, store) {
                Ok((reopened, restored)) => {
                    store = reopened;
                    run.follow_reopen(&restored)
                }
                Err(e) => return Err(format!("step {step} ({op:?}): {e}")),
            }
        } else {
            run.apply(&mut store, op)
        };
        outcome
            .and_then(|()| model_run::compare(&store, &run.model))
            .map_err(|e| format!("step {step} ({op:?}): {e}"))?;
    }
    Ok(())
}

/// The machinery behind [`check_ops`].
mod model_run {
    use super::util::*;
    use super::*;

    pub(super) fn fresh_pair<H: Harness>(harness: &mut H) -> Result<H::Store, String> {
        fresh(harness)
    }

    /// The model and the states it passed through since its last sync.
    pub(super) struct ModelRun {
        pub(super) model: MemStorage,
        history: Vec<memory::MemState>,
    }

    /// Both stores must agree on success; returns whether the call succeeded.
    fn agree<T, E1: fmt::Display, E2: fmt::Display>(
        what: &str,
        store: Result<T, E1>,
        model: Result<T, E2>,
    ) -> Result<bool, String> {
        match (store, model) {
            (Ok(_), Ok(_)) => Ok(true),
            (Err(_), Err(_)) => Ok(false),
            (Ok(_), Err(e)) => Err(format!(
                "{what}: the store accepted what the model rejects ({e})"
            )),
            (Err(e), Ok(_)) => Err(format!(
                "{what}: the store failed where the model succeeds: {e}"
            )),
        }
    }

    impl ModelRun {
        pub(super) fn new() -> Self {
            let mut model = MemStorage::new();
            // A new model restores nothing; the call puts it in the same state as the store.
            let _ = model.restore();
            let history = vec![model.volatile_state().clone()];
            ModelRun { model, history }
        }

        fn mark_durable(&mut self) {
            self.history = vec![self.model.volatile_state().clone()];
        }

        fn remember(&mut self) {
            self.history.push(self.model.volatile_state().clone());
        }

        pub(super) fn apply<S: Storage>(&mut self, store: &mut S, op: &Op) -> Result<(), String> {
            let m = &self.model;
            let (first, last, snapshot) = (m.first_index(), m.last_index(), m.snapshot_meta());
            let last_term = m.term(last).ok().flatten().unwrap_or(0);
            match *op {
                Op::Append {
                    count,
                    term_step,
                    payload_bytes,
                } => {
                    let term = last_term + u64::from(term_step);
                    let entries: Vec<Entry> = (0..u64::from(count.max(1)))
                        .map(|i| sample_entry(last + 1 + i, term, usize::from(payload_bytes)))
                        .collect();
                    self.append(store, &entries)
                }
                Op::AppendGap => self.append(store, &[sample_entry(last + 2, last_term, 8)]),
                Op::AppendOverlap => self.append(store, &[sample_entry(last, last_term, 8)]),
                Op::TruncateSuffix { count } => {
                    let from = (last + 1).saturating_sub(u64::from(count)).max(first);
                    self.simple("truncate_suffix", store.truncate_suffix(from), |m| {
                        m.truncate_suffix(from)
                    })
                }
                Op::TruncateBelowFirst => {
                    self.simple("truncate_suffix", store.truncate_suffix(first - 1), |m| {
                        m.truncate_suffix(first - 1)
                    })
                }
                Op::SaveHardState { term_step, vote } => {
                    let current = self.model.hard_state();
                    let hard_state = HardState {
                        term: current.term + u64::from(term_step),
                        vote,
                        commit: current.commit.max(first - 1),
                    };
                    self.simple("save_hard_state", store.save_hard_state(&hard_state), |m| {
                        m.save_hard_state(&hard_state)
                    })
                }
                Op::Sync => {
                    let ok = agree("sync", store.sync(), self.model.sync())?;
                    if ok {
                        self.mark_durable();
                    }
                    Ok(())
                }
                Op::LocalSnapshot { back, data_bytes } => {
                    let index = last
                        .saturating_sub(u64::from(back))
                        .max(first - 1)
                        .max(snapshot.index);
                    let term = self.model.term(index).ok().flatten().unwrap_or(0);
                    self.snapshot(store, &meta(index, term), data_bytes, false)
                }
                Op::LeaderSnapshot {
                    offset,
                    conflicting,
                    data_bytes,
                } => {
                    let wanted = (last as i64).saturating_add(i64::from(offset)).max(0) as u64;
                    let index = wanted.max(snapshot.index + 1);
                    let local = self.model.term(index).ok().flatten();
                    let term = match (local, conflicting) {
                        (Some(t), false) => t,
                        _ => last_term + 1,
                    };
                    self.snapshot(store, &meta(index, term), data_bytes, true)
                }
                Op::StaleSnapshot => {
                    if snapshot.index == 0 {
                        return Ok(());
                    }
                    self.snapshot(store, &meta(snapshot.index - 1, 1), 16, false)
                }
                Op::AbandonSnapshot { data_bytes } => {
                    let data = sample_bytes(last, usize::from(data_bytes));
                    drop(write_snapshot(store, &meta(last, last_term), &data)?);
                    drop(write_snapshot(
                        &mut self.model,
                        &meta(last, last_term),
                        &data,
                    )?);
                    Ok(())
                }
                Op::Compact { back } => {
                    let through = snapshot.index.saturating_sub(u64::from(back));
                    self.simple("compact", store.compact(through), |m| m.compact(through))
                }
                Op::CompactBeyondSnapshot => {
                    let through = snapshot.index + 1;
                    self.simple("compact", store.compact(through), |m| m.compact(through))
                }
                Op::Restore => {
                    let got = store.restore().ctx("restore")?;
                    let want = self.model.restore().ctx("model restore")?;
                    self.remember();
                    ensure_eq!(got, want, "restored state");
                    Ok(())
                }
                Op::Reopen => Err("Reopen is handled by check_ops".to_string()),
            }
        }

        fn simple<E: fmt::Display>(
            &mut self,
            what: &str,
            store_result: Result<(), E>,
            on_model: impl FnOnce(&mut MemStorage) -> Result<(), MemStorageError>,
        ) -> Result<(), String> {
            if agree(what, store_result, on_model(&mut self.model))? {
                self.remember();
            }
            Ok(())
        }

        fn append<S: Storage>(&mut self, store: &mut S, entries: &[Entry]) -> Result<(), String> {
            // A crash may cut an append after any entry: remember each intermediate state.
            let mut partial = self.model.volatile_state().clone();
            let mut states = Vec::new();
            for entry in entries {
                if partial.append(std::slice::from_ref(entry)).is_err() {
                    break;
                }
                states.push(partial.clone());
            }
            if agree("append", store.append(entries), self.model.append(entries))? {
                self.history.extend(states);
            }
            Ok(())
        }

        fn snapshot<S: Storage>(
            &mut self,
            store: &mut S,
            meta: &SnapshotMeta,
            data_bytes: u16,
            from_leader: bool,
        ) -> Result<(), String> {
            let data = sample_bytes(meta.index, usize::from(data_bytes));
            let store_writer = write_snapshot(store, meta, &data)?;
            let model_writer = write_snapshot(&mut self.model, meta, &data)?;
            let ok = agree(
                "commit_snapshot",
                store.commit_snapshot(store_writer),
                self.model.commit_snapshot(model_writer),
            )?;
            if !ok {
                return Ok(());
            }
            self.mark_durable();
            if from_leader {
                let ok = agree(
                    "install_snapshot_log",
                    store.install_snapshot_log(meta),
                    self.model.install_snapshot_log(meta),
                )?;
                if ok {
                    self.remember();
                }
            }
            Ok(())
        }

        /// After a reopen, finds the state the store restored among those the model passed
        /// through since its last sync, and continues the model from it.
        pub(super) fn follow_reopen(&mut self, restored: &RestoredState) -> Result<(), String> {
            let found = self.history.iter().find(|state| {
                let mut candidate = (*state).clone();
                candidate.normalize();
                candidate.restored() == *restored
            });
            let Some(state) = found else {
                let synced = self.history[0].clone().restored_normalized();
                return Err(format!(
                    "after reopen the store restored a state the model never passed through \
                     since its last sync.\n  restored: {}\n  last synced: {}",
                    describe(restored),
                    describe(&synced)
                ));
            };
            self.model = MemStorage::from_durable(state.clone());
            let _ = self.model.restore();
            self.mark_durable();
            Ok(())
        }
    }

    fn describe(state: &RestoredState) -> String {
        let first = state.entries.first().map(|e| e.index);
        let last = state.entries.last().map(|e| e.index);
        format!(
            "{:?}, snapshot ({}, {}), entries {:?}..={:?}",
            state.hard_state, state.snapshot.index, state.snapshot.term, first, last
        )
    }

    /// Compares everything observable through the trait.
    pub(super) fn compare<S: Storage>(store: &S, model: &MemStorage) -> Result<(), String> {
        let (first, last) = (model.first_index(), model.last_index());
        ensure_eq!(
            (store.first_index(), store.last_index()),
            (first, last),
            "(first, last)"
        );
        ensure_eq!(
            store.snapshot_meta(),
            model.snapshot_meta(),
            "snapshot_meta"
        );
        let low = (first - 1)
            .min(model.snapshot_meta().index)
            .saturating_sub(1);
        for index in low..=last + 1 {
            let want = model.term(index).ctx("model term")?;
            ensure_eq!(store.term(index).ctx("term")?, want, "term({index})");
        }
        ensure_eq!(all_entries(store)?, all_entries(model)?, "entries");
        ensure_eq!(read_snapshot(store)?, read_snapshot(model)?, "snapshot");
        Ok(())
    }
}

/// [`MemStorage`], the reference store.
mod memory {
    use super::*;

    /// Why [`MemStorage`] refused a call. Every variant is caller misuse; the store is
    /// unchanged.
    #[derive(Clone, Debug, PartialEq, Eq, Error)]
    pub enum MemStorageError {
        /// The first appended entry does not follow the last stored one. Append at `expected`
        /// (truncate first to overwrite).
        #[error("append at index {got} does not follow the last index; expected {expected}")]
        NotContiguous {
            /// The index the next entry must have.
            expected: Index,
            /// The index it had.
            got: Index,
        },
        /// The entries of one append are not consecutive.
        #[error("appended entries are not consecutive at index {at}")]
        BatchNotContiguous {
            /// The first index out of sequence.
            at: Index,
        },
        /// `truncate_suffix` below the first stored index; compacted entries cannot be
        /// removed.
        #[error("cannot truncate from index {from}: the first stored index is {first}")]
        TruncateBelowFirst {
            /// The index asked for.
            from: Index,
            /// The first stored index.
            first: Index,
        },
        /// `compact` past the snapshot; only entries a snapshot covers may be dropped.
        #[error(
            "cannot compact through index {through}: the snapshot covers only {snapshot_index}"
        )]
        CompactBeyondSnapshot {
            /// The index asked for.
            through: Index,
            /// The current snapshot's index.
            snapshot_index: Index,
        },
        /// The snapshot is older than the current one; it was discarded.
        #[error("snapshot at index {index} is older than the current one at {current}")]
        StaleSnapshot {
            /// The rejected snapshot's index.
            index: Index,
            /// The current snapshot's index.
            current: Index,
        },
        /// A read outside the stored range.
        #[error("entries [{low}, {high}) are outside the stored range [{first}, {last}]")]
        OutOfRange {
            /// Requested start.
            low: Index,
            /// Requested end (exclusive).
            high: Index,
            /// First stored index.
            first: Index,
            /// Last stored index.
            last: Index,
        },
    }

    /// One side of a [`MemStorage`]: what a reader sees, or what survives a crash.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub(super) struct MemState {
        hard_state: HardState,
        snapshot: SnapshotMeta,
        snapshot_data: Option<Bytes>,
        base_index: Index,
        base_term: Term,
        entries: VecDeque<Entry>,
    }

    impl MemState {
        fn first_index(&self) -> Index {
            self.base_index + 1
        }

        fn last_index(&self) -> Index {
            self.base_index + self.entries.len() as u64
        }

        /// The log's own term at `index` (the base or a stored entry).
        fn log_term(&self, index: Index) -> Option<Term> {
            if index == self.base_index {
                Some(self.base_term)
            } else if index > self.base_index && index <= self.last_index() {
                Some(self.entries[(index - self.base_index - 1) as usize].term)
            } else {
                None
            }
        }

        fn term(&self, index: Index) -> Option<Term> {
            self.log_term(index)
                .or((index == self.snapshot.index).then_some(self.snapshot.term))
        }

        fn reset_to_snapshot(&mut self) {
            self.entries.clear();
            self.base_index = self.snapshot.index;
            self.base_term = self.snapshot.term;
        }

        pub(super) fn append(&mut self, entries: &[Entry]) -> Result<(), MemStorageError> {
            let Some(head) = entries.first() else {
                return Ok(());
            };
            let expected = self.last_index() + 1;
            if head.index != expected {
                return Err(MemStorageError::NotContiguous {
                    expected,
                    got: head.index,
                });
            }
            if let Some(pair) = entries
                .windows(2)
                .find(|pair| pair[1].index != pair[0].index + 1)
            {
                return Err(MemStorageError::BatchNotContiguous { at: pair[1].index });
            }
            self.entries.extend(entries.iter().cloned());
            Ok(())
        }

        fn truncate_suffix(&mut self, from: Index) -> Result<(), MemStorageError> {
            let first = self.first_index();
            if from < first {
                return Err(MemStorageError::TruncateBelowFirst { from, first });
            }
            if from > self.last_index() {
                return Ok(());
            }
            self.entries.truncate((from - first) as usize);
            if self.entries.is_empty() {
                self.reset_to_snapshot();
            }
            Ok(())
        }

        fn compact(&mut self, through: Index) -> Result<(), MemStorageError> {
            if through > self.snapshot.index {
                return Err(MemStorageError::CompactBeyondSnapshot {
                    through,
                    snapshot_index: self.snapshot.index,
                });
            }
            if through <= self.base_index {
                return Ok(());
            }
            if through >= self.last_index() {
                self.reset_to_snapshot();
                return Ok(());
            }
            let term = self.log_term(through).unwrap_or_default();
            self.entries.drain(..(through - self.base_index) as usize);
            self.base_index = through;
            self.base_term = term;
            Ok(())
        }

        fn check_snapshot(&self, meta: &SnapshotMeta) -> Result<(), MemStorageError> {
            if meta.index < self.snapshot.index {
                return Err(MemStorageError::StaleSnapshot {
                    index: meta.index,
                    current: self.snapshot.index,
                });
            }
            Ok(())
        }

        fn install_snapshot(&mut self, meta: SnapshotMeta, data: Bytes) {
            self.snapshot = meta;
            self.snapshot_data = Some(data);
            if self.entries.is_empty() {
                self.reset_to_snapshot();
            }
        }

        /// What `restore` does: keep the entries after the snapshot if the log agrees with
        /// it at the snapshot's index, otherwise drop the log.
        pub(super) fn normalize(&mut self) {
            let index = self.snapshot.index;
            if self.log_term(index) == Some(self.snapshot.term) {
                if index > self.base_index {
                    self.entries.drain(..(index - self.base_index) as usize);
                    self.base_index = index;
                    self.base_term = self.snapshot.term;
                }
            } else {
                self.reset_to_snapshot();
            }
        }

        fn entries(
            &self,
            low: Index,
            high: Index,
            max_bytes: u64,
        ) -> Result<Vec<Entry>, MemStorageError> {
            let (first, last) = (self.first_index(), self.last_index());
            if low > high || low < first || high > last + 1 {
                return Err(MemStorageError::OutOfRange {
                    low,
                    high,
                    first,
                    last,
                });
            }
            let mut total_bytes = 0u64;
            let mut out = Vec::new();
            for entry in self
                .entries
                .range((low - first) as usize..(high - first) as usize)
            {
                let size = entry.size_bytes();
                if !out.is_empty() && total_bytes + size > max_bytes {
                    break;
                }
                total_bytes += size;
                out.push(entry.clone());
            }
            Ok(out)
        }

        pub(super) fn restored(&self) -> RestoredState {
            RestoredState {
                hard_state: self.hard_state,
                snapshot: self.snapshot.clone(),
                entries: self.entries.iter().cloned().collect(),
            }
        }

        pub(super) fn restored_normalized(mut self) -> RestoredState {
            self.normalize();
            self.restored()
        }
    }

    /// A write not yet synced, kept so a crash can drop it.
    #[derive(Clone, Debug)]
    enum Pending {
        Append(Entry),
        Truncate(Index),
        HardState(HardState),
        Compact(Index),
        Normalize,
    }

    impl Pending {
        fn apply(&self, state: &mut MemState) {
            // Each write succeeded on the volatile state, which started from the durable
            // state and saw the same writes before it, so replaying it cannot fail.
            let result = match self {
                Pending::Append(entry) => state.append(std::slice::from_ref(entry)),
                Pending::Truncate(from) => state.truncate_suffix(*from),
                Pending::HardState(hard_state) => {
                    state.hard_state = *hard_state;
                    Ok(())
                }
                Pending::Compact(through) => state.compact(*through),
                Pending::Normalize => {
                    state.normalize();
                    Ok(())
                }
            };
            debug_assert!(result.is_ok(), "replaying {self:?} failed: {result:?}");
        }
    }

    /// The reference [`Storage`]: everything in memory, with durability modelled.
    ///
    /// Writes change the visible state at once and are queued; [`Storage::sync`] makes the
    /// queue durable and [`Storage::commit_snapshot`] syncs, then installs the snapshot
    /// durably. [`MemStorage::crash`] drops every write not synced, as a power loss would;
    /// [`MemStorage::crash_keeping`] keeps some of them, as a torn write would. The
    /// simulator and the runtime's tests use it as their disk.
    #[derive(Clone, Debug, Default)]
    pub struct MemStorage {
        volatile: MemState,
        durable: MemState,
        pending: Vec<Pending>,
    }

    impl MemStorage {
        /// An empty store.
        pub fn new() -> Self {
            MemStorage::default()
        }

        pub(super) fn from_durable(state: MemState) -> Self {
            MemStorage {
                volatile: state.clone(),
                durable: state,
                pending: Vec::new(),
            }
        }

        pub(super) fn volatile_state(&self) -> &MemState {
            &self.volatile
        }

        /// Loses every write not synced. Call [`Storage::restore`] afterwards, as a
        /// restarting node would.
        pub fn crash(&mut self) {
            self.crash_keeping(0);
        }

        /// Loses the writes not synced except the first `writes` of them (each entry of an
        /// append counts as one write), as a crash in the middle of writing would.
        pub fn crash_keeping(&mut self, writes: usize) {
            for pending in self.pending.iter().take(writes) {
                pending.apply(&mut self.durable);
            }
            self.pending.clear();
            self.volatile = self.durable.clone();
        }

        /// How many writes a crash would lose now.
        pub fn unsynced_writes(&self) -> usize {
            self.pending.len()
        }

        /// The hard state last saved (synced or not).
        pub fn hard_state(&self) -> HardState {
            self.volatile.hard_state
        }

        fn push(&mut self, pending: Pending) {
            pending.apply(&mut self.volatile);
            self.pending.push(pending);
        }
    }

    /// Receives a snapshot for [`MemStorage`].
    #[derive(Debug)]
    pub struct MemSnapshotWriter {
        meta: SnapshotMeta,
        data: Vec<u8>,
    }

    impl Write for MemSnapshotWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.data.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Storage for MemStorage {
        type Error = MemStorageError;
        type SnapshotReader = Cursor<Bytes>;
        type SnapshotWriter = MemSnapshotWriter;

        fn restore(&mut self) -> Result<RestoredState, MemStorageError> {
            self.push(Pending::Normalize);
            Ok(self.volatile.restored())
        }

        fn append(&mut self, entries: &[Entry]) -> Result<(), MemStorageError> {
            // Validate the whole batch first so a rejected append changes nothing.
            self.volatile.clone_bounds().append(entries)?;
            for entry in entries {
                self.push(Pending::Append(entry.clone()));
            }
            Ok(())
        }

        fn truncate_suffix(&mut self, from_index: Index) -> Result<(), MemStorageError> {
            let first = self.volatile.first_index();
            if from_index < first {
                return Err(MemStorageError::TruncateBelowFirst {
                    from: from_index,
                    first,
                });
            }
            self.push(Pending::Truncate(from_index));
            Ok(())
        }

        fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), MemStorageError> {
            self.push(Pending::HardState(*hard_state));
            Ok(())
        }

        fn sync(&mut self) -> Result<(), MemStorageError> {
            for pending in self.pending.drain(..) {
                pending.apply(&mut self.durable);
            }
            Ok(())
        }

        fn compact(&mut self, through_index: Index) -> Result<(), MemStorageError> {
            let snapshot_index = self.volatile.snapshot.index;
            if through_index > snapshot_index {
                return Err(MemStorageError::CompactBeyondSnapshot {
                    through: through_index,
                    snapshot_index,
                });
            }
            self.push(Pending::Compact(through_index));
            Ok(())
        }

        fn first_index(&self) -> Index {
            self.volatile.first_index()
        }

        fn last_index(&self) -> Index {
            self.volatile.last_index()
        }

        fn term(&self, index: Index) -> Result<Option<Term>, MemStorageError> {
            Ok(self.volatile.term(index))
        }

        fn entries(
            &self,
            low: Index,
            high: Index,
            max_bytes: u64,
        ) -> Result<Vec<Entry>, MemStorageError> {
            self.volatile.entries(low, high, max_bytes)
        }

        fn begin_snapshot(
            &mut self,
            meta: &SnapshotMeta,
        ) -> Result<MemSnapshotWriter, MemStorageError> {
            Ok(MemSnapshotWriter {
                meta: meta.clone(),
                data: Vec::new(),
            })
        }

        fn commit_snapshot(&mut self, writer: MemSnapshotWriter) -> Result<(), MemStorageError> {
            self.volatile.check_snapshot(&writer.meta)?;
            self.sync()?;
            let data = Bytes::from(writer.data);
            self.volatile
                .install_snapshot(writer.meta.clone(), data.clone());
            self.durable.install_snapshot(writer.meta, data);
            Ok(())
        }

        fn snapshot_meta(&self) -> SnapshotMeta {
            self.volatile.snapshot.clone()
        }

        fn open_snapshot(&self) -> Result<Option<(SnapshotMeta, Cursor<Bytes>)>, MemStorageError> {
            Ok(self
                .volatile
                .snapshot_data
                .clone()
                .map(|data| (self.volatile.snapshot.clone(), Cursor::new(data))))
        }
    }

    impl MemState {
        /// A copy with the log's bounds only, to validate an append without copying the
        /// entries.
        fn clone_bounds(&self) -> MemState {
            MemState {
                hard_state: self.hard_state,
                snapshot: SnapshotMeta::default(),
                snapshot_data: None,
                base_index: self.last_index(),
                base_term: 0,
                entries: VecDeque::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The kit checks the reference store, and catches stores that break the contract.
    use super::*;

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
                Flaw::LosesSyncedEntries
                    if store.inner.first_index() < store.inner.last_index() =>
                {
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
                Some(e)
                    if self.flaw == Flaw::IgnoresGaps && e.index > self.inner.last_index() + 1 =>
                {
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
        store.append(&util::run_of(1, 3, 1)).unwrap();
        store.sync().unwrap();
        store.append(&util::run_of(4, 6, 1)).unwrap();
        assert_eq!(store.unsynced_writes(), 3);
        store.crash_keeping(1);
        let restored = store.restore().unwrap();
        assert_eq!(restored.entries, util::run_of(1, 4, 1));
    }
}
