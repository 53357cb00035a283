//! Why a command failed: the errors in outcome actions, some of which also travel between
//! nodes (a forwarded proposal's or read's answer). Re-exported from [`crate::action`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::NodeId;

/// Why a proposal did not (or may not have) commit.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ProposalError {
    /// This node is not the leader and does not forward: send to `leader_hint` if known.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The proposal was appended but its entry was overwritten by a new leader: it will
    /// never commit. Retrying is safe.
    #[error("dropped: the entry was overwritten after a leader change")]
    Dropped,
    /// Whether the proposal committed cannot be known (the forwarded answer was lost, or a
    /// snapshot covered the entry). Retry with a client session to stay exactly-once.
    #[error("outcome unknown: {reason}")]
    Unknown {
        /// Why it is unknown.
        reason: String,
    },
    /// The command exceeds the configured maximum entry size.
    #[error("entry of {size_bytes} bytes exceeds the limit of {max_bytes}")]
    TooLarge {
        /// The command's size.
        size_bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// Too many bytes are uncommitted on the leader: back off and retry.
    #[error("too many uncommitted bytes; retry later")]
    Overloaded,
    /// A leadership transfer is in progress: retry on the new leader shortly.
    #[error("leadership transfer in progress")]
    TransferInProgress,
}

/// Why a read could not be confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ReadError {
    /// No leader is known, or the leader could not be reached; retry later or elsewhere.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The leader lost leadership before confirming the read; retry.
    #[error("leadership lost before the read was confirmed")]
    LeadershipLost,
    /// No confirmation within the read timeout; retry.
    #[error("the read was not confirmed in time")]
    Timeout,
    /// Too many reads are pending; back off.
    #[error("too many pending reads")]
    Overloaded,
    /// Lease reads were asked for but are not enabled (they need check-quorum).
    #[error("lease reads are not enabled")]
    LeaseDisabled,
}

/// Why a leadership transfer failed.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum TransferError {
    /// Only the leader can transfer leadership.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The target is not a full voter (learners and witnesses cannot lead).
    #[error("node {0} cannot become leader")]
    InvalidTarget(NodeId),
    /// The target did not take over within an election timeout.
    #[error("the target did not take over in time")]
    Timeout,
    /// Another transfer is in progress.
    #[error("a transfer is already in progress")]
    InProgress,
    /// The target was removed or the leader stepped down meanwhile.
    #[error("aborted: {0}")]
    Aborted(String),
    /// The leader is already the target.
    #[error("node is already the leader")]
    AlreadyLeader,
}
