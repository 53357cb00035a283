//! Every timer of the core and when it next fires, in one table (as quinn-proto's
//! `connection/timer.rs`). Time is counted in ticks: [`Node::tick`] is the core's only clock.
//!
//! Expiry still runs in the `tick_*` functions of the feature files; this module answers the
//! host's question "when do you next need a tick?" so an idle node is not woken every tick.

use crate::node::{Node, RoleState};
use crate::progress::ReplicationState;
use crate::reconfiguration::ChangePhase;

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
    /// The leader sends a heartbeat every `heartbeat_ticks`.
    Heartbeat,
    /// The leader checks every `election_ticks` that a quorum was active (check-quorum).
    QuorumCheck,
    /// A read waiting on the leader times out.
    LeaderRead,
    /// A stalled snapshot transfer resends its unacknowledged chunk.
    SnapshotRetry,
    /// A leadership transfer times out.
    Transfer,
    /// While newcomers catch up, every tick checks whether the joint phase can start, and
    /// the change is abandoned at its timeout.
    CatchUp,
    /// Every leader tick re-checks what each follower's progress allows to send; due at
    /// once while something could be sent.
    Replication,
}

impl Timer {
    /// Every timer, in the order the table is read.
    const ALL: [Timer; 10] = [
        Timer::Election,
        Timer::ForwardedProposal,
        Timer::ForwardedRead,
        Timer::Heartbeat,
        Timer::QuorumCheck,
        Timer::LeaderRead,
        Timer::SnapshotRetry,
        Timer::Transfer,
        Timer::CatchUp,
        Timer::Replication,
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
        let config = &self.config;
        let leader = match &self.role {
            RoleState::Leader(leader) => Some(leader),
            _ => None,
        };
        match timer {
            Timer::Election => leader
                .is_none()
                .then(|| remaining(self.election_elapsed, self.randomized_election_ticks)),
            Timer::ForwardedProposal => self.proposals.next_expiry(config.request_timeout_ticks),
            Timer::ForwardedRead => self
                .follower_reads
                .next_expiry(config.request_timeout_ticks),
            Timer::Heartbeat => {
                leader.map(|l| remaining(l.heartbeat_elapsed, config.heartbeat_ticks))
            }
            Timer::QuorumCheck => {
                leader.map(|l| remaining(l.quorum_check_elapsed, config.election_ticks))
            }
            Timer::LeaderRead => {
                leader.and_then(|l| l.reads.next_expiry(config.request_timeout_ticks))
            }
            Timer::SnapshotRetry => leader.and_then(|l| {
                l.progress
                    .values()
                    .filter_map(|p| match &p.state {
                        ReplicationState::Snapshot(t) => {
                            Some(remaining(t.idle_ticks, config.snapshot_retry_ticks))
                        }
                        _ => None,
                    })
                    .min()
            }),
            Timer::Transfer => leader.and_then(|l| {
                let transfer = l.transfer.as_ref()?;
                Some(remaining(transfer.elapsed_ticks, config.election_ticks))
            }),
            Timer::CatchUp => leader.and_then(|l| match &l.pending_change.as_ref()?.phase {
                ChangePhase::CatchingUp { .. } => Some(1),
                _ => None,
            }),
            Timer::Replication => leader.and_then(|l| {
                let last_index = self.log.last_index();
                l.progress
                    .values()
                    .any(|p| p.could_send(last_index))
                    .then_some(1)
            }),
        }
    }
}
