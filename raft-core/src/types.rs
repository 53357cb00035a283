//! Plain data shared by the core, its hosts and every adapter: log entries, hard state,
//! snapshot metadata.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::membership::Membership;

pub use crate::ids::{Index, NodeId, Term};

/// One replicated log entry.
///
/// Payloads are [`bytes::Bytes`]: the same command is held by the leader's log, by every
/// outgoing append message and by the apply action, so reference-counted buffers avoid one
/// copy per follower and per stage. `Bytes` serializes as a plain byte string with serde, so
/// adapters encode it with postcard without special cases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: Index,
    /// What the entry carries.
    pub payload: EntryPayload,
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// The empty entry a new leader appends at the start of its term, so that entries of
    /// earlier terms commit promptly (Raft paper section 5.4.2).
    Noop,
    /// An application command, opaque to the core; the state machine interprets it.
    Command(Bytes),
    /// A membership configuration. It takes effect on a node as soon as it is appended to
    /// that node's log, not when it commits (thesis section 4.1).
    /// Boxed: configurations are rare, and an unboxed one would triple the size of every
    /// entry the hot path clones.
    Membership(Box<Membership>),
    /// An application command whose bytes were withheld because the receiver is a witness.
    /// Witnesses keep index and term (and configurations) only; see the crate docs on
    /// witnesses for the durability trade-off.
    Elided,
}

impl Entry {
    /// Bytes this entry counts for in flow control and size limits: the payload length plus
    /// a fixed per-entry overhead, so that empty entries are not free.
    pub fn size_bytes(&self) -> u64 {
        const ENTRY_OVERHEAD_BYTES: u64 = 24;
        let payload = match &self.payload {
            EntryPayload::Command(data) => data.len() as u64,
            EntryPayload::Membership(m) => 16 * m.node_count() as u64,
            EntryPayload::Noop | EntryPayload::Elided => 0,
        };
        ENTRY_OVERHEAD_BYTES + payload
    }

    /// The same entry with its command bytes removed, as sent to a witness.
    pub fn elided(&self) -> Entry {
        match &self.payload {
            EntryPayload::Command(_) => Entry {
                term: self.term,
                index: self.index,
                payload: EntryPayload::Elided,
            },
            _ => self.clone(),
        }
    }
}

/// The state every node must persist before it answers a peer: its current term, the vote it
/// cast in that term, and the commit index it knows.
///
/// The commit index is persisted so that a restarted node can re-apply up to it at once
/// instead of waiting for a leader (and so that `applied` can never exceed `commit` after a
/// restart).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest log index known to be committed.
    pub commit: Index,
}

/// Describes a snapshot: the last log entry it covers and the membership in force at it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot covers.
    pub index: Index,
    /// Term of the last entry the snapshot covers.
    pub term: Term,
    /// The membership configuration as of `index` (the last one appended at or before it).
    pub membership: Membership,
}

/// Everything a host restored from its storage, handed to [`crate::Node::new`].
///
/// A brand-new member of a brand-new cluster starts from
/// [`RestoredState::bootstrap`]; a node that will join an existing cluster starts from
/// [`RestoredState::default`] (no members known, it waits to be contacted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoredState {
    /// The persisted hard state.
    pub hard_state: HardState,
    /// The latest snapshot's metadata. For a node without a snapshot this is index 0, term 0
    /// and the initial membership.
    pub snapshot: SnapshotMeta,
    /// The log entries after `snapshot.index`, contiguous and in order.
    pub entries: Vec<Entry>,
}

impl RestoredState {
    /// The state of a node that founds a new cluster with the given membership.
    pub fn bootstrap(membership: Membership) -> Self {
        RestoredState {
            hard_state: HardState::default(),
            snapshot: SnapshotMeta {
                index: 0,
                term: 0,
                membership,
            },
            entries: Vec::new(),
        }
    }

    /// Checks what the storage gave back before handing it to [`crate::Node::new`] (which
    /// panics on the same faults): the entries must follow the snapshot contiguously with
    /// terms that never decrease. A failure means the storage is corrupt or buggy; the host
    /// must not start the node.
    ///
    /// ```
    /// use raft_core::{Entry, EntryPayload, RestoredState, RestoredStateError};
    ///
    /// let mut restored = RestoredState::default();
    /// restored.entries.push(Entry { index: 2, term: 1, payload: EntryPayload::Noop });
    /// assert_eq!(
    ///     restored.validate(),
    ///     Err(RestoredStateError::NotContiguous { expected: 1, found: 2 })
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), RestoredStateError> {
        let mut previous_term = self.snapshot.term;
        for (position, entry) in self.entries.iter().enumerate() {
            let expected = self
                .snapshot
                .index
                .checked_add(1 + position as u64)
                .ok_or(RestoredStateError::IndexOverflow)?;
            if entry.index != expected {
                return Err(RestoredStateError::NotContiguous {
                    expected,
                    found: entry.index,
                });
            }
            if entry.term < previous_term {
                return Err(RestoredStateError::TermDecreases {
                    index: entry.index,
                    term: entry.term,
                    previous: previous_term,
                });
            }
            previous_term = entry.term;
        }
        Ok(())
    }
}

/// Why a [`RestoredState`] cannot be the state of a Raft node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoredStateError {
    /// The entries do not follow the snapshot (or each other) without a gap.
    #[error("restored log is not contiguous: expected index {expected}, found {found}")]
    NotContiguous {
        /// The index the entry should have.
        expected: Index,
        /// The index it has.
        found: Index,
    },
    /// An entry's term is below the one before it (or the snapshot's).
    #[error("restored log term decreases at index {index}: {term} after {previous}")]
    TermDecreases {
        /// The entry.
        index: Index,
        /// Its term.
        term: Term,
        /// The term before it.
        previous: Term,
    },
    /// The indices run past `u64::MAX`.
    #[error("restored log indices overflow")]
    IndexOverflow,
}
