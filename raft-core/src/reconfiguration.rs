//! Membership changes by joint consensus (thesis section 4.3), with catch-up of new voters
//! as non-voting members first, abort on catch-up timeout, and learner auto-promotion.
//!
//! ```text
//!  request --(new voters catch up)--> append C(old,new) --commits--> append C(new) --commits--> done
//!     \--(catch-up timeout)--> abandoned, configuration unchanged
//! ```
//! A configuration takes effect on each node when appended. A new leader that inherits a
//! committed joint configuration appends C(new) itself.

use std::collections::BTreeSet;

use crate::action::{Action, ChangeId};
use crate::membership::{Membership, MembershipChange, MembershipError};
use crate::node::Node;
use crate::node::role::RoleState;
use crate::node::views::LeaderWithLog;
use crate::progress::{Progress, ReplicationState};
use crate::state::membership_change::{ChangePhase, PendingChange};
use crate::types::{EntryPayload, Index, NodeId};

impl Node {
    /// Changes the membership: any set of changes in one joint-consensus step. The outcome
    /// arrives as [`Action::MembershipOutcome`] once C(new) commits.
    ///
    /// ```
    /// use raft_core::{Action, Config, Membership, MembershipChange, Node, RestoredState};
    ///
    /// let mut node = Node::new(Config::new(1, 1), RestoredState::bootstrap(Membership::with_voters([1]))).unwrap();
    /// let mut actions = Vec::new();
    /// while node.leader() != Some(1) {
    ///     node.tick();
    ///     node.drain_actions(&mut actions);
    ///     for action in actions.drain(..) {
    ///         if let Action::Persist(batch) = action { node.on_persisted(batch.token); }
    ///     }
    /// }
    /// node.change_membership(vec![MembershipChange::AddLearner(2)]);
    /// // Drive the single node: persist everything, then look for the outcome.
    /// let mut done = false;
    /// for _ in 0..4 {
    ///     let mut actions = Vec::new();
    ///     node.drain_actions(&mut actions);
    ///     for action in actions {
    ///         match action {
    ///             Action::Persist(batch) => node.on_persisted(batch.token),
    ///             Action::MembershipOutcome { result, .. } => done = result.unwrap().is_learner(2),
    ///             _ => {}
    ///         }
    ///     }
    /// }
    /// assert!(done);
    /// ```
    pub fn change_membership(&mut self, changes: Vec<MembershipChange>) -> ChangeId {
        let id = ChangeId(self.next_id());
        if let Err(error) = self.start_change(id, &changes) {
            self.push_action(Action::MembershipOutcome {
                id,
                result: Err(error),
            });
        }
        id
    }

    fn start_change(
        &mut self,
        id: ChangeId,
        changes: &[MembershipChange],
    ) -> Result<(), MembershipError> {
        let uncommitted_config = self.membership_index() > self.commit_index();
        let membership = self.membership().clone();
        let next_index = self.log().next_index();
        let leader_hint = self.leader();
        let me = self.id();
        let Some(leader) = self.leader_state() else {
            return Err(MembershipError::NotLeader { leader_hint });
        };
        if leader.pending_change.is_some() || membership.is_joint() || uncommitted_config {
            return Err(MembershipError::ChangeInProgress);
        }
        let target = membership.apply_changes(changes)?;
        let newcomers: BTreeSet<NodeId> = target
            .incoming
            .iter()
            .filter(|id| !membership.is_voter(**id))
            .copied()
            .collect();
        for id in target.members() {
            if id != me {
                leader
                    .progress
                    .entry(id)
                    .or_insert_with(|| Progress::new(next_index));
            }
        }
        tracing::info!(node = me, target = %target.describe(), "membership change requested");
        leader.pending_change = Some(PendingChange {
            id,
            target,
            phase: ChangePhase::CatchingUp {
                newcomers,
                elapsed_ticks: 0,
            },
        });
        self.try_enter_joint();
        Ok(())
    }

    /// Appends C(old,new) once every future voter is caught up.
    fn try_enter_joint(&mut self) {
        let (last_index, max_lag) = (self.log().last_index(), self.config().catch_up_max_lag);
        let Some(LeaderWithLog {
            leader, membership, ..
        }) = self.leader_with_log()
        else {
            return;
        };
        let Some(change) = &mut leader.pending_change else {
            return;
        };
        let ChangePhase::CatchingUp { newcomers, .. } = &change.phase else {
            return;
        };
        let caught_up = newcomers.iter().all(|id| {
            leader.progress.get(id).is_some_and(|p| {
                p.state == ReplicationState::Replicate && p.match_index + max_lag >= last_index
            })
        });
        if !caught_up {
            return;
        }
        let joint = membership.enter_joint(&change.target);
        change.phase = ChangePhase::Joint;
        tracing::info!(node = self.id(), config = %joint.describe(), "entering joint configuration");
        self.append_as_leader(EntryPayload::Membership(Box::new(joint)));
    }

    /// Every tick while newcomers catch up: enters the joint phase once they did, or
    /// abandons the change when they did not in time.
    pub(crate) fn on_catch_up_tick(&mut self) {
        let timeout = self.config().catch_up_timeout_ticks;
        let membership = self.membership().clone();
        let Some(leader) = self.leader_state() else {
            return;
        };
        let Some(change) = &mut leader.pending_change else {
            return;
        };
        let ChangePhase::CatchingUp {
            newcomers,
            elapsed_ticks,
        } = &mut change.phase
        else {
            return;
        };
        if *elapsed_ticks < timeout {
            self.try_enter_joint();
            return;
        }
        let laggard = newcomers
            .iter()
            .copied()
            .find(|id| {
                leader
                    .progress
                    .get(id)
                    .is_none_or(|p| p.state != ReplicationState::Replicate)
            })
            .or_else(|| newcomers.first().copied())
            .unwrap_or(0);
        let id = change.id;
        leader.pending_change = None;
        leader.progress.retain(|peer, _| membership.contains(*peer));
        tracing::warn!(
            node = self.id(),
            laggard,
            "membership change abandoned: catch-up timeout"
        );
        self.push_action(Action::MembershipOutcome {
            id,
            result: Err(MembershipError::CatchUpTimeout(laggard)),
        });
    }

