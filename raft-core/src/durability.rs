//! Tracks what the host has been asked to write and what it reported durable, and holds
//! back every message that promises something not yet durable (a vote grant, an append
//! acknowledgement) until it is.
//!
//! Writes are numbered in issue order; a notice for write `n` covers every write up to
//! `n`. Each write records the log's last `(index, term)` after it, and a notice only makes
//! that prefix durable if the in-memory log still holds the same entry there: equal terms at
//! one index imply equal prefixes (log matching), so a late notice for a suffix that has
//! since been overwritten is recognised and ignored.

use std::collections::VecDeque;

use crate::action::{Action, PersistBatch, WriteToken};
use crate::log::RaftLog;
use crate::message::Message;
use crate::types::{HardState, Index, SnapshotMeta, Term};

/// A message waiting for write `required_seq` to become durable.
#[derive(Debug)]
struct Held {
    required_seq: u64,
    /// For acknowledgements: the entry they vouch for, re-checked at release.
    ack: Option<(Index, Term)>,
    message: Message,
}

#[derive(Debug)]
pub(crate) struct Durability {
    last_issued_seq: u64,
    persisted_seq: u64,
    /// Issued, not yet durable: (seq, the log's last (index, term) after the write, if the
    /// write defines one).
    pending: VecDeque<(u64, Option<(Index, Term)>)>,
    held: VecDeque<Held>,
    /// The log is durable, and equal to the in-memory log, through this index.
    durable_index: Index,
    /// The last index the host has been asked to store.
    emitted_last_index: Index,
    emitted_hard_state: HardState,
    truncate_from: Option<Index>,
    unwritten_from: Option<Index>,
    /// Snapshots received from a leader, installed once their final chunk is durable.
    snapshot_installs: VecDeque<(u64, SnapshotMeta)>,
}

impl Durability {
    pub(crate) fn new(last_index: Index, _last_term: Term, hard_state: HardState) -> Self {
        Durability {
            last_issued_seq: 0,
            persisted_seq: 0,
            pending: VecDeque::new(),
            held: VecDeque::new(),
            durable_index: last_index,
            emitted_last_index: last_index,
            emitted_hard_state: hard_state,
            truncate_from: None,
            unwritten_from: None,
            snapshot_installs: VecDeque::new(),
        }
    }

    pub(crate) fn durable_index(&self) -> Index {
        self.durable_index
    }

    pub(crate) fn note_appended(&mut self, index: Index) {
        self.unwritten_from = Some(self.unwritten_from.map_or(index, |from| from.min(index)));
    }

    /// The in-memory log dropped every entry from `from` on.
    pub(crate) fn note_truncated(&mut self, from: Index) {
        if from <= self.emitted_last_index {
            self.truncate_from = Some(self.truncate_from.map_or(from, |t| t.min(from)));
        }
        self.durable_index = self.durable_index.min(from.saturating_sub(1));
    }

    pub(crate) fn has_unflushed(&self, hard_state: HardState) -> bool {
        self.unwritten_from.is_some()
            || self.truncate_from.is_some()
            || hard_state != self.emitted_hard_state
    }

    fn issue(&mut self, last: Option<(Index, Term)>) -> WriteToken {
        // One token per write, strictly increasing: a u64 of writes never wraps.
        self.last_issued_seq += 1;
        assert!(
            self.pending
                .back()
                .is_none_or(|&(seq, _)| seq < self.last_issued_seq),
            "write tokens are issued once, in order"
        );
        self.pending.push_back((self.last_issued_seq, last));
        WriteToken(self.last_issued_seq)
    }

