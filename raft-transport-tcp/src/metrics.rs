//! Counters kept by the transports and the plain snapshots handed to callers.
//!
//! Counters are relaxed atomics: each is exact on its own, and a snapshot is a set of
//! readings taken one after another, not one instant.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use raft_core::NodeId;

use crate::handshake::Lane;

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

impl ConnectionState {
    fn to_byte(self) -> u8 {
        match self {
            ConnectionState::Connecting => 0,
            ConnectionState::Connected => 1,
            ConnectionState::Disconnected => 2,
            ConnectionState::Closed => 3,
        }
    }

    fn from_byte(byte: u8) -> ConnectionState {
        match byte {
            0 => ConnectionState::Connecting,
            1 => ConnectionState::Connected,
            2 => ConnectionState::Disconnected,
            _ => ConnectionState::Closed,
        }
    }
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
    /// Inbound connections closed before they were admitted, for any reason: every
    /// refusal counted below, plus bad magic, version, cluster, lane or unknown node id.
    /// None of them was told why.
    pub handshakes_rejected: u64,
    /// Of those, TLS handshakes that failed: a plaintext stranger, a certificate from
    /// another CA, or a client that gave up.
    pub tls_handshakes_failed: u64,
    /// Of those, TLS peers whose hello claimed a node id their certificate does not name.
    pub identity_mismatches: u64,
    /// Of those, connections that did not complete their handshake in time.
    pub handshakes_timed_out: u64,
    /// Of those, pending handshakes closed to make room for newer connections.
    pub handshakes_evicted: u64,
    /// Of those, connections refused on accept because the inbound connection limit was
    /// reached with no pending handshake left to evict, or because the peer already had the
    /// most connections allowed on that lane.
    pub connections_over_capacity: u64,
    /// Inbound connections that completed their handshake.
    pub connections_accepted: u64,
    /// Messages dropped because they were addressed to a node that is not a peer.
    pub dropped_unknown_peer: u64,
}

/// Live counters of one peer link.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    states: [AtomicU8; 2],
    pub(crate) messages_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_unreachable: AtomicU64,
    pub(crate) dropped_oversized: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
}

impl PeerCounters {
    /// Records the state of `lane`'s connection.
    pub(crate) fn set_state(&self, lane: Lane, state: ConnectionState) {
        self.states[lane_slot(lane)].store(state.to_byte(), Ordering::Relaxed);
    }

    /// The state of `lane`'s connection.
    pub(crate) fn state(&self, lane: Lane) -> ConnectionState {
        ConnectionState::from_byte(self.states[lane_slot(lane)].load(Ordering::Relaxed))
    }

    /// A plain copy.
    pub(crate) fn snapshot(&self) -> PeerMetrics {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PeerMetrics {
            state: self.state(Lane::Ordinary),
            snapshot_state: self.state(Lane::Snapshot),
            messages_sent: read(&self.messages_sent),
            bytes_sent: read(&self.bytes_sent),
            writes: read(&self.writes),
            dropped_queue_full: read(&self.dropped_queue_full),
            dropped_unreachable: read(&self.dropped_unreachable),
            dropped_oversized: read(&self.dropped_oversized),
            reconnects: read(&self.reconnects),
            connect_failures: read(&self.connect_failures),
            messages_received: read(&self.messages_received),
            bytes_received: read(&self.bytes_received),
        }
    }
}

fn lane_slot(lane: Lane) -> usize {
    match lane {
        Lane::Ordinary => 0,
        Lane::Snapshot => 1,
    }
}

/// Live counters of a whole transport (those not tied to one peer).
#[derive(Debug, Default)]
pub(crate) struct TransportCounters {
    pub(crate) frames_rejected: AtomicU64,
    pub(crate) handshakes_rejected: AtomicU64,
    pub(crate) tls_handshakes_failed: AtomicU64,
    pub(crate) identity_mismatches: AtomicU64,
    pub(crate) handshakes_timed_out: AtomicU64,
    pub(crate) handshakes_evicted: AtomicU64,
    pub(crate) connections_over_capacity: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) dropped_unknown_peer: AtomicU64,
}

impl TransportCounters {
    /// A plain copy, with the given per-peer entries.
    pub(crate) fn snapshot(&self, peers: BTreeMap<NodeId, PeerMetrics>) -> TransportMetrics {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TransportMetrics {
            peers,
            frames_rejected: read(&self.frames_rejected),
            handshakes_rejected: read(&self.handshakes_rejected),
            tls_handshakes_failed: read(&self.tls_handshakes_failed),
            identity_mismatches: read(&self.identity_mismatches),
            handshakes_timed_out: read(&self.handshakes_timed_out),
            handshakes_evicted: read(&self.handshakes_evicted),
            connections_over_capacity: read(&self.connections_over_capacity),
            connections_accepted: read(&self.connections_accepted),
            dropped_unknown_peer: read(&self.dropped_unknown_peer),
        }
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `amount` to a counter.
pub(crate) fn add(counter: &AtomicU64, amount: u64) {
    counter.fetch_add(amount, Ordering::Relaxed);
}
