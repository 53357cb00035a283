//! Lease reads beside the engine: the engine publishes a [`LeaseGrant`] after each step, and
//! a driver answers a lease read from its state machine, without a trip through the engine,
//! while [`LeaseGrant::can_serve`] says so. The rule stays the core's
//! ([`raft_core::Node::lease_read`]); this module only turns its tick count into the
//! driver's time, conservatively.
//!
//! # Why a grant never serves a read the core would refuse
//!
//! The core holds the lease while fewer than `ticks_left` more ticks have been delivered.
//! The engine delivers ticks from the driver's clock ([`crate::Engine::handle_timeout`]):
//! the `k`-th next tick is due at a fixed time, `deadline_after(k)`, and a late wake-up
//! delivers every tick due by then (catch-up; a stall longer than the cap delivers the
//! cap, which is more ticks than any lease lasts). So a core caught up to any time before
//! `deadline_after(ticks_left)` has received fewer than `ticks_left` ticks and still holds
//! the lease; that time is `valid_before`. A core that lags the clock (its driver has not
//! woken yet) only ever holds the lease *longer* than the grant, never shorter. The core's
//! own argument counts from the tick the heartbeat round was sent in; that tick was due at
//! or before the real send (ticks are delivered late, never early), so the lease ends no
//! later, in real time, than `election - drift` ticks after the real send.
//!
//! The grant is the core's answer as of the engine's last step. A read that finds it
//! while the driver is mid-step is linearized before that step. The grant is void
//! (`None`) whenever the core would not answer a lease read at once: not leader, lease
//! reads off, no quorum-acknowledged round, nothing committed in this term, a leadership
//! transfer under way, a halted or stopped node, a node with a witness's data.
//!
//! # Why a read served from the grant is linearizable
//!
//! `read_index` is the commit index when the grant was made. A driver publishes the grant
//! before it hands out anything that could reveal a newer commit (messages to peers,
//! answers to clients, apply work; see the output contract in the crate docs), so any
//! write acknowledged before a read starts has an index at most the `read_index` of the
//! grant the read finds. No other leader can be elected before `valid_before` (the core's
//! lease argument), so no write acknowledged before the read is missing from a state that
//! has applied `read_index`. The driver serves the query from its state machine under the
//! state machine's lock, with the applied index the apply path publishes under that lock.

use std::time::Duration;

use raft_core::{Index, StateMachine, Storage, Term};

use crate::engine::Engine;
use crate::planted::PlantedBug;

/// Permission to answer lease reads without the engine: see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseGrant {
    /// Reads at driver times strictly before this (same origin as the engine's) may be
    /// served.
    pub valid_before: Duration,
    /// The state machine must have applied at least this index.
    pub read_index: Index,
    /// The leader's term, for logs and checks.
    pub term: Term,
}

impl LeaseGrant {
    /// True if a lease read may be answered at driver time `now` from a state machine that
    /// has applied `applied`. A pure check: the caller reads `now` after the read arrived
    /// and `applied` under the state machine's lock it then serves the query under.
    ///
    /// ```
    /// use std::time::Duration;
    /// use raft_host::LeaseGrant;
    ///
    /// let grant = LeaseGrant { valid_before: Duration::from_millis(100), read_index: 7, term: 2 };
    /// assert!(grant.can_serve(Duration::from_millis(99), 7));
    /// assert!(!grant.can_serve(Duration::from_millis(100), 7), "the lease has lapsed");
    /// assert!(!grant.can_serve(Duration::from_millis(50), 6), "not applied far enough");
    /// ```
    pub fn can_serve(&self, now: Duration, applied: Index) -> bool {
        now < self.valid_before && applied >= self.read_index
    }

    /// Whether `grant` (the latest published, if any) serves a read at `now` on a state
    /// machine at `applied`.
    pub fn serves(grant: Option<&LeaseGrant>, now: Duration, applied: Index) -> bool {
        grant.is_some_and(|g| g.can_serve(now, applied))
    }
}

impl<M: StateMachine, S: Storage, A> Engine<M, S, A> {
    /// The lease grant as of the engine's last input (see [`LeaseGrant`] and the module
    /// docs), or `None` when a lease read must go through [`Engine::handle_read`].
    ///
    /// Publish it (to whoever serves reads beside the engine) after the inputs of a batch
    /// and *before* handing out messages ([`Engine::poll_transmit`]) and answers
    /// ([`Engine::poll_reply`]): a message may start a leadership transfer (`TimeoutNow`)
    /// or tell a follower of a newer commit, an answer may acknowledge a write, and a read
    /// served from an older grant after either would be stale.
    pub fn lease_grant(&self) -> Option<LeaseGrant> {
        if self.fatal.is_some()
            || self.node.has_incomplete_state()
            || self.planted.has(PlantedBug::StaleReads)
        {
            return None;
        }
        let mut lease = self.node.lease_read()?;
        if self.planted.has(PlantedBug::ReplyBeforeApply) {
            // Planted bug: lease reads do not wait for the read index to be applied.
            lease.read_index = 0;
        }
        Some(grant_from(lease, self.node.term(), |k| {
            self.clock.deadline_after(k)
        }))
    }
}

/// Turns the core's lease, counted in ticks still to come, into driver time, given when
/// the `k`-th next tick is due (`tick_due(k)`, counted from 1).
pub(crate) fn grant_from(
    lease: raft_core::LeaseRead,
    term: Term,
    tick_due: impl Fn(u64) -> Duration,
) -> LeaseGrant {
    LeaseGrant {
        valid_before: tick_due(lease.ticks_left),
        read_index: lease.read_index,
        term,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TickClock;
    use proptest::prelude::*;

    /// Goal: a read is served only before the lease's end and once the read index is
    /// applied.
    #[test]
    fn serves_only_in_time_and_once_applied() {
        let grant = LeaseGrant {
            valid_before: Duration::from_millis(10),
            read_index: 5,
            term: 1,
        };
        assert!(grant.can_serve(Duration::ZERO, 5));
        assert!(grant.can_serve(Duration::from_millis(9), 9));
        assert!(!grant.can_serve(Duration::from_millis(10), 9));
        assert!(!grant.can_serve(Duration::ZERO, 4));
        assert!(!LeaseGrant::serves(None, Duration::ZERO, 100));
    }

    proptest! {
        /// Goal: whatever the tick interval, the clock's history and the time of the read,
        /// a grant never serves at a time by which the engine, caught up, would have
        /// delivered the tick that ends the core's lease.
        #[test]
        fn never_serves_after_the_core_lease_lapses(
            interval_us in 1u64..50_000,
            start_us in 0u64..1_000_000,
            earlier in proptest::collection::vec(0u64..200_000, 0..6),
            ticks_left in 1u64..40,
            catch_up in 1u32..200,
            read_after_us in 0u64..3_000_000,
            applied in 0u64..20,
            read_index in 0u64..20,
        ) {
            let us = Duration::from_micros;
            let mut clock = TickClock::new(us(interval_us), us(start_us), catch_up);
            let mut now = us(start_us);
            for step in earlier {
                now += us(step);
                clock.due(now);
            }
            let lease = raft_core::LeaseRead { read_index, ticks_left };
            let grant = grant_from(lease, 3, |k| clock.deadline_after(k));
            let read_at = now + us(read_after_us);
            if grant.can_serve(read_at, applied) {
                prop_assert!(applied >= read_index);
                let delivered = clock.due(read_at);
                prop_assert!(
                    u64::from(delivered) < ticks_left,
                    "served at {read_at:?} with {delivered} ticks delivered of {ticks_left}"
                );
            }
        }
    }
}
