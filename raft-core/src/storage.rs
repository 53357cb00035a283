//! The storage interface every durable store implements: the file store
//! (`raft-storage-file`), [`MemStorage`] (in memory, durability modelled) and a user's own.
//!
//! The core keeps the log after the latest snapshot in memory and tells its host what to
//! write through [`crate::Action`]s; a `Storage` is where the host writes it. The mapping is
//! one to one:
//!
//! | action | storage calls |
//! |---|---|
//! | [`crate::Action::Persist`] | [`Storage::truncate_suffix`], [`Storage::append`], [`Storage::save_hard_state`], then [`Storage::sync`] (one sync may cover many batches) |
//! | [`crate::Action::WriteSnapshotChunk`] | [`Storage::begin_snapshot`] at offset 0, `write_all` on the writer, and on the last chunk [`Storage::commit_snapshot`] then [`Storage::install_snapshot_log`] |
//! | [`crate::Action::CompactLog`] | [`Storage::compact`] |
//!
//! A snapshot the host takes of its own state machine goes through
//! [`Storage::begin_snapshot`] and [`Storage::commit_snapshot`] too.
//!
//! Contract, checked by the conformance kit: writes become durable in the order they were
//! made, and only [`Storage::sync`] (or [`Storage::commit_snapshot`]) promises durability;
//! after a crash, [`Storage::restore`] returns a prefix of the writes made, containing at
//! least everything synced; corrupt data that is not a torn tail is an error, never silently
//! skipped.

use std::io::{Read, Seek, Write};

mod mem_state;
mod memory;

pub(crate) use mem_state::MemState;
pub use memory::{MemSnapshotWriter, MemStorage, MemStorageError};

use crate::types::{Entry, HardState, Index, RestoredState, SnapshotMeta, Term};

/// A durable store for one node's log, hard state and snapshots.
pub trait Storage: Send + 'static {
    /// The store's error type. Errors must name the file and offset involved where there
    /// is one.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Streams the current snapshot's bytes. Seek positions are offsets into the snapshot's
    /// data (0 is its first byte, whatever header the store keeps in front of it), so a
    /// host sending the snapshot in chunks seeks to each chunk's offset instead of reading
    /// from the start every time. As with files, seeking past the end is allowed (reads
    /// there return no bytes) and seeking before 0 is an error.
    type SnapshotReader: Read + Seek + Send + 'static;
    /// Receives a new snapshot's bytes; nothing is visible until committed.
    type SnapshotWriter: Write + Send + 'static;

    /// Everything the node needs to restart: the hard state, the latest snapshot's metadata
    /// and the entries after it.
    ///
    /// A store that has never committed a snapshot returns [`SnapshotMeta::default`]: index
    /// 0, term 0 and an *empty* membership, because a store cannot know the cluster's
    /// founding membership. The host supplies it: when the whole restored state is empty
    /// (default hard state, no entries, snapshot index 0 with no members) and the node
    /// founds a new cluster, the host starts it from [`RestoredState::bootstrap`] with the
    /// founding membership (and should make that membership durable, e.g. as a snapshot
    /// at index 0, so the next restart restores it); otherwise it starts from what was
    /// restored, and a node with an empty membership waits for a leader to contact it.
    fn restore(&mut self) -> Result<RestoredState, Self::Error>;

    /// Appends entries; the first must follow the last stored entry (or the snapshot).
    fn append(&mut self, entries: &[Entry]) -> Result<(), Self::Error>;

    /// Removes every entry with index >= `from_index`.
    fn truncate_suffix(&mut self, from_index: Index) -> Result<(), Self::Error>;

    /// Replaces the hard state.
    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), Self::Error>;

    /// Makes every earlier write durable. A failure is fatal for the node: the store's
    /// state is unknown and the node must stop (never retry a failed sync).
    fn sync(&mut self) -> Result<(), Self::Error>;

    /// Drops entries with index <= `through_index` (they are covered by a snapshot).
    fn compact(&mut self, through_index: Index) -> Result<(), Self::Error>;

    /// Index of the first stored entry (snapshot index + 1 when the log is empty).
    fn first_index(&self) -> Index;

    /// Index of the last stored entry (the snapshot index when the log is empty).
    fn last_index(&self) -> Index;

    /// The term of the entry at `index`: the snapshot's term at its index, `None` outside
    /// the stored range.
    fn term(&self, index: Index) -> Result<Option<Term>, Self::Error>;

    /// Entries in `[low, high)`, stopping early once `max_bytes` is exceeded (at least one
    /// entry is returned if the range is not empty).
    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, Self::Error>;

    /// Starts writing a new snapshot described by `meta`.
    fn begin_snapshot(&mut self, meta: &SnapshotMeta) -> Result<Self::SnapshotWriter, Self::Error>;

    /// Makes the written snapshot durable and current (replacing the previous one). It does
    /// not change the log.
    fn commit_snapshot(&mut self, writer: Self::SnapshotWriter) -> Result<(), Self::Error>;

    /// The current snapshot's metadata (index 0 when there is none).
    fn snapshot_meta(&self) -> SnapshotMeta;

    /// Opens the current snapshot for reading, positioned at the first byte of its data;
    /// `None` when there is none with data.
    fn open_snapshot(&self) -> Result<Option<(SnapshotMeta, Self::SnapshotReader)>, Self::Error>;

    /// After a snapshot received from the leader is committed: keeps the stored entries
    /// after it if the entry at its index matches its term, otherwise drops the whole log.
    fn install_snapshot_log(&mut self, meta: &SnapshotMeta) -> Result<(), Self::Error> {
        if self.term(meta.index)? == Some(meta.term) && meta.index <= self.last_index() {
            self.compact(meta.index)
        } else {
            let first = self.first_index();
            if first <= self.last_index() {
                self.truncate_suffix(first)?;
            }
            self.compact(meta.index)
        }
    }
}

/// A call that breaks the [`Storage`] contract (caller misuse), refused with the store
/// unchanged. Shared by every store so the same misuse reads the same everywhere.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageMisuse {
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
    #[error("cannot compact through index {through}: the snapshot covers only {snapshot_index}")]
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
