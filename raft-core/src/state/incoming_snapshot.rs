//! A snapshot being received from the leader.

use crate::types::SnapshotMeta;

/// A snapshot being received from the leader.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    pub(crate) meta: SnapshotMeta,
    /// The next byte offset expected.
    pub(crate) next_offset: u64,
    /// Set once the final chunk was written and the snapshot installed in memory: the
    /// state machine is restored when that write is durable. Apply waits meanwhile.
    pub(crate) installing: Option<crate::action::WriteToken>,
}
