//! Role transitions (section 5.1, 5.2; pre-vote: thesis 9.6): the only code that changes
//! the role. Each one asserts the role it may start from and logs the change.

use crate::action::Action;
use crate::node::Node;
use crate::node::role::{Campaign, Follower, LeaderState, RoleState};
use crate::types::{EntryPayload, NodeId, Term};

impl Node {
    /// Becomes a follower of `term` (section 5.1), of `leader` if known. A new term clears
    /// the vote; a leader stepping down gives every request waiting on it its outcome.
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(
            term >= self.term,
            "terms never decrease: {term} < {}",
            self.term
        );
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        let previous = self.role.replace(RoleState::Follower(Follower { leader }));
        tracing::debug!(
            node = self.id(),
            term = self.term,
            leader,
            from = ?previous.role(),
            "became follower"
        );
        if let RoleState::Leader(state) = previous {
            self.on_leadership_lost(*state);
        }
        self.reset_election_timer();
    }

    /// Grants this term's vote to `candidate` (section 5.2: at most one vote per term).
    pub(crate) fn cast_vote(&mut self, candidate: NodeId) {
        assert!(
            self.vote.is_none_or(|v| v == candidate),
            "one vote per term: voted for {:?}, now {candidate}",
            self.vote
        );
        self.vote = Some(candidate);
    }

    /// Becomes a pre-candidate: asks for pre-votes for the next term without changing its
    /// own term or vote.
    pub(crate) fn become_pre_candidate(&mut self) {
        assert!(!self.role.is_leader(), "a leader never starts a pre-vote");
        self.role
            .replace(RoleState::PreCandidate(Campaign::default()));
        self.reset_election_timer();
        tracing::debug!(
            node = self.id(),
            term = self.term.saturating_add(1),
            "starting pre-vote"
        );
    }

    /// Becomes a candidate of `term`, voting for itself (section 5.2).
    pub(crate) fn become_candidate(&mut self, term: Term, transfer: bool) {
        assert!(!self.role.is_leader(), "a leader never campaigns");
        assert!(term > self.term, "a campaign runs in a newer term");
        self.term = term;
        self.vote = Some(self.id());
        self.role.replace(RoleState::Candidate(Campaign::default()));
        self.reset_election_timer();
        tracing::debug!(
            node = self.id(),
            term = self.term,
            transfer,
            "starting election"
        );
    }

    /// Becomes leader of the current term. Only a candidate that won this term may call it.
    pub(crate) fn become_leader(&mut self) {
        assert!(
            matches!(self.role.state(), RoleState::Candidate(_)),
            "only a candidate becomes leader"
        );
        assert_eq!(self.vote, Some(self.id()), "a leader voted for itself");
        let me = self.id();
        let peers = self.membership.members().into_iter().filter(|&id| id != me);
        let state = LeaderState::new(peers, self.log.next_index());
        self.role.replace(RoleState::Leader(Box::new(state)));
        tracing::info!(node = self.id(), term = self.term, "became leader");
        // Section 5.4.2 / 8: a no-op of the new term lets earlier entries commit promptly.
        // A joint configuration inherited from the previous leader is left as soon as it
        // commits (see `on_configuration_committed`), which this entry brings about.
        self.append_as_leader(EntryPayload::Noop);
    }

    /// Gives every request that waited on this leader its outcome.
    fn on_leadership_lost(&mut self, state: LeaderState) {
        tracing::info!(node = self.id(), term = self.term, "lost leadership");
        let LeaderState {
            reads,
            transfer,
            pending_change,
            ..
        } = state;
        self.fail_reads(reads);
        if let Some(transfer) = transfer {
            self.finish_transfer_on_step_down(transfer);
        }
        if let Some(change) = pending_change {
            let error = crate::membership::MembershipError::LeadershipLost;
            self.actions.push(Action::MembershipOutcome {
                id: change.id,
                result: Err(error),
            });
        }
    }
}
