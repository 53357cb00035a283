//! [`KvStateMachine`]: the key space and the session table behind the
//! [`raft_core::StateMachine`] interface.

use std::io::{Read, Write};

use bytes::Bytes;
use raft_core::{Index, StateMachine};

use crate::command::{Command, CommandError, Condition, Op, Response};
use crate::command_shared;
use crate::config::{ConfigError, KvConfig};
use crate::history::{Change, ChangeKind, History, Scan};
use crate::query::{ChangesResponse, GetResponse, Query, QueryResponse};
use crate::session::{Admission, SessionTable};
use crate::snapshot;
use crate::store::Store;

/// Everything that is replicated: identical on every replica after the same log prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct State {
    /// Index of the last applied command (0 before any).
    pub(crate) applied_index: u64,
    /// The log-carried clock: the largest `now_ms` applied so far.
    pub(crate) clock_ms: u64,
    pub(crate) store: Store,
    pub(crate) sessions: SessionTable,
    /// The recent changes, for watches.
    pub(crate) history: History,
}

/// The replicated key-value state machine. See the crate docs for its semantics.
#[derive(Debug, Clone, Default)]
pub struct KvStateMachine {
    config: KvConfig,
    state: State,
}

/// A point-in-time view of a [`KvStateMachine`], taken in O(1) by
/// [`StateMachine::snapshot`] and written out by [`StateMachine::write_snapshot`] while the
/// machine keeps applying.
#[derive(Debug, Clone)]
pub struct KvSnapshot {
    pub(crate) state: State,
}

impl KvSnapshot {
    /// The index of the last command the view includes.
    pub fn applied_index(&self) -> u64 {
        self.state.applied_index
    }
}

/// Two machines are equal when their replicated state is: the configuration is local.
impl PartialEq for KvStateMachine {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
    }
}

impl Eq for KvStateMachine {}

impl KvStateMachine {
    /// An empty store with these limits.
    pub fn new(config: KvConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            state: State::default(),
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &KvConfig {
        &self.config
    }

    /// Index of the last applied command (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.state.applied_index
    }

    /// The global revision: the index of the last command that changed a key (0 before any).
    pub fn revision(&self) -> u64 {
        self.state.store.revision
    }

    /// The log-carried clock: the largest `now_ms` applied so far.
    pub fn clock_ms(&self) -> u64 {
        self.state.clock_ms
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.state.store.entries.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.state.store.entries.is_empty()
    }

    /// Number of live client sessions.
    pub fn session_count(&self) -> usize {
        self.state.sessions.len()
    }

    /// Oldest revision a watch can start from (changes before it may have been evicted).
    pub fn history_oldest_revision(&self) -> u64 {
        self.state.history.compacted_revision() + 1
    }

    /// Bytes the watch history holds (keys, values and 32 per change).
    pub fn history_bytes(&self) -> u64 {
        self.state.history.bytes()
    }

    /// Number of changes the watch history holds.
    pub fn history_len(&self) -> usize {
        self.state.history.len()
    }

    fn execute(&mut self, index: u64, op: &Op) -> Response {
        if let Err(error) = validate(&self.config, op) {
            tracing::debug!(index, %error, "command rejected");
            return Response::Rejected(error);
        }
        let response = self.state.store.execute(index, op);
        if let Some(change) = change_of(op, &response) {
            let limits = self.config.history_limits();
            self.state.history.record(change, limits);
        }
        response
    }

    fn changes(
        &self,
        prefix: &[u8],
        from_revision: u64,
        limit: u32,
        bytes_max: u64,
    ) -> QueryResponse {
        let limit = limit.min(self.config.range_limit_max) as usize;
        let state = &self.state;
        let applied_index = state.applied_index;
        let scan = state
            .history
            .scan(prefix, from_revision, limit, bytes_max, applied_index);
        let (compacted, changes, next_revision) = match scan {
            Scan::Compacted => (true, Vec::new(), from_revision),
            Scan::Changes {
                changes,
                next_revision,
            } => (false, changes, next_revision),
        };
        QueryResponse::Changes(ChangesResponse {
            revision: state.store.revision,
            applied_index,
            oldest_revision: state.history.compacted_revision() + 1,
            compacted,
            changes,
            next_revision,
        })
    }
}

