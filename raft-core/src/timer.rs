//! Every timer of the core and when it next fires, in one table (as quinn-proto's
//! `connection/timer.rs`). Time is counted in ticks: [`Node::tick`] is the core's only clock.
//!
//! Expiry still runs in the `tick_*` functions of the feature files; this module answers the
//! host's question "when do you next need a tick?" so an idle node is not woken every tick.

use crate::node::{Node, RoleState};

/// One timer of the core. Each arm of [`Node::timer_deadline`] says when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Follower, pre-candidate and candidate: an election timeout starts a campaign (or,
    /// for a node that may not campaign, draws a new randomized timeout).
    Election,
    /// A proposal forwarded to the leader gets an unknown outcome if unanswered.
    ForwardedProposal,
    /// A read forwarded to the leader times out if unanswered.
    ForwardedRead,
    /// The leader's per-tick upkeep: heartbeats, check-quorum, read expiry, snapshot
    /// retries, transfer and catch-up deadlines, and the replication re-check every tick
    /// runs. The leader is ticked every tick, as before.
    Leader,
}

impl Timer {
    /// Every timer, in the order the table is read.
    const ALL: [Timer; 4] = [
        Timer::Election,
        Timer::ForwardedProposal,
        Timer::ForwardedRead,
        Timer::Leader,
    ];
}

/// Ticks until a timer that has waited `waited` of `timeout` ticks fires (at least one:
/// a timer fires inside a call to [`Node::tick`]).
pub(crate) fn remaining(waited: u32, timeout: u32) -> u64 {
    u64::from(timeout.saturating_sub(waited).max(1))
}

impl Node {
    /// When the node next needs time: `Some(n)` means the `n`-th call to [`Node::tick`]
    /// from now (counting from 1) is the first that can do anything besides advancing
    /// counters; the `n - 1` calls before it may be made late, all at once, just before
    /// the `n`-th. `None` means no timer runs (a halted node); only an input can change
    /// that. The answer is relative to now, in ticks, and changes with every input, so ask
    /// again after each one.
    ///
    /// A host sleeps until the deadline, then delivers every tick that elapsed *before*
    /// handing the node any message that arrived meanwhile (so a message sees the same
    /// timers it would have with a tick every interval).
    ///
    /// ```
    /// use raft_core::{Config, Membership, Node, RestoredState};
    ///
    /// let restored = RestoredState::bootstrap(Membership::with_voters([1, 2, 3]));
    /// let mut node = Node::new(Config::new(1, 42), restored).unwrap();
    /// // An idle follower needs nothing until its election timeout.
    /// let due = node.next_deadline().expect("a follower's election timer runs");
    /// assert!(due >= 10, "the election timeout is at least election_ticks");
    /// for _ in 1..due {
    ///     node.tick();
    /// }
    /// assert_eq!(node.next_deadline(), Some(1), "the next tick starts an election");
    /// ```
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        if self.halted.is_some() {
            return None;
        }
        Timer::ALL
            .iter()
            .filter_map(|&timer| self.timer_deadline(timer))
            .min()
    }

    /// Ticks until `timer` fires, or `None` if it is not running.
    fn timer_deadline(&self, timer: Timer) -> Option<u64> {
        let leader = matches!(self.role, RoleState::Leader(_));
        let request_timeout = self.config.request_timeout_ticks;
        match timer {
            Timer::Election => {
                (!leader).then(|| remaining(self.election_elapsed, self.randomized_election_ticks))
            }
            Timer::ForwardedProposal => self.proposals.next_expiry(request_timeout),
            Timer::ForwardedRead => self.follower_reads.next_expiry(request_timeout),
            Timer::Leader => leader.then_some(1),
        }
    }
}
