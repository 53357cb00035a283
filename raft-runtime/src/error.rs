//! Errors of starting a node. The client API's [`Error`] is the host engine's
//! ([`raft_host::Error`]), re-exported. Every variant says what the caller should do next.

use raft_core::NodeId;
pub use raft_host::{Error, RestoreError};
use thiserror::Error;

use crate::config::RuntimeConfigError;

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid; fix the named field.
    #[error("invalid configuration: {0}")]
    Config(#[from] RuntimeConfigError),
    /// Restoring the node from its storage (or bootstrapping it) failed; the error says
    /// what to do.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// A thread or task the node needs could not be started (the system is out of
    /// resources); retry once resources are free.
    #[error("cannot start {what}: {reason}")]
    Spawn {
        /// What was being started.
        what: &'static str,
        /// The system's complaint.
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
}
