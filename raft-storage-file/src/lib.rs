//! # raft-storage-file
//!
//! A durable [`raft_core::Storage`] on the local file system: the log in checksummed,
//! append-only segment files, the hard state as records in that log, and snapshots in
//! their own file written by rename. [`FileStorage::open`] recovers after any crash.
//!
//! ```no_run
//! use raft_core::Storage;
//! use raft_storage_file::FileStorage;
//!
//! # fn main() -> Result<(), raft_storage_file::StorageError> {
//! let mut store = FileStorage::open("/var/lib/mynode/raft")?;
//! let restored = store.restore()?; // hand this to raft_core::Node::new
//! # let _ = restored;
//! # Ok(())
//! # }
//! ```
//!
//! ## Durability
//!
//! * Writes ([`raft_core::Storage::append`], `save_hard_state`, `truncate_suffix`,
//!   `compact`) go to the page cache; [`raft_core::Storage::sync`] makes all of them durable
//!   with one `fdatasync` (group commit: a host batches many appends per sync) plus a
//!   directory fsync when files were created or removed.
//! * A failed fsync is fatal: the call returns the error and the store refuses every later
//!   write with [`StorageError::Stopped`]. Restart the node; it recovers from what is
//!   durable. A failed write (e.g. `ENOSPC`) is undone and returned as
//!   [`StorageError::Io`]; the store keeps working.
//! * Snapshots are streamed into a temporary file, fsynced, renamed into place and the
//!   directory fsynced. Neither writer nor reader holds the snapshot in memory.
//!
//! ## Recovery
//!
//! Opening scans every segment and verifies every checksum. A torn tail of the last
//! segment (a crash in the middle of an unsynced write) is cut off and reported through
//! [`FileStorage::recovery_report`] and a `tracing` warning. Any other damage is an error
//! naming the file and offset, and the store does not open: a node must not serve or vote
//! with wrong data. See [`on_disk_format`] for the exact rules.
//!
//! Recovery runs at about the disk's speed: reader threads ([`Options::recovery_threads`])
//! read each segment into one buffer and check its records, and the calling thread decodes
//! the live entries as segments arrive. Command payloads are [`bytes::Bytes`] slices of
//! those buffers, not copies (the same holds for entries read later, which share a buffer
//! of up to 1 MiB per read). A buffer is freed when the last entry sharing it is dropped,
//! so a state machine that keeps a command's `Bytes` itself for long (rather than values
//! decoded from it) keeps that whole buffer alive: copy such bytes
//! (`Bytes::copy_from_slice`).
//!
//! ## Testing your host
//!
//! [`FaultInjector`] (in [`Options::faults`]) fills the disk or fails syncs on demand, so
//! a host can test its reaction to `ENOSPC` and to a fatal sync failure.
//!
//! ## Other file systems
//!
//! The store reaches the disk only through the small [`FileSystem`] and [`FsFile`]
//! traits; [`FileStorage::open`] uses [`StdFs`] (`std::fs`), and
//! [`FileStorage::open_on`] takes any other. With the `simulated-fs` feature, `SimFs` is
//! an in-memory file system that loses unsynced writes on a crash (keeping a random,
//! possibly torn prefix), flips bits on read, fails syncs and fills up, all from a seed:
//! a deterministic simulator runs the real store on it.
#![forbid(unsafe_code)]

mod bit_flip;
mod chain;
mod decode;
mod error;
mod fault;
mod format;
mod fs;
mod lock;
mod reaper;
mod recovery;
mod scan;
mod segment;
#[cfg(feature = "simulated-fs")]
mod sim_fs;
mod snapshot;
mod store;

pub use error::StorageError;
pub use fault::{FaultInjector, PlantedBug};
pub use format::FORMAT_VERSION;
pub use fs::{DirEntry, FileSystem, FsFile, StdFile, StdFs};
pub use recovery::{RecoveryReport, TornTail};
#[cfg(feature = "simulated-fs")]
pub use sim_fs::{SimDirLock, SimFaults, SimFile, SimFs, SimFsStats};
pub use snapshot::{SnapshotReader, SnapshotWriter};
pub use store::{FileStorage, Options, UnsyncedTail};

pub mod on_disk_format {
    //! The on-disk format, from `FORMAT.md` in this crate.
    #![doc = include_str!("../FORMAT.md")]
}
