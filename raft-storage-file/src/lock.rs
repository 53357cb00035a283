//! The directory lock: one open store per directory, across processes. Two writers in one
//! directory would interleave records and remove each other's segments.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::StorageError;
use crate::fs::FileSystem;

/// The lock file's name in the store's directory.
pub(crate) const FILE_NAME: &str = "LOCK";
/// How long an open waits for a lock that is held before it reports
/// [`StorageError::Locked`].
const LOCK_WAIT_MAX: Duration = Duration::from_millis(250);

/// Takes the exclusive lock on `dir` (see [`FileSystem::try_lock_dir`]), or fails with
/// [`StorageError::Locked`] if another store (in this process or another) holds it for
/// more than a quarter of a second.
pub(crate) fn take<F: FileSystem>(fs: &F, dir: &Path) -> Result<F::DirLock, StorageError> {
    // A process forked by any thread of this one holds a copy of every descriptor, the
    // lock's included, until it execs (std's descriptors close on exec): a store closed
    // and reopened meanwhile finds its own lock still held for that moment. Retrying
    // briefly rides that out; a real second store holds the lock for good.
    let mut wait = Duration::from_millis(1);
    let deadline = Instant::now() + LOCK_WAIT_MAX;
    loop {
        match fs.try_lock_dir(dir) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) if Instant::now() + wait < deadline => {
                std::thread::sleep(wait);
                wait *= 2;
            }
            Ok(None) => {
                return Err(StorageError::Locked {
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(StorageError::io("lock", dir.join(FILE_NAME), e)),
        }
    }
}
