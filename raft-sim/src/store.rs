//! The storage a simulated node runs on: the real [`raft_core::MemStorage`] (fast) or the
//! real [`FileStorage`] on a seeded [`SimFs`] (the production store under disk faults),
//! behind one [`Storage`] type so the host engine is the same in both runs.

use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::str::FromStr;

use bytes::Bytes;
use raft_core::storage::{MemSnapshotWriter, StorageMisuse};
use raft_core::{Entry, HardState, Index, MemStorage, RestoredState, SnapshotMeta, Storage, Term};
use raft_storage_file::{FileStorage, SimFs, SnapshotReader, SnapshotWriter, StorageError};
use thiserror::Error;

/// Which store the nodes run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StorageKind {
    /// `MemStorage`: durability modelled in memory (unsynced writes lost on a crash).
    #[default]
    Memory,
    /// `FileStorage` on a simulated file system (unsynced bytes lost or torn on a crash,
    /// bit flips at rest, failing fsyncs, a full disk).
    File,
}

impl StorageKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            StorageKind::Memory => "memory",
            StorageKind::File => "file",
        }
    }
}

impl std::fmt::Display for StorageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StorageKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "memory" => Ok(StorageKind::Memory),
            "file" => Ok(StorageKind::File),
            other => Err(format!("unknown storage `{other}`; known: memory, file")),
        }
    }
}

/// An open store of either kind. `Closed` stands between a crash and the next open of a
/// file store; every call then fails.
#[derive(Debug)]
// One per simulated node, held in place for the node's life and never moved in a hot path:
// the size of the largest variant costs nothing, boxing would cost an indirection per call.
#[allow(clippy::large_enum_variant)]
pub enum SimStore {
    /// The in-memory store, and the faults it injects.
    Memory(MemStorage, MemFaults),
    /// The file store on a simulated disk.
    File(FileStorage<SimFs>),
    /// No store open.
    Closed,
}

impl SimStore {
    /// True if a crash now could lose a write (the store holds writes not yet synced).
    pub fn has_unsynced_writes(&self) -> bool {
        match self {
            SimStore::Memory(store, _) => store.unsynced_writes() > 0,
            SimStore::File(store) => store
                .unsynced_tail()
                .is_some_and(|tail| tail.written_bytes > tail.synced_bytes),
            SimStore::Closed => false,
        }
    }
}

/// Faults injected into the in-memory store, the same ones `FileStorage`'s
/// `FaultInjector` injects into the file store, so a seed draws and suffers them on either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemFaults {
    /// Every write fails as on a full disk.
    pub disk_full: bool,
    /// Every sync fails.
    pub fail_syncs: bool,
}

impl SimStore {
    /// A new, empty in-memory store.
    pub fn memory() -> Self {
        SimStore::Memory(MemStorage::new(), MemFaults::default())
    }

    /// Sets the faults of an in-memory store (a file store takes its own injector's).
    pub fn set_mem_faults(&mut self, faults: MemFaults) {
        if let SimStore::Memory(_, current) = self {
            *current = faults;
        }
    }

    fn check_space(&self) -> Result<(), SimStoreError> {
        match self {
            SimStore::Memory(_, faults) if faults.disk_full => Err(SimStoreError::Injected(
                "no space left on device (injected)",
            )),
            _ => Ok(()),
        }
    }
}

/// An error of either store.
#[derive(Debug, Error)]
pub enum SimStoreError {
    /// From `MemStorage` (always misuse).
    #[error(transparent)]
    Memory(#[from] StorageMisuse),
    /// From `FileStorage`.
    #[error(transparent)]
    File(#[from] StorageError),
    /// The store is closed (the node crashed).
    #[error("the store is closed")]
    Closed,
    /// A fault injected into the in-memory store.
    #[error("{0}")]
    Injected(&'static str),
    /// A snapshot writer of the other kind.
    #[error("snapshot writer of another store")]
    ForeignWriter,
}

/// A snapshot reader of either store.
#[derive(Debug)]
pub enum SimReader {
    /// `MemStorage`'s.
    Memory(Cursor<Bytes>),
    /// `FileStorage`'s.
    File(SnapshotReader<SimFs>),
}

impl Read for SimReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SimReader::Memory(r) => r.read(buf),
            SimReader::File(r) => r.read(buf),
        }
    }
}

