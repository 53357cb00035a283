//! Read-only queries and their answers.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::command::KeyRevision;

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
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryResponse {
    /// Answer to [`Query::Get`].
    Get(GetResponse),
    /// Answer to [`Query::Range`].
    Range(RangeResponse),
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