    /// Leader: the latest configuration committed. Leave a joint configuration; report a
    /// finished change; step down if no longer a voter.
    pub(crate) fn on_configuration_committed(&mut self) {
        if self.membership_index() > self.commit_index() {
            return;
        }
        if self.membership().is_joint() {
            let leave = self.membership().leave_joint();
            if let Some(change) = self.leader_state().and_then(|l| l.pending_change.as_mut()) {
                change.phase = ChangePhase::Leaving;
            }
            tracing::info!(node = self.id(), config = %leave.describe(), "leaving joint configuration");
            self.append_as_leader(EntryPayload::Membership(Box::new(leave)));
            return;
        }
        let finished = self
            .leader_state()
            .filter(|l| {
                l.pending_change
                    .as_ref()
                    .is_some_and(|c| c.phase == ChangePhase::Leaving)
            })
            .and_then(|l| l.pending_change.take());
        if let Some(change) = finished {
            let result = Ok(Box::new(self.membership().clone()));
            self.push_action(Action::MembershipOutcome {
                id: change.id,
                result,
            });
        }
        if !self.membership().is_voter(self.id()) {
            tracing::info!(node = self.id(), "stepping down: removed from the voters");
            self.become_follower(self.term(), None);
        }
    }

    /// A configuration entry was appended at `index`: it takes effect now.
    pub(crate) fn adopt_configuration(&mut self, index: Index, membership: Membership) {
        self.record_configuration(index, membership);
        self.sync_progress_with_membership();
        self.check_witness_data();
    }

    /// True if `peer` is a witness, or is catching up to become one: it never receives
    /// command payloads or snapshot data.
    pub(crate) fn stores_no_payloads(&self, peer: NodeId) -> bool {
        if self.membership().is_witness(peer) {
            return true;
        }
        match self.role_state() {
            RoleState::Leader(leader) => leader
                .pending_change
                .as_ref()
                .is_some_and(|change| change.target.is_witness(peer)),
            _ => false,
        }
    }

    /// True if this node's data is a witness's: its snapshot was taken while it was a
    /// witness or received without data, or its log holds entries whose payloads were
    /// withheld. Such a node never leads, serves no reads or proposals and keeps the
    /// elided entries (it does not compact them away), so the condition stays visible until
    /// an operator wipes the node; see [`crate::Node::has_incomplete_state`].
    pub(crate) fn holds_witness_data(&self) -> bool {
        self.snapshot_without_data()
            || self.snapshot_meta().membership.is_witness(self.id())
            || self.log().has_elided()
    }

    /// Logs once when this node becomes, or stops being, a full member holding a witness's
    /// data (a former witness re-added without wiping it).
    pub(crate) fn check_witness_data(&mut self) {
        let id = self.id();
        let full_member = self.membership().contains(id) && !self.membership().is_witness(id);
        let incomplete = full_member && self.holds_witness_data();
        if self.note_incomplete_state(incomplete) {
            tracing::warn!(
                node = id,
                "this node holds a witness's data (payloads withheld) but is a full member: \
                 it will not lead or serve reads; wipe its data and add it back"
            );
        }
    }

    fn sync_progress_with_membership(&mut self) {
        let me = self.id();
        let members = self.membership().members();
        let next_index = self.log().next_index();
        let Some(leader) = self.leader_state() else {
            return;
        };
        let catching_up: BTreeSet<NodeId> = match &leader.pending_change {
            Some(PendingChange { target, .. }) => target.members(),
            None => BTreeSet::new(),
        };
        for id in members.iter().filter(|id| **id != me) {
            leader
                .progress
                .entry(*id)
                .or_insert_with(|| Progress::new(next_index));
        }
        leader
            .progress
            .retain(|id, _| members.contains(id) || catching_up.contains(id));
        let target_gone = leader
            .transfer
            .as_ref()
            .is_some_and(|t| !members.contains(&t.target));
        if target_gone {
            self.abort_transfer("the target was removed from the cluster");
        }
    }

    /// Proposes promoting a caught-up learner when auto-promotion is on, and moves a waiting
    /// membership change forward.
    pub(crate) fn maybe_auto_promote(&mut self, from: NodeId) {
        self.try_enter_joint();
        if !self.config().auto_promote_learners
            || !self.membership().is_learner(from)
            || self.membership().is_joint()
        {
            return;
        }
        let (last_index, max_lag) = (self.log().last_index(), self.config().catch_up_max_lag);
        let uncommitted_config = self.membership_index() > self.commit_index();
        let Some(leader) = self.leader_state() else {
            return;
        };
        let caught_up = leader
            .progress
            .get(&from)
            .is_some_and(|p| p.match_index + max_lag >= last_index);
        if caught_up && leader.pending_change.is_none() && !uncommitted_config {
            tracing::info!(
                node = self.id(),
                learner = from,
                "promoting caught-up learner"
            );
            // No host request holds this id: its outcome reaches the host as a
            // `MembershipOutcome` with an id it never handed out, which it only logs.
            let _promotion = self.change_membership(vec![MembershipChange::PromoteLearner(from)]);
        }
    }
}
