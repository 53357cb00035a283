//! What the leader knows about each follower's log, and the flow-control window of appends
//! in flight to it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::types::{Index, SnapshotMeta};

/// The replication state of one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplicationState {
    /// Where the follower's log matches is unknown: send one append at a time and wait for
    /// its answer (or the next heartbeat) before sending another.
    Probe {
        /// An append is outstanding; do not send another until an answer or a heartbeat.
        paused: bool,
    },
    /// The follower's log matches through `match_index`: stream appends optimistically,
    /// bounded by the in-flight window.
    Replicate,
    /// The entries the follower needs are compacted: stream a snapshot in chunks.
    Snapshot(SnapshotTransfer),
}

/// A snapshot being streamed to one follower, one chunk at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotTransfer {
    /// The snapshot being sent.
    pub(crate) meta: SnapshotMeta,
    /// The offset the follower acknowledged last (where a retry resumes).
    pub(crate) acked_offset: u64,
    /// Ticks since the last chunk was sent or acknowledged.
    pub(crate) idle_ticks: u32,
}

/// Appends in flight to one follower, bounded by count and by bytes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Inflights {
    /// (last index of the append, bytes of its entries), oldest first.
    window: VecDeque<(Index, u64)>,
    bytes: u64,
}

impl Inflights {
    pub(crate) fn is_full(&self, max_count: usize, max_bytes: u64) -> bool {
        self.window.len() >= max_count || self.bytes >= max_bytes
    }

    pub(crate) fn add(&mut self, last_index: Index, bytes: u64) {
        self.window.push_back((last_index, bytes));
        self.bytes += bytes;
    }

    /// Frees every append whose last index is at most `index` (acknowledged).
    pub(crate) fn free_through(&mut self, index: Index) {
        while let Some(&(last, bytes)) = self.window.front() {
            if last > index {
                break;
            }
            self.window.pop_front();
            self.bytes -= bytes;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.window.clear();
        self.bytes = 0;
    }

    pub(crate) fn count(&self) -> usize {
        self.window.len()
    }
}

/// The leader's view of one follower.
///
/// Invariant: `match_index < next_index`.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to be replicated (durably) on the follower.
    pub(crate) match_index: Index,
    /// Next index to send.
    pub(crate) next_index: Index,
    pub(crate) state: ReplicationState,
    pub(crate) inflights: Inflights,
    /// Heard from since the last check-quorum round.
    pub(crate) recently_active: bool,
    /// The highest heartbeat round the follower acknowledged (for ReadIndex and leases).
    pub(crate) acked_round: u64,
    /// The highest commit index sent to the follower that it can adopt (capped by what the
    /// message showed it).
    pub(crate) commit_sent: Index,
    /// The follower waits for the commit index to reach this (a proposal it forwarded was
    /// appended there, or it was given this read index); 0 when it waits for nothing.
    pub(crate) commit_wanted: Index,
}

impl Progress {
    /// Whether the leader's replication pass might send this peer something (an append or
    /// the start of a snapshot) with the log ending at `last_index`: a superset of what
    /// `send_append` does without a probe, used only to bound [`crate::Node::next_deadline`].
    pub(crate) fn could_send(&self, last_index: Index) -> bool {
        !matches!(
            self.state,
            ReplicationState::Snapshot(_) | ReplicationState::Probe { paused: true }
        ) && self.next_index <= last_index
    }

    pub(crate) fn new(next_index: Index) -> Self {
        Progress {
            match_index: 0,
            next_index,
            state: ReplicationState::Probe { paused: false },
            inflights: Inflights::default(),
            recently_active: true,
            acked_round: 0,
            commit_sent: 0,
            commit_wanted: 0,
        }
    }

    /// The follower waits for the commit index to reach `index`.
    pub(crate) fn want_commit(&mut self, index: Index) {
        if index > self.commit_sent {
            self.commit_wanted = self.commit_wanted.max(index);
        }
    }

