//! The change history behind watches: a bounded ring of the most recent changes (put or
//! delete of one key), kept inside the replicated state.
//!
//! Why in the state machine: a watch must continue exactly (no skip, no repeat) when a client
//! moves to another node. That needs every replica to hold the same history at the same
//! applied index, so the history is built only from applied commands, bounded only by
//! [`KvConfig`](crate::KvConfig) limits every replica shares, and saved in snapshots. A node
//! that restarts or installs a snapshot therefore serves the same revisions as the others.
//!
//! The ring keeps every change with `revision > compacted_revision`: a watch may start at
//! any revision after `compacted_revision` (revisions between changes simply have none).
//! Eviction is oldest first, whenever the count or the byte total exceeds its limit.

use bytes::Bytes;
use imbl::Vector;
use serde::{Deserialize, Serialize};

/// Bytes a change costs beyond its key and value: revision, kind and the ring's own
/// bookkeeping, so that a flood of empty values still counts against the byte limit.
pub const CHANGE_OVERHEAD_BYTES: u64 = 32;

/// One applied change to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The revision of the change (the log index of the command that made it).
    pub revision: u64,
    /// The key changed.
    pub key: Bytes,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// What a [`Change`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// The key was set to this value.
    Put {
        /// The new value.
        value: Bytes,
    },
    /// The key was deleted (only deletes of an existing key are changes).
    Delete,
}

impl Change {
    /// What the change costs against [`crate::KvConfig::history_bytes_max`].
    pub fn cost_bytes(&self) -> u64 {
        let value_bytes = match &self.kind {
            ChangeKind::Put { value } => value.len() as u64,
            ChangeKind::Delete => 0,
        };
        self.key.len() as u64 + value_bytes + CHANGE_OVERHEAD_BYTES
    }
}

/// The bounded history. Cloning is O(1) (a persistent vector), so snapshots share it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct History {
    /// Retained changes, revisions strictly ascending.
    changes: Vector<Change>,
    /// Sum of [`Change::cost_bytes`] over `changes`.
    bytes: u64,
    /// Every change with a revision up to this one may have been evicted (0: none).
    compacted_revision: u64,
}

/// The limits a [`History`] keeps to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistoryLimits {
    pub(crate) changes_max: u64,
    pub(crate) bytes_max: u64,
}

/// What a scan of the history found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The changes asked for, and the revision to continue from.
    Changes {
        changes: Vec<Change>,
        next_revision: u64,
    },
    /// Changes at `from_revision` may have been evicted.
    Compacted,
}

impl History {
    /// An empty history that knows nothing up to `compacted_revision` (a store restored from
    /// a snapshot without history starts this way).
    pub(crate) fn starting_after(compacted_revision: u64) -> Self {
        History {
            compacted_revision,
            ..History::default()
        }
    }

    /// Rebuilds a history from its parts, as read from a snapshot.
    pub(crate) fn from_parts(compacted_revision: u64, changes: Vector<Change>) -> Self {
        let bytes = changes.iter().map(Change::cost_bytes).sum();
        History {
            changes,
            bytes,
            compacted_revision,
        }
    }

    /// Every change with a revision up to this one may have been evicted.
    pub(crate) fn compacted_revision(&self) -> u64 {
        self.compacted_revision
    }

    /// The retained changes, oldest first.
    pub(crate) fn changes(&self) -> &Vector<Change> {
        &self.changes
    }

    /// Number of retained changes.
    pub(crate) fn len(&self) -> usize {
        self.changes.len()
    }

    /// Total cost of the retained changes.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `change` (its revision must exceed every retained one) and evicts the oldest
    /// changes until both limits hold again.
    pub(crate) fn record(&mut self, change: Change, limits: HistoryLimits) {
        let newest = self
            .changes
            .last()
            .map_or(self.compacted_revision, |c| c.revision);
        assert!(
            change.revision > newest,
            "history revisions must increase: {} after {newest}",
            change.revision
        );
        self.bytes += change.cost_bytes();
        self.changes.push_back(change);
        while self.changes.len() as u64 > limits.changes_max
            || (self.bytes > limits.bytes_max && self.changes.len() > 1)
        {
            let Some(evicted) = self.changes.pop_front() else {
                break;
            };
            self.bytes -= evicted.cost_bytes();
            self.compacted_revision = evicted.revision;
        }
    }

