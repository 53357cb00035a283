//! Every timer of the core in one place (as quinn-proto's `connection/timer.rs`): what arms
//! it, when it fires ([`Node::next_deadline`]) and which feature handler its expiry runs.
//! Time is counted in ticks: [`Node::tick`] is the core's only clock, and the only caller
//! of the handlers below.
//!
//! | timer | armed by | cancelled by |
//! |---|---|---|
//! | `Election` | node start, [`Node::reset_election_timer`] (any role change but to leader), [`Node::restart_election_timer`] (a vote granted, the leader heard) | becoming leader |
//! | `ForwardedProposal` | forwarding a proposal to the leader | its answer, a new term or leader |
//! | `ForwardedRead` | forwarding a read to the leader | its answer, a new term or leader |
//! | `LeaderRead` | a read waiting on the leader | its confirmation, losing leadership |
//! | `Replication` | becoming leader | losing leadership |
//! | `Heartbeat` | becoming leader, each heartbeat | losing leadership |
//! | `QuorumCheck` | becoming leader, each check | losing leadership |
//! | `SnapshotRetry` | a follower switched to snapshot, each chunk acknowledged | the transfer ending |
//! | `Transfer` | a leadership transfer starting | its end, losing leadership |
//! | `CatchUp` | a membership change with newcomers | the joint phase starting, its timeout |

use rand::Rng;

use crate::node::Node;
use crate::progress::ReplicationState;
use crate::state::membership_change::{ChangePhase, PendingChange};
use crate::state::remaining;

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
    /// The leader checks every `check_quorum_ticks` (by default the election timeout) that
    /// a quorum was active (check-quorum).
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
    /// The timers that conclude from silence (no leader heard, no quorum heard) rather
    /// than from a request's age: see [`Node::tick_unjudged`].
    fn judges_silence(self) -> bool {
        matches!(self, Timer::Election | Timer::QuorumCheck)
    }

    /// Every timer, in the order a tick runs them: requests first, then the leader's timers
    /// (a check-quorum step-down cancels those after it), the election timer last (a node
    /// that just won an election runs no leader timer in the same tick).
    const ALL: [Timer; 10] = [
        Timer::ForwardedProposal,
        Timer::ForwardedRead,
        Timer::LeaderRead,
        Timer::Replication,
        Timer::Heartbeat,
        Timer::QuorumCheck,
        Timer::SnapshotRetry,
        Timer::Transfer,
        Timer::CatchUp,
        Timer::Election,
    ];
}

impl Node {
    /// Advances logical time by one tick: every running timer advances, and each one that
    /// expires runs its handler (requests first, then the leader's timers, the election
    /// timer last).
    ///
    /// ```
    /// use raft_core::{Config, Membership, Node, RestoredState, Role};
    ///
    /// let restored = RestoredState::bootstrap(Membership::with_voters([1, 2, 3]));
    /// let mut node = Node::new(Config::new(1, 7), restored).unwrap();
    /// // A follower that hears from no leader campaigns within two election timeouts.
    /// for _ in 0..2 * node.config().election_ticks {
    ///     node.tick();
    /// }
    /// assert_ne!(node.role(), Role::Follower);
    /// ```
    pub fn tick(&mut self) {
        self.tick_judging(true);
    }

    /// Advances logical time by one tick as [`Node::tick`] does, except that the two timers
    /// that judge silence, the election timeout and check-quorum, advance without firing:
    /// [`Node::judge_silence`] fires them if they are still expired then.
    ///
    /// For a host that woke late: it delivers every tick it missed with this, hands the
    /// node the messages that arrived meanwhile, then judges. A message that was waiting in
    /// the host's queue is then heard before the node concludes that nobody spoke: a
    /// stalled follower does not start a pre-vote (forgetting its leader) with the leader's
    /// heartbeat in its queue, and a stalled leader does not step down with its followers'
    /// acknowledgements in its queue. Hearing a message later than it arrived only delays
    /// elections and step-downs, which is safe: the leader's lease is counted from when it
    /// sent a round, not from when the answers are read.
    ///
    /// ```
    /// use raft_core::{Config, Membership, Node, RestoredState, Role};
    ///
    /// let restored = RestoredState::bootstrap(Membership::with_voters([1, 2, 3]));
    /// let mut node = Node::new(Config::new(1, 7), restored).unwrap();
    /// for _ in 0..2 * node.config().election_ticks {
    ///     node.tick_unjudged();
    /// }
    /// assert_eq!(node.role(), Role::Follower, "silence is not judged yet");
    /// node.judge_silence();
    /// assert_ne!(node.role(), Role::Follower);
    /// ```
    pub fn tick_unjudged(&mut self) {
        self.tick_judging(false);
    }

    /// Fires the election timeout and check-quorum if they expired during
    /// [`Node::tick_unjudged`] calls and the inputs handed since did not restart them.
    pub fn judge_silence(&mut self) {
        if self.halted.is_some() {
            return;
        }
        for timer in [Timer::QuorumCheck, Timer::Election] {
            if self.silence_expired(timer) {
                self.on_timeout(timer);
            }
        }
    }

    fn tick_judging(&mut self, judge: bool) {
        if self.halted.is_some() {
            return;
        }
        self.ticks_total += 1;
        for timer in Timer::ALL {
            if self.advance(timer) && (judge || !timer.judges_silence()) {
                self.on_timeout(timer);
            }
        }
    }

    /// Whether a timer that judges silence has expired (without advancing it).
    fn silence_expired(&self, timer: Timer) -> bool {
        let leader = self.role.leader();
        match timer {
            Timer::QuorumCheck => leader
                .is_some_and(|l| l.quorum_check_elapsed >= self.config.check_quorum_interval()),
            Timer::Election => {
                leader.is_none()
                    && self.election_elapsed() >= u64::from(self.randomized_election_ticks)
            }
            _ => false,
        }
    }

