//! Membership configurations and the pure functions that change them (thesis section 4.3).
//!
//! A configuration is a pair of voter sets, `incoming` and `outgoing`. Outside a change
//! `outgoing` is empty; during a joint change both are set and every decision (election and
//! commit) needs a majority of each. A plain configuration is thus a joint one whose second
//! half is empty, and an empty half agrees to everything.
//!
//! ```text
//!   C(old)  --append joint entry-->  C(old,new)  --joint entry commits, leader appends-->  C(new)
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::NodeId;

/// A membership configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Voters of the new (or only) configuration. Includes witnesses that vote in it.
    pub incoming: BTreeSet<NodeId>,
    /// Voters of the old configuration while a joint change is in progress; empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
    /// Non-voting members that receive the log. A voter being demoted may be in `outgoing`
    /// and in `learners` at once until the change completes.
    pub learners: BTreeSet<NodeId>,
    /// Voters (in either half) that store no command payloads and never lead.
    pub witnesses: BTreeSet<NodeId>,
}

/// One step of a membership change. Several may be applied at once through joint consensus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a full voter. The core first replicates to it as a learner until it has caught up.
    AddVoter(NodeId),
    /// Add a non-voting learner.
    AddLearner(NodeId),
    /// Add a witness: votes and counts toward quorums, stores no payloads, never leads.
    AddWitness(NodeId),
    /// Turn a learner into a voter.
    PromoteLearner(NodeId),
    /// Turn a voter into a learner.
    DemoteVoter(NodeId),
    /// Remove a node, whatever its role.
    Remove(NodeId),
}

/// Why a membership change was refused. Each variant names what to fix.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum MembershipError {
    /// The node is already a member in the role asked for; nothing to do.
    #[error("node {0} is already a member in that role")]
    AlreadyMember(NodeId),
    /// The node is not a member; add it first.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// Only learners can be promoted; add the node as a learner first.
    #[error("node {0} is not a learner")]
    NotLearner(NodeId),
    /// Only voters can be demoted.
    #[error("node {0} is not a voter")]
    NotVoter(NodeId),
    /// A witness holds no command payloads, so it can never become a learner or a full
    /// voter: remove it, wipe its data, and add it back in the new role.
    #[error("node {0} is a witness: remove it and add it back (with wiped data) instead")]
    WitnessRoleChange(NodeId),
    /// The change would leave no voter that can lead (witnesses cannot lead).
    #[error("the change would leave no full voter")]
    NoFullVoter,
    /// A joint change is still in progress; wait for it to finish.
    #[error("a membership change is already in progress")]
    ChangeInProgress,
    /// The change list was empty.
    #[error("no changes were given")]
    Empty,
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved")]
    InvalidNodeId,
    /// Only the leader changes membership: send the request to `leader_hint` if known.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// A new voter did not catch up within the configured ticks; the change was abandoned
    /// and the configuration is unchanged. Retry when the node is reachable.
    #[error("node {0} did not catch up in time; change abandoned")]
    CatchUpTimeout(NodeId),
    /// The leader lost leadership before the change committed; its fate is decided by the
    /// next leader. Check the membership and retry if needed.
    #[error("leadership lost before the change committed")]
    LeadershipLost,
}

impl Membership {
    /// A plain configuration with the given voters.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            incoming: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// True while a joint change is in progress.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// True if `id` votes in either half.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.incoming.contains(&id) || self.outgoing.contains(&id)
    }

    /// True if `id` is a learner.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    /// True if `id` is a witness.
    pub fn is_witness(&self, id: NodeId) -> bool {
        self.witnesses.contains(&id)
    }

    /// True if `id` belongs to the configuration in any role.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every member, voters and learners, in ascending order, each once.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.incoming
            .iter()
            .chain(&self.outgoing)
            .chain(&self.learners)
            .copied()
            .collect()
    }

    /// Number of distinct members.
    pub fn node_count(&self) -> usize {
        self.members().len()
    }

    /// A one-line human rendering, e.g. `voters=[1 2 3] outgoing=[1 2] learners=[4] witnesses=[3]`.
    pub fn describe(&self) -> String {
        fn list(set: &BTreeSet<NodeId>) -> String {
            let ids: Vec<String> = set.iter().map(|id| id.to_string()).collect();
            format!("[{}]", ids.join(" "))
        }
        let mut text = format!("voters={}", list(&self.incoming));
        if self.is_joint() {
            text.push_str(&format!(" outgoing={}", list(&self.outgoing)));
        }
        if !self.learners.is_empty() {
            text.push_str(&format!(" learners={}", list(&self.learners)));
        }
        if !self.witnesses.is_empty() {
            text.push_str(&format!(" witnesses={}", list(&self.witnesses)));
        }
        text
    }
}

