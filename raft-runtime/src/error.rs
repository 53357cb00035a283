//! Errors of starting a node. The client API's [`Error`] is the host engine's
//! ([`raft_host::Error`]), re-exported. Every variant says what the caller should do next.

use raft_core::{Index, NodeId};
pub use raft_host::Error;
use thiserror::Error;

use crate::config::RuntimeConfigError;

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid; fix the named field.
    #[error("invalid configuration: {0}")]
    Config(#[from] RuntimeConfigError),
    /// The storage failed while restoring or bootstrapping; the message names the file.
    #[error("storage failed during {operation}: {source}")]
    Storage {
        /// What the runtime was doing.
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
    /// The transport refused a peer from the start configuration.
    #[error("cannot add peer {id} to the transport: {reason}")]
    Peer {
        /// The peer.
        id: NodeId,
        /// The transport's complaint.
        reason: String,
    },
    /// `bootstrap` was asked for but `peers` does not include this node's own id; list
    /// every founding member, this node included.
    #[error("bootstrap needs this node ({0}) among the founding members")]
    BootstrapWithoutSelf(NodeId),
}
