//! Helpers shared by the test modules.

use bytes::Bytes;
use raft_core::StateMachine;
use raft_kv::{
    Change, ChangeKind, ChangesResponse, KeyValue, KvConfig, KvStateMachine, Query, QueryResponse,
    RangeResponse,
};

/// A machine with small limits so the limit checks are cheap to reach.
pub(crate) fn machine() -> KvStateMachine {
    let config = KvConfig {
        key_bytes_max: 16,
        value_bytes_max: 64,
        session_ttl_ms: 1_000,
        sessions_max: 4,
        range_limit_max: 5,
        history_changes_max: 6,
        history_bytes_max: 4096,
    };
    KvStateMachine::new(config).expect("the test config is valid")
}

pub(crate) fn get(machine: &KvStateMachine, key: &str) -> Option<KeyValue> {
    match machine.query(&Query::Get {
        key: Bytes::copy_from_slice(key.as_bytes()),
    }) {
        QueryResponse::Get(response) => response.entry,
        other => panic!("a get answered {other:?}"),
    }
}

pub(crate) fn range(
    machine: &KvStateMachine,
    prefix: &str,
    start_after: Option<&str>,
    limit: u32,
) -> RangeResponse {
    let query = Query::Range {
        prefix: Bytes::copy_from_slice(prefix.as_bytes()),
        start_after: start_after.map(|key| Bytes::copy_from_slice(key.as_bytes())),
        limit,
    };
    match machine.query(&query) {
        QueryResponse::Range(response) => response,
        other => panic!("a range answered {other:?}"),
    }
}

pub(crate) fn keys(response: &RangeResponse) -> Vec<String> {
    response
        .entries
        .iter()
        .map(|entry| String::from_utf8_lossy(&entry.key).into_owned())
        .collect()
}

/// Changes from the watch history, as `(revision, key, Some(value) | None for a delete)`.
pub(crate) fn changes(
    machine: &KvStateMachine,
    prefix: &str,
    from_revision: u64,
    limit: u32,
) -> ChangesResponse {
    let query = Query::Changes {
        prefix: Bytes::copy_from_slice(prefix.as_bytes()),
        from_revision,
        limit,
        bytes_max: u64::MAX,
    };
    match machine.query(&query) {
        QueryResponse::Changes(response) => response,
        other => panic!("a changes query answered {other:?}"),
    }
}

/// A change as `(revision, key, value or None for a delete)`, for compact assertions.
pub(crate) fn described(change: &Change) -> (u64, String, Option<String>) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let value = match &change.kind {
        ChangeKind::Put { value } => Some(text(value)),
        ChangeKind::Delete => None,
    };
    (change.revision, text(&change.key), value)
}
