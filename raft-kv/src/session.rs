//! Client sessions: the last applied sequence and response per client, with deterministic
//! expiry by log-carried time and a bound on their number. Semantics: see the crate docs.

use imbl::{OrdMap, OrdSet};

use crate::command::{CommandError, Response, SessionRequest};

/// One client's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The last applied write's sequence.
    pub(crate) last_sequence: u64,
    /// That write's response, replayed to retries.
    pub(crate) response: Response,
    /// The state machine clock when the client was last seen.
    pub(crate) last_active_ms: u64,
}

/// What to do with a session write.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Apply it, then [`SessionTable::record`] the response.
    Apply,
    /// A retry: answer with this stored response, apply nothing.
    Duplicate(Response),
    /// Refuse it with this error, apply nothing.
    Refuse(CommandError),
}

/// All sessions, plus an index by last activity for expiry and eviction. Both maps are
/// persistent, so a snapshot clones them in O(1).
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionTable {
    sessions: OrdMap<u64, Session>,
    /// `(last_active_ms, client_id)` of every session: the front is the least recently active.
    by_activity: OrdSet<(u64, u64)>,
}

impl PartialEq for SessionTable {
    fn eq(&self, other: &Self) -> bool {
        // `by_activity` is derived from `sessions`.
        self.sessions == other.sessions
    }
}

impl Eq for SessionTable {}

impl SessionTable {
    /// Rebuilds a table from its sessions (after a restore).
    pub(crate) fn from_sessions(sessions: OrdMap<u64, Session>) -> Self {
        let by_activity = sessions
            .iter()
            .map(|(client_id, session)| (session.last_active_ms, *client_id))
            .collect();
        Self {
            sessions,
            by_activity,
        }
    }

    pub(crate) fn sessions(&self) -> &OrdMap<u64, Session> {
        &self.sessions
    }

    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Drops sessions idle for more than `ttl_ms` at clock `clock_ms`; returns how many.
    pub(crate) fn expire(&mut self, clock_ms: u64, ttl_ms: u64) -> usize {
        let mut expired = 0;
        while let Some(&(last_active_ms, client_id)) = self.by_activity.get_min() {
            if clock_ms.saturating_sub(last_active_ms) <= ttl_ms {
                break;
            }
            self.remove(last_active_ms, client_id);
            expired += 1;
        }
        expired
    }

    /// Decides whether the write `request` is applied, answered from the cache or refused.
    /// A duplicate counts as activity at `clock_ms`.
    pub(crate) fn admit(&mut self, request: SessionRequest, clock_ms: u64) -> Admission {
        let SessionRequest {
            client_id,
            sequence,
        } = request;
        if sequence == 0 {
            return Admission::Refuse(CommandError::InvalidSequence { client_id });
        }
        let Some(session) = self.sessions.get(&client_id) else {
            return if sequence == 1 {
                Admission::Apply
            } else {
                Admission::Refuse(CommandError::SessionUnknown {
                    client_id,
                    sequence,
                })
            };
        };
        let last_sequence = session.last_sequence;
        if sequence > last_sequence {
            Admission::Apply
        } else if sequence == last_sequence {
            let response = session.response.clone();
            self.touch(client_id, clock_ms);
            Admission::Duplicate(response)
        } else {
            Admission::Refuse(CommandError::StaleSequence {
                client_id,
                sequence,
                last_sequence,
            })
        }
    }

    /// Stores the response of an applied write, starting the session if it is new (evicting
    /// the least recently active sessions to stay within `sessions_max`).
    pub(crate) fn record(
        &mut self,
        request: SessionRequest,
        response: Response,
        clock_ms: u64,
        sessions_max: u64,
    ) {
        let client_id = request.client_id;
        // A known client's session is updated in place: one search of the map, not a
        // lookup then an insert (each a walk down the tree).
        if let Some(session) = self.sessions.get_mut(&client_id) {
            let old_active_ms = session.last_active_ms;
            session.last_sequence = request.sequence;
            session.response = response;
            session.last_active_ms = clock_ms;
            if old_active_ms != clock_ms {
                self.by_activity.remove(&(old_active_ms, client_id));
                self.by_activity.insert((clock_ms, client_id));
            }
            return;
        }
        self.evict_to(sessions_max.saturating_sub(1));
        let session = Session {
            last_sequence: request.sequence,
            response,
            last_active_ms: clock_ms,
        };
        self.sessions.insert(client_id, session);
        self.by_activity.insert((clock_ms, client_id));
    }

    /// Evicts least recently active sessions until at most `count` remain.
    fn evict_to(&mut self, count: u64) {
        while self.sessions.len() as u64 > count {
            let Some(&(last_active_ms, client_id)) = self.by_activity.get_min() else {
                break;
            };
            tracing::debug!(
                client_id,
                last_active_ms,
                "session table full: evicting session"
            );
            self.remove(last_active_ms, client_id);
        }
    }

    fn touch(&mut self, client_id: u64, clock_ms: u64) {
        if let Some(session) = self.sessions.get_mut(&client_id) {
            self.by_activity
                .remove(&(session.last_active_ms, client_id));
            session.last_active_ms = clock_ms;
            self.by_activity.insert((clock_ms, client_id));
        }
    }

    fn remove(&mut self, last_active_ms: u64, client_id: u64) {
        self.by_activity.remove(&(last_active_ms, client_id));
        self.sessions.remove(&client_id);
    }
}
