//! Errors, sorted by blame: the caller's configuration, a peer's bytes, or the network.

use std::io;
use std::net::SocketAddr;

use raft_core::NodeId;
use thiserror::Error;

/// A configuration value that cannot work. Each variant names the field to fix.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `node_id` must not be 0 (0 means "none" on the wire).
    #[error("node_id must not be 0")]
    ZeroNodeId,
    /// A size, count or timeout is zero; give it a positive value.
    #[error("{field} must be greater than zero")]
    Zero {
        /// The field to fix.
        field: &'static str,
    },
    /// `backoff_max` is below `backoff_min`; raise `backoff_max`.
    #[error("backoff_max must be at least backoff_min")]
    BackoffRange,
}

/// Why a transport could not be started. Nothing was spawned; fix the cause and retry.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid; see [`ConfigError`].
    #[error("invalid transport configuration: {0}")]
    Config(#[from] ConfigError),
    /// The listening socket could not be bound (address in use, no permission...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
}

pub use raft_transport::PeerError;

/// A frame that cannot be accepted. The connection it came on is closed; others go on.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The length prefix exceeds the configured maximum. Rejected before any buffer grows,
    /// so a huge prefix costs nothing. On the sending side the message is dropped.
    #[error("frame of {len_bytes} bytes exceeds the maximum of {max_bytes} bytes")]
    Oversized {
        /// The length the frame claims (or, when encoding, has).
        len_bytes: u64,
        /// The configured maximum.
        max_bytes: u32,
    },
    /// The frame body is not a postcard-encoded message.
    #[error("garbled frame body: {0}")]
    Garbled(#[from] postcard::Error),
    /// The body decoded but left bytes over, so sender and receiver disagree on the format.
    #[error("frame body has {extra_bytes} bytes after the message")]
    TrailingBytes {
        /// How many bytes were left.
        extra_bytes: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({buffered_bytes} bytes buffered)")]
    Truncated {
        /// Bytes of the incomplete frame that had arrived.
        buffered_bytes: usize,
    },
}

/// Why a handshake failed. The connection is closed; on the dialling side the link backs
/// off and retries, since configurations can be fixed while nodes run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The first bytes are not this protocol's magic: not a raft peer at all.
    #[error("bad magic: not a raft transport connection")]
    BadMagic,
    /// The peer speaks another protocol version; upgrade one side.
    #[error("unsupported protocol version {got} (this node speaks {supported})")]
    UnsupportedVersion {
        /// The version the peer announced.
        got: u16,
        /// The version this node speaks.
        supported: u16,
    },
    /// The peer belongs to another cluster; check both nodes' `cluster_id`.
    #[error("wrong cluster id {got} (expected {expected})")]
    WrongCluster {
        /// The cluster id the peer announced.
        got: u64,
        /// This node's cluster id.
        expected: u64,
    },
    /// The sender is not among this node's peers; add it with `add_peer` first.
    #[error("unknown node id {0}")]
    UnknownNode(NodeId),
    /// The lane byte is not one this version knows.
    #[error("unknown lane {0}")]
    UnknownLane(u8),
    /// The peer refused our handshake and said why.
    #[error("refused by peer: {0}")]
    Refused(RefusalReason),
    /// The node at the peer's address is not the node we meant to reach; fix the address.
    #[error("reached node {got} instead of node {expected}")]
    WrongPeer {
        /// The node we dialled.
        expected: NodeId,
        /// The node that answered.
        got: NodeId,
    },
    /// The answer carried a status byte this version does not know.
    #[error("unknown handshake status {0}")]
    UnknownStatus(u8),
}

/// Why a receiving node refused a handshake, as sent back to the dialler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RefusalReason {
    /// The dialler's cluster id differs from the receiver's.
    #[error("wrong cluster id")]
    WrongCluster,
    /// The receiver does not know the dialler's node id.
    #[error("unknown node id")]
    UnknownNode,
    /// The receiver does not speak the dialler's protocol version.
    #[error("unsupported protocol version")]
    UnsupportedVersion,
}

/// Why one connection ended. Logged once, on the line that says the connection closed.
#[derive(Debug, Error)]
pub(crate) enum ConnectionError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// An operation did not finish in time.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// A frame could not be accepted.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// A message's `from` differs from the node id of the handshake.
    #[error("message claims to be from node {claimed} on a connection from node {handshake}")]
    SenderMismatch {
        /// The node id the connection authenticated as.
        handshake: NodeId,
        /// The `from` field of the message.
        claimed: NodeId,
    },
    /// A message is addressed to another node.
    #[error("message for node {to} arrived at node {local}")]
    WrongRecipient {
        /// The message's `to`.
        to: NodeId,
        /// This node.
        local: NodeId,
    },
    /// The receiving side of an outbound connection sent bytes it never should.
    #[error("peer sent unexpected data on an outbound connection")]
    UnexpectedData,
    /// The peer closed the connection.
    #[error("closed by peer")]
    ClosedByPeer,
}

impl ConnectionError {
    /// True when the peer broke the protocol (counted as a rejected frame), as opposed to
    /// the network failing or the peer going away.
    pub(crate) fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            ConnectionError::Frame(_)
                | ConnectionError::SenderMismatch { .. }
                | ConnectionError::WrongRecipient { .. }
        )
    }
}
