//! Read-only queries and their answers.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::command::KeyRevision;
use crate::history::Change;

/// A read-only request answered from the applied state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// The value of one key.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Keys starting with `prefix`, in key order.
    Range {
        /// Only keys starting with this (empty: every key).
        prefix: Bytes,
        /// Only keys strictly after this one (for paging: the last key of the previous page).
        start_after: Option<Bytes>,
        /// At most this many keys, clamped to [`crate::KvConfig::range_limit_max`].
        limit: u32,
    },
    /// Changes to keys starting with `prefix` from the watch history, oldest first (see
    /// [`crate::history`]).
    Changes {
        /// Only changes to keys starting with this (empty: every key).
        prefix: Bytes,
        /// Only changes with this revision or a later one.
        from_revision: u64,
        /// At most this many changes (clamped to [`crate::KvConfig::range_limit_max`]).
        limit: u32,
        /// Stop adding changes once their cost reaches this (one is always returned).
        bytes_max: u64,
    },
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryResponse {
    /// Answer to [`Query::Get`].
    Get(GetResponse),
    /// Answer to [`Query::Range`].
    Range(RangeResponse),
    /// Answer to [`Query::Changes`].
    Changes(ChangesResponse),
}

/// The answer to [`Query::Changes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesResponse {
    /// The store's global revision when the read was served.
    pub revision: u64,
    /// The store's applied index when the read was served.
    pub applied_index: u64,
    /// The oldest revision a watch can start from: changes before it may have been evicted.
    pub oldest_revision: u64,
    /// True when `from_revision` is before `oldest_revision` (then `changes` is empty).
    pub compacted: bool,
    /// The changes found, oldest first.
    pub changes: Vec<Change>,
    /// Where to continue: the revision to ask from next time.
    pub next_revision: u64,
}

/// The answer to [`Query::Get`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResponse {
    /// The store's global revision when the read was served.
    pub revision: u64,
    /// The value and its metadata, `None` if the key is absent (HTTP 404).
    pub entry: Option<KeyValue>,
}

/// The answer to [`Query::Range`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// The store's global revision when the read was served.
    pub revision: u64,
    /// The matching keys in key order.
    pub entries: Vec<KeyValue>,
    /// Whether more keys match after the last one returned.
    pub more: bool,
}

/// One key with its value and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// The key's revision metadata.
    pub key_revision: KeyRevision,
}
