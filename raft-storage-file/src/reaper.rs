//! Removes retired segment files on a thread of its own. Unlinking a 64 MiB segment took
//! 10-50 ms on the ext4 disk measured (freeing extents, discard), and a compaction after a
//! large snapshot retires several at once: done inline, the disk lane stopped appending
//! and syncing for 100-200 ms, as long as an election timeout (BENCHMARKS.md, perf-mb).
//!
//! Deferring a removal is safe for the same reason a crash before the directory fsync is:
//! a retired segment holds nothing live, and recovery retires such a segment again if it
//! is still there. Sequence numbers only grow, so a pending path never names a new file;
//! dropping the reaper waits for the removals still queued, so a store reopened in the
//! same process never sees a file disappear under it.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::fs::FileSystem;

/// A background remover of files; see the module docs.
#[derive(Debug)]
pub(crate) struct Reaper {
    queue: Option<mpsc::Sender<PathBuf>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Starts the thread, or returns `None` if it cannot be started (the caller then
    /// removes files itself).
    pub(crate) fn start<F: FileSystem>(fs: F) -> Option<Reaper> {
        let (queue, paths) = mpsc::channel::<PathBuf>();
        let thread = std::thread::Builder::new()
            .name("raft-reaper".into())
            .spawn(move || {
                for path in paths {
                    if let Err(e) = fs.remove_file(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove a retired segment");
                    }
                }
            });
        match thread {
            Ok(thread) => Some(Reaper {
                queue: Some(queue),
                thread: Some(thread),
            }),
            Err(error) => {
                tracing::warn!(%error, "cannot start the segment reaper; removing inline");
                None
            }
        }
    }

    /// Queues `path` for removal; gives it back if the thread is gone.
    pub(crate) fn remove(&self, path: PathBuf) -> Result<(), PathBuf> {
        match &self.queue {
            Some(queue) => queue.send(path).map_err(|e| e.0),
            None => Err(path),
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has removed what is queued.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the segment reaper panicked");
        }
    }
}