impl Seek for SimReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            SimReader::Memory(r) => r.seek(pos),
            SimReader::File(r) => r.seek(pos),
        }
    }
}

/// A snapshot writer of either store.
#[derive(Debug)]
pub enum SimWriter {
    /// `MemStorage`'s.
    Memory(MemSnapshotWriter),
    /// `FileStorage`'s.
    File(SnapshotWriter<SimFs>),
}

impl Write for SimWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SimWriter::Memory(w) => w.write(buf),
            SimWriter::File(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            SimWriter::Memory(w) => w.flush(),
            SimWriter::File(w) => w.flush(),
        }
    }
}

/// Calls `$call` on whichever store is open.
macro_rules! each {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            SimStore::Memory($s, _) => Ok($call?),
            SimStore::File($s) => Ok($call?),
            SimStore::Closed => Err(SimStoreError::Closed),
        }
    };
}

impl Storage for SimStore {
    type Error = SimStoreError;
    type SnapshotReader = SimReader;
    type SnapshotWriter = SimWriter;

    fn restore(&mut self) -> Result<RestoredState, SimStoreError> {
        each!(self, s => s.restore())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), SimStoreError> {
        self.check_space()?;
        each!(self, s => s.append(entries))
    }

    fn truncate_suffix(&mut self, from_index: Index) -> Result<(), SimStoreError> {
        each!(self, s => s.truncate_suffix(from_index))
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), SimStoreError> {
        self.check_space()?;
        each!(self, s => s.save_hard_state(hard_state))
    }

    fn sync(&mut self) -> Result<(), SimStoreError> {
        if let SimStore::Memory(_, faults) = self
            && faults.fail_syncs
        {
            return Err(SimStoreError::Injected("fsync failed: EIO (injected)"));
        }
        each!(self, s => s.sync())
    }

    fn compact(&mut self, through_index: Index) -> Result<(), SimStoreError> {
        each!(self, s => s.compact(through_index))
    }

    fn first_index(&self) -> Index {
        match self {
            SimStore::Memory(s, _) => s.first_index(),
            SimStore::File(s) => s.first_index(),
            SimStore::Closed => 1,
        }
    }

    fn last_index(&self) -> Index {
        match self {
            SimStore::Memory(s, _) => s.last_index(),
            SimStore::File(s) => s.last_index(),
            SimStore::Closed => 0,
        }
    }

    fn term(&self, index: Index) -> Result<Option<Term>, SimStoreError> {
        each!(self, s => s.term(index))
    }

    fn entries(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, SimStoreError> {
        each!(self, s => s.entries(low, high, max_bytes))
    }

    fn begin_snapshot(&mut self, meta: &SnapshotMeta) -> Result<SimWriter, SimStoreError> {
        match self {
            SimStore::Memory(s, _) => Ok(SimWriter::Memory(s.begin_snapshot(meta)?)),
            SimStore::File(s) => Ok(SimWriter::File(s.begin_snapshot(meta)?)),
            SimStore::Closed => Err(SimStoreError::Closed),
        }
    }

    fn commit_snapshot(&mut self, writer: SimWriter) -> Result<(), SimStoreError> {
        match (self, writer) {
            (SimStore::Memory(s, _), SimWriter::Memory(w)) => Ok(s.commit_snapshot(w)?),
            (SimStore::File(s), SimWriter::File(w)) => Ok(s.commit_snapshot(w)?),
            (SimStore::Closed, _) => Err(SimStoreError::Closed),
            _ => Err(SimStoreError::ForeignWriter),
        }
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        match self {
            SimStore::Memory(s, _) => s.snapshot_meta(),
            SimStore::File(s) => s.snapshot_meta(),
            SimStore::Closed => SnapshotMeta::default(),
        }
    }

    fn open_snapshot(&self) -> Result<Option<(SnapshotMeta, SimReader)>, SimStoreError> {
        match self {
            SimStore::Memory(s, _) => Ok(s
                .open_snapshot()?
                .map(|(meta, r)| (meta, SimReader::Memory(r)))),
            SimStore::File(s) => Ok(s
                .open_snapshot()?
                .map(|(meta, r)| (meta, SimReader::File(r)))),
            SimStore::Closed => Err(SimStoreError::Closed),
        }
    }

    fn install_snapshot_log(&mut self, meta: &SnapshotMeta) -> Result<(), SimStoreError> {
        each!(self, s => s.install_snapshot_log(meta))
    }
}
