//! The in-memory log: the entries after the latest snapshot, indexed by log index (never by
//! position, so compaction cannot shift indices).

use crate::message::ConflictHint;
use crate::types::{Entry, EntryPayload, Index, SnapshotMeta, Term};

/// The log after the snapshot base `(snapshot_index, snapshot_term)`.
///
/// Invariant: `entries[k].index == snapshot_index + 1 + k` and terms never decrease.
#[derive(Clone, Debug)]
pub(crate) struct RaftLog {
    snapshot_index: Index,
    snapshot_term: Term,
    entries: Vec<Entry>,
    /// How many of `entries` are `Elided` (a witness's), kept up to date on every change so
    /// the question "do we hold a witness's log?" costs nothing.
    elided_count: usize,
}

fn count_elided(entries: &[Entry]) -> usize {
    entries
        .iter()
        .filter(|e| e.payload == EntryPayload::Elided)
        .count()
}

/// What a follower's log did with an append request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AppendResult {
    /// The log matches through `last_new_index`; entries from `truncate_from` (if any) were
    /// replaced and entries from `first_written` on must be persisted.
    Matched {
        last_new_index: Index,
        truncate_from: Option<Index>,
        first_written: Option<Index>,
    },
    /// The entry at `prev_log_index` is missing or has another term.
    Rejected(ConflictHint),
}

impl RaftLog {
    pub(crate) fn new(snapshot: &SnapshotMeta, entries: Vec<Entry>) -> Self {
        let log = RaftLog {
            snapshot_index: snapshot.index,
            snapshot_term: snapshot.term,
            elided_count: count_elided(&entries),
            entries,
        };
        log.assert_contiguous();
        log
    }

    fn assert_contiguous(&self) {
        for (position, entry) in self.entries.iter().enumerate() {
            assert_eq!(
                Some(entry.index),
                self.snapshot_index.checked_add(1 + position as u64),
                "restored log entries are contiguous from the snapshot"
            );
        }
    }

    pub(crate) fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    pub(crate) fn first_index(&self) -> Index {
        // Snapshot indices are validated (at most MAX_INDEX) or the host's own.
        self.snapshot_index.saturating_add(1)
    }

    /// One past the last index: where the next entry goes. The log never holds index
    /// `u64::MAX` (`push` checks its arithmetic and appended indices are validated to be at
    /// most `MAX_INDEX`), so this never saturates in practice.
    pub(crate) fn next_index(&self) -> Index {
        self.last_index().saturating_add(1)
    }

