//! Errors, sorted by blame: the caller's configuration, a peer's bytes, or the network.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// The TLS material cannot prove this node's id; see [`TlsError`].
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
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
    /// The peer closed the connection instead of accepting the hello. Refusals are silent
    /// by design; the peer's log says why (wrong cluster id, this node unknown to it, a
    /// certificate that does not name this node, or no room for more connections).
    #[error("the peer closed the connection without accepting the handshake (see its log)")]
    Refused,
    /// The hello claims a node id that the dialler's TLS certificate does not name.
    #[error("the hello claims node {claimed} but the TLS certificate does not name {}", crate::tls::node_certificate_name(*claimed))]
    IdentityMismatch {
        /// The node id the hello claims.
        claimed: NodeId,
    },
    /// This node already holds the most connections it accepts from this peer on this lane.
    #[error("node {peer} already has {count} connections open on this lane")]
    PeerLaneFull {
        /// The peer.
        peer: NodeId,
        /// Its open connections on the lane.
        count: usize,
    },
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
    /// The TLS handshake failed: not TLS, a certificate from another CA, a certificate
    /// for another node, or a broken session.
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// The inbound connection limit was reached with no pending handshake to evict.
    #[error("inbound connection limit reached")]
    OverCapacity,
    /// A pending handshake was closed to make room for newer connections.
    #[error("closed to make room: too many handshakes pending")]
    Evicted,
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

/// Which part of the TLS material a [`TlsError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemRole {
    /// The cluster CA certificate(s) peers must be issued by.
    CaCertificates,
    /// This node's certificate chain.
    Certificate,
    /// This node's private key.
    PrivateKey,
}

impl fmt::Display for PemRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PemRole::CaCertificates => "CA certificate",
            PemRole::Certificate => "node certificate",
            PemRole::PrivateKey => "private key",
        })
    }
}

/// Where PEM material came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemOrigin {
    /// Read from this file.
    File(PathBuf),
    /// Given as bytes ([`crate::TlsConfig::from_pem`]).
    Memory,
}

impl fmt::Display for PemOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemOrigin::File(path) => write!(f, "file {}", path.display()),
            PemOrigin::Memory => f.write_str("in-memory PEM"),
        }
    }
}

/// Why TLS material cannot be used. Each variant names the part and the file; fix that
/// file (or regenerate the certificates) and start again.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the {role} file {}: {source}", path.display())]
    Read {
        /// What the file should hold.
        role: PemRole,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The bytes are not well-formed PEM.
    #[error("{role} ({origin}) is not valid PEM: {source}")]
    Pem {
        /// What the PEM should hold.
        role: PemRole,
        /// Where it came from.
        origin: PemOrigin,
        /// What the parser said.
        source: rustls::pki_types::pem::Error,
    },
    /// The PEM holds no block of the expected kind (`CERTIFICATE`, or `PRIVATE KEY`,
    /// `EC PRIVATE KEY` or `RSA PRIVATE KEY`).
    #[error("{role} ({origin}) holds no {role} PEM block")]
    Missing {
        /// What was looked for.
        role: PemRole,
        /// Where it was looked for.
        origin: PemOrigin,
    },
    /// The CA certificates cannot serve as trust roots.
    #[error("CA certificate ({origin}) cannot be used as a trust root: {detail}")]
    BadCa {
        /// Where they came from.
        origin: PemOrigin,
        /// What is wrong.
        detail: String,
    },
    /// The private key is unsupported or does not belong to the node certificate.
    #[error(
        "private key ({key_origin}) is unsupported or does not match the node certificate ({cert_origin}): {source}"
    )]
    KeyRejected {
        /// Where the key came from.
        key_origin: PemOrigin,
        /// Where the certificate came from.
        cert_origin: PemOrigin,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The node certificate does not verify against the CA (other issuer, expired, or
    /// missing the `clientAuth`/`serverAuth` usage).
    #[error("node certificate ({origin}) is not valid under the CA: {source}")]
    CertificateRejected {
        /// Where it came from.
        origin: PemOrigin,
        /// What the verifier said.
        source: rustls::Error,
    },
    /// The node certificate does not carry this node's name (see
    /// [`crate::node_certificate_name`]); peers would refuse it.
    #[error("node certificate ({origin}) does not name node {node_id}: it needs the DNS subject alternative name {}", crate::tls::node_certificate_name(*node_id))]
    NotForNode {
        /// The node id the transport was configured with.
        node_id: NodeId,
        /// Where the certificate came from.
        origin: PemOrigin,
    },
    /// The crypto provider refused the TLS settings (a build problem, not a file problem).
    #[error("TLS provider cannot be set up: {source}")]
    Provider {
        /// What rustls said.
        source: rustls::Error,
    },
}
