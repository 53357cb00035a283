//! The plain counter snapshots a transport hands to callers.

use std::collections::BTreeMap;

use raft_core::NodeId;

/// The state of one outbound connection (one lane to one peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Dialling or handshaking; messages wait in the queue.
    Connecting,
    /// Connected; queued messages are being written.
    Connected,
    /// The last attempt failed; waiting out the backoff. Messages sent now are dropped and
    /// counted in `dropped_unreachable`, as Raft will resend what still matters.
    Disconnected,
    /// The link was removed or the transport shut down.
    Closed,
}

/// What one peer link has done, as seen from this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerMetrics {
    /// State of the ordinary lane's connection.
    pub state: ConnectionState,
    /// State of the snapshot lane's connection.
    pub snapshot_state: ConnectionState,
    /// Messages written to the peer's socket (or handed to its channel).
    pub messages_sent: u64,
    /// Bytes written, including frame prefixes.
    pub bytes_sent: u64,
    /// Socket writes; `messages_sent / writes` is how well queued messages coalesce.
    pub writes: u64,
    /// Messages dropped because the peer's queue was full.
    pub dropped_queue_full: u64,
    /// Messages dropped because the peer could not be reached.
    pub dropped_unreachable: u64,
    /// Messages dropped because they encode to more than the frame limit.
    pub dropped_oversized: u64,
    /// Connections established after the first one, on either lane.
    pub reconnects: u64,
    /// Connection attempts that failed (refused, timed out, or handshake refused).
    pub connect_failures: u64,
    /// Messages received from this peer.
    pub messages_received: u64,
    /// Bytes received from this peer, including frame prefixes.
    pub bytes_received: u64,
}

impl PeerMetrics {
    /// All messages dropped on the way to this peer, whatever the reason.
    pub fn messages_dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_unreachable + self.dropped_oversized
    }
}

/// A snapshot of a transport's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportMetrics {
    /// One entry per current peer.
    pub peers: BTreeMap<NodeId, PeerMetrics>,
    /// Inbound connections closed because a frame was oversized, garbled, truncated or
    /// carried a message with the wrong sender or recipient.
    pub frames_rejected: u64,
    /// Inbound connections closed during the handshake (bad magic, version, cluster, node
    /// or lane, or too slow), or refused because too many handshakes were pending.
    pub handshakes_rejected: u64,
    /// Inbound connections that completed their handshake.
    pub connections_accepted: u64,
    /// Messages dropped because they were addressed to a node that is not a peer.
    pub dropped_unknown_peer: u64,
}
