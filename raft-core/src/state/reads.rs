//! Reads waiting on the leader and on followers, and the leader's heartbeat rounds.

use std::collections::{BTreeMap, VecDeque};

use crate::action::ReadId;
use crate::state::remaining;
use crate::types::{Index, NodeId, Term};

/// Heartbeat rounds whose send tick is remembered for leases.
pub(crate) const ROUNDS_TRACKED_MAX: usize = 1024;

#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadOrigin {
    Local(ReadId),
    Remote { from: NodeId, id: u64 },
}

#[derive(Debug)]
pub(crate) struct PendingRead {
    pub(crate) origin: ReadOrigin,
    /// The commit index to serve at, and the heartbeat round that must confirm it; both set
    /// when the round is opened.
    pub(crate) confirm: Option<(Index, u64)>,
    pub(crate) waited_ticks: u32,
}

/// Reads waiting on the leader, and the heartbeat rounds that confirm them.
#[derive(Debug, Default)]
pub(crate) struct LeaderReads {
    pub(crate) round: u64,
    /// Tick at which each recent round was sent (for leases).
    pub(crate) round_sent_tick: BTreeMap<u64, u64>,
    pub(crate) pending: VecDeque<PendingRead>,
}

impl LeaderReads {
    /// The latest heartbeat round opened: no honest follower acknowledges a later one.
    pub(crate) fn current_round(&self) -> u64 {
        self.round
    }

    /// Opens a new heartbeat round sent at tick `now` and assigns it to waiting reads.
    pub(crate) fn open_round(&mut self, now: u64) -> u64 {
        self.round += 1;
        self.round_sent_tick.insert(self.round, now);
        // Bounded: rounds nobody acknowledged are pruned once they are too many to matter.
        while self.round_sent_tick.len() > ROUNDS_TRACKED_MAX {
            self.round_sent_tick.pop_first();
        }
        self.round
    }

    pub(crate) fn needs_round(&self) -> bool {
        self.pending.iter().any(|read| read.confirm.is_none())
    }
}

/// Reads a follower forwarded to the leader, by read id.
#[derive(Debug, Default)]
pub(crate) struct FollowerReads {
    pub(crate) forwarded: BTreeMap<u64, ForwardedRead>,
}

impl LeaderReads {
    /// Advances the timers of waiting reads by a tick; true if one expired.
    pub(crate) fn advance(&mut self, timeout_ticks: u32) -> bool {
        let mut expired = false;
        for read in self.pending.iter_mut() {
            read.waited_ticks += 1;
            expired |= read.waited_ticks >= timeout_ticks;
        }
        expired
    }

    /// Ticks until the first read waiting on this leader times out, if any waits.
    pub(crate) fn next_expiry(&self, timeout_ticks: u32) -> Option<u64> {
        self.pending
            .iter()
            .map(|r| remaining(r.waited_ticks, timeout_ticks))
            .min()
    }
}

impl FollowerReads {
    /// Advances the timers of forwarded reads by a tick; true if one expired.
    pub(crate) fn advance(&mut self, timeout_ticks: u32) -> bool {
        let mut expired = false;
        for read in self.forwarded.values_mut() {
            read.waited += 1;
            expired |= read.waited >= timeout_ticks;
        }
        expired
    }

    /// Ticks until the first forwarded read times out, if any waits.
    pub(crate) fn next_expiry(&self, timeout_ticks: u32) -> Option<u64> {
        self.forwarded
            .values()
            .map(|r| remaining(r.waited, timeout_ticks))
            .min()
    }
}

/// Where a forwarded read was (last) sent, in which term, and the ticks waited since.
#[derive(Debug)]
pub(crate) struct ForwardedRead {
    pub(crate) to: NodeId,
    pub(crate) term: Term,
    pub(crate) waited: u32,
}