    /// The follower acknowledged `index`; returns true if that is news.
    pub(crate) fn on_match(&mut self, index: Index) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
        }
        // `index` is at most the leader's last index (validated), so this cannot saturate.
        self.next_index = self.next_index.max(index.saturating_add(1));
        self.inflights.free_through(index);
        advanced
    }

    /// The follower rejected the append that followed `rejected` (an answer that is not
    /// stale); `next` is where the leader's log and the follower's conflict hint say to
    /// probe. Returns true if one probe may be sent at once: only when it backtracks
    /// (`next_index` moves strictly down, so answering each rejection at once ends after at
    /// most one round per log entry, fewer with the hint's jumps). Otherwise the progress
    /// stays paused until the next heartbeat answer, so a follower that keeps rejecting the
    /// same probe gets one per heartbeat interval instead of one per round trip.
    pub(crate) fn on_reject(&mut self, rejected: Index, next: Index) -> bool {
        let previous_next = self.next_index;
        if rejected <= self.match_index {
            // It rejects an entry it acknowledged: it lost acknowledged writes (a disk that
            // dropped synced data). Nothing it acknowledged can be trusted any more: forget
            // it (commit is never lowered; the leader only counts it again once it
            // acknowledges afresh) and backtrack from its hint.
            self.match_index = 0;
        }
        self.become_probe();
        self.next_index = next.max(self.match_index.saturating_add(1));
        let backtracks = self.next_index < previous_next;
        if !backtracks {
            self.state = ReplicationState::Probe { paused: true };
        }
        backtracks
    }

    pub(crate) fn become_probe(&mut self) {
        let next = match &self.state {
            ReplicationState::Snapshot(transfer) => {
                (self.match_index.saturating_add(1)).max(transfer.meta.index.saturating_add(1))
            }
            _ => self.match_index.saturating_add(1),
        };
        self.state = ReplicationState::Probe { paused: false };
        self.next_index = next;
        self.inflights.clear();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.next_index = self.match_index.saturating_add(1);
        self.inflights.clear();
    }

    pub(crate) fn become_snapshot(&mut self, meta: SnapshotMeta) {
        self.state = ReplicationState::Snapshot(SnapshotTransfer {
            meta,
            acked_offset: 0,
            idle_ticks: 0,
        });
        self.inflights.clear();
    }

    /// A public, read-only summary for status reports.
    pub(crate) fn summary(&self) -> PeerProgress {
        let state = match self.state {
            ReplicationState::Probe { .. } => PeerState::Probe,
            ReplicationState::Replicate => PeerState::Replicate,
            ReplicationState::Snapshot(_) => PeerState::Snapshot,
        };
        PeerProgress {
            match_index: self.match_index,
            next_index: self.next_index,
            state,
            inflight_appends: self.inflights.count(),
            recently_active: self.recently_active,
        }
    }
}

/// How the leader replicates to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerState {
    /// Looking for where the peer's log matches.
    Probe,
    /// Streaming appends.
    Replicate,
    /// Sending a snapshot.
    Snapshot,
}

/// The leader's view of one peer, as reported by [`crate::Node::status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerProgress {
    /// Highest index known replicated on the peer.
    pub match_index: Index,
    /// Next index the leader will send.
    pub next_index: Index,
    /// Replication state.
    pub state: PeerState,
    /// Appends sent and not yet acknowledged.
    pub inflight_appends: usize,
    /// Heard from within the current check-quorum period.
    pub recently_active: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_bounded_by_count_and_bytes() {
        let mut window = Inflights::default();
        window.add(5, 100);
        window.add(9, 100);
        assert!(window.is_full(2, 1000));
        assert!(window.is_full(10, 200));
        window.free_through(5);
        assert!(!window.is_full(2, 1000));
        assert_eq!(window.count(), 1);
    }

    #[test]
    fn a_rejection_sends_at_once_only_when_it_backtracks() {
        let mut progress = Progress::new(10);
        progress.on_match(7);
        progress.become_replicate();
        progress.next_index = 12; // appends through 11 in flight
        assert!(progress.on_reject(10, 9), "backtracks from 12 to 9");
        assert_eq!(progress.next_index, 9);
        progress.state = ReplicationState::Probe { paused: true }; // the probe went
        assert!(
            !progress.on_reject(8, 9),
            "stays at 9: waits for a heartbeat"
        );
        assert_eq!(progress.state, ReplicationState::Probe { paused: true });
        assert_eq!((progress.match_index, progress.next_index), (7, 9));
    }

    #[test]
    fn a_rejection_of_an_acknowledged_entry_forgets_the_match() {
        let mut progress = Progress::new(10);
        progress.on_match(7);
        progress.become_probe();
        assert!(progress.on_reject(7, 3), "probes from the follower's hint");
        assert_eq!((progress.match_index, progress.next_index), (0, 3));
    }

    #[test]
    fn match_never_goes_back() {
        let mut progress = Progress::new(10);
        assert!(progress.on_match(7));
        assert!(!progress.on_match(5));
        assert_eq!(progress.match_index, 7);
        assert_eq!(progress.next_index, 10);
    }
}
