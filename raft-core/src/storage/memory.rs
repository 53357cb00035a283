//! [`MemStorage`], the reference store: everything in memory, with durability modelled.

use std::io::{Cursor, Write};

use bytes::Bytes;

use super::mem_state::MemState;
use crate::storage::Storage;
use crate::types::{Entry, HardState, Index, RestoredState, SnapshotMeta, Term};

/// Why [`MemStorage`] refused a call: always caller misuse, the store unchanged.
pub type MemStorageError = crate::storage::StorageMisuse;

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

/// A [`Storage`] that keeps everything in memory, with durability modelled: the reference
/// store of the conformance kit, a fast disk for simulations and tests, and a store for a
/// node whose data may vanish with the process (a cache, a test cluster).
///
/// Writes change the visible state at once and are queued; [`Storage::sync`] makes the
/// queue durable and [`Storage::commit_snapshot`] syncs, then installs the snapshot
/// durably. Nothing survives the process: "durable" means "survives
/// [`MemStorage::crash`]", which drops every write not synced, as a power loss would;
/// [`MemStorage::crash_keeping`] keeps some of them, as a torn write would. A simulator
/// crashes a node by calling one of them and restarting the node from
/// [`Storage::restore`].
///
/// Every call either succeeds or fails with [`StorageMisuse`](crate::storage::StorageMisuse)
/// (a contract violation, the store unchanged); it never fails for IO reasons.
///
/// Memory: the log since the last compaction and the latest snapshot's bytes, twice (what
/// a reader sees and what survives a crash) while writes are unsynced; entries share
/// their command bytes ([`bytes::Bytes`]), so the second copy costs little.
///
/// ```
/// use raft_core::storage::MemStorage;
/// use raft_core::{Entry, EntryPayload, Storage};
///
/// let mut store = MemStorage::new();
/// let entry = Entry { term: 1, index: 1, payload: EntryPayload::Noop };
/// store.append(&[entry.clone()]).unwrap();
/// store.crash(); // not synced: lost
/// assert_eq!(store.last_index(), 0);
/// store.append(&[entry]).unwrap();
/// store.sync().unwrap();
/// store.crash(); // synced: kept
/// assert_eq!(store.restore().unwrap().entries.len(), 1);
/// ```
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

    pub(crate) fn from_durable(state: MemState) -> Self {
        MemStorage {
            volatile: state.clone(),
            durable: state,
            pending: Vec::new(),
        }
    }

    pub(crate) fn volatile_state(&self) -> &MemState {
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
