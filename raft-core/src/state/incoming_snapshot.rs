//! A snapshot being received from the leader.

use crate::types::{NodeId, SnapshotMeta, Term};

/// A snapshot being received from the leader.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    pub(crate) meta: SnapshotMeta,
    /// The leader and term streaming it. Two nodes' snapshots with the same metadata need
    /// not hold the same bytes (a state machine may serialize differently, or carry
    /// node-local data), so a transfer is only ever resumed from the stream that began it.
    pub(crate) source: (NodeId, Term),
    /// The next byte offset expected.
    pub(crate) next_offset: u64,
    /// Set once the final chunk was written and the snapshot installed in memory: the
    /// state machine is restored when that write is durable. Apply waits meanwhile.
    pub(crate) installing: Option<crate::action::WriteToken>,
}
