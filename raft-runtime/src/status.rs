//! What a node reports about itself: the core's [`raft_core::Status`] plus the runtime's
//! lifecycle, published on a `tokio::sync::watch` channel whenever it changes.

use serde::{Deserialize, Serialize};

/// A node's status, as returned by [`crate::RaftNode::status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Role, term, leader, commit and applied indexes, last log index, snapshot index,
    /// membership and (on the leader) per-peer replication progress.
    pub raft: raft_core::Status,
    /// Whether the node runs.
    pub lifecycle: Lifecycle,
}

/// Whether a node runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lifecycle {
    /// Serving.
    Running,
    /// Shut down on request.
    Stopped,
    /// Stopped on a fatal error (failed fsync, storage error, detected inconsistency);
    /// restart it after an operator has read `reason`.
    Failed {
        /// What happened.
        reason: String,
    },
}

impl NodeStatus {
    /// True if the node leads (as far as it knows).
    pub fn is_leader(&self) -> bool {
        self.raft.role == raft_core::Role::Leader
    }
}
