//! The observation feed: what the engine did, step by step, for a checker that watches a
//! node from outside (a simulator's safety checker, a test). Off by default and then free:
//! every producer checks one `bool` and builds nothing. Turn it on with
//! [`crate::Engine::set_observing`] and drain it with [`crate::Engine::poll_observation`]
//! after each batch of inputs, before or after the other `poll_*` calls.

use std::collections::VecDeque;

use raft_core::{EntryPayload, HardState, Index, Role, StateMachine, Term, WriteToken};

use crate::pending::RequestId;

/// One thing the engine did.
pub enum Observation<M: StateMachine> {
    /// The core handed out a write (it is queued for the disk lane now). `prev_term` is the
    /// term of the entry before the first appended one, as the node's log has it (`None`
    /// when the batch appends nothing or the entry is inside the snapshot).
    Persist {
        /// Entries from this index on are removed first.
        truncate_from: Option<Index>,
        /// The entries appended.
        entries: Vec<raft_core::Entry>,
        /// Term of the entry before the first appended one.
        prev_term: Option<Term>,
        /// The new hard state, if any.
        hard_state: Option<HardState>,
        /// Whether the batch needs a sync before its token may be reported.
        sync_required: bool,
        /// The batch's token.
        token: WriteToken,
    },
    /// The engine told the core that the write `token` (and every earlier one) is durable.
    /// `synced`: the disk work that carried it ended with a sync.
    Durable {
        /// The token reported.
        token: WriteToken,
        /// Whether its disk work ended with a sync.
        synced: bool,
    },
    /// The state machine applied a log entry (commands, no-ops, membership and elided
    /// entries alike), with its response for a command.
    Applied {
        /// Its index.
        index: Index,
        /// Its term.
        term: Term,
        /// Its payload as the log holds it (an engine envelope for commands).
        payload: EntryPayload,
        /// The state machine's response, for a command that decoded.
        response: Option<M::Response>,
    },
    /// The state machine was replaced by the snapshot at `index`; `has_state` is false for
    /// a snapshot without state (a witness's).
    Restored {
        /// The snapshot's index.
        index: Index,
        /// Whether it carried state.
        has_state: bool,
    },
    /// A client request was answered (`ok`: with a success).
    Answered {
        /// The request.
        request: RequestId,
        /// Whether the answer was a success.
        ok: bool,
    },
    /// The node's role, term or leader changed.
    Role {
        /// The new role.
        role: Role,
        /// Its term.
        term: Term,
        /// The leader it knows, if any.
        leader: Option<raft_core::NodeId>,
    },
    /// The engine stopped: `core` when the core halted on an inconsistency, otherwise a
    /// storage or state machine failure.
    Stopped {
        /// Why.
        reason: String,
        /// True when the core itself halted.
        core: bool,
    },
}

impl<M: StateMachine> std::fmt::Debug for Observation<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Observation::Persist {
                entries,
                token,
                sync_required,
                ..
            } => f
                .debug_struct("Persist")
                .field("entries", &entries.len())
                .field("sync_required", sync_required)
                .field("token", token)
                .finish(),
            Observation::Durable { token, synced } => f
                .debug_struct("Durable")
                .field("token", token)
                .field("synced", synced)
                .finish(),
            Observation::Applied { index, term, .. } => f
                .debug_struct("Applied")
                .field("index", index)
                .field("term", term)
                .finish(),
            Observation::Restored { index, has_state } => f
                .debug_struct("Restored")
                .field("index", index)
                .field("has_state", has_state)
                .finish(),
            Observation::Answered { request, ok } => f
                .debug_struct("Answered")
                .field("request", request)
                .field("ok", ok)
                .finish(),
            Observation::Role { role, term, leader } => f
                .debug_struct("Role")
                .field("role", role)
                .field("term", term)
                .field("leader", leader)
                .finish(),
            Observation::Stopped { reason, core } => f
                .debug_struct("Stopped")
                .field("reason", reason)
                .field("core", core)
                .finish(),
        }
    }
}

/// The queue behind the feed; `on` is the only cost when nobody watches.
pub(crate) struct Observations<M: StateMachine> {
    pub(crate) on: bool,
    pub(crate) queue: VecDeque<Observation<M>>,
}

impl<M: StateMachine> Observations<M> {
    pub(crate) fn new() -> Self {
        Observations {
            on: false,
            queue: VecDeque::new(),
        }
    }

    /// Records what `make` builds, if anyone watches.
    #[inline]
    pub(crate) fn push(&mut self, make: impl FnOnce() -> Observation<M>) {
        if self.on {
            self.queue.push_back(make());
        }
    }
}
