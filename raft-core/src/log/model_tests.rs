//! `RaftLog` against a plain model (the snapshot base and a vector of entries, every answer
//! computed by filtering it): random appends, pushes, compactions and snapshot installs,
//! every query compared after each step. Written to catch what the scenario tests miss
//! (issue 16: most surviving mutants of log.rs were in boundary arithmetic).

use proptest::prelude::*;

use super::{AppendResult, RaftLog};
use crate::message::ConflictHint;
use crate::types::{Entry, EntryPayload, Index, SnapshotMeta, Term};

#[derive(Clone, Debug)]
struct Model {
    snapshot_index: Index,
    snapshot_term: Term,
    entries: Vec<Entry>,
}

impl Model {
    fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot_index, |e| e.index)
    }

    fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entries
            .iter()
            .find(|e| e.index == index)
            .map(|e| e.term)
    }

    fn slice(&self, low: Index, high: Index) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|e| e.index >= low && e.index < high)
            .cloned()
            .collect()
    }

    fn slice_bounded(&self, low: Index, max_bytes: u64, max_count: usize) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for entry in self.slice(low, Index::MAX).into_iter().take(max_count) {
            let total: u64 = out.iter().map(Entry::size_bytes).sum::<u64>() + entry.size_bytes();
            if !out.is_empty() && total > max_bytes {
                break;
            }
            out.push(entry);
        }
        out
    }

    fn truncate_from(&mut self, from: Index) {
        self.entries.retain(|e| e.index < from);
    }

    /// Section 5.3 as the paper states it, entry by entry.
    fn try_append(&mut self, prev: Index, prev_term: Term, entries: &[Entry]) -> AppendResult {
        let last_new_index = prev + entries.len() as u64;
        let entries: Vec<Entry> = entries
            .iter()
            .filter(|e| e.index > self.snapshot_index)
            .cloned()
            .collect();
        if prev >= self.snapshot_index {
            match self.term(prev) {
                None => {
                    return AppendResult::Rejected(ConflictHint {
                        index: self.last_index() + 1,
                        term: 0,
                    });
                }
                Some(term) if term != prev_term => {
                    let first = (self.snapshot_index + 1..=prev)
                        .find(|i| self.term(*i) == Some(term))
                        .unwrap_or(prev);
                    return AppendResult::Rejected(ConflictHint { index: first, term });
                }
                Some(_) => {}
            }
        }
        let Some(first_new) = entries
            .iter()
            .find(|e| self.term(e.index) != Some(e.term))
            .map(|e| e.index)
        else {
            return AppendResult::Matched {
                last_new_index,
                truncate_from: None,
                first_written: None,
            };
        };
        let truncate_from = self
            .entries
            .iter()
            .any(|e| e.index >= first_new)
            .then_some(first_new);
        self.truncate_from(first_new);
        self.entries
            .extend(entries.into_iter().filter(|e| e.index >= first_new));
        AppendResult::Matched {
            last_new_index,
            truncate_from,
            first_written: Some(first_new),
        }
    }

    fn next_probe_index(&self, rejected: Index, hint: ConflictHint) -> Index {
        let fallback = hint.index.min(rejected).max(1);
        if hint.term == 0 {
            return fallback;
        }
        let top = rejected.min(self.last_index());
        match self
            .entries
            .iter()
            .rev()
            .find(|e| e.index <= top && e.term <= hint.term)
        {
            Some(e) if e.term == hint.term => e.index + 1,
            _ => fallback,
        }
    }

    fn compact(&mut self, index: Index, term: Term) {
        if index <= self.snapshot_index {
            return;
        }
        self.entries.retain(|e| e.index > index);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    fn install_snapshot(&mut self, index: Index, term: Term) {
        if self.term(index) == Some(term) {
            self.compact(index, term);
        } else {
            self.entries.clear();
            self.snapshot_index = index;
            self.snapshot_term = term;
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// prev index as a fraction of last+2; whether prev's term is right; entry term bumps
    /// and payload sizes.
    Append(u8, bool, Vec<(u8, u8)>),
    Push(u8, u8),
    Compact(u8),
    Install(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let entries = proptest::collection::vec((0u8..3, 0u8..6), 0..5);
    prop_oneof![
        6 => (any::<u8>(), proptest::bool::weighted(0.8), entries).prop_map(|(p, ok, e)| Op::Append(p, ok, e)),
        3 => (0u8..2, 0u8..6).prop_map(|(b, s)| Op::Push(b, s)),
        1 => any::<u8>().prop_map(Op::Compact),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(p, ok)| Op::Install(p, ok)),
    ]
}

/// Payload of `size` bytes; 5 stands for an elided entry.
fn payload(size: u8) -> EntryPayload {
    match size {
        0 => EntryPayload::Noop,
        5 => EntryPayload::Elided,
        n => EntryPayload::Command(vec![b'x'; usize::from(n) * 7].into()),
    }
}

fn pick(fraction: u8, low: Index, high: Index) -> Index {
    low + (high - low) * Index::from(fraction) / 255
}

fn check(log: &RaftLog, model: &Model) {
    let last = model.last_index();
    assert_eq!(log.snapshot_index(), model.snapshot_index);
    assert_eq!(log.first_index(), model.snapshot_index + 1);
    assert_eq!(log.last_index(), last);
    assert_eq!(log.next_index(), last + 1);
    assert_eq!(log.last_term(), model.last_term());
    assert_eq!(
        log.has_elided(),
        model
            .entries
            .iter()
            .any(|e| e.payload == EntryPayload::Elided)
    );
    for index in 0..=last + 2 {
        assert_eq!(log.term(index), model.term(index), "term({index})");
        assert_eq!(
            log.entry(index).map(|e| e.term),
            model
                .entries
                .iter()
                .find(|e| e.index == index)
                .map(|e| e.term),
            "entry({index})"
        );
        for term in 0..=model.last_term() + 1 {
            assert_eq!(log.matches(index, term), model.term(index) == Some(term));
            assert_eq!(
                log.is_up_to_date(index, term),
                term > model.last_term() || (term == model.last_term() && index >= last),
                "is_up_to_date({index}, {term})"
            );
            let hint = ConflictHint {
                index: index.max(1),
                term,
            };
            for rejected in [index, last, last + 1, index + 1] {
                assert_eq!(
                    log.next_probe_index(rejected, hint),
                    model.next_probe_index(rejected, hint),
                    "next_probe_index({rejected}, {hint:?})"
                );
            }
        }
        for high in index..=last + 2 {
            assert_eq!(
                log.slice(index, high),
                &model.slice(index, high)[..],
                "slice({index}, {high})"
            );
        }
        for (bytes, count) in [
            (0, 10),
            (24, 10),
            (40, 10),
            (70, 10),
            (200, 10),
            (1000, 2),
            (1000, 0),
        ] {
            assert_eq!(
                log.slice_bounded(index, bytes, count),
                &model.slice_bounded(index, bytes, count)[..],
                "slice_bounded({index}, {bytes}, {count})"
            );
        }
    }
}

fn run(ops: Vec<Op>) {
    let mut log = RaftLog::new(&SnapshotMeta::default(), Vec::new());
    let mut model = Model {
        snapshot_index: 0,
        snapshot_term: 0,
        entries: Vec::new(),
    };
    for op in ops {
        match op {
            Op::Append(p, right_term, bumps) => {
                let prev = pick(
                    p,
                    model.snapshot_index.saturating_sub(2),
                    model.last_index() + 2,
                );
                let actual = model.term(prev);
                let prev_term = match (right_term, actual) {
                    (true, Some(term)) => term,
                    (_, actual) => actual.map_or(1, |t| t + 1),
                };
                // Entries of non-decreasing terms from prev's; below the snapshot the
                // leader's prefix is the committed one, so it takes our terms there.
                let mut term = prev_term;
                let mut entries = Vec::new();
                for (k, (bump, size)) in bumps.into_iter().enumerate() {
                    let index = prev + 1 + k as u64;
                    term += Term::from(bump);
                    if index <= model.snapshot_index {
                        term = model.term(index).unwrap_or(model.snapshot_term);
                    }
                    entries.push(Entry {
                        index,
                        term,
                        payload: payload(size),
                    });
                }
                if prev < model.snapshot_index {
                    // A leader's log holds our snapshot's (committed) prefix too.
                    if entries
                        .last()
                        .is_some_and(|e| e.index > model.snapshot_index)
                    {
                        let at = (model.snapshot_index - prev) as usize;
                        let base = model.snapshot_term;
                        for entry in &mut entries[at..] {
                            entry.term = entry.term.max(base);
                        }
                        let mut floor = base;
                        for entry in &mut entries[at..] {
                            entry.term = entry.term.max(floor);
                            floor = entry.term;
                        }
                    }
                } else if actual != Some(prev_term) {
                    // Rejected anyway; keep it well-formed.
                }
                let before = model.clone();
                let expected = model.try_append(prev, prev_term, &entries);
                let got = log.try_append(prev, prev_term, entries);
                assert_eq!(
                    got, expected,
                    "try_append({prev}, {prev_term}) on {before:?}"
                );
            }
            Op::Push(bump, size) => {
                let entry = Entry {
                    index: model.last_index() + 1,
                    term: model.last_term() + Term::from(bump),
                    payload: payload(size),
                };
                model.entries.push(entry.clone());
                log.push(entry);
            }
            Op::Compact(p) => {
                let index = pick(p, model.snapshot_index, model.last_index());
                let term = model.term(index).expect("held");
                model.compact(index, term);
                log.compact(index, term);
            }
            Op::Install(p, matching) => {
                let index = pick(p, model.snapshot_index + 1, model.last_index() + 3);
                let term = match (matching, model.term(index)) {
                    (true, Some(term)) => term,
                    _ => model.last_term().max(model.term(index).unwrap_or(0)) + 1,
                };
                model.install_snapshot(index, term);
                log.install_snapshot(index, term);
            }
        }
        check(&log, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn raft_log_agrees_with_its_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

fn noop(index: Index, term: Term) -> Entry {
    Entry {
        index,
        term,
        payload: EntryPayload::Noop,
    }
}

/// The release guards fire on a log that breaks its invariant (validation keeps such input
/// from ever reaching them through `Node`).
#[test]
#[should_panic(expected = "restored log entries are contiguous from the snapshot")]
fn a_log_built_with_a_gap_panics() {
    let _ = RaftLog::new(&SnapshotMeta::default(), vec![noop(1, 1), noop(3, 1)]);
}

#[test]
#[should_panic(expected = "are not contiguous with non-decreasing terms")]
fn an_append_that_lowers_the_term_panics() {
    let mut log = RaftLog::new(&SnapshotMeta::default(), vec![noop(1, 1)]);
    let _ = log.try_append(1, 1, vec![noop(2, 3), noop(3, 2)]);
}

#[test]
#[should_panic(expected = "log terms never decrease")]
fn compacting_to_a_term_above_the_next_entry_panics() {
    let mut log = RaftLog::new(&SnapshotMeta::default(), vec![noop(1, 1), noop(2, 1)]);
    log.compact(1, 5);
}
