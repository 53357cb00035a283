//! Leadership transfer (thesis section 3.10): bring the target up to date, then tell it to
//! campaign at once; its vote request says so, which lets it bypass pre-vote and the
//! check-quorum stickiness of other voters.

use crate::action::{Action, TransferError, TransferId};
use crate::message::MessageBody;
use crate::node::Node;
use crate::state::leadership_transfer::Transfer;
use crate::types::NodeId;

impl Node {
    /// Hands leadership to `target`, or to the most up-to-date full voter when `None`.
    /// While the transfer runs the leader refuses proposals with `TransferInProgress`; it
    /// aborts after an election timeout. Exactly one [`Action::TransferOutcome`] with the
    /// returned id follows: at once if the request is refused, otherwise when the transfer
    /// completes, times out or aborts.
    pub fn transfer_leadership(&mut self, target: Option<NodeId>) -> TransferId {
        let id = TransferId(self.next_id());
        if let Err((target, error)) = self.start_transfer(id, target) {
            tracing::debug!(node = self.id(), target, %error, "leadership transfer refused");
            self.push_action(Action::TransferOutcome {
                id,
                target,
                result: Err(error),
            });
        }
        id
    }

    fn start_transfer(
        &mut self,
        id: TransferId,
        target: Option<NodeId>,
    ) -> Result<(), (NodeId, TransferError)> {
        let me = self.id();
        let last_index = self.log().last_index();
        let leader_hint = self.leader();
        let membership = self.membership().clone();
        let Some(leader) = self.leader_state() else {
            return Err((
                target.unwrap_or(0),
                TransferError::NotLeader { leader_hint },
            ));
        };
        let can_lead = |id: NodeId| membership.is_voter(id) && !membership.is_witness(id);
        let target = match target {
            Some(id) => id,
            None => leader
                .progress
                .iter()
                .filter(|(id, _)| can_lead(**id))
                .max_by_key(|(id, p)| (p.match_index, std::cmp::Reverse(**id)))
                .map(|(id, _)| *id)
                .ok_or((0, TransferError::InvalidTarget(0)))?,
        };
        if leader.transfer.is_some() {
            return Err((target, TransferError::InProgress));
        }
        if target == me {
            return Err((target, TransferError::AlreadyLeader));
        }
        if !can_lead(target) || !leader.progress.contains_key(&target) {
            return Err((target, TransferError::InvalidTarget(target)));
        }
        leader.transfer = Some(Transfer {
            id,
            target,
            elapsed_ticks: 0,
            timeout_now_sent: false,
        });
        tracing::info!(node = me, target, "leadership transfer started");
        let caught_up = leader
            .progress
            .get(&target)
            .is_some_and(|p| p.match_index >= last_index);
        if caught_up {
            self.send_timeout_now(target);
        } else {
            self.send_append(target, true);
        }
        Ok(())
    }

    fn send_timeout_now(&mut self, target: NodeId) {
        if let Some(transfer) = self.leader_state().and_then(|l| l.transfer.as_mut()) {
            transfer.timeout_now_sent = true;
        }
        self.send(target, MessageBody::TimeoutNow);
    }

    /// A follower's match index advanced: the transfer target may now be caught up, and a
    /// learner may be ready for promotion.
    pub(crate) fn on_follower_progress(&mut self, from: NodeId) {
        let last_index = self.log().last_index();
        let Some(leader) = self.leader_state() else {
            return;
        };
        let ready = leader
            .transfer
            .as_ref()
            .is_some_and(|t| t.target == from && !t.timeout_now_sent)
            && leader
                .progress
                .get(&from)
                .is_some_and(|p| p.match_index >= last_index);
        if ready {
            self.send_timeout_now(from);
        }
        self.maybe_auto_promote(from);
    }

    /// A transfer that did not complete within an election timeout fails.
    pub(crate) fn on_transfer_timeout(&mut self) {
        let election_ticks = self.config().election_ticks;
        let Some(leader) = self.leader_state() else {
            return;
        };
        let Some(transfer) = &mut leader.transfer else {
            return;
        };
        if transfer.elapsed_ticks >= election_ticks {
            let (id, target) = (transfer.id, transfer.target);
            leader.transfer = None;
            tracing::info!(node = self.id(), target, "leadership transfer timed out");
            self.push_action(Action::TransferOutcome {
                id,
                target,
                result: Err(TransferError::Timeout),
            });
        }
    }

    /// Aborts a running transfer (target removed, or leadership lost otherwise).
    pub(crate) fn abort_transfer(&mut self, reason: &str) {
        let Some(leader) = self.leader_state() else {
            return;
        };
        if let Some(transfer) = leader.transfer.take() {
            let error = TransferError::Aborted(reason.to_string());
            self.push_action(Action::TransferOutcome {
                id: transfer.id,
                target: transfer.target,
                result: Err(error),
            });
        }
    }

    /// TimeoutNow from our leader: campaign at once, skipping pre-vote. Honoured only from
    /// the leader this node follows in the message's term (validation already refused one
    /// from anyone else, or from a newer term): otherwise anyone could make any voter
    /// depose a healthy leader. A node that knows no leader of its term (it restarted, or
    /// campaigns itself) ignores it; the transfer then times out on the leader.
    pub(crate) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.leader() != Some(from) || !self.is_follower() {
            tracing::debug!(
                node = self.id(),
                from,
                "ignoring TimeoutNow: not from our leader"
            );
            return;
        }
        if !self.can_campaign() {
            tracing::warn!(node = self.id(), from, "ignoring TimeoutNow: cannot lead");
            return;
        }
        tracing::info!(node = self.id(), from, "campaigning on leader's request");
        self.campaign(true);
    }

    /// The outcome of a transfer when the leader steps down: done if the target was told to
    /// campaign (it is the one that deposed us), aborted otherwise.
    pub(crate) fn finish_transfer_on_step_down(&mut self, transfer: Transfer) {
        let result = if transfer.timeout_now_sent {
            Ok(())
        } else {
            Err(TransferError::Aborted(
                "leadership lost before the target caught up".into(),
            ))
        };
        self.push_action(Action::TransferOutcome {
            id: transfer.id,
            target: transfer.target,
            result,
        });
    }
}
