//! A conformance kit for [`crate::Storage`] implementations, and [`MemStorage`], the
//! in-memory reference store it measures them against.
//!
//! Every store (the file store in `raft-storage-file`, the simulator's, a user's own) must
//! behave the same way as far as the core can tell. This module states that behaviour as
//! executable checks, written against the trait only, with no IO of its own:
//!
//! * [`checks()`] lists named scenario checks (append and read back, truncation, compaction,
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
//!   while their total [`Entry::size_bytes`](crate::Entry::size_bytes) stays within `max_bytes` (the first entry is
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
//! * A fresh store restores [`HardState::default`](crate::HardState::default) and a snapshot at index 0, term 0 with an
//!   empty membership; the host substitutes its bootstrap membership (see
//!   [`RestoredState::bootstrap`](crate::RestoredState::bootstrap)).
//!
//! # Layout
//!
//! `runner` (the [`Harness`] a user writes, [`run_all`], [`assert_conforms`]), `checks`
//! (the named scenarios, by topic: log, durability, snapshots), `ops` and `model_run`
//! (the operation-sequence checker behind [`check_ops`]), `samples` and `support` (data and
//! helpers the checks share). The reference store itself is [`crate::storage::MemStorage`].

/// Returns the formatted message as an error unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// Returns an error showing both values unless they are equal.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($arg:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!("{}: expected {:?}, got {:?}", format!($($arg)+), want, got));
        }
    }};
}

mod checks;
mod harness;
mod model_run;
mod ops;
mod runner;
mod samples;
mod support;
#[cfg(test)]
mod tests;

/// Re-exported from [`crate::storage`], where the store lives (its old path here keeps
/// working).
pub use crate::storage::{MemSnapshotWriter, MemStorage, MemStorageError};
pub use checks::checks;
pub use harness::{Check, Harness};
pub use model_run::check_ops;
pub use ops::{Op, random_ops};
pub use runner::{Failure, assert_conforms, run_all};
pub use samples::{sample_bytes, sample_entry};
