//! Checks of the log: bounds, reads, appends, truncation, compaction, misuse.

use super::super::harness::Harness;
use super::super::samples::{meta, run_of, sample_entry};
use super::super::support::{Context, all_entries, commit_snapshot, fresh, log_view, reopen};
use crate::storage::Storage;
use crate::types::{Entry, HardState};

pub(super) fn fresh_store_is_empty<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = h.create().ctx("create")?;
    let restored = store.restore().ctx("restore")?;
    ensure_eq!(
        restored.hard_state,
        HardState::default(),
        "hard state of a new store"
    );
    ensure_eq!(
        (restored.snapshot.index, restored.snapshot.term),
        (0, 0),
        "snapshot of a new store"
    );
    ensure!(
        restored.entries.is_empty(),
        "a new store restored {} entries",
        restored.entries.len()
    );
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (1, 0),
        "(first, last) of a new store"
    );
    ensure_eq!(store.term(0).ctx("term(0)")?, Some(0), "term(0)");
    ensure_eq!(
        store.term(1).ctx("term(1)")?,
        None,
        "term(1) of a new store"
    );
    ensure!(
        store.open_snapshot().ctx("open_snapshot")?.is_none(),
        "a new store has a snapshot"
    );
    ensure!(
        store
            .entries(1, 1, u64::MAX)
            .ctx("entries(1, 1)")?
            .is_empty(),
        "entries(1, 1) not empty"
    );
    Ok(())
}

pub(super) fn append_then_read_back<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    let mut log = run_of(1, 3, 1);
    log.extend(run_of(4, 10, 2));
    store.append(&log[..3]).ctx("append 1..=3")?;
    store.append(&[]).ctx("append of nothing")?;
    store.append(&log[3..]).ctx("append 4..=10")?;
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (1, 10),
        "(first, last)"
    );
    for entry in &log {
        ensure_eq!(
            store.term(entry.index).ctx("term")?,
            Some(entry.term),
            "term({})",
            entry.index
        );
    }
    ensure_eq!(store.term(11).ctx("term(11)")?, None, "term past the end");
    ensure_eq!(all_entries(&store)?, log, "entries 1..=10");
    ensure_eq!(
        store.entries(3, 7, u64::MAX).ctx("entries(3, 7)")?,
        log[2..6].to_vec(),
        "entries 3..7"
    );
    ensure!(
        store.entries(4, 4, 0).ctx("entries(4, 4)")?.is_empty(),
        "entries(4, 4) not empty"
    );
    ensure!(
        store.entries(0, 5, u64::MAX).is_err(),
        "entries(0, 5) below the first index succeeded"
    );
    ensure!(
        store.entries(5, 12, u64::MAX).is_err(),
        "entries(5, 12) past the end succeeded"
    );
    check_max_bytes(&store, &log)
}

/// `entries` honours `max_bytes`: a non-empty prefix, at most one entry beyond the limit.
fn check_max_bytes<S: Storage>(store: &S, log: &[Entry]) -> Result<(), String> {
    let sizes: Vec<u64> = log.iter().map(Entry::size_bytes).collect();
    for max_bytes in [
        0,
        1,
        sizes[0] + sizes[1],
        sizes[0] + sizes[1] + 1,
        500,
        100_000,
    ] {
        let got = store
            .entries(1, 11, max_bytes)
            .ctx("entries with max_bytes")?;
        ensure!(
            !got.is_empty(),
            "entries(1, 11, {max_bytes}) returned nothing"
        );
        ensure_eq!(
            got,
            log[..got.len()].to_vec(),
            "entries(1, 11, {max_bytes}) is not a prefix"
        );
        let total: u64 = sizes[..got.len()].iter().sum();
        ensure!(
            total - sizes[got.len() - 1] <= max_bytes,
            "entries(1, 11, {max_bytes}) returned {} bytes in {} entries",
            total,
            got.len()
        );
        if got.len() < log.len() {
            ensure!(
                total + sizes[got.len()] > max_bytes,
                "entries(1, 11, {max_bytes}) stopped early at {} entries",
                got.len()
            );
        }
    }
    Ok(())
}

