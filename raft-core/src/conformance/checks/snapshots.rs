//! Checks of snapshots: round trips, seeking, abandoned and stale snapshots, and
//! `install_snapshot_log`.

use std::io::{Read, Seek, SeekFrom};

use super::super::harness::Harness;
use super::super::samples::{meta, run_of, sample_bytes};
use super::super::support::{
    Context, all_entries, commit_snapshot, fresh, read_snapshot, reopen, write_snapshot,
};
use crate::membership::Membership;
use crate::storage::Storage;

pub(super) fn snapshot_round_trip<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    store.append(&run_of(1, 10, 1)).ctx("append")?;
    let data = sample_bytes(6, 100_000);
    let writer = write_snapshot(&mut store, &meta(6, 1), &data)?;
    ensure_eq!(
        store.snapshot_meta().index,
        0,
        "snapshot index before commit"
    );
    ensure!(
        store.open_snapshot().ctx("open_snapshot")?.is_none(),
        "uncommitted snapshot readable"
    );
    store.commit_snapshot(writer).ctx("commit_snapshot")?;
    ensure_eq!(
        store.snapshot_meta(),
        meta(6, 1),
        "snapshot meta after commit"
    );
    ensure_eq!(
        read_snapshot(&store)?,
        Some((meta(6, 1), data.clone())),
        "snapshot read back"
    );
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (1, 10),
        "commit_snapshot changed the log"
    );
    let (mut store, restored) = reopen(h, store)?;
    ensure_eq!(restored.snapshot, meta(6, 1), "restored snapshot meta");
    ensure_eq!(
        restored.entries,
        run_of(7, 10, 1),
        "restored entries after the snapshot"
    );
    ensure_eq!(
        read_snapshot(&store)?,
        Some((meta(6, 1), data)),
        "snapshot after reopen"
    );
    commit_snapshot(&mut store, &meta(8, 1), &[])?;
    ensure_eq!(
        read_snapshot(&store)?,
        Some((meta(8, 1), Vec::new())),
        "empty snapshot read back"
    );
    Ok(())
}

pub(super) fn snapshot_reader_seeks<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    store.append(&run_of(1, 10, 1)).ctx("append")?;
    let data = sample_bytes(5, 100_000);
    commit_snapshot(&mut store, &meta(5, 1), &data)?;
    check_seeks(&store, &data, "")?;
    let (mut store, _) = reopen(h, store)?;
    check_seeks(&store, &data, " after reopen")?;
    // A second snapshot with other metadata: offsets stay relative to its data.
    let data = sample_bytes(8, 30_000);
    let mut later = meta(8, 1);
    later.membership = Membership::with_voters([1, 2, 3, 4, 5, 6, 7]);
    commit_snapshot(&mut store, &later, &data)?;
    check_seeks(&store, &data, " of a second snapshot")
}

/// Chunks read after seeking equal the same bytes of a full read.
fn check_seeks<S: Storage>(store: &S, data: &[u8], when: &str) -> Result<(), String> {
    let Some((_, full)) = read_snapshot(store)? else {
        return Err(format!("no snapshot to read{when}"));
    };
    ensure!(
        full == data,
        "full read{when} differs from the data written"
    );
    let len = data.len() as u64;
    let Some((_, mut reader)) = store.open_snapshot().ctx("open_snapshot")? else {
        return Err(format!("no snapshot to open{when}"));
    };
    let chunk_bytes = 4096u64;
    // Chunks out of order, as retries to several peers would ask for them.
    for offset in [len / 2, 0, len - 100, 1, 8191, len - chunk_bytes, 4096] {
        let at = reader.seek(SeekFrom::Start(offset)).ctx("seek")?;
        ensure_eq!(at, offset, "position after seek to {offset}{when}");
        let chunk = read_up_to(&mut reader, chunk_bytes)?;
        let end = (offset + chunk_bytes).min(len) as usize;
        ensure!(
            chunk == data[offset as usize..end],
            "{} bytes read after seeking to {offset}{when} differ from a full read",
            chunk.len()
        );
    }
    let at = reader.seek(SeekFrom::End(-10)).ctx("seek from the end")?;
    ensure_eq!(
        at,
        len - 10,
        "position after seeking 10 bytes before the end{when}"
    );
    ensure_eq!(
        read_up_to(&mut reader, 64)?,
        data[data.len() - 10..].to_vec(),
        "last 10 bytes{when}"
    );
    reader.seek(SeekFrom::Start(100)).ctx("seek")?;
    let at = reader.seek(SeekFrom::Current(-50)).ctx("seek back")?;
    ensure_eq!(at, 50, "position after seeking 50 back from 100{when}");
    ensure_eq!(
        read_up_to(&mut reader, 10)?,
        data[50..60].to_vec(),
        "bytes 50..60{when}"
    );
    ensure!(
        reader.seek(SeekFrom::Current(-1000)).is_err(),
        "seek before the first byte succeeded{when}"
    );
    reader
        .seek(SeekFrom::Start(len + 5))
        .ctx("seek past the end")?;
    ensure!(
        read_up_to(&mut reader, 10)?.is_empty(),
        "read past the end returned bytes{when}"
    );
    reader.seek(SeekFrom::Start(0)).ctx("seek to 0")?;
    ensure!(
        read_up_to(&mut reader, u64::MAX)? == data,
        "read from 0 after seeks differs from the data{when}"
    );
    Ok(())
}

