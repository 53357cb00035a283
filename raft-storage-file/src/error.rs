//! The file store's error type, sorted by blame: the disk, the data on it, the caller.

use std::io;
use std::path::PathBuf;

use raft_core::Index;
use thiserror::Error;

/// Why a [`crate::FileStorage`] call failed. Each variant says what to do next.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An IO call failed (e.g. the disk is full). The store undid the partial write and
    /// is unchanged; retry once the cause is fixed. (A failed sync is [`Self::Stopped`].)
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. "append to".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Data on disk is damaged somewhere a crash cannot explain. The node must not start
    /// on it: restore the directory from a replica or a backup.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file was written by an incompatible version of this crate. Use a build that reads
    /// that version.
    #[error("{path} uses on-disk format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// Log entries between the snapshot and the first segment, or between two segments, are
    /// missing (a segment file was deleted). The node must not start; restore the
    /// directory from a replica or a backup.
    #[error(
        "log entries are missing before {path}: it starts at index {found}, expected {expected}"
    )]
    MissingEntries {
        /// The segment after the hole.
        path: PathBuf,
        /// The index that should have come next.
        expected: Index,
        /// The first index the segment holds.
        found: Index,
    },
    /// Another open store, in this process or another, holds the directory's lock. Two
    /// writers would corrupt the directory: close the other store (stop the other node)
    /// first, or open another directory.
    #[error(
        "storage directory {dir} is already in use by another open store (its LOCK file is locked)"
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// An earlier sync (or write rollback) failed, so what is on disk is unknown. The store
    /// refuses every write: stop the node and restart it, which recovers from what is
    /// durable.
    #[error("storage stopped after a fatal error ({reason}); restart the node")]
    Stopped {
        /// The error that stopped the store.
        reason: String,
    },
    /// An entry is larger than a record may be; split the command.
    #[error("entry {index} encodes to {bytes} bytes; the limit is {max_bytes}")]
    EntryTooLarge {
        /// The entry's index.
        index: Index,
        /// Its encoded size.
        bytes: usize,
        /// The largest record body accepted.
        max_bytes: usize,
    },
    /// A snapshot writer from another store was handed to `commit_snapshot`.
    #[error("the snapshot writer belongs to {writer_dir}, not to this store")]
    ForeignSnapshotWriter {
        /// The writer's directory.
        writer_dir: PathBuf,
    },
    /// A call that breaks the storage contract (the store is unchanged).
    #[error(transparent)]
    Misuse(#[from] raft_core::storage::StorageMisuse),
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}
