//! Sync pacing: under load, a write that needs a sync waits a little for more writes to
//! join it, so one sync covers more entries. Decided from the engine's clock (the time
//! the driver last gave [`crate::Engine::handle_timeout`]), so a simulator replays it.
//!
//! Load is read from the last synced write: if it carried at least
//! [`SyncPacing::busy_entries`] entries, input is arriving faster than syncs complete (the
//! leader: several clients' proposals; a follower: several appends per sync). A lone
//! client's write carries one entry, so an idle or single-client node never holds.

use std::time::Duration;

/// How the engine paces syncs under load ([`crate::EngineConfig::sync_pacing`]).
///
/// Defaults and why: `max_delay` 0 (off). Measured on raft-kv at 64 and 256 clients
/// (BENCHMARKS.md, branch perf-pace): holding gave more entries per sync but no CPU per
/// put or throughput above the noise, so it stays a knob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncPacing {
    /// Longest a synced write is held back; zero turns pacing off.
    pub max_delay: Duration,
    /// A synced write with at least this many entries marks the node as under load.
    pub busy_entries: u64,
    /// A held write goes out at once when its queued entries reach this many.
    pub release_entries: u64,
    /// A held write goes out at once when its queued entries weigh this many bytes
    /// ([`raft_core::Entry::size_bytes`]): big values gain nothing from waiting.
    pub release_bytes: u64,
}

impl SyncPacing {
    /// No pacing: a synced write goes out as soon as the disk lane is free.
    pub fn off() -> Self {
        SyncPacing {
            max_delay: Duration::ZERO,
            busy_entries: 2,
            release_entries: 64,
            release_bytes: 256 << 10,
        }
    }
}

impl Default for SyncPacing {
    fn default() -> Self {
        SyncPacing::off()
    }
}

/// What the engine tracks for pacing.
#[derive(Debug, Default)]
pub(crate) struct PaceState {
    /// The driver's time as last given to the engine.
    pub(crate) now: Duration,
    /// The last synced write carried `busy_entries` or more.
    pub(crate) busy: bool,
    /// When the write now queued started being held.
    pub(crate) held_since: Option<Duration>,
}

impl PaceState {
    /// True if a synced write of `entries` entries and `bytes` bytes waits now.
    pub(crate) fn holds(&mut self, pacing: &SyncPacing, entries: u64, bytes: u64) -> bool {
        if pacing.max_delay.is_zero()
            || !self.busy
            || entries >= pacing.release_entries
            || bytes >= pacing.release_bytes
        {
            self.held_since = None;
            return false;
        }
        let since = *self.held_since.get_or_insert(self.now);
        if self.now >= since + pacing.max_delay {
            self.held_since = None;
            return false;
        }
        true
    }

    /// When a held write must go out, if one is held.
    pub(crate) fn deadline(&self, pacing: &SyncPacing) -> Option<Duration> {
        self.held_since.map(|since| since + pacing.max_delay)
    }

    /// A synced write of `entries` entries went out.
    pub(crate) fn sent(&mut self, pacing: &SyncPacing, entries: u64) {
        self.held_since = None;
        self.busy = entries >= pacing.busy_entries;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: an idle node never holds; a busy one holds up to `max_delay`, or until the
    /// entry threshold releases the write at once.
    #[test]
    fn holds_only_under_load_and_briefly() {
        let us = Duration::from_micros;
        let pacing = SyncPacing {
            max_delay: us(300),
            ..SyncPacing::off()
        };
        let mut state = PaceState::default();
        assert!(!state.holds(&pacing, 1, 100), "idle: never held");
        state.sent(&pacing, 1);
        assert!(!state.holds(&pacing, 1, 100), "one entry per sync: not busy");
        state.sent(&pacing, 20);
        state.now = us(1000);
        assert!(state.holds(&pacing, 3, 300));
        assert_eq!(state.deadline(&pacing), Some(us(1300)));
        state.now = us(1200);
        assert!(state.holds(&pacing, 5, 500));
        state.now = us(1300);
        assert!(!state.holds(&pacing, 6, 600), "released at the deadline");
        state.now = us(1400);
        assert!(state.holds(&pacing, 1, 100));
        assert!(!state.holds(&pacing, 64, 6400), "released at the entry threshold");
        assert!(!state.holds(&SyncPacing::off(), 1, 1), "off never holds");
    }
}