impl Membership {
    /// The plain configuration that results from applying `changes` to this one (which must
    /// not be joint). Pure: the caller installs the result only on success.
    pub fn apply_changes(
        &self,
        changes: &[MembershipChange],
    ) -> Result<Membership, MembershipError> {
        if self.is_joint() {
            return Err(MembershipError::ChangeInProgress);
        }
        if changes.is_empty() {
            return Err(MembershipError::Empty);
        }
        let mut next = self.clone();
        for change in changes {
            next.apply_one(change)?;
        }
        if next.incoming.iter().all(|id| next.witnesses.contains(id)) {
            return Err(MembershipError::NoFullVoter);
        }
        Ok(next)
    }

    fn apply_one(&mut self, change: &MembershipChange) -> Result<(), MembershipError> {
        use MembershipChange::*;
        let id = match change {
            AddVoter(id) | AddLearner(id) | AddWitness(id) | PromoteLearner(id)
            | DemoteVoter(id) | Remove(id) => *id,
        };
        if id == 0 {
            return Err(MembershipError::InvalidNodeId);
        }
        match change {
            AddVoter(_) | AddWitness(_) | AddLearner(_) if self.contains(id) => {
                return Err(MembershipError::AlreadyMember(id));
            }
            AddVoter(_) => {
                self.incoming.insert(id);
            }
            AddWitness(_) => {
                self.incoming.insert(id);
                self.witnesses.insert(id);
            }
            AddLearner(_) => {
                self.learners.insert(id);
            }
            PromoteLearner(_) if !self.learners.contains(&id) => {
                return Err(MembershipError::NotLearner(id));
            }
            PromoteLearner(_) => {
                self.learners.remove(&id);
                self.incoming.insert(id);
            }
            DemoteVoter(_) if !self.incoming.contains(&id) => {
                return Err(MembershipError::NotVoter(id));
            }
            DemoteVoter(_) if self.witnesses.contains(&id) => {
                return Err(MembershipError::WitnessRoleChange(id));
            }
            DemoteVoter(_) => {
                self.incoming.remove(&id);
                self.learners.insert(id);
            }
            Remove(_) if !self.contains(id) => return Err(MembershipError::NotMember(id)),
            Remove(_) => {
                self.incoming.remove(&id);
                self.learners.remove(&id);
                self.witnesses.remove(&id);
            }
        }
        Ok(())
    }

    /// The joint configuration C(old,new) entering `target` from this (plain) one.
    /// Witness flags of both halves are kept so that outgoing witnesses keep their role.
    pub fn enter_joint(&self, target: &Membership) -> Membership {
        Membership {
            incoming: target.incoming.clone(),
            outgoing: self.incoming.clone(),
            learners: target.learners.clone(),
            witnesses: self.witnesses.union(&target.witnesses).copied().collect(),
        }
    }

    /// The configuration C(new) that leaves this joint one.
    pub fn leave_joint(&self) -> Membership {
        let incoming = self.incoming.clone();
        let witnesses = self
            .witnesses
            .iter()
            .filter(|id| incoming.contains(id))
            .copied()
            .collect();
        Membership {
            incoming,
            outgoing: BTreeSet::new(),
            learners: self.learners.clone(),
            witnesses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joint_round_trip_reaches_target() {
        let old = Membership::with_voters([1, 2, 3]);
        let target = old
            .apply_changes(&[MembershipChange::AddVoter(4), MembershipChange::Remove(1)])
            .unwrap();
        let joint = old.enter_joint(&target);
        assert!(joint.is_joint());
        assert!(joint.is_voter(1) && joint.is_voter(4));
        assert_eq!(joint.leave_joint(), target);
    }

    #[test]
    fn invalid_changes_are_refused() {
        let old = Membership::with_voters([1, 2]);
        assert_eq!(
            old.apply_changes(&[MembershipChange::AddVoter(2)]),
            Err(MembershipError::AlreadyMember(2))
        );
        assert_eq!(
            old.apply_changes(&[MembershipChange::PromoteLearner(2)]),
            Err(MembershipError::NotLearner(2))
        );
        assert_eq!(old.apply_changes(&[]), Err(MembershipError::Empty));
        let with_witness = old
            .apply_changes(&[MembershipChange::AddWitness(3)])
            .unwrap();
        assert_eq!(
            with_witness.apply_changes(&[MembershipChange::DemoteVoter(3)]),
            Err(MembershipError::WitnessRoleChange(3))
        );
        assert_eq!(
            old.apply_changes(&[MembershipChange::Remove(1), MembershipChange::Remove(2)]),
            Err(MembershipError::NoFullVoter)
        );
        let joint = old.enter_joint(&Membership::with_voters([1]));
        assert_eq!(
            joint.apply_changes(&[MembershipChange::AddLearner(3)]),
            Err(MembershipError::ChangeInProgress)
        );
    }

    #[test]
    fn demoted_voter_becomes_learner() {
        let old = Membership::with_voters([1, 2, 3]);
        let target = old
            .apply_changes(&[MembershipChange::DemoteVoter(3)])
            .unwrap();
        assert!(target.is_learner(3) && !target.is_voter(3));
        let joint = old.enter_joint(&target);
        assert!(joint.is_voter(3) && joint.is_learner(3));
    }
}
