//! The directory lock: one open store per directory, across processes. Two writers in one
//! directory would interleave records and remove each other's segments.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::StorageError;

/// The lock file's name in the store's directory.
pub(crate) const FILE_NAME: &str = "LOCK";
/// How long an open waits for a lock that is held before it reports
/// [`StorageError::Locked`].
const LOCK_WAIT_MAX: Duration = Duration::from_millis(250);

/// An exclusive lock on a store's directory, held until dropped. It is an advisory lock on
/// the `LOCK` file (`flock` on Linux), so the kernel releases it when the process dies: a
/// crash never leaves a directory locked.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir`, or fails with [`StorageError::Locked`] if another store
    /// (in this process or another) holds it for more than a quarter of a second.
    pub(crate) fn take(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StorageError::io("open lock file", &path, e))?;
        // A process forked by any thread of this one holds a copy of every descriptor, the
        // lock's included, until it execs (std's descriptors close on exec): a store closed
        // and reopened meanwhile finds its own lock still held for that moment. Retrying
        // briefly rides that out; a real second store holds the lock for good.
        let mut wait = Duration::from_millis(1);
        let deadline = Instant::now() + LOCK_WAIT_MAX;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() + wait < deadline => {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StorageError::Locked {
                        dir: dir.to_path_buf(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(StorageError::io("lock", &path, e)),
            }
        }
    }
}
