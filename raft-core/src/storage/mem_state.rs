//! One side of a [`MemStorage`](super::MemStorage): the log, hard state and snapshot as a
//! reader sees them, or as they survive a crash.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::storage::StorageMisuse as MemStorageError;
use crate::types::{Entry, HardState, Index, RestoredState, SnapshotMeta, Term};

/// One side of a [`MemStorage`](super::MemStorage): what a reader sees, or what survives a
/// crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemState {
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: SnapshotMeta,
    pub(crate) snapshot_data: Option<Bytes>,
    base_index: Index,
    base_term: Term,
    entries: VecDeque<Entry>,
}

impl MemState {
    pub(crate) fn first_index(&self) -> Index {
        self.base_index + 1
    }

    pub(crate) fn last_index(&self) -> Index {
        self.base_index + self.entries.len() as u64
    }

    /// The log's own term at `index` (the base or a stored entry).
    fn log_term(&self, index: Index) -> Option<Term> {
        if index == self.base_index {
            Some(self.base_term)
        } else if index > self.base_index && index <= self.last_index() {
            Some(self.entries[(index - self.base_index - 1) as usize].term)
        } else {
            None
        }
    }

    pub(crate) fn term(&self, index: Index) -> Option<Term> {
        self.log_term(index)
            .or((index == self.snapshot.index).then_some(self.snapshot.term))
    }

    fn reset_to_snapshot(&mut self) {
        self.entries.clear();
        self.base_index = self.snapshot.index;
        self.base_term = self.snapshot.term;
    }

    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<(), MemStorageError> {
        let Some(head) = entries.first() else {
            return Ok(());
        };
        let expected = self.last_index() + 1;
        if head.index != expected {
            return Err(MemStorageError::NotContiguous {
                expected,
                got: head.index,
            });
        }
        if let Some(pair) = entries
            .windows(2)
            .find(|pair| pair[1].index != pair[0].index + 1)
        {
            return Err(MemStorageError::BatchNotContiguous { at: pair[1].index });
        }
        self.entries.extend(entries.iter().cloned());
        Ok(())
    }

    pub(crate) fn truncate_suffix(&mut self, from: Index) -> Result<(), MemStorageError> {
        let first = self.first_index();
        if from < first {
            return Err(MemStorageError::TruncateBelowFirst { from, first });
        }
        if from > self.last_index() {
            return Ok(());
        }
        self.entries.truncate((from - first) as usize);
        if self.entries.is_empty() {
            self.reset_to_snapshot();
        }
        Ok(())
    }

    pub(crate) fn compact(&mut self, through: Index) -> Result<(), MemStorageError> {
        if through > self.snapshot.index {
            return Err(MemStorageError::CompactBeyondSnapshot {
                through,
                snapshot_index: self.snapshot.index,
            });
        }
        if through <= self.base_index {
            return Ok(());
        }
        if through >= self.last_index() {
            self.reset_to_snapshot();
            return Ok(());
        }
        let term = self.log_term(through).unwrap_or_default();
        self.entries.drain(..(through - self.base_index) as usize);
        self.base_index = through;
        self.base_term = term;
        Ok(())
    }

    pub(crate) fn check_snapshot(&self, meta: &SnapshotMeta) -> Result<(), MemStorageError> {
        if meta.index < self.snapshot.index {
            return Err(MemStorageError::StaleSnapshot {
                index: meta.index,
                current: self.snapshot.index,
            });
        }
        Ok(())
    }

    pub(crate) fn install_snapshot(&mut self, meta: SnapshotMeta, data: Bytes) {
        self.snapshot = meta;
        self.snapshot_data = Some(data);
        if self.entries.is_empty() {
            self.reset_to_snapshot();
        }
    }

    /// What `restore` does: keep the entries after the snapshot if the log agrees with
    /// it at the snapshot's index, otherwise drop the log.
    pub(crate) fn normalize(&mut self) {
        let index = self.snapshot.index;
        if self.log_term(index) == Some(self.snapshot.term) {
            if index > self.base_index {
                self.entries.drain(..(index - self.base_index) as usize);
                self.base_index = index;
                self.base_term = self.snapshot.term;
            }
        } else {
            self.reset_to_snapshot();
        }
    }

    pub(crate) fn entries(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, MemStorageError> {
        let (first, last) = (self.first_index(), self.last_index());
        if low > high || low < first || high > last + 1 {
            return Err(MemStorageError::OutOfRange {
                low,
                high,
                first,
                last,
            });
        }
        let mut total_bytes = 0u64;
        let mut out = Vec::new();
        for entry in self
            .entries
            .range((low - first) as usize..(high - first) as usize)
        {
            let size = entry.size_bytes();
            if !out.is_empty() && total_bytes + size > max_bytes {
                break;
            }
            total_bytes += size;
            out.push(entry.clone());
        }
        Ok(out)
    }

    pub(crate) fn restored(&self) -> RestoredState {
        RestoredState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.iter().cloned().collect(),
        }
    }

    pub(crate) fn restored_normalized(mut self) -> RestoredState {
        self.normalize();
        self.restored()
    }
}

impl MemState {
    /// A copy with the log's bounds only, to validate an append without copying the
    /// entries.
    pub(crate) fn clone_bounds(&self) -> MemState {
        MemState {
            hard_state: self.hard_state,
            snapshot: SnapshotMeta::default(),
            snapshot_data: None,
            base_index: self.last_index(),
            base_term: 0,
            entries: VecDeque::new(),
        }
    }
}