pub(super) fn append_rejects_gaps_and_overlaps<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    store.append(&run_of(1, 5, 1)).ctx("append 1..=5")?;
    let before = log_view(&store)?;
    ensure!(
        store.append(&run_of(7, 7, 1)).is_err(),
        "append at 7 after 5 (a gap) succeeded"
    );
    ensure!(
        store.append(&run_of(5, 5, 1)).is_err(),
        "append at 5 after 5 (an overlap) succeeded"
    );
    let skipping = vec![sample_entry(6, 1, 10), sample_entry(8, 1, 10)];
    ensure!(
        store.append(&skipping).is_err(),
        "append of 6 then 8 (not contiguous) succeeded"
    );
    ensure_eq!(log_view(&store)?, before, "log after rejected appends");
    store
        .append(&run_of(6, 6, 1))
        .ctx("append 6 after rejected appends")?;
    ensure_eq!(store.last_index(), 6, "last index");
    Ok(())
}

pub(super) fn truncate_suffix_then_append<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    store.append(&run_of(1, 10, 1)).ctx("append 1..=10")?;
    store.truncate_suffix(6).ctx("truncate_suffix(6)")?;
    ensure_eq!(store.last_index(), 5, "last index after truncate_suffix(6)");
    ensure_eq!(
        store.term(6).ctx("term(6)")?,
        None,
        "term of a removed entry"
    );
    let mut log = run_of(1, 5, 1);
    log.extend(run_of(6, 8, 2));
    store.append(&log[5..]).ctx("append 6..=8 in term 2")?;
    ensure_eq!(all_entries(&store)?, log, "log after truncate and append");
    store
        .truncate_suffix(20)
        .ctx("truncate_suffix past the end")?;
    ensure_eq!(
        all_entries(&store)?,
        log,
        "log after truncate_suffix past the end"
    );
    store.sync().ctx("sync")?;
    let (store, restored) = reopen(h, store)?;
    ensure_eq!(restored.entries, log, "restored log");
    let mut store = store;
    store.truncate_suffix(1).ctx("truncate_suffix(1)")?;
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (1, 0),
        "(first, last) of an emptied log"
    );
    store
        .append(&run_of(1, 2, 3))
        .ctx("append 1..=2 to an emptied log")?;
    store.sync().ctx("sync")?;
    let (_, restored) = reopen(h, store)?;
    ensure_eq!(
        restored.entries,
        run_of(1, 2, 3),
        "restored log after emptying"
    );
    Ok(())
}

pub(super) fn compact_prefix<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    let mut log = run_of(1, 4, 1);
    log.extend(run_of(5, 10, 2));
    store.append(&log).ctx("append 1..=10")?;
    commit_snapshot(&mut store, &meta(7, 2), b"state at 7")?;
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (1, 10),
        "committing a snapshot changed the log"
    );
    store.compact(4).ctx("compact(4)")?;
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (5, 10),
        "(first, last) after compact(4)"
    );
    ensure_eq!(
        store.term(4).ctx("term(4)")?,
        Some(1),
        "term of the last compacted entry"
    );
    ensure_eq!(
        store.term(3).ctx("term(3)")?,
        None,
        "term of a compacted entry"
    );
    ensure_eq!(
        all_entries(&store)?,
        log[4..].to_vec(),
        "entries after compact(4)"
    );
    ensure!(
        store.entries(4, 6, u64::MAX).is_err(),
        "entries(4, 6) of compacted entries succeeded"
    );
    store.compact(2).ctx("compact(2) below the first index")?;
    ensure_eq!(
        store.first_index(),
        5,
        "compact below the first index changed it"
    );
    store.compact(7).ctx("compact(7)")?;
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (8, 10),
        "(first, last) after compact(7)"
    );
    store
        .save_hard_state(&HardState {
            term: 2,
            vote: Some(1),
            commit: 9,
        })
        .ctx("save_hard_state")?;
    store.sync().ctx("sync")?;
    let (store, restored) = reopen(h, store)?;
    ensure_eq!(restored.snapshot, meta(7, 2), "restored snapshot");
    ensure_eq!(restored.entries, log[7..].to_vec(), "restored entries");
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (8, 10),
        "(first, last) after reopen"
    );
    Ok(())
}

pub(super) fn misuse_after_compaction<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    store.append(&run_of(1, 10, 1)).ctx("append 1..=10")?;
    commit_snapshot(&mut store, &meta(5, 1), b"state at 5")?;
    store.compact(5).ctx("compact(5)")?;
    let before = log_view(&store)?;
    ensure!(
        store.truncate_suffix(5).is_err(),
        "truncate_suffix(5) below the first index 6 succeeded"
    );
    ensure!(
        store.truncate_suffix(2).is_err(),
        "truncate_suffix(2) below the first index 6 succeeded"
    );
    ensure!(
        store.compact(6).is_err(),
        "compact(6) beyond the snapshot at 5 succeeded"
    );
    ensure_eq!(log_view(&store)?, before, "log after rejected calls");
    Ok(())
}
