//! Client proposals: admission on the leader (limits), forwarding from followers, and the
//! bookkeeping that gives every proposal exactly one outcome.

use bytes::Bytes;

use crate::action::{Action, ProposalError, ProposalId};
use crate::message::MessageBody;
use crate::node::Node;
use crate::node::role::RoleState;
use crate::state::proposals::Forwarded;
use crate::types::{EntryPayload, Index, NodeId, Term};

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
        if self.is_halted() {
            self.proposal_outcome(id, Err(ProposalError::NotLeader { leader_hint: None }));
            return id;
        }
        match (self.role_state(), self.leader()) {
            // Our state machine has holes: its answer to a forwarded command would be wrong.
            (
                RoleState::Follower(_) | RoleState::PreCandidate(_) | RoleState::Candidate(_),
                leader_hint,
            ) if self.has_incomplete_state() => {
                self.proposal_outcome(id, Err(ProposalError::NotLeader { leader_hint }));
            }
            (RoleState::Leader(_), _) => {
                if let Err(error) = self.append_proposal(command, Some(id)) {
                    self.proposal_outcome(id, Err(error));
                }
            }
            (_, Some(leader)) if self.config().forward_proposals => {
                if self.proposals().len() >= self.config().max_pending_proposals {
                    self.proposal_outcome(id, Err(ProposalError::Overloaded));
                } else {
                    self.forward_proposal(id.0, leader, command);
                }
            }
            (_, leader_hint) => {
                self.proposal_outcome(id, Err(ProposalError::NotLeader { leader_hint }))
            }
        }
        id
    }

    fn proposal_outcome(&mut self, id: ProposalId, result: Result<Index, ProposalError>) {
        self.push_action(Action::ProposalOutcome { id, result });
    }

    /// Leader admission: size, backpressure and transfer checks, then append, and track the
    /// outcome for a local proposal (`id`); a forwarding follower tracks its own.
    fn append_proposal(
        &mut self,
        command: Bytes,
        id: Option<ProposalId>,
    ) -> Result<(Index, Term), ProposalError> {
        let (max_entry, max_uncommitted, max_pending) = (
            self.config().max_entry_bytes,
            self.config().max_uncommitted_bytes,
            self.config().max_pending_proposals,
        );
        let size_bytes = command.len() as u64;
        if size_bytes > max_entry {
            return Err(ProposalError::TooLarge {
                size_bytes,
                max_bytes: max_entry,
            });
        }
        let pending = self.proposals().len();
        let Some(leader) = self.leader_state() else {
            return Err(ProposalError::NotLeader {
                leader_hint: self.leader(),
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
            let term = self.term();
            self.proposals_mut().track(index, id, term);
        }
        Ok((index, self.term()))
    }

    /// Leader side of forwarding: append on behalf of a follower and tell it where.
    pub(crate) fn handle_forward_proposal(&mut self, from: NodeId, id: u64, data: Bytes) {
        let result = if self.is_leader() {
            // The follower tracks the outcome; here we only note that it waits for the
            // commit index to reach the entry.
            let result = self.append_proposal(data, None);
            if let Ok((index, _)) = result {
                self.follower_waits_for_commit(from, index);
            }
            result
        } else {
            Err(ProposalError::NotLeader {
                leader_hint: self.leader(),
            })
        };
        self.send(from, MessageBody::ForwardProposalResponse { id, result });
    }

    /// Settles forwarded proposals and reads when the term or the leader changed since the
    /// last call, so nothing waits out its timeout on a leader that is gone.
    pub(crate) fn settle_forwarded(&mut self) {
        self.abandon_proposals_if_removed();
        let view = (self.term(), self.leader());
        if self.proposals().view == Some(view) {
            return;
        }
        self.proposals_mut().view = Some(view);
        self.settle_forwarded_proposals();
        self.settle_forwarded_reads();
    }

    /// A node outside its own latest configuration that no longer leads gets no appends:
    /// the entries of its proposals may still commit or be overwritten elsewhere, but it
    /// would never hear of it, so they end now, as unknown.
    fn abandon_proposals_if_removed(&mut self) {
        if self.proposals().appended.is_empty()
            || self.is_leader()
            || self.membership().contains(self.id())
        {
            return;
        }
        tracing::info!(
            node = self.id(),
            pending = self.proposals().appended.len(),
            "removed from the cluster: pending proposals end as unknown"
        );
        self.abandon_appended_proposals(
            "this node was removed from the cluster before it learned the outcome",
        );
    }

    /// Sends (or re-sends) a forwarded proposal to `leader` and waits for its answer.
    fn forward_proposal(&mut self, id: u64, leader: NodeId, command: Bytes) {
        let forwarded = Forwarded {
            to: leader,
            term: self.term(),
            waited: 0,
            command: command.clone(),
        };
        self.proposals_mut().forwarded.insert(id, forwarded);
        self.send(leader, MessageBody::ForwardProposal { id, data: command });
    }

    /// After a change of term or leader: forwarded proposals the old leader has not answered
    /// are settled at once. A retry-safe one ([`crate::Config::retry_safe`]) is re-sent to
    /// the new leader (or appended here, if that is us; it waits while no leader is known);
    /// any other is answered `Unknown`, since the old leader may have appended it.
    pub(crate) fn settle_forwarded_proposals(&mut self) {
        for id in self.proposals().stale(self.term(), self.leader()) {
            let Some(forwarded) = self.proposals_mut().forwarded.remove(&id) else {
                continue;
            };
            let retry_safe = self.config().retry_safe.allows(&forwarded.command);
            match self.leader() {
                _ if !retry_safe => {
                    let reason = format!(
                        "node {} stopped leading before answering; the command may have been applied",
                        forwarded.to
                    );
                    self.proposal_outcome(ProposalId(id), Err(ProposalError::Unknown { reason }));
                }
                // Wait for a leader; the request timeout still runs.
                None => {
                    self.proposals_mut().forwarded.insert(id, forwarded);
                }
                Some(leader) if leader == self.id() => {
                    if let Err(error) =
                        self.append_proposal(forwarded.command, Some(ProposalId(id)))
                    {
                        self.proposal_outcome(ProposalId(id), Err(error));
                    }
                }
                Some(leader) => self.forward_proposal(id, leader, forwarded.command),
            }
        }
    }

    pub(crate) fn handle_forward_response(
        &mut self,
        from: NodeId,
        id: u64,
        result: Result<(Index, Term), ProposalError>,
    ) {
        // Only the leader it was last sent to answers it: a late answer from an old leader
        // to a proposal re-sent elsewhere is ignored.
        if self
            .proposals()
            .forwarded
            .get(&id)
            .is_none_or(|f| f.to != from)
        {
            return;
        }
        self.proposals_mut().forwarded.remove(&id);
        let id = ProposalId(id);
        match result {
            Ok((index, term)) => {
                self.proposals_mut().track(index, id, term);
                self.resolve_committed_proposals();
            }
            Err(error) => self.proposal_outcome(id, Err(error)),
        }
    }
}