    /// Everything changed since the last batch, as one write.
    pub(crate) fn take_batch(
        &mut self,
        hard_state: HardState,
        log: &RaftLog,
    ) -> Option<PersistBatch> {
        if !self.has_unflushed(hard_state) {
            return None;
        }
        let entries = match self.unwritten_from {
            Some(from) => log.slice(from, log.next_index()).to_vec(),
            None => Vec::new(),
        };
        // The batch continues what storage holds: it starts where the unwritten part does
        // (or at the truncation point) and ends at the log's last entry.
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            assert!(
                self.unwritten_from
                    .is_some_and(|from| first.index <= from.max(log.first_index())),
                "a persist batch starts at the first unwritten entry"
            );
            assert_eq!(
                last.index,
                log.last_index(),
                "a persist batch ends at the last entry"
            );
            assert_eq!(
                Some(last.index),
                first.index.checked_add(entries.len() as u64 - 1),
                "a persist batch is contiguous"
            );
        }
        let hard_state_changed = hard_state != self.emitted_hard_state;
        let term_or_vote_changed = hard_state.term != self.emitted_hard_state.term
            || hard_state.vote != self.emitted_hard_state.vote;
        let truncate_from = self.truncate_from.take();
        let batch = PersistBatch {
            hard_state: hard_state_changed.then_some(hard_state),
            sync_required: term_or_vote_changed || truncate_from.is_some() || !entries.is_empty(),
            truncate_from,
            entries,
            token: self.issue(Some((log.last_index(), log.last_term()))),
        };
        self.unwritten_from = None;
        self.emitted_last_index = log.last_index();
        self.emitted_hard_state = hard_state;
        Some(batch)
    }

    /// A token for a snapshot chunk write. The final chunk also records the snapshot so that
    /// it is installed once durable.
    pub(crate) fn issue_snapshot_chunk(&mut self, installs: Option<SnapshotMeta>) -> WriteToken {
        let last = installs.as_ref().map(|meta| (meta.index, meta.term));
        let token = self.issue(last);
        if let Some(meta) = installs {
            self.snapshot_installs.push_back((token.0, meta));
        }
        token
    }

    /// The in-memory log was replaced by a snapshot's base (`cleared`: no suffix kept).
    pub(crate) fn note_snapshot_installed(&mut self, log: &RaftLog, cleared: bool) {
        if cleared {
            self.durable_index = self.durable_index.min(log.snapshot_index());
            self.unwritten_from = None;
            self.truncate_from = None;
        }
        self.emitted_last_index = self.emitted_last_index.max(log.last_index());
        if cleared {
            self.emitted_last_index = log.last_index();
        }
    }

    /// The write that makes everything changed so far durable: the next one if something
    /// is still unflushed, otherwise the last one issued.
    pub(crate) fn required_seq(&self, hard_state: HardState) -> u64 {
        if self.has_unflushed(hard_state) {
            self.last_issued_seq + 1
        } else {
            self.last_issued_seq
        }
    }

    /// True once write `seq` (and every earlier one) is durable.
    pub(crate) fn is_durable(&self, seq: u64) -> bool {
        self.persisted_seq >= seq
    }

    pub(crate) fn hold(
        &mut self,
        message: Message,
        ack: Option<(Index, Term)>,
        hard_state: HardState,
    ) {
        let required_seq = self.required_seq(hard_state);
        self.held.push_back(Held {
            required_seq,
            ack,
            message,
        });
    }

    /// Records a durability notice; returns true if the durable log prefix grew.
    pub(crate) fn on_persisted(&mut self, token: WriteToken, log: &RaftLog) -> bool {
        if token.0 <= self.persisted_seq {
            return false;
        }
        assert!(
            token.0 <= self.last_issued_seq,
            "host misuse: durability notice for write {} but only {} were issued by this node \
             (a token from another node or an earlier incarnation?)",
            token.0,
            self.last_issued_seq
        );
        self.persisted_seq = token.0;
        let mut last_record = None;
        while let Some(&(seq, record)) = self.pending.front() {
            if seq > token.0 {
                break;
            }
            self.pending.pop_front();
            if record.is_some() {
                last_record = record;
            }
        }
        match last_record {
            Some((index, term)) if log.matches(index, term) && index > self.durable_index => {
                self.durable_index = index;
                true
            }
            _ => false,
        }
    }

    /// The snapshot whose final chunk became durable with this notice, if any.
    pub(crate) fn take_installed_snapshot(&mut self, token: WriteToken) -> Option<SnapshotMeta> {
        let mut installed = None;
        while self
            .snapshot_installs
            .front()
            .is_some_and(|(seq, _)| *seq <= token.0.min(self.persisted_seq))
        {
            installed = self.snapshot_installs.pop_front().map(|(_, meta)| meta);
        }
        installed
    }

    /// Messages whose writes are durable, in the order they were queued. Acknowledgements
    /// of entries that were overwritten meanwhile are dropped (the leader will retry).
    pub(crate) fn release_held(&mut self, log: &RaftLog, out: &mut Vec<Action>) {
        // Held messages wait for writes in issue order, so the ready ones are at the front.
        while self
            .held
            .front()
            .is_some_and(|held| held.required_seq <= self.persisted_seq)
        {
            let Some(held) = self.held.pop_front() else {
                break;
            };
            match held.ack {
                Some((index, term)) if !log.matches(index, term) => {
                    tracing::debug!(
                        index,
                        term,
                        "dropping acknowledgement of an overwritten entry"
                    );
                }
                _ => out.push(Action::Send(held.message)),
            }
        }
    }
}
