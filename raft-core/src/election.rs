//! Leader election (section 5.2, 5.4.1) with pre-vote and check-quorum (thesis 9.6, 6.2).

use crate::message::MessageBody;
use crate::node::Node;
use crate::node::role::RoleState;
use crate::quorum::{self, VoteResult};
use crate::types::{Index, NodeId, Term};
use crate::validate::{MAX_INDEX, MAX_TERM};

impl Node {
    /// Follower and candidate: an election timeout starts a campaign (or, for a node that
    /// may not campaign, draws a new randomized timeout).
    pub(crate) fn on_election_timeout(&mut self) {
        self.restart_election_timer();
        if self.can_campaign() {
            self.campaign(false);
        } else {
            self.reset_election_timer();
        }
    }

    /// Only full voters campaign: learners and witnesses never lead, and a node removed from
    /// the configuration stays quiet. Nor does a node whose term cannot be incremented
    /// within [`MAX_TERM`] (restored from a store an attacker pushed there before terms were
    /// validated) or whose log is full: it would wrap instead of moving on.
    pub(crate) fn can_campaign(&self) -> bool {
        let id = self.id();
        self.next_term().is_some()
            && self.log().last_index() < MAX_INDEX
            && self.membership().is_voter(id)
            && !self.membership().is_witness(id)
            && self.incoming_snapshot_idle()
            && !self.holds_witness_data()
    }

    /// The term a campaign would run in, if it stays within [`MAX_TERM`].
    fn next_term(&self) -> Option<Term> {
        self.term().checked_add(1).filter(|&term| term <= MAX_TERM)
    }

    fn incoming_snapshot_idle(&self) -> bool {
        self.incoming_snapshot()
            .is_none_or(|s| s.installing.is_none())
    }

    /// Starts an election: a pre-vote round first when enabled, unless leadership was
    /// handed to us (`transfer`), in which case we campaign at once.
    pub(crate) fn campaign(&mut self, transfer: bool) {
        let Some(next_term) = self.next_term() else {
            tracing::error!(
                node = self.id(),
                term = self.term(),
                "cannot campaign: term exhausted"
            );
            return;
        };
        if self.config().pre_vote && !transfer {
            debug_assert_eq!(next_term, self.term() + 1);
            self.become_pre_candidate();
            self.request_votes(true, false);
        } else {
            self.start_real_campaign(transfer);
        }
    }

    fn start_real_campaign(&mut self, transfer: bool) {
        let Some(next_term) = self.next_term() else {
            tracing::error!(
                node = self.id(),
                term = self.term(),
                "cannot campaign: term exhausted"
            );
            self.become_follower(self.term(), None);
            return;
        };
        self.become_candidate(next_term, transfer);
        self.request_votes(false, transfer);
    }

    /// Votes for ourselves (once durable, for a real vote) and asks every voter.
    fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        // `campaign` checked that the next term exists.
        let term = if pre_vote {
            self.term().saturating_add(1)
        } else {
            self.term()
        };
        let (last_log_index, last_log_term) = (self.log().last_index(), self.log().last_term());
        let voters: Vec<NodeId> = self
            .membership()
            .incoming
            .union(&self.membership().outgoing)
            .copied()
            .collect();
        let me = self.id();
        for voter in voters.into_iter().filter(|&v| v != me) {
            let message = crate::message::Message {
                from: me,
                to: voter,
                term,
                body: MessageBody::VoteRequest {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                    transfer,
                },
            };
            if pre_vote {
                self.push_action(crate::Action::Send(message));
            } else {
                // Our own vote and term must be durable before we ask: otherwise a crash
                // could let us vote twice in this term.
                self.hold_until_persisted(message);
            }
        }
        // Counted last: a single voter wins at once and must have asked nobody meanwhile.
        // A real vote for ourselves counts only once our term and vote are durable, so
        // that a crash cannot let us lead (or vote in) this term twice.
        if pre_vote {
            self.record_vote(me, true, true);
        } else {
            let seq = self.durability().required_seq(self.hard_state());
            if let Some(campaign) = self.candidate_campaign() {
                campaign.self_vote_pending = Some(seq);
            }
            self.count_durable_self_vote();
        }
    }

    /// Counts our own vote once the write that holds it is durable.
    pub(crate) fn count_durable_self_vote(&mut self) {
        // A candidate's campaign ends with its term, so a pending vote is of this term.
        let Some(seq) = self
            .candidate_campaign()
            .and_then(|campaign| campaign.self_vote_pending)
        else {
            return;
        };
        if self.durability().is_durable(seq) {
            if let Some(campaign) = self.candidate_campaign() {
                campaign.self_vote_pending = None;
            }
            self.record_vote(self.id(), true, false);
        }
    }

    /// Section 5.2 and 5.4.1: grant at most one vote per term, first come first served, and
    /// only to a candidate whose log is at least as up to date as ours. A pre-vote grant
    /// changes nothing and is not recorded.
    pub(crate) fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        last_log_index: Index,
        last_log_term: Term,
        transfer: bool,
    ) {
        let up_to_date = self.log().is_up_to_date(last_log_index, last_log_term);
        let can_vote = if pre_vote {
            // A pre-vote is only ever granted for a future term.
            term > self.term()
        } else {
            self.vote().is_none_or(|v| v == from)
                && (self.leader().is_none() || self.leader() == Some(from))
        };
        let sticky = !transfer && self.in_leader_lease() && self.leader() != Some(from);
        let granted = up_to_date && can_vote && !sticky && !self.is_leader();
        tracing::debug!(
            node = self.id(),
            from,
            term,
            pre_vote,
            granted,
            "vote request"
        );
        let response = MessageBody::VoteResponse { pre_vote, granted };
        if pre_vote {
            // Answer in the term asked about, so a granted pre-vote is not mistaken for stale.
            let reply_term = if granted { term } else { self.term() };
            let message = crate::message::Message {
                from: self.id(),
                to: from,
                term: reply_term,
                body: response,
            };
            self.push_action(crate::Action::Send(message));
        } else if granted {
            self.cast_vote(from);
            self.restart_election_timer();
            self.send_after_persist(from, response, None);
        } else {
            self.send(from, response);
        }
    }

    pub(crate) fn handle_vote_response(&mut self, from: NodeId, pre_vote: bool, granted: bool) {
        let campaigning_as_asked = match self.role_state() {
            RoleState::PreCandidate(_) => pre_vote,
            RoleState::Candidate(_) => !pre_vote,
            _ => false,
        };
        if !campaigning_as_asked {
            return;
        }
        self.record_vote(from, granted, pre_vote);
    }

    fn record_vote(&mut self, from: NodeId, granted: bool, pre_vote: bool) {
        let Some(campaign) = self.campaign_state() else {
            return;
        };
        campaign.votes.entry(from).or_insert(granted);
        let (RoleState::PreCandidate(campaign) | RoleState::Candidate(campaign)) =
            self.role_state()
        else {
            return;
        };
        let membership = self.membership();
        let result = quorum::joint_vote(&membership.incoming, &membership.outgoing, |id| {
            campaign.votes.get(&id).copied()
        });
        match result {
            VoteResult::Won if pre_vote => self.start_real_campaign(false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => {
                tracing::debug!(
                    node = self.id(),
                    term = self.term(),
                    pre_vote,
                    "election lost"
                );
                self.become_follower(self.term(), None);
            }
            VoteResult::Pending => {}
        }
    }
}
