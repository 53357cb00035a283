//! Helpers the checks and the model run share: error context, reading a store whole,
//! writing and reading snapshots, creating and reopening through the harness.

use std::fmt;
use std::io::{Read, Write};

use super::harness::Harness;
use crate::storage::Storage;
use crate::types::{Entry, Index, RestoredState, SnapshotMeta};

/// Adds what was being done to a store error.
pub(super) trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what} failed: {e}"))
    }
}

pub(super) fn all_entries<S: Storage>(store: &S) -> Result<Vec<Entry>, String> {
    let (first, last) = (store.first_index(), store.last_index());
    if first > last {
        return Ok(Vec::new());
    }
    store
        .entries(first, last + 1, u64::MAX)
        .ctx("entries(first, last + 1)")
}

pub(super) fn write_snapshot<S: Storage>(
    store: &mut S,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<S::SnapshotWriter, String> {
    let mut writer = store.begin_snapshot(meta).ctx("begin_snapshot")?;
    // Several writes, as chunks arrive from a leader.
    for chunk in data.chunks(7919) {
        writer.write_all(chunk).ctx("snapshot write_all")?;
    }
    writer.flush().ctx("snapshot flush")?;
    Ok(writer)
}

pub(super) fn commit_snapshot<S: Storage>(
    store: &mut S,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<(), String> {
    let writer = write_snapshot(store, meta, data)?;
    store.commit_snapshot(writer).ctx("commit_snapshot")
}

pub(super) fn read_snapshot<S: Storage>(
    store: &S,
) -> Result<Option<(SnapshotMeta, Vec<u8>)>, String> {
    match store.open_snapshot().ctx("open_snapshot")? {
        None => Ok(None),
        Some((meta, mut reader)) => {
            let mut data = Vec::new();
            reader.read_to_end(&mut data).ctx("reading the snapshot")?;
            Ok(Some((meta, data)))
        }
    }
}

pub(super) fn fresh<H: Harness>(harness: &mut H) -> Result<H::Store, String> {
    let mut store = harness.create().ctx("create")?;
    store.restore().ctx("restore of a new store")?;
    Ok(store)
}

pub(super) fn reopen<H: Harness>(
    harness: &mut H,
    store: H::Store,
) -> Result<(H::Store, RestoredState), String> {
    let mut store = harness.reopen(store).ctx("reopen")?;
    let restored = store.restore().ctx("restore after reopen")?;
    Ok((store, restored))
}

/// The log bounds and contents, for "nothing changed" comparisons.
pub(super) fn log_view<S: Storage>(store: &S) -> Result<(Index, Index, Vec<Entry>), String> {
    Ok((store.first_index(), store.last_index(), all_entries(store)?))
}
