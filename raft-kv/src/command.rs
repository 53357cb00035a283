//! Write commands carried in the Raft log and the responses they produce.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One write, as proposed by a client and carried in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The proposer's clock in milliseconds when it proposed this command. The state
    /// machine's clock is the maximum of these; it drives session expiry on every replica
    /// alike. Any monotone-ish clock works (wall clock or a simulated one).
    pub now_ms: u64,
    /// Makes the write exactly-once across retries when set (see the crate docs).
    pub session: Option<SessionRequest>,
    /// What to do.
    pub op: Op,
}

impl Command {
    /// An unconditional put without a session.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>, now_ms: u64) -> Self {
        Self::new(
            Op::Put {
                key: key.into(),
                value: value.into(),
                condition: Condition::Always,
            },
            now_ms,
        )
    }

    /// An unconditional delete without a session.
    pub fn delete(key: impl Into<Bytes>, now_ms: u64) -> Self {
        Self::new(
            Op::Delete {
                key: key.into(),
                condition: Condition::Always,
            },
            now_ms,
        )
    }

    /// A command for `op` without a session.
    pub fn new(op: Op, now_ms: u64) -> Self {
        Self {
            now_ms,
            session: None,
            op,
        }
    }

    /// The same command, made exactly-once as write `sequence` of client `client_id`.
    #[must_use]
    pub fn with_session(mut self, client_id: u64, sequence: u64) -> Self {
        self.session = Some(SessionRequest {
            client_id,
            sequence,
        });
        self
    }

    /// The same command with `condition` on its key.
    #[must_use]
    pub fn with_condition(mut self, condition: Condition) -> Self {
        match &mut self.op {
            Op::Put { condition: c, .. } | Op::Delete { condition: c, .. } => *c = condition,
        }
        self
    }
}

/// Identifies one write of one client session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The client's id, chosen by the client (random 64 bits make collisions negligible).
    pub client_id: u64,
    /// The write's number within the session: 1 for the first, increasing afterwards; a
    /// retry reuses the number of the write it retries.
    pub sequence: u64,
}

/// A write operation on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Sets `key` to `value` if `condition` holds (compare-and-set when it is not `Always`).
    Put {
        /// The key; non-empty, at most [`crate::KvConfig::key_bytes_max`] bytes.
        key: Bytes,
        /// The value; at most [`crate::KvConfig::value_bytes_max`] bytes (may be empty).
        value: Bytes,
        /// Must hold for the put to happen.
        condition: Condition,
    },
    /// Removes `key` if `condition` holds; removing an absent key succeeds and changes
    /// nothing.
    Delete {
        /// The key; same limits as for a put.
        key: Bytes,
        /// Must hold for the delete to happen.
        condition: Condition,
    },
}

impl Op {
    /// The key the operation touches.
    pub fn key(&self) -> &Bytes {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    /// The operation's condition.
    pub fn condition(&self) -> &Condition {
        match self {
            Op::Put { condition, .. } | Op::Delete { condition, .. } => condition,
        }
    }
}

/// A precondition on the key's current state, checked atomically with the write.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Condition {
    /// No precondition.
    #[default]
    Always,
    /// The key must not exist (create-only put).
    Absent,
    /// The key's `mod_revision` must equal this (0 means "must be absent"): compare-and-set on
    /// revision, as the HTTP `if_revision` parameter.
    ModRevision(u64),
    /// The key must exist with exactly this value: compare-and-set on value.
    Value(Bytes),
}

/// A key's revision metadata, as in etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRevision {
    /// Revision of the put that created the key (since it was last absent).
    pub create_revision: u64,
    /// Revision of the key's last change.
    pub mod_revision: u64,
    /// Number of puts since creation: 1 right after creation.
    pub version: u64,
}

/// The outcome of one command, returned to the proposer (and replayed to a retrying client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The put happened.
    Put {
        /// The new global revision (the command's log index).
        revision: u64,
        /// The key's metadata after the put.
        key_revision: KeyRevision,
        /// The key's metadata before the put, `None` if it was created.
        previous: Option<KeyRevision>,
    },
    /// The delete was carried out.
    Delete {
        /// The global revision after the delete: the command's index if a key was removed,
        /// otherwise the unchanged current revision.
        revision: u64,
        /// The removed key's metadata, `None` if the key was absent (nothing changed).
        previous: Option<KeyRevision>,
    },
    /// The command's condition did not hold; nothing changed (HTTP 412).
    ConditionFailed {
        /// The current global revision.
        revision: u64,
        /// The key's current metadata, `None` if it is absent.
        current: Option<KeyRevision>,
    },
    /// The command could not be carried out; nothing changed.
    Rejected(CommandError),
}

impl Response {
    /// The global revision the response reports, `None` for a rejected command.
    pub fn revision(&self) -> Option<u64> {
        match self {
            Response::Put { revision, .. }
            | Response::Delete { revision, .. }
            | Response::ConditionFailed { revision, .. } => Some(*revision),
            Response::Rejected(_) => None,
        }
    }
}

/// Why a command was rejected. Each variant says what the client should do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CommandError {
    /// The key is empty. Fix the request (HTTP 400).
    #[error("the key is empty")]
    EmptyKey,
    /// The key is longer than allowed. Use a shorter key (HTTP 400/413).
    #[error("key of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    KeyTooLarge {
        /// The key's length.
        size_bytes: u64,
        /// The configured limit.
        max_bytes: u64,
    },
    /// The value (or the value in a `Condition::Value`) is longer than allowed. Send a
    /// smaller value (HTTP 413).
    #[error("value of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    ValueTooLarge {
        /// The value's length.
        size_bytes: u64,
        /// The configured limit.
        max_bytes: u64,
    },
    /// Sequence 0 is not a valid write number; sessions number writes from 1.
    #[error("sequence 0 is invalid for client {client_id}; sequences start at 1")]
    InvalidSequence {
        /// The client.
        client_id: u64,
    },
    /// The write is older than the session's last applied write, whose response is the only
    /// one kept. The older write was applied earlier or superseded; do not retry it.
    #[error(
        "stale sequence {sequence} for client {client_id}: the last applied is {last_sequence}"
    )]
    StaleSequence {
        /// The client.
        client_id: u64,
        /// The rejected write's sequence.
        sequence: u64,
        /// The session's last applied sequence.
        last_sequence: u64,
    },
    /// The client has no session (it expired or was evicted) and the write is not the first
    /// of a session, so a retry could not be recognised. The write's outcome is unknown:
    /// read to find out, then open a new session under a new client id starting at 1.
    #[error("client {client_id} has no session (expired or evicted); sequence {sequence} refused")]
    SessionUnknown {
        /// The client.
        client_id: u64,
        /// The refused write's sequence.
        sequence: u64,
    },
    /// The host applied an index at or below the last applied one: a host bug, reported
    /// instead of corrupting the store. Nothing changed.
    #[error("index {index} is not after the last applied index {applied_index}")]
    IndexNotIncreasing {
        /// The index given to apply.
        index: u64,
        /// The last applied index.
        applied_index: u64,
    },
}
