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
//! With mutual TLS (what a real cluster should run): every node gets a certificate from
//! the cluster's CA naming `node-<id>.raft` ([`node_certificate_name`]); the rest is the same.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use raft_transport_tcp::{TcpConfig, TcpTransport, TlsConfig};
//!
//! let tls = TlsConfig::from_pem_files(
//!     Path::new("tls/ca.pem"),
//!     Path::new("tls/node-1.pem"),
//!     Path::new("tls/node-1.key"),
//! )?;
//! let config = TcpConfig::new(1, 0xC1A5_7E12, "0.0.0.0:7001".parse()?).with_tls(tls);
//! // Fails with `StartError::Tls` if the certificate does not name node 1.
//! let (transport, inbound) = TcpTransport::bind(config).await?;
//! # let _ = (transport, inbound);
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
//! **TLS.** With [`TcpConfig::with_tls`] each connection first runs a TLS 1.3 handshake
//! (rustls, ring) in which both sides present certificates from the cluster CA. The
//! dialler verifies the server name `node-<target id>.raft`, so it knows whom it reached;
//! the receiver checks that the certificate names the id the hello then claims. Both
//! lanes are secured alike. Without TLS anyone who can reach the port and knows the
//! cluster id can speak for any peer: plaintext is for tests and experiments.
//!
//! **Receiving.** The receiver refuses a failed TLS handshake, a hello with the wrong
//! magic, version or cluster id, from a node that is not one of its peers, or claiming an
//! id its certificate does not name, by closing the connection without a word (a stranger
//! learns no cluster id and no node id). It closes any connection whose frame is
//! oversized, garbled or truncated, or whose message's `from` is not the handshake's node
//! or whose `to` is not this node. Each refusal is counted
//! ([`TransportMetrics::handshakes_rejected`] and a counter per cause) and logged once per
//! change per remote address; each bad frame is one `warn` line and
//! [`TransportMetrics::frames_rejected`]. The endpoint keeps serving everyone else.
//!
//! **Bounded inbound.** A handshake must finish within [`TcpConfig::handshake_timeout`];
//! pending handshakes are limited per remote address and in all, and a newcomer over a
//! limit evicts the *oldest* pending one, so idle strangers cannot hold slots against real
//! peers, whose handshakes take milliseconds. Open inbound connections are capped
//! ([`TcpConfig::max_inbound_connections`]), a peer holds at most four per lane, and a
//! newer connection never closes an older one (so nobody can cut a peer's connection by
//! claiming its id). Peer sockets use TCP keepalive, so a vanished peer is noticed even on
//! an idle lane.
//!
//! **Accepted messages** go to the inbound receiver,
//! bounded in messages and in bytes ([`TcpConfig::inbound_queue_max_bytes`]); when the
//! node falls behind, readers wait (TCP backpressure) instead of dropping.
//!
//! **Snapshots.** An interrupted snapshot stream simply drops with its connection;
//! raft-core resends from the last acknowledged offset, and the lane reconnects like any
//! other.
#![forbid(unsafe_code)]

mod admission;
mod append_slices;
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
mod refusals;
mod stream;
mod tcp;
mod tls;
mod transport;

pub use channel::{ChannelNetwork, ChannelTransport, DEFAULT_INBOUND_CAPACITY_MESSAGES};
pub use config::TcpConfig;
pub use error::{
    ConfigError, FrameError, HandshakeError, PeerError, PemOrigin, PemRole, StartError, TlsError,
};
pub use handshake::Lane;
pub use metrics::{ConnectionState, PeerMetrics, TransportMetrics};
pub use tcp::TcpTransport;
pub use tls::{TlsConfig, node_certificate_name};
pub use transport::Transport;