    /// Advances `timer` by this tick if it runs; true if it expired.
    fn advance(&mut self, timer: Timer) -> bool {
        let config = &self.config;
        let leader = self.role.leader_mut();
        match timer {
            Timer::ForwardedProposal => self
                .proposals
                .advance_forwarded(config.request_timeout_ticks),
            Timer::ForwardedRead => self.follower_reads.advance(config.request_timeout_ticks),
            Timer::LeaderRead => {
                leader.is_some_and(|l| l.reads.advance(config.request_timeout_ticks))
            }
            Timer::Replication => leader.is_some(),
            Timer::Heartbeat => leader.is_some_and(|l| {
                l.heartbeat_elapsed += 1;
                l.heartbeat_elapsed >= config.heartbeat_ticks
            }),
            Timer::QuorumCheck => leader.is_some_and(|l| {
                l.quorum_check_elapsed += 1;
                l.quorum_check_elapsed >= config.check_quorum_interval()
            }),
            Timer::SnapshotRetry => leader.is_some_and(|l| {
                let mut expired = false;
                for progress in l.progress.values_mut() {
                    if let ReplicationState::Snapshot(transfer) = &mut progress.state {
                        transfer.idle_ticks += 1;
                        expired |= transfer.idle_ticks >= config.snapshot_retry_ticks;
                    }
                }
                expired
            }),
            Timer::Transfer => leader
                .and_then(|l| l.transfer.as_mut())
                .is_some_and(|transfer| {
                    transfer.elapsed_ticks += 1;
                    transfer.elapsed_ticks >= config.election_ticks
                }),
            // Runs every tick while newcomers catch up: the handler checks both whether they
            // did and the timeout.
            Timer::CatchUp => match leader.and_then(|l| l.pending_change.as_mut()) {
                Some(PendingChange {
                    phase: ChangePhase::CatchingUp { elapsed_ticks, .. },
                    ..
                }) => {
                    *elapsed_ticks += 1;
                    true
                }
                _ => false,
            },
            // Time runs implicitly (`ticks_total`); a leader has no election timer.
            Timer::Election => {
                leader.is_none()
                    && self.election_elapsed() >= u64::from(self.randomized_election_ticks)
            }
        }
    }

    /// Runs the feature handler of an expired timer.
    fn on_timeout(&mut self, timer: Timer) {
        match timer {
            Timer::ForwardedProposal => {
                let timeout = self.config.request_timeout_ticks;
                self.proposals.expire_forwarded(timeout, &mut self.actions);
            }
            Timer::ForwardedRead => self.expire_forwarded_reads(),
            Timer::LeaderRead => self.expire_leader_reads(),
            // A tick may let the leader send more (its flush re-checks every window).
            Timer::Replication => self.mark_replication_dirty(),
            Timer::Heartbeat => self.broadcast_heartbeat(),
            Timer::QuorumCheck => self.check_quorum(),
            Timer::SnapshotRetry => self.retry_snapshot_transfers(),
            Timer::Transfer => self.on_transfer_timeout(),
            Timer::CatchUp => self.on_catch_up_tick(),
            Timer::Election => self.on_election_timeout(),
        }
    }

    /// Ticks since the election timer was last (re)started.
    fn election_elapsed(&self) -> u64 {
        self.ticks_total - self.election_started
    }

    /// True while the election timer has run less than the minimum election timeout
    /// (`election_ticks`) since it was last restarted.
    pub(crate) fn within_min_election_timeout(&self) -> bool {
        self.election_elapsed() < u64::from(self.config.election_ticks)
    }

    /// Restarts the election timer with a new randomized timeout in
    /// `[election_ticks, 2 * election_ticks)` (section 5.2).
    pub(crate) fn reset_election_timer(&mut self) {
        self.restart_election_timer();
        let base = self.config.election_ticks;
        self.randomized_election_ticks = self.rng.random_range(base..2 * base);
    }

    /// Restarts the election timer, keeping its randomized timeout.
    pub(crate) fn restart_election_timer(&mut self) {
        self.election_started = self.ticks_total;
    }

    /// When the node next needs time: `Some(n)` means the `n`-th call to [`Node::tick`]
    /// from now (counting from 1) is the first that can do anything besides advancing
    /// counters; the `n - 1` calls before it may be made late, all at once, just before
    /// the `n`-th. `None` means no timer runs (a halted node); only an input can change
    /// that. The answer is relative to now, in ticks, and changes with every input, so ask
    /// again after each one.
    ///
    /// A host sleeps until the deadline, then delivers every tick that elapsed *before*
    /// handing the node any message that arrived meanwhile (so a message sees the same
    /// timers it would have with a tick every interval); a host that may have woken late
    /// delivers them with [`Node::tick_unjudged`] and calls [`Node::judge_silence`] after
    /// the messages.
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
        let leader = self.role.leader();
        match timer {
            Timer::Election => leader.is_none().then(|| {
                let elapsed = u32::try_from(self.election_elapsed()).unwrap_or(u32::MAX);
                remaining(elapsed, self.randomized_election_ticks)
            }),
            Timer::ForwardedProposal => self.proposals.next_expiry(config.request_timeout_ticks),
            Timer::ForwardedRead => self
                .follower_reads
                .next_expiry(config.request_timeout_ticks),
            Timer::Heartbeat => {
                leader.map(|l| remaining(l.heartbeat_elapsed, config.heartbeat_ticks))
            }
            Timer::QuorumCheck => {
                leader.map(|l| remaining(l.quorum_check_elapsed, config.check_quorum_interval()))
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