fn read_up_to<R: Read>(reader: &mut R, max_bytes: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(max_bytes)
        .read_to_end(&mut out)
        .ctx("snapshot read")?;
    Ok(out)
}

pub(super) fn abandoned_snapshot_is_invisible<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    store.append(&run_of(1, 5, 1)).ctx("append")?;
    commit_snapshot(&mut store, &meta(2, 1), b"two")?;
    let writer = write_snapshot(&mut store, &meta(4, 1), &sample_bytes(4, 5000))?;
    drop(writer);
    ensure_eq!(
        read_snapshot(&store)?,
        Some((meta(2, 1), b"two".to_vec())),
        "after abandoning"
    );
    let (mut store, _) = reopen(h, store)?;
    ensure_eq!(
        read_snapshot(&store)?,
        Some((meta(2, 1), b"two".to_vec())),
        "after reopen"
    );
    commit_snapshot(&mut store, &meta(4, 1), b"four")?;
    ensure_eq!(
        read_snapshot(&store)?,
        Some((meta(4, 1), b"four".to_vec())),
        "next snapshot"
    );
    Ok(())
}

pub(super) fn stale_snapshot_is_rejected<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    store.append(&run_of(1, 8, 1)).ctx("append")?;
    commit_snapshot(&mut store, &meta(6, 1), b"six")?;
    let writer = write_snapshot(&mut store, &meta(4, 1), b"four")?;
    ensure!(
        store.commit_snapshot(writer).is_err(),
        "committing a snapshot at 4 over one at 6 succeeded"
    );
    ensure_eq!(
        read_snapshot(&store)?,
        Some((meta(6, 1), b"six".to_vec())),
        "current snapshot"
    );
    Ok(())
}

pub(super) fn install_keeps_matching_suffix<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    let mut log = run_of(1, 5, 1);
    log.extend(run_of(6, 10, 2));
    store.append(&log).ctx("append")?;
    commit_snapshot(&mut store, &meta(6, 2), b"leader state")?;
    store
        .install_snapshot_log(&meta(6, 2))
        .ctx("install_snapshot_log")?;
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (7, 10),
        "(first, last)"
    );
    ensure_eq!(all_entries(&store)?, log[6..].to_vec(), "kept entries");
    store.sync().ctx("sync")?;
    let (_, restored) = reopen(h, store)?;
    ensure_eq!(restored.entries, log[6..].to_vec(), "restored entries");
    Ok(())
}

pub(super) fn install_drops_conflicting_log<H: Harness>(h: &mut H) -> Result<(), String> {
    let mut store = fresh(h)?;
    store.append(&run_of(1, 10, 1)).ctx("append")?;
    commit_snapshot(&mut store, &meta(6, 2), b"leader state")?;
    store
        .install_snapshot_log(&meta(6, 2))
        .ctx("install_snapshot_log")?;
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (7, 6),
        "(first, last) after a conflict"
    );
    ensure_eq!(
        store.term(6).ctx("term(6)")?,
        Some(2),
        "term at the snapshot"
    );
    store
        .append(&run_of(7, 7, 2))
        .ctx("append 7 after the snapshot")?;
    store.sync().ctx("sync")?;
    let (mut store, restored) = reopen(h, store)?;
    ensure_eq!(restored.entries, run_of(7, 7, 2), "restored entries");
    commit_snapshot(&mut store, &meta(15, 3), b"far ahead")?;
    store
        .install_snapshot_log(&meta(15, 3))
        .ctx("install_snapshot_log(15)")?;
    ensure_eq!(
        (store.first_index(), store.last_index()),
        (16, 15),
        "(first, last) after a snapshot past the log"
    );
    store
        .append(&run_of(16, 17, 3))
        .ctx("append after the snapshot")?;
    store.sync().ctx("sync")?;
    let (_, restored) = reopen(h, store)?;
    ensure_eq!(restored.entries, run_of(16, 17, 3), "restored entries");
    Ok(())
}
