//! Messages refused by validation, counted per sender.

use std::collections::BTreeMap;

use crate::types::NodeId;

/// How many distinct senders get their own rejection counter; rejections from further
/// senders are counted under id 0 (which no real peer has), so hostile traffic from random
/// ids cannot grow memory without bound.
pub(crate) const SENDERS_TRACKED_MAX: usize = 256;

/// Rejected messages counted per sender, bounded in memory.
#[derive(Debug, Default)]
pub(crate) struct Rejections {
    pub(crate) by_sender: BTreeMap<NodeId, u64>,
}

impl Rejections {
    /// Counts one rejection from `from`; returns the sender's new count.
    pub(crate) fn record(&mut self, from: NodeId) -> u64 {
        let tracked =
            self.by_sender.contains_key(&from) || self.by_sender.len() < SENDERS_TRACKED_MAX;
        let key = if tracked { from } else { 0 };
        let count = self.by_sender.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }
}
