//! Proposals waiting for their outcome: appended ones by index, forwarded ones by id.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::action::{Action, ProposalError, ProposalId};
use crate::log::RaftLog;
use crate::state::remaining;
use crate::types::{Index, NodeId, SnapshotMeta, Term};

/// Proposals waiting for their outcome.
#[derive(Debug, Default)]
pub(crate) struct Proposals {
    /// Appended somewhere (here, or on the leader we forwarded to), sorted by index:
    /// resolved when the commit index passes `index` (by comparing terms) or when the entry
    /// is overwritten. A deque, since a leader's proposals arrive in index order.
    pub(crate) appended: VecDeque<(Index, ProposalId, Term)>,
    /// A lower bound of the terms in `appended` (exact after every scan), so that the scan
    /// for proposals a newer committed term rules out runs only when one may exist.
    pub(crate) lowest_term: Option<Term>,
    /// Forwarded to a leader, waiting for its answer.
    pub(crate) forwarded: BTreeMap<u64, Forwarded>,
    /// The (term, leader) forwarded requests were last settled for.
    pub(crate) view: Option<(Term, Option<NodeId>)>,
}

/// A proposal a follower forwarded, until the leader answers it.
#[derive(Debug)]
pub(crate) struct Forwarded {
    /// The leader it was (last) sent to, and in which of our terms.
    pub(crate) to: NodeId,
    pub(crate) term: Term,
    /// Ticks waited since it was (last) sent.
    pub(crate) waited: u32,
    /// The command, kept to re-send it to a new leader when it is retry-safe.
    pub(crate) command: Bytes,
}

impl Proposals {
    pub(crate) fn len(&self) -> usize {
        self.appended.len() + self.forwarded.len()
    }

    pub(crate) fn track(&mut self, index: Index, id: ProposalId, term: Term) {
        self.lowest_term = Some(self.lowest_term.map_or(term, |t| t.min(term)));
        if self
            .appended
            .back()
            .is_none_or(|(last, _, _)| *last < index)
        {
            self.appended.push_back((index, id, term));
            return;
        }
        let position = self.appended.partition_point(|(i, _, _)| *i <= index);
        self.appended.insert(position, (index, id, term));
    }

    /// Outcomes for everything at or below `commit`: committed if the entry there still has
    /// the proposal's term, otherwise it was replaced and will never commit.
    pub(crate) fn resolve_committed(
        &mut self,
        commit: Index,
        log: &RaftLog,
        snapshot: &SnapshotMeta,
        actions: &mut Vec<Action>,
    ) {
        while self
            .appended
            .front()
            .is_some_and(|(index, _, _)| *index <= commit)
        {
            let Some((index, id, term)) = self.appended.pop_front() else {
                break;
            };
            let result = match log.term(index) {
                Some(t) if t == term => Ok(index),
                Some(_) => Err(ProposalError::Dropped),
                None if index == snapshot.index && snapshot.term == term => Ok(index),
                None => Err(ProposalError::Unknown {
                    reason: "entry covered by an installed snapshot".into(),
                }),
            };
            actions.push(Action::ProposalOutcome { id, result });
        }
        self.drop_ruled_out(commit, log, snapshot, actions);
    }

    /// Proposals of a term older than the committed entry at `commit` whose index lies
    /// beyond it can never commit: every later leader holds that entry, and terms never
    /// decrease along a log, so whatever it puts after `commit` has at least that term.
    /// Without this a follower whose forwarded proposal was appended by a deposed leader
    /// past the new leader's log would wait for the log to grow that far.
    fn drop_ruled_out(
        &mut self,
        commit: Index,
        log: &RaftLog,
        snapshot: &SnapshotMeta,
        actions: &mut Vec<Action>,
    ) {
        let commit_term = match log.term(commit) {
            Some(term) => term,
            None if commit == snapshot.index => snapshot.term,
            None => return,
        };
        if self.lowest_term.is_none_or(|lowest| lowest >= commit_term) {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.appended.len());
        for (index, id, term) in self.appended.drain(..) {
            if term < commit_term {
                actions.push(Action::ProposalOutcome {
                    id,
                    result: Err(ProposalError::Dropped),
                });
            } else {
                kept.push_back((index, id, term));
            }
        }
        self.lowest_term = kept.iter().map(|(_, _, term)| *term).min();
        self.appended = kept;
    }

    /// The log lost every entry from `from`: those proposals can never commit.
    pub(crate) fn drop_from(&mut self, from: Index, actions: &mut Vec<Action>) {
        let position = self.appended.partition_point(|(i, _, _)| *i < from);
        for (_, id, _) in self.appended.split_off(position) {
            actions.push(Action::ProposalOutcome {
                id,
                result: Err(ProposalError::Dropped),
            });
        }
    }

    /// Gives every appended proposal an unknown outcome: this node will not learn whether
    /// they commit.
    pub(crate) fn abandon_appended(&mut self, reason: &str, actions: &mut Vec<Action>) {
        for (_, id, _) in self.appended.drain(..) {
            actions.push(Action::ProposalOutcome {
                id,
                result: Err(ProposalError::Unknown {
                    reason: reason.to_string(),
                }),
            });
        }
    }

    /// Advances the timers of forwarded proposals by a tick; true if one expired.
    pub(crate) fn advance_forwarded(&mut self, timeout_ticks: u32) -> bool {
        let mut expired = false;
        for forwarded in self.forwarded.values_mut() {
            forwarded.waited += 1;
            expired |= forwarded.waited >= timeout_ticks;
        }
        expired
    }

    /// Forwarded proposals unanswered for `timeout_ticks` get an unknown outcome (the leader
    /// may or may not have appended them).
    pub(crate) fn expire_forwarded(&mut self, timeout_ticks: u32, actions: &mut Vec<Action>) {
        let expired: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, forwarded)| forwarded.waited >= timeout_ticks)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.forwarded.remove(&id);
            let reason = "no answer from the leader; it may have applied the command".to_string();
            actions.push(Action::ProposalOutcome {
                id: ProposalId(id),
                result: Err(ProposalError::Unknown { reason }),
            });
        }
    }

    /// Ticks until the first forwarded proposal times out, if any waits.
    pub(crate) fn next_expiry(&self, timeout_ticks: u32) -> Option<u64> {
        self.forwarded
            .values()
            .map(|f| remaining(f.waited, timeout_ticks))
            .min()
    }

    /// Forwarded proposals sent to another leader or in another term than `(term, leader)`.
    pub(crate) fn stale(&self, term: Term, leader: Option<NodeId>) -> Vec<u64> {
        self.forwarded
            .iter()
            .filter(|(_, f)| f.term != term || Some(f.to) != leader)
            .map(|(id, _)| *id)
            .collect()
    }
}