    pub(crate) fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// The term at `index`, or `None` if it is compacted away (below the snapshot) or beyond
    /// the end.
    pub(crate) fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub(crate) fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries.get((index - self.snapshot_index - 1) as usize)
    }

    /// Entries in `[low, high)`, clamped to what the log holds.
    pub(crate) fn slice(&self, low: Index, high: Index) -> &[Entry] {
        let low = low.max(self.first_index());
        let high = high.min(self.next_index());
        if low >= high {
            return &[];
        }
        let start = (low - self.first_index()) as usize;
        let end = (high - self.first_index()) as usize;
        &self.entries[start..end]
    }

    /// Entries from `low` on, at most `max_bytes` of them by [`Entry::size_bytes`] (always at
    /// least one if any exist) and at most `max_count`.
    pub(crate) fn slice_bounded(&self, low: Index, max_bytes: u64, max_count: usize) -> &[Entry] {
        let all = self.slice(low, self.next_index());
        let mut bytes = 0u64;
        let mut count = 0usize;
        for entry in all.iter().take(max_count) {
            bytes += entry.size_bytes();
            if count > 0 && bytes > max_bytes {
                break;
            }
            count += 1;
        }
        &all[..count]
    }

    /// Section 5.4.1: a candidate's log is at least as up to date as ours.
    pub(crate) fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Appends entries created by this node as leader.
    ///
    /// # Panics
    ///
    /// If `entry` does not directly follow the last entry, or has a lower term: the caller
    /// (the leader's own append) must build it from `last_index() + 1` and its current term.
    pub(crate) fn push(&mut self, entry: Entry) {
        assert_eq!(
            Some(entry.index),
            self.last_index().checked_add(1),
            "a leader appends right after its last entry"
        );
        assert!(
            entry.term >= self.last_term(),
            "terms never decrease in a log"
        );
        self.elided_count += usize::from(entry.payload == EntryPayload::Elided);
        self.entries.push(entry);
    }

    /// Follower side of AppendEntries (section 5.3): check `prev`, drop a conflicting suffix,
    /// append what is new (moving it out of `entries`). Entries already present with the
    /// same term are kept untouched, so a stale or duplicated request never truncates a
    /// longer matching log.
    pub(crate) fn try_append(
        &mut self,
        mut prev_log_index: Index,
        mut prev_log_term: Term,
        mut entries: Vec<Entry>,
    ) -> AppendResult {
        // Validation (`Node::validate`) refused any message breaking these; they guard the
        // index arithmetic below.
        assert!(
            entries
                .first()
                .is_none_or(|e| Some(e.index) == prev_log_index.checked_add(1)),
            "appended entries start at prev_log_index + 1"
        );
        assert!(
            entries
                .last()
                .is_none_or(|e| Some(e.index) == prev_log_index.checked_add(entries.len() as u64)),
            "appended entries are contiguous"
        );
        if prev_log_index < self.snapshot_index {
            // The prefix is in our snapshot, hence committed; skip what it covers.
            let skip = (self.snapshot_index - prev_log_index) as usize;
            if skip > entries.len() {
                return AppendResult::Matched {
                    last_new_index: prev_log_index + entries.len() as u64,
                    truncate_from: None,
                    first_written: None,
                };
            }
            entries.drain(..skip);
            prev_log_index = self.snapshot_index;
            prev_log_term = self.snapshot_term;
        }
        match self.term(prev_log_index) {
            None => {
                return AppendResult::Rejected(ConflictHint {
                    index: self.next_index(),
                    term: 0,
                });
            }
            Some(term) if term != prev_log_term => {
                return AppendResult::Rejected(ConflictHint {
                    index: self.first_index_of_term(prev_log_index, term),
                    term,
                });
            }
            Some(_) => {}
        }
        let last_new_index = prev_log_index + entries.len() as u64;
        let conflict = entries
            .iter()
            .find(|e| self.term(e.index) != Some(e.term))
            .map(|e| e.index);
        let Some(first_new) = conflict else {
            return AppendResult::Matched {
                last_new_index,
                truncate_from: None,
                first_written: None,
            };
        };
        let truncate_from = (first_new <= self.last_index()).then_some(first_new);
        if let Some(from) = truncate_from {
            let keep = (from - self.first_index()) as usize;
            self.elided_count -= count_elided(&self.entries[keep..]);
            self.entries.truncate(keep);
        }
        let offset = (first_new - prev_log_index - 1) as usize;
        self.elided_count += count_elided(&entries[offset..]);
        self.entries.extend(entries.drain(offset..));
        self.assert_contiguous_tail(first_new);
        AppendResult::Matched {
            last_new_index,
            truncate_from,
            first_written: Some(first_new),
        }
    }

    /// Checks the log after entries from `from` on were written: the written range is
    /// contiguous with non-decreasing terms (cost proportional to what was just written,
    /// so on in release builds), the first entry sits right after the snapshot. The elided
    /// count is an O(n) check, in debug builds only.
    fn assert_contiguous_tail(&self, from: Index) {
        debug_assert_eq!(
            self.elided_count,
            count_elided(&self.entries),
            "elided count drifted"
        );
        let start = from.saturating_sub(1).max(self.first_index());
        let written = self.slice(start, self.last_index().saturating_add(1));
        assert!(
            written
                .windows(2)
                .all(|w| Some(w[1].index) == w[0].index.checked_add(1) && w[1].term >= w[0].term),
            "log entries from {from} are not contiguous with non-decreasing terms"
        );
        self.assert_first_entry();
    }

    /// The first entry held sits right after the snapshot, and the last one's term is at
    /// least the snapshot's.
    fn assert_first_entry(&self) {
        if let Some(first) = self.entries.first() {
            assert_eq!(
                first.index,
                self.first_index(),
                "log starts right after the snapshot"
            );
            assert!(first.term >= self.snapshot_term, "log terms never decrease");
        }
    }

    /// The first index of the run of `term` that contains `index` (for conflict hints).
    fn first_index_of_term(&self, index: Index, term: Term) -> Index {
        let mut first = index;
        while first > self.first_index() && self.term(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// Leader side of fast backtracking: where to probe next after a rejection.
    pub(crate) fn next_probe_index(&self, rejected: Index, hint: ConflictHint) -> Index {
        if hint.term == 0 {
            return hint.index.min(rejected).max(1);
        }
        // If we hold entries of the follower's conflicting term, resume after our last one;
        // otherwise skip the follower's whole run of that term.
        let mut index = rejected.min(self.last_index());
        while index > self.snapshot_index {
            match self.term(index) {
                Some(term) if term == hint.term => return index.saturating_add(1),
                Some(term) if term < hint.term => break,
                _ => index -= 1,
            }
        }
        hint.index.min(rejected).max(1)
    }

    /// Drops entries through `index` (covered by a snapshot at `(index, term)`).
    pub(crate) fn compact(&mut self, index: Index, term: Term) {
        if index <= self.snapshot_index {
            return;
        }
        let drop_count = ((index - self.snapshot_index) as usize).min(self.entries.len());
        self.elided_count -= count_elided(&self.entries[..drop_count]);
        self.entries.drain(..drop_count);
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.assert_first_entry();
    }

    /// Installs a snapshot received from the leader: keeps the entries after it if our entry
    /// at its index has its term (section 7), otherwise discards the whole log.
    pub(crate) fn install_snapshot(&mut self, index: Index, term: Term) {
        if self.term(index) == Some(term) {
            self.compact(index, term);
        } else {
            self.entries.clear();
            self.elided_count = 0;
            self.snapshot_index = index;
            self.snapshot_term = term;
        }
    }

    /// True if any entry held has its payload withheld (received as a witness).
    pub(crate) fn has_elided(&self) -> bool {
        self.elided_count > 0
    }

    /// Entries are the same up to `index` as when a record `(index, term)` was made: by the
    /// log matching property, equal terms at one index imply equal prefixes.
    pub(crate) fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryPayload;

    fn entries(terms: &[(Index, Term)]) -> Vec<Entry> {
        terms
            .iter()
            .map(|&(index, term)| Entry {
                index,
                term,
                payload: EntryPayload::Noop,
            })
            .collect()
    }

    fn log_with(terms: &[Term]) -> RaftLog {
        let list: Vec<(Index, Term)> = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| (i as u64 + 1, t))
            .collect();
        RaftLog::new(&SnapshotMeta::default(), entries(&list))
    }

    #[test]
    fn duplicate_append_never_truncates_a_longer_matching_log() {
        let mut log = log_with(&[1, 1, 1, 1]);
        let result = log.try_append(1, 1, entries(&[(2, 1)]));
        assert_eq!(
            result,
            AppendResult::Matched {
                last_new_index: 2,
                truncate_from: None,
                first_written: None
            }
        );
        assert_eq!(log.last_index(), 4);
    }

    #[test]
    fn conflicting_suffix_is_replaced() {
        let mut log = log_with(&[1, 1, 2, 2]);
        let result = log.try_append(2, 1, entries(&[(3, 3)]));
        assert_eq!(
            result,
            AppendResult::Matched {
                last_new_index: 3,
                truncate_from: Some(3),
                first_written: Some(3)
            }
        );
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Some(3));
    }

    #[test]
    fn rejection_hints_at_first_index_of_conflicting_term() {
        let mut log = log_with(&[1, 2, 2, 2]);
        let result = log.try_append(4, 3, vec![]);
        assert_eq!(
            result,
            AppendResult::Rejected(ConflictHint { index: 2, term: 2 })
        );
        let result = log.try_append(9, 3, vec![]);
        assert_eq!(
            result,
            AppendResult::Rejected(ConflictHint { index: 5, term: 0 })
        );
    }

    #[test]
    fn compaction_keeps_indices() {
        let mut log = log_with(&[1, 1, 2, 3]);
        log.compact(2, 1);
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term(2), Some(1));
        assert_eq!(log.term(1), None);
        assert_eq!(log.entry(4).map(|e| e.term), Some(3));
        assert_eq!(log.slice(1, 10).len(), 2);
    }

    #[test]
    fn append_below_snapshot_skips_covered_entries() {
        let mut log = log_with(&[1, 1, 1]);
        log.compact(2, 1);
        let result = log.try_append(0, 0, entries(&[(1, 1), (2, 1), (3, 1), (4, 1)]));
        assert_eq!(
            result,
            AppendResult::Matched {
                last_new_index: 4,
                truncate_from: None,
                first_written: Some(4)
            }
        );
        assert_eq!(log.last_index(), 4);
    }

    #[test]
    fn install_snapshot_keeps_matching_suffix() {
        let mut log = log_with(&[1, 1, 2, 2]);
        log.install_snapshot(3, 2);
        assert_eq!((log.first_index(), log.last_index()), (4, 4));
        log.install_snapshot(6, 3);
        assert_eq!((log.first_index(), log.last_index()), (7, 6));
    }

    #[test]
    fn elided_entries_are_counted_through_every_change() {
        let elided = |index, term| Entry {
            index,
            term,
            payload: EntryPayload::Elided,
        };
        let mut log = RaftLog::new(&SnapshotMeta::default(), vec![elided(1, 1), elided(2, 1)]);
        assert!(log.has_elided());
        // A conflicting suffix replaces entry 2 with a full one.
        log.try_append(1, 1, entries(&[(2, 2)]));
        assert!(log.has_elided());
        log.compact(1, 1);
        assert!(
            !log.has_elided(),
            "the last elided entry was compacted away"
        );
        log.try_append(2, 2, vec![elided(3, 2)]);
        assert!(log.has_elided());
        log.install_snapshot(9, 3);
        assert!(!log.has_elided());
    }

    #[test]
    fn bounded_slice_sends_at_least_one_entry() {
        let log = log_with(&[1, 1, 1]);
        assert_eq!(log.slice_bounded(1, 0, 10).len(), 1);
        assert_eq!(log.slice_bounded(1, u64::MAX, 2).len(), 2);
    }
}

#[cfg(test)]
mod model_tests;
