//! Counters kept by the transports and the plain snapshots handed to callers.
//!
//! Counters are relaxed atomics: each is exact on its own, and a snapshot is a set of
//! readings taken one after another, not one instant.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use raft_core::NodeId;

use crate::handshake::Lane;

pub use raft_transport::{ConnectionState, PeerMetrics, TransportMetrics};

fn state_to_byte(state: ConnectionState) -> u8 {
    match state {
        ConnectionState::Connecting => 0,
        ConnectionState::Connected => 1,
        ConnectionState::Disconnected => 2,
        ConnectionState::Closed => 3,
    }
}

fn state_from_byte(byte: u8) -> ConnectionState {
    match byte {
        0 => ConnectionState::Connecting,
        1 => ConnectionState::Connected,
        2 => ConnectionState::Disconnected,
        _ => ConnectionState::Closed,
    }
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
        self.states[lane_slot(lane)].store(state_to_byte(state), Ordering::Relaxed);
    }

    /// The state of `lane`'s connection.
    pub(crate) fn state(&self, lane: Lane) -> ConnectionState {
        state_from_byte(self.states[lane_slot(lane)].load(Ordering::Relaxed))
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
