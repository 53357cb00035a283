//! Errors of the client API (what a request's one outcome can be) and of restoring a node.
//! Every variant says what the caller should do next.

use raft_core::{Index, MembershipError, NodeId, ProposalError, ReadError, TransferError};
use thiserror::Error;

/// Why a client call (`propose`, `read`, membership change, transfer) failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// This node cannot serve the request: send it to the leader, `leader_hint`, reachable
    /// at `leader_addr` (its peer address as recorded in the cluster's address book) or
    /// `leader_client_url` (the client URL it registered), when known. With no hint, wait
    /// for an election and retry.
    #[error(
        "not the leader; retry on node {} ({})",
        leader_hint.map_or_else(|| "unknown".to_string(), |id| id.to_string()),
        leader_client_url.as_deref().or(leader_addr.as_deref()).unwrap_or("address unknown")
    )]
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
        /// The leader's peer (Raft) address, rendered with `Debug`.
        leader_addr: Option<String>,
        /// The client URL the leader registered with its address, if any.
        leader_client_url: Option<String>,
    },
    /// The proposal's entry was overwritten after a leader change: it will never apply.
    /// Retrying is safe.
    #[error("the write was overwritten after a leader change and will never apply; retry")]
    Dropped,
    /// The request may or may not have taken effect. Retry writes under a client session
    /// (exactly-once) or read to find out.
    #[error("outcome unknown ({reason}); retry under a client session or read to find out")]
    OutcomeUnknown {
        /// Why it is unknown.
        reason: String,
    },
    /// The proposal committed at `index`, but this node skipped applying it because a
    /// snapshot from the leader covered it, so its response is lost. The write did happen.
    #[error(
        "committed at index {index} but its response was superseded by a snapshot; read to see its effect"
    )]
    ResponseUnavailable {
        /// Where it committed.
        index: Index,
    },
    /// The command is larger than the configured limit; send a smaller one.
    #[error("command of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TooLarge {
        /// The encoded command's size.
        size_bytes: u64,
        /// The limit (`max_entry_bytes`).
        max_bytes: u64,
    },
    /// Too many requests are pending on the leader; back off and retry.
    #[error("overloaded; back off and retry")]
    Overloaded,
    /// A leadership transfer is in progress; retry on the new leader shortly.
    #[error("leadership transfer in progress; retry shortly")]
    TransferInProgress,
    /// Leadership was lost before a read was confirmed; retry (on the new leader).
    #[error("leadership lost before the read was confirmed; retry")]
    LeadershipLost,
    /// Lease reads were asked for but `lease_reads` is off in the core config; use
    /// linearizable reads or enable leases.
    #[error("lease reads are not enabled; use a linearizable read or enable lease_reads")]
    LeaseDisabled,
    /// This node is a witness: it votes but holds no application data, so it cannot serve
    /// reads or return write responses. Send the request to another member.
    #[error("this node is a witness and holds no data; use another member")]
    Witness,
    /// The state machine could not decode the committed command (for example a client of
    /// another version). It was skipped on every replica; fix the client.
    #[error("the command at index {index} could not be decoded: {reason}")]
    InvalidCommand {
        /// Where the command committed.
        index: Index,
        /// The decoder's complaint.
        reason: String,
    },
    /// The command could not be encoded (a serializer error); fix the command type.
    #[error("the command could not be encoded: {reason}")]
    Encode {
        /// The serializer's complaint.
        reason: String,
    },
    /// A membership change was refused or failed; the variant says what to fix.
    #[error("membership change failed: {0}")]
    Membership(MembershipError),
    /// A leadership transfer failed; the variant says what to fix.
    #[error("leadership transfer failed: {0}")]
    Transfer(TransferError),
    /// No answer within the configured `request_timeout`. The request may still take
    /// effect: retry under a client session, or read to find out.
    #[error("no answer within {waited_ms} ms; the request may still take effect")]
    Timeout {
        /// How long the call waited.
        waited_ms: u64,
    },
    /// The node is shut down (or shutting down); use another node or restart it.
    #[error("the node is shut down")]
    Shutdown,
    /// The node stopped on a fatal error (failed fsync, detected inconsistency, storage
    /// error). Restart it; it recovers from what is durable. An operator should read the
    /// reason.
    #[error("the node stopped: {reason}")]
    Stopped {
        /// What happened.
        reason: String,
    },
    /// Taking or saving the snapshot failed; the log is not compacted. The node keeps
    /// running; retry later.
    #[error("the snapshot failed: {reason}")]
    SnapshotFailed {
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// True if sending the same request again (to the node the error names, if any) is the
    /// right reaction: not leader, dropped, overloaded, transfer in progress, leadership
    /// lost, timeouts and unknown outcomes (the latter two only under a client session for
    /// writes).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NotLeader { .. }
                | Error::Dropped
                | Error::Overloaded
                | Error::TransferInProgress
                | Error::LeadershipLost
                | Error::Timeout { .. }
                | Error::OutcomeUnknown { .. }
        )
    }

    /// `NotLeader` with a hint and no addresses (a host fills them in from its book).
    pub fn not_leader(leader_hint: Option<NodeId>) -> Error {
        Error::NotLeader {
            leader_hint,
            leader_addr: None,
            leader_client_url: None,
        }
    }

    /// The client error for a proposal the core refused.
    pub fn from_proposal(error: ProposalError) -> Error {
        match error {
            ProposalError::NotLeader { leader_hint } => Error::not_leader(leader_hint),
            ProposalError::Dropped => Error::Dropped,
            ProposalError::Unknown { reason } => Error::OutcomeUnknown { reason },
            ProposalError::TooLarge {
                size_bytes,
                max_bytes,
            } => Error::TooLarge {
                size_bytes,
                max_bytes,
            },
            ProposalError::Overloaded => Error::Overloaded,
            ProposalError::TransferInProgress => Error::TransferInProgress,
        }
    }

    /// The client error for a read the core refused.
    pub fn from_read(error: ReadError) -> Error {
        match error {
            ReadError::NotLeader { leader_hint } => Error::not_leader(leader_hint),
            ReadError::LeadershipLost => Error::LeadershipLost,
            ReadError::Timeout => Error::OutcomeUnknown {
                reason: "the leader did not confirm the read in time".into(),
            },
            ReadError::Overloaded => Error::Overloaded,
            ReadError::LeaseDisabled => Error::LeaseDisabled,
        }
    }

    /// The client error for a membership change the core refused.
    pub fn from_membership(error: MembershipError) -> Error {
        match error {
            MembershipError::NotLeader { leader_hint } => Error::not_leader(leader_hint),
            other => Error::Membership(other),
        }
    }

    /// The client error for a failed leadership transfer.
    pub fn from_transfer(error: TransferError) -> Error {
        match error {
            TransferError::NotLeader { leader_hint } => Error::not_leader(leader_hint),
            other => Error::Transfer(other),
        }
    }
}

/// Why a node could not be restored from its storage (or bootstrapped).
#[derive(Debug, Error)]
pub enum RestoreError {
    /// The storage failed while restoring or bootstrapping; the message names the file.
    #[error("storage failed during {operation}: {source}")]
    Storage {
        /// What the engine was doing.
        operation: &'static str,
        /// The storage's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The stored snapshot could not be loaded into the state machine (corrupt or written by
    /// an incompatible version). The node must not serve; restore the data directory.
    #[error("cannot restore the state machine from the snapshot at index {index}: {reason}")]
    Snapshot {
        /// The snapshot's index.
        index: Index,
        /// What went wrong.
        reason: String,
    },
    /// Bootstrap was asked for but the founding members do not include this node's own id;
    /// list every founding member, this node included.
    #[error("bootstrap needs this node ({0}) among the founding members")]
    BootstrapWithoutSelf(NodeId),
    /// The storage gave back a log that cannot be a Raft log (a gap after the snapshot or
    /// between entries, or a term going down): it is corrupt or buggy. Restore the data
    /// directory; the node must not start.
    #[error("the stored log is inconsistent: {0}")]
    Inconsistent(String),
}
