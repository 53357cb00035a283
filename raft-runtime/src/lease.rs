//! The lease-read fast path's shared state: the engine's latest [`LeaseGrant`] (published
//! by the driver) and the state machine's applied index (published by the apply path under
//! the state machine's lock). A handle reads both and, when the grant allows, answers a
//! lease read from the state machine itself, without waking the driver.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft_core::{Index, StateMachine};
use raft_host::LeaseGrant;

/// What the driver, the apply path and the handles share for lease reads.
#[derive(Debug, Default)]
pub(crate) struct LeaseSlot {
    grant: Mutex<Option<LeaseGrant>>,
    /// The state machine's applied index. Written only while holding the state machine's
    /// lock, right after the work that moved it, so a reader holding that lock sees the
    /// index of the state it reads.
    applied: Arc<AtomicU64>,
}

impl LeaseSlot {
    pub(crate) fn new(applied: Arc<AtomicU64>) -> Self {
        LeaseSlot {
            grant: Mutex::new(None),
            applied,
        }
    }

    /// Replaces the grant (the driver, after each batch of inputs, before sending).
    pub(crate) fn publish(&self, grant: Option<LeaseGrant>) {
        // A poisoned slot still holds a whole `Copy` value: nothing can be half-written.
        *self.grant.lock().unwrap_or_else(|p| p.into_inner()) = grant;
    }

    fn grant(&self) -> Option<LeaseGrant> {
        *self.grant.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers `query` from `state_machine` if the latest grant allows a read at `now`;
    /// `None` when it does not (or the state machine is busy or poisoned), and the read
    /// must go through the driver.
    pub(crate) fn try_serve<M: StateMachine>(
        &self,
        state_machine: &Mutex<M>,
        now: Duration,
        query: &M::Query,
    ) -> Option<M::QueryResponse> {
        // `now` was read after the read arrived and the grant is loaded after that: the
        // grant then carries every commit acknowledged before the read (see raft_host's
        // lease module for the whole argument).
        let grant = self.grant()?;
        if now >= grant.valid_before {
            return None;
        }
        // Busy applying: waiting here would block this task's thread; the driver path
        // answers right after the apply instead.
        let state_machine = state_machine.try_lock().ok()?;
        let applied: Index = self.applied.load(Ordering::Acquire);
        if !grant.can_serve(now, applied) {
            return None;
        }
        Some(state_machine.query(query))
    }
}

/// Records the state machine's applied index; call it holding the state machine's lock.
pub(crate) fn publish_applied(applied: &AtomicU64, index: Index) {
    applied.fetch_max(index, Ordering::Release);
}
