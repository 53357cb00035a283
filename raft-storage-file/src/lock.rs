//! The directory lock: one open store per directory, across processes. Two writers in one
//! directory would interleave records and remove each other's segments.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::StorageError;

/// The lock file's name in the store's directory.
pub(crate) const FILE_NAME: &str = "LOCK";

/// An exclusive lock on a store's directory, held until dropped. It is an advisory lock on
/// the `LOCK` file (`flock` on Linux), so the kernel releases it when the process dies: a
/// crash never leaves a directory locked.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir`, or fails with [`StorageError::Locked`] if another store
    /// (in this process or another) holds it.
    pub(crate) fn take(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StorageError::io("open lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(StorageError::Locked {
                dir: dir.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(StorageError::io("lock", &path, e)),
        }
    }
}
