//! A planted bug for the nemesis tests, behind the hidden, test-only
//! `raft-kv serve --unsafe-ack-before-fsync`: never use it with data you want to keep.
//!
//! [`AckBeforeSync`] wraps the real store and reports every sync done without syncing, so
//! the node acknowledges votes and log entries (and through them client writes) that are
//! not durable. A SIGKILL does not lose the page cache, so on its own that bug is invisible
//! on a healthy machine; to stand for the power loss that would expose it, the wrapper
//! drops the unsynced tail when the node restarts: the last [`LOST_TAIL_ENTRIES`] entries
//! after the snapshot (never synced, so a real crash could lose them), with the hard state's
//! commit index pulled back to match. A majority crashing at once then forgets writes the
//! cluster acknowledged, which the nemesis must notice.

use raft_core::{Entry, HardState, Index, RestoredState, SnapshotMeta, Storage, Term};

/// Entries forgotten at each restart: about a second of writes under the nemesis load.
pub const LOST_TAIL_ENTRIES: u64 = 1_000;

/// The sabotaged store (see the module doc).
pub struct AckBeforeSync<S> {
    inner: S,
}

impl<S: Storage> AckBeforeSync<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        AckBeforeSync { inner }
    }

    /// Forgets the "unsynced" tail, durably, before the node reads its state.
    fn lose_tail(&mut self) -> Result<(), S::Error> {
        let restored = self.inner.restore()?;
        let last = self.inner.last_index();
        let keep_through = last
            .saturating_sub(LOST_TAIL_ENTRIES)
            .max(restored.snapshot.index);
        if keep_through < last {
            self.inner.truncate_suffix(keep_through + 1)?;
            let hard_state = HardState {
                commit: restored.hard_state.commit.min(keep_through),
                ..restored.hard_state
            };
            self.inner.save_hard_state(&hard_state)?;
            self.inner.sync()?;
            tracing::warn!(
                from = keep_through + 1,
                through = last,
                "--unsafe-ack-before-fsync: dropped the log tail a power loss could have lost"
            );
        }
        Ok(())
    }
}

impl<S: Storage> Storage for AckBeforeSync<S> {
    type Error = S::Error;
    type SnapshotReader = S::SnapshotReader;
    type SnapshotWriter = S::SnapshotWriter;

    fn restore(&mut self) -> Result<RestoredState, Self::Error> {
        self.lose_tail()?;
        self.inner.restore()
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), Self::Error> {
        self.inner.append(entries)
    }

    fn truncate_suffix(&mut self, from_index: Index) -> Result<(), Self::Error> {
        self.inner.truncate_suffix(from_index)
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), Self::Error> {
        self.inner.save_hard_state(hard_state)
    }

    /// The bug: claims durability without asking the disk for it.
    fn sync(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn compact(&mut self, through_index: Index) -> Result<(), Self::Error> {
        self.inner.compact(through_index)
    }

    fn first_index(&self) -> Index {
        self.inner.first_index()
    }

    fn last_index(&self) -> Index {
        self.inner.last_index()
    }

    fn term(&self, index: Index) -> Result<Option<Term>, Self::Error> {
        self.inner.term(index)
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, Self::Error> {
        self.inner.entries(low, high, max_bytes)
    }

    fn begin_snapshot(&mut self, meta: &SnapshotMeta) -> Result<Self::SnapshotWriter, Self::Error> {
        self.inner.begin_snapshot(meta)
    }

    fn commit_snapshot(&mut self, writer: Self::SnapshotWriter) -> Result<(), Self::Error> {
        self.inner.commit_snapshot(writer)
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.inner.snapshot_meta()
    }

    fn open_snapshot(&self) -> Result<Option<(SnapshotMeta, Self::SnapshotReader)>, Self::Error> {
        self.inner.open_snapshot()
    }

    fn install_snapshot_log(&mut self, meta: &SnapshotMeta) -> Result<(), Self::Error> {
        self.inner.install_snapshot_log(meta)
    }
}
