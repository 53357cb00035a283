//! Client proposals: admission on the leader (limits), forwarding from followers, and the
//! bookkeeping that gives every proposal exactly one outcome.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::action::{Action, ProposalError, ProposalId};
use crate::log::RaftLog;
use crate::message::MessageBody;
use crate::node::{Node, RoleState};
use crate::types::{EntryPayload, Index, NodeId, SnapshotMeta, Term};

/// Proposals waiting for their outcome.
#[derive(Debug, Default)]
pub(crate) struct Proposals {
    /// Appended somewhere (here, or on the leader we forwarded to), sorted by index:
    /// resolved when the commit index passes `index` (by comparing terms) or when the entry
    /// is overwritten. A deque, since a leader's proposals arrive in index order.
    appended: VecDeque<(Index, ProposalId, Term)>,
    /// Forwarded to the leader, waiting for its answer: ticks waited so far.
    forwarded: BTreeMap<u64, u32>,
}

impl Proposals {
    pub(crate) fn len(&self) -> usize {
        self.appended.len() + self.forwarded.len()
    }

    pub(crate) fn track(&mut self, index: Index, id: ProposalId, term: Term) {
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

    /// Ticks forwarded proposals; those unanswered for `timeout_ticks` get an unknown
    /// outcome (the leader may or may not have appended them).
    pub(crate) fn tick_forwarded(&mut self, timeout_ticks: u32, actions: &mut Vec<Action>) {
        let mut expired = Vec::new();
        for (id, waited) in self.forwarded.iter_mut() {
            *waited += 1;
            if *waited >= timeout_ticks {
                expired.push(*id);
            }
        }
        for id in expired {
            self.forwarded.remove(&id);
            let reason = "no answer from the leader".to_string();
            actions.push(Action::ProposalOutcome {
                id: ProposalId(id),
                result: Err(ProposalError::Unknown { reason }),
            });
        }
    }
}

impl Node {
    /// Proposes a command. On the leader it is appended at once; on a follower it is
    /// forwarded to the leader (or refused, per [`crate::Config::forward_proposals`]). The
    /// one outcome arrives as [`Action::ProposalOutcome`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use raft_core::{Action, Config, Membership, Node, RestoredState};
    ///
    /// let restored = RestoredState::bootstrap(Membership::with_voters([1]));
    /// let mut node = Node::new(Config::new(1, 7), restored).unwrap();
    /// let mut actions = Vec::new();
    /// // Campaign: the node leads once its own term and vote are durable.
    /// while node.leader() != Some(1) {
    ///     node.tick();
    ///     node.drain_actions(&mut actions);
    ///     for action in actions.drain(..) {
    ///         if let Action::Persist(batch) = action {
    ///             node.on_persisted(batch.token);
    ///         }
    ///     }
    /// }
    /// let id = node.propose(Bytes::from_static(b"set x=1"));
    /// node.drain_actions(&mut actions);
    /// // A single-node leader commits once its own write is durable.
    /// for action in &actions {
    ///     if let Action::Persist(batch) = action {
    ///         node.on_persisted(batch.token);
    ///     }
    /// }
    /// actions.clear();
    /// node.drain_actions(&mut actions);
    /// assert!(actions.iter().any(|a| matches!(a,
    ///     Action::ProposalOutcome { id: got, result: Ok(_) } if *got == id)));
    /// ```
    pub fn propose(&mut self, command: Bytes) -> ProposalId {
        let id = self.new_proposal_id();
        if self.halted.is_some() {
            self.proposal_outcome(id, Err(ProposalError::NotLeader { leader_hint: None }));
            return id;
        }
        match (&self.role, self.leader) {
            // Our state machine has holes: its answer to a forwarded command would be wrong.
            (
                RoleState::Follower | RoleState::PreCandidate(_) | RoleState::Candidate(_),
                leader_hint,
            ) if self.has_incomplete_state() => {
                self.proposal_outcome(id, Err(ProposalError::NotLeader { leader_hint }));
            }
            (RoleState::Leader(_), _) => {
                if let Err(error) = self.append_proposal(command, Some(id)) {
                    self.proposal_outcome(id, Err(error));
                }
            }
            (_, Some(leader)) if self.config.forward_proposals => {
                if self.proposals.len() >= self.config.max_pending_proposals {
                    self.proposal_outcome(id, Err(ProposalError::Overloaded));
                } else {
                    self.proposals.forwarded.insert(id.0, 0);
                    self.send(
                        leader,
                        MessageBody::ForwardProposal {
                            id: id.0,
                            data: command,
                        },
                    );
                }
            }
            (_, leader_hint) => {
                self.proposal_outcome(id, Err(ProposalError::NotLeader { leader_hint }))
            }
        }
        id
    }

    fn proposal_outcome(&mut self, id: ProposalId, result: Result<Index, ProposalError>) {
        self.actions.push(Action::ProposalOutcome { id, result });
    }

    /// Leader admission: size, backpressure and transfer checks, then append, and track the
    /// outcome for a local proposal (`id`); a forwarding follower tracks its own.
    fn append_proposal(
        &mut self,
        command: Bytes,
        id: Option<ProposalId>,
    ) -> Result<(Index, Term), ProposalError> {
        let (max_entry, max_uncommitted, max_pending) = (
            self.config.max_entry_bytes,
            self.config.max_uncommitted_bytes,
            self.config.max_pending_proposals,
        );
        let size_bytes = command.len() as u64;
        if size_bytes > max_entry {
            return Err(ProposalError::TooLarge {
                size_bytes,
                max_bytes: max_entry,
            });
        }
        let pending = self.proposals.len();
        let RoleState::Leader(leader) = &mut self.role else {
            return Err(ProposalError::NotLeader {
                leader_hint: self.leader,
            });
        };
        if leader.transfer.is_some() {
            return Err(ProposalError::TransferInProgress);
        }
        let entry_bytes = size_bytes + 24;
        if leader.uncommitted_bytes + entry_bytes > max_uncommitted || pending >= max_pending {
            return Err(ProposalError::Overloaded);
        }
        leader.uncommitted_bytes += entry_bytes;
        let index = self.append_as_leader(EntryPayload::Command(command));
        if let Some(id) = id {
            self.proposals.track(index, id, self.term);
        }
        Ok((index, self.term))
    }

    /// Leader side of forwarding: append on behalf of a follower and tell it where.
    pub(crate) fn handle_forward_proposal(&mut self, from: NodeId, id: u64, data: Bytes) {
        let result = if matches!(self.role, RoleState::Leader(_)) {
            // The follower tracks the outcome; nobody waits for it here.
            self.append_proposal(data, None)
        } else {
            Err(ProposalError::NotLeader {
                leader_hint: self.leader,
            })
        };
        self.send(from, MessageBody::ForwardProposalResponse { id, result });
    }

    pub(crate) fn handle_forward_response(
        &mut self,
        id: u64,
        result: Result<(Index, Term), ProposalError>,
    ) {
        if self.proposals.forwarded.remove(&id).is_none() {
            return;
        }
        let id = ProposalId(id);
        match result {
            Ok((index, term)) => {
                self.proposals.track(index, id, term);
                self.proposals.resolve_committed(
                    self.commit,
                    &self.log,
                    &self.snapshot,
                    &mut self.actions,
                );
            }
            Err(error) => self.proposal_outcome(id, Err(error)),
        }
    }

    /// Per-tick deadlines of requests waiting on another node.
    pub(crate) fn tick_requests(&mut self) {
        let timeout = self.config.request_timeout_ticks;
        self.proposals.tick_forwarded(timeout, &mut self.actions);
        self.tick_reads();
    }
}