    /// Changes to keys starting with `prefix` with `revision >= from_revision`, oldest first:
    /// at most `limit` of them, and no more once their cost reaches `bytes_max` (one change is
    /// always returned when there is one, whatever its size). `applied_index` is the store's
    /// applied index: a scan that reaches the end continues after it.
    pub(crate) fn scan(
        &self,
        prefix: &[u8],
        from_revision: u64,
        limit: usize,
        bytes_max: u64,
        applied_index: u64,
    ) -> Scan {
        if from_revision <= self.compacted_revision {
            return Scan::Compacted;
        }
        let start = match self
            .changes
            .binary_search_by_key(&from_revision, |c| c.revision)
        {
            Ok(position) | Err(position) => position,
        };
        let mut changes = Vec::new();
        let mut bytes = 0u64;
        for change in self.changes.skip(start) {
            let full = changes.len() >= limit || (bytes >= bytes_max && !changes.is_empty());
            if full {
                // Stop before this change: the caller continues from it.
                return Scan::Changes {
                    changes,
                    next_revision: change.revision,
                };
            }
            if change.key.starts_with(prefix) {
                bytes += change.cost_bytes();
                changes.push(change);
            }
        }
        Scan::Changes {
            changes,
            next_revision: from_revision.max(applied_index + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn put(revision: u64, key: &str, value: &str) -> Change {
        Change {
            revision,
            key: Bytes::copy_from_slice(key.as_bytes()),
            kind: ChangeKind::Put {
                value: Bytes::copy_from_slice(value.as_bytes()),
            },
        }
    }

    const ROOMY: HistoryLimits = HistoryLimits {
        changes_max: 1000,
        bytes_max: 1 << 20,
    };

    fn changes_of(scan: Scan) -> (Vec<u64>, u64) {
        match scan {
            Scan::Changes {
                changes,
                next_revision,
            } => (changes.iter().map(|c| c.revision).collect(), next_revision),
            Scan::Compacted => panic!("unexpected compaction"),
        }
    }

    /// Goal: the count limit evicts oldest first and moves the compaction point with it, so
    /// a scan from an evicted revision says `Compacted` instead of silently skipping.
    #[test]
    fn count_limit_evicts_oldest_and_reports_compaction() {
        let limits = HistoryLimits {
            changes_max: 3,
            bytes_max: 1 << 20,
        };
        let mut history = History::default();
        for revision in [2, 4, 6, 8, 10] {
            history.record(put(revision, "k", "v"), limits);
        }
        assert_eq!(history.len(), 3);
        assert_eq!(history.compacted_revision(), 4);
        assert_eq!(history.scan(b"", 4, 10, u64::MAX, 10), Scan::Compacted);
        // Revision 5 has no change of its own, but nothing after 4 was evicted.
        assert_eq!(
            changes_of(history.scan(b"", 5, 10, u64::MAX, 10)).0,
            [6, 8, 10]
        );
    }

    /// Goal: the byte limit counts keys, values and the per-change overhead, and keeps the
    /// newest change even when it alone is over the limit.
    #[test]
    fn byte_limit_evicts_until_it_holds() {
        let one = put(1, "kk", "vvvv").cost_bytes();
        assert_eq!(one, 6 + CHANGE_OVERHEAD_BYTES);
        let limits = HistoryLimits {
            changes_max: 100,
            bytes_max: 2 * one,
        };
        let mut history = History::default();
        for revision in 1..=5 {
            history.record(put(revision, "kk", "vvvv"), limits);
        }
        assert_eq!(history.len(), 2);
        assert_eq!(history.bytes(), 2 * one);
        history.record(put(6, "big", &"x".repeat(500)), limits);
        assert_eq!(history.len(), 1);
        assert_eq!(history.compacted_revision(), 5);
    }

    /// Goal: scans filter by prefix, stop at the count and byte limits with a continuation
    /// point, and continue past the applied index once the history is exhausted.
    #[test]
    fn scan_filters_pages_and_continues() {
        let mut history = History::default();
        history.record(put(3, "a/1", "x"), ROOMY);
        history.record(put(5, "b/1", "x"), ROOMY);
        history.record(put(7, "a/2", "x"), ROOMY);
        history.record(
            Change {
                revision: 9,
                key: Bytes::from_static(b"a/1"),
                kind: ChangeKind::Delete,
            },
            ROOMY,
        );
        assert_eq!(
            changes_of(history.scan(b"a/", 1, 10, u64::MAX, 12)),
            (vec![3, 7, 9], 13)
        );
        assert_eq!(
            changes_of(history.scan(b"a/", 1, 2, u64::MAX, 12)),
            (vec![3, 7], 9)
        );
        assert_eq!(changes_of(history.scan(b"a/", 1, 10, 1, 12)), (vec![3], 5));
        assert_eq!(
            changes_of(history.scan(b"a/", 8, 10, u64::MAX, 12)),
            (vec![9], 13)
        );
        // Asking beyond the applied index waits there rather than jumping back.
        assert_eq!(
            changes_of(history.scan(b"", 20, 10, u64::MAX, 12)),
            (vec![], 20)
        );
    }

    proptest! {
        /// Goal: whatever the limits and the changes, the history keeps exactly the newest
        /// changes that fit, in order, with an accurate byte total, and paging through it
        /// from any retained revision returns each retained change once.
        #[test]
        fn history_keeps_the_newest_changes_that_fit(
            values in proptest::collection::vec(0usize..40, 1..60),
            changes_max in 1u64..20,
            bytes_max in 80u64..400,
            page in 1usize..5,
        ) {
            let limits = HistoryLimits { changes_max, bytes_max };
            let mut history = History::default();
            let mut all = Vec::new();
            for (i, size) in values.iter().enumerate() {
                let change = put(i as u64 * 2 + 1, "k", &"v".repeat(*size));
                all.push(change.clone());
                history.record(change, limits);
            }
            let kept: Vec<Change> = history.changes().iter().cloned().collect();
            prop_assert!(!kept.is_empty());
            prop_assert!(kept.len() as u64 <= changes_max);
            prop_assert!(history.bytes() <= bytes_max || kept.len() == 1);
            prop_assert_eq!(history.bytes(), kept.iter().map(Change::cost_bytes).sum::<u64>());
            prop_assert_eq!(&all[all.len() - kept.len()..], &kept[..]);
            let applied = all.last().map_or(0, |c| c.revision);
            let mut from = history.compacted_revision() + 1;
            let mut seen = Vec::new();
            loop {
                let (revisions, next) = changes_of(history.scan(b"", from, page, u64::MAX, applied));
                if revisions.is_empty() { break; }
                seen.extend(revisions);
                prop_assert!(next > from);
                from = next;
            }
            prop_assert_eq!(seen, kept.iter().map(|c| c.revision).collect::<Vec<_>>());
        }
    }
}
