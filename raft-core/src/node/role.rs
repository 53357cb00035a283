//! The node's role and the state only that role has (section 5.1; pre-vote: thesis 9.6).
//! A role changes only through the `become_*` transitions in `node/transitions.rs` (only
//! they can replace the [`RoleSlot`]'s content); the data of one role cannot be touched in
//! another.

use std::collections::BTreeMap;

use crate::action::Role;
use crate::progress::Progress;
use crate::state::leadership_transfer::Transfer;
use crate::state::membership_change::PendingChange;
use crate::state::reads::LeaderReads;
use crate::types::NodeId;

/// The role, with its own state.
#[derive(Debug)]
pub(crate) enum RoleState {
    Follower(Follower),
    PreCandidate(Campaign),
    Candidate(Campaign),
    Leader(Box<LeaderState>),
}

/// State only a follower has.
#[derive(Debug, Default)]
pub(crate) struct Follower {
    /// The leader of the current term, once heard from.
    pub(crate) leader: Option<NodeId>,
}

/// Votes received in a campaign, by voter.
pub(crate) type Votes = BTreeMap<NodeId, bool>;

/// State of a pre-candidate or candidate.
#[derive(Debug, Default)]
pub(crate) struct Campaign {
    pub(crate) votes: Votes,
    /// A candidate's own vote, waiting for the write (sequence) that makes it durable.
    pub(crate) self_vote_pending: Option<u64>,
}

/// State only a leader has.
#[derive(Debug)]
pub(crate) struct LeaderState {
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    pub(crate) heartbeat_elapsed: u32,
    pub(crate) quorum_check_elapsed: u32,
    pub(crate) reads: LeaderReads,
    /// Bytes of commands appended in this term and not yet committed.
    pub(crate) uncommitted_bytes: u64,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) pending_change: Option<PendingChange>,
    /// Something happened (an entry appended, a peer answered, a tick) that may let the
    /// leader send more; the next flush looks at every peer's window only if set.
    pub(crate) replication_dirty: bool,
    /// Reused buffer of peer ids for broadcasts (no allocation per flush).
    pub(crate) peer_scratch: Vec<NodeId>,
}

impl LeaderState {
    /// A new leader's state: every peer probed from `next_index`, nothing pending.
    pub(crate) fn new(peers: impl IntoIterator<Item = NodeId>, next_index: u64) -> Self {
        LeaderState {
            progress: peers
                .into_iter()
                .map(|id| (id, Progress::new(next_index)))
                .collect(),
            heartbeat_elapsed: 0,
            quorum_check_elapsed: 0,
            reads: LeaderReads::default(),
            uncommitted_bytes: 0,
            transfer: None,
            pending_change: None,
            replication_dirty: true,
            peer_scratch: Vec::new(),
        }
    }
}

/// The node's current role. Feature files read it and change the current role's own
/// state; only the node module (its transitions) replaces it.
#[derive(Debug)]
pub(crate) struct RoleSlot(RoleState);

impl RoleSlot {
    pub(super) fn new(state: RoleState) -> Self {
        RoleSlot(state)
    }

    /// Puts `next` in place, returning the previous role.
    pub(super) fn replace(&mut self, next: RoleState) -> RoleState {
        std::mem::replace(&mut self.0, next)
    }

    pub(crate) fn state(&self) -> &RoleState {
        &self.0
    }

    pub(crate) fn role(&self) -> Role {
        self.0.role()
    }

    pub(crate) fn is_leader(&self) -> bool {
        matches!(self.0, RoleState::Leader(_))
    }

    pub(crate) fn is_follower(&self) -> bool {
        matches!(self.0, RoleState::Follower(_))
    }

    /// The leader's state, in the leader role.
    pub(crate) fn leader(&self) -> Option<&LeaderState> {
        match &self.0 {
            RoleState::Leader(leader) => Some(leader),
            _ => None,
        }
    }

    /// The leader's state, in the leader role.
    pub(crate) fn leader_mut(&mut self) -> Option<&mut LeaderState> {
        match &mut self.0 {
            RoleState::Leader(leader) => Some(leader),
            _ => None,
        }
    }

    /// The follower's state, in the follower role.
    pub(crate) fn follower_mut(&mut self) -> Option<&mut Follower> {
        match &mut self.0 {
            RoleState::Follower(follower) => Some(follower),
            _ => None,
        }
    }

    /// The campaign of a candidate (not a pre-candidate).
    pub(crate) fn candidate_mut(&mut self) -> Option<&mut Campaign> {
        match &mut self.0 {
            RoleState::Candidate(campaign) => Some(campaign),
            _ => None,
        }
    }

    /// The campaign of a pre-candidate or candidate.
    pub(crate) fn campaign_mut(&mut self) -> Option<&mut Campaign> {
        match &mut self.0 {
            RoleState::PreCandidate(campaign) | RoleState::Candidate(campaign) => Some(campaign),
            _ => None,
        }
    }
}

impl RoleState {
    /// The public name of the role.
    pub(crate) fn role(&self) -> Role {
        match self {
            RoleState::Follower(_) => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }
}
