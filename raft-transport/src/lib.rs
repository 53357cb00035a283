//! # raft-transport
//!
//! The interface a Raft host uses to reach its peers, whatever carries the bytes: the
//! [`Transport`] trait and the small types it speaks ([`PeerError`], [`TransportMetrics`]).
//! `raft-transport-tcp` implements it over TCP and in-process channels; a host such as
//! `raft-runtime` depends on this crate alone, so it needs the TCP crate only for TCP.
#![forbid(unsafe_code)]

mod metrics;

pub use metrics::{ConnectionState, PeerMetrics, TransportMetrics};

use std::fmt::Debug;

use async_trait::async_trait;
use raft_core::{Message, NodeId};

use thiserror::Error;

/// Sends messages to peers. Inbound messages arrive on the
/// `tokio::sync::mpsc::Receiver<Message>` returned next to the transport when it is built
/// (for example `raft_transport_tcp::TcpTransport::bind` and
/// `raft_transport_tcp::ChannelNetwork::endpoint`); each
/// message there has passed the transport's checks (its `from` is the authenticated peer,
/// its `to` is this node).
///
/// Delivery is best effort, as Raft expects: messages may be dropped (full queue, peer
/// down) and, across a reconnect, arrive out of order; they are never duplicated or
/// corrupted, and within one connection they arrive in the order sent. Every drop is
/// counted in [`Transport::metrics`].
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// How a peer is reached: a socket address for TCP, nothing for in-process channels.
    type Address: Clone + Debug + Send + Sync + 'static;

    /// This node's id.
    fn node_id(&self) -> NodeId;

    /// Queues `message` for `message.to` and returns at once.
    ///
    /// Never blocks and never waits for the network: when the peer's bounded queue is full
    /// or the peer is unreachable, the message is dropped and counted. Messages to a node
    /// that is not a peer are dropped and counted in
    /// [`TransportMetrics::dropped_unknown_peer`]. Snapshot chunks go on their own lane.
    fn send(&self, message: Message);

    /// Adds a peer, or moves an existing one to a new address (its connections are
    /// re-established). Also lets the peer's inbound connections pass the handshake.
    fn add_peer(&self, id: NodeId, address: Self::Address) -> Result<(), PeerError>;

    /// Removes a peer: its queued messages are discarded, its connections closed, and its
    /// future connections refused. Returns false if it was not a peer.
    fn remove_peer(&self, id: NodeId) -> bool;

    /// The current peers, in id order.
    fn peers(&self) -> Vec<NodeId>;

    /// A snapshot of the counters.
    fn metrics(&self) -> TransportMetrics;

    /// Stops the transport: no more connections are accepted, messages already queued are
    /// written where a connection is up (bounded by a timeout), then every connection is
    /// closed and every task has ended. Later calls to `send` drop their messages; the
    /// inbound receiver yields `None` once drained.
    async fn shutdown(&self);
}

/// Why [`Transport::add_peer`] refused a peer. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PeerError {
    /// Node id 0 is reserved; use the peer's real id.
    #[error("node id 0 is reserved")]
    ZeroNodeId,
    /// A node does not connect to itself; leave it out of its own peer list.
    #[error("node {0} is this node")]
    SelfPeer(NodeId),
    /// The transport was shut down; start a new one.
    #[error("the transport is shut down")]
    ShutDown,
}