/// The change `op` made, judging by its response (none when nothing changed).
fn change_of(op: &Op, response: &Response) -> Option<Change> {
    match (op, response) {
        (Op::Put { key, value, .. }, Response::Put { revision, .. }) => Some(Change {
            revision: *revision,
            key: key.clone(),
            kind: ChangeKind::Put {
                value: value.clone(),
            },
        }),
        (
            Op::Delete { key, .. },
            Response::Delete {
                revision,
                previous: Some(_),
            },
        ) => Some(Change {
            revision: *revision,
            key: key.clone(),
            kind: ChangeKind::Delete,
        }),
        _ => None,
    }
}

/// Checks an operation against the configured limits.
fn validate(config: &KvConfig, op: &Op) -> Result<(), CommandError> {
    let key_bytes = op.key().len() as u64;
    if key_bytes == 0 {
        return Err(CommandError::EmptyKey);
    }
    if key_bytes > config.key_bytes_max {
        return Err(CommandError::KeyTooLarge {
            size_bytes: key_bytes,
            max_bytes: config.key_bytes_max,
        });
    }
    let value_bytes = match (op, op.condition()) {
        (Op::Put { value, .. }, Condition::Value(expected)) => value.len().max(expected.len()),
        (Op::Put { value, .. }, _) => value.len(),
        (Op::Delete { .. }, Condition::Value(expected)) => expected.len(),
        (Op::Delete { .. }, _) => 0,
    } as u64;
    if value_bytes > config.value_bytes_max {
        return Err(CommandError::ValueTooLarge {
            size_bytes: value_bytes,
            max_bytes: config.value_bytes_max,
        });
    }
    Ok(())
}

impl StateMachine for KvStateMachine {
    type Command = Command;
    type Response = Response;
    type Query = Query;
    type QueryResponse = QueryResponse;
    type Snapshot = KvSnapshot;

    /// Large values stay slices of the log entry instead of being copied (see
    /// `command_shared`).
    fn decode_command(bytes: &Bytes) -> Option<Command> {
        command_shared::decode(bytes)
    }

    fn apply(&mut self, index: Index, command: Command) -> Response {
        let applied_index = self.state.applied_index;
        if index <= applied_index {
            tracing::warn!(
                index,
                applied_index,
                "apply called with a non-increasing index; ignored"
            );
            return Response::Rejected(CommandError::IndexNotIncreasing {
                index,
                applied_index,
            });
        }
        let state = &mut self.state;
        state.applied_index = index;
        state.clock_ms = state.clock_ms.max(command.now_ms);
        let clock_ms = state.clock_ms;
        let expired = state.sessions.expire(clock_ms, self.config.session_ttl_ms);
        if expired > 0 {
            tracing::debug!(index, clock_ms, expired, "client sessions expired");
        }
        let Some(request) = command.session else {
            return self.execute(index, &command.op);
        };
        match self.state.sessions.admit(request, clock_ms) {
            Admission::Apply => {
                let response = self.execute(index, &command.op);
                let sessions_max = self.config.sessions_max;
                self.state
                    .sessions
                    .record(request, response.clone(), clock_ms, sessions_max);
                response
            }
            Admission::Duplicate(response) => response,
            Admission::Refuse(error) => {
                tracing::debug!(index, %error, "session write refused");
                Response::Rejected(error)
            }
        }
    }

    fn query(&self, query: &Query) -> QueryResponse {
        let store = &self.state.store;
        match query {
            Query::Get { key } => QueryResponse::Get(GetResponse {
                revision: store.revision,
                entry: store.get(key),
            }),
            Query::Range {
                prefix,
                start_after,
                limit,
            } => {
                let limit = (*limit).min(self.config.range_limit_max) as usize;
                QueryResponse::Range(store.range(prefix, start_after.as_deref(), limit))
            }
            Query::Changes {
                prefix,
                from_revision,
                limit,
                bytes_max,
            } => self.changes(prefix, *from_revision, *limit, *bytes_max),
        }
    }

    fn snapshot(&self) -> KvSnapshot {
        // O(1): every map in `State` is persistent and shares structure with the live one.
        KvSnapshot {
            state: self.state.clone(),
        }
    }

    fn write_snapshot(snapshot: KvSnapshot, writer: &mut dyn Write) -> std::io::Result<()> {
        snapshot::write(&snapshot.state, writer)
    }

    fn restore(&mut self, reader: &mut dyn Read) -> std::io::Result<()> {
        // Build the new state aside and swap it in only once it is complete and verified.
        match snapshot::read(reader) {
            Ok(state) => {
                tracing::info!(
                    applied_index = state.applied_index,
                    keys = state.store.entries.len(),
                    sessions = state.sessions.len(),
                    "restored key-value snapshot"
                );
                self.state = state;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "snapshot restore failed; state unchanged");
                Err(error.into())
            }
        }
    }
}
