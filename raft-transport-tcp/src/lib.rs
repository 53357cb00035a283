//! # raft-transport-tcp
//!
//! Peer networking for raft-core: the [`Transport`] trait, [`TcpTransport`] over real
//! sockets, and [`ChannelNetwork`] / [`ChannelTransport`] inside one process for tests and
//! examples.
//!
//! ## Using it
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use raft_transport_tcp::{TcpConfig, TcpTransport, Transport};
//!
//! let config = TcpConfig::new(1, 0xC1A5_7E12, "0.0.0.0:7001".parse()?);
//! let (transport, mut inbound) = TcpTransport::bind(config).await?;
//! transport.add_peer(2, "10.0.0.2:7001".parse()?)?;
//! transport.add_peer(3, "10.0.0.3:7001".parse()?)?;
//! // In the node's loop: `transport.send(message)` for each outgoing message (never
//! // blocks), and feed `inbound.recv().await` into the core.
//! while let Some(message) = inbound.recv().await {
//!     # let _ = message;
//! }
//! transport.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Design
//!
//! **Connections.** Each node dials each peer twice: an *ordinary* lane (votes, appends,
//! heartbeats) and a *snapshot* lane (snapshot chunks, [`raft_core::Message::is_snapshot_data`]),
//! so a large snapshot never delays a heartbeat. Connections carry frames one way, dialler
//! to receiver; a node's replies travel on its own connection to the peer. Each lane
//! reconnects with exponential backoff and jitter ([`TcpConfig::backoff_min`] ..
//! [`TcpConfig::backoff_max`]); connects, handshakes and writes have timeouts. A lane logs
//! one line when it goes down and one when it comes back, and counts failures in
//! [`PeerMetrics`].
//!
//! **Sending.** [`Transport::send`] only `try_send`s into the peer lane's bounded queue:
//! it never blocks the node, and a full queue drops and counts (Raft tolerates loss). A
//! writer task per lane takes all queued messages (up to [`TcpConfig::coalesce_max_bytes`])
//! into one buffer and writes it with one call, on a socket with `TCP_NODELAY`.
//!
//! **Wire format.** A connection opens with a fixed 24-byte [`handshake`] (magic, protocol
//! version, lane, cluster id, node id) and a fixed 24-byte reply; then [`frame`]s: a `u32`
//! big-endian body length and a postcard-encoded [`raft_core::Message`]. The length is
//! checked against [`TcpConfig::max_frame_bytes`] on both sides, before any buffer grows.
//!
//! **Receiving.** The receiver refuses a hello with the wrong magic, version or cluster id,
//! or from a node that is not one of its peers, and closes any connection whose frame is
//! oversized, garbled or truncated, or whose message's `from` is not the handshake's node
//! or whose `to` is not this node. Each such close is one `warn` line and a counter
//! ([`TransportMetrics::handshakes_rejected`], [`TransportMetrics::frames_rejected`]); the
//! endpoint keeps serving everyone else. Accepted messages go to the inbound receiver,
//! bounded in messages and in bytes ([`TcpConfig::inbound_queue_max_bytes`]); when the
//! node falls behind, readers wait (TCP backpressure) instead of dropping.
//!
//! **Snapshots.** An interrupted snapshot stream simply drops with its connection;
//! raft-core resends from the last acknowledged offset, and the lane reconnects like any
//! other.
#![forbid(unsafe_code)]

mod backoff;
mod channel;
mod config;
mod error;
pub mod frame;
pub mod handshake;
mod inbound;
mod inbound_queue;
mod link;
mod metrics;
mod tcp;
mod transport;

pub use channel::{ChannelNetwork, ChannelTransport, DEFAULT_INBOUND_CAPACITY_MESSAGES};
pub use config::TcpConfig;
pub use error::{ConfigError, FrameError, HandshakeError, PeerError, RefusalReason, StartError};
pub use handshake::Lane;
pub use metrics::{ConnectionState, PeerMetrics, TransportMetrics};
pub use tcp::TcpTransport;
pub use transport::Transport;
