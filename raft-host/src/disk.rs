//! The disk lane: the core's writes, grouped into one [`DiskWork`] at a time (group commit).
//!
//! The engine queues every `Persist`, `WriteSnapshotChunk` and `CompactLog` the core asks
//! for. [`crate::Engine::poll_disk`] hands out everything queued as one item, applied in
//! order and covered by ONE `sync`. At most [`DISK_WORKS_IN_FLIGHT_MAX`] items are out at
//! once; while they are, new writes wait in the engine, so under load the queue fills while
//! a sync runs and one sync covers many batches; a lone client pays one sync per write.
//!
//! A persist batch the core marks as not needing a sync (`PersistBatch::sync_required`
//! false: it only raises the commit index) is written but does not by itself cost a sync;
//! its token is reported at once and it becomes durable with the next synced write.
//!
//! Any storage error is fatal: a write the core believes issued but that did not happen
//! would make a later token vouch for missing data, and a failed sync leaves the store in
//! an unknown state (never retry it).

use std::io::Write;

use raft_core::{Index, PersistBatch, SnapshotChunkWrite, SnapshotMeta, Storage, WriteToken};

/// Disk work items out with the driver at once. Two, not one: the driver runs them in
/// order, so the second starts the moment the first's sync returns, without waiting for
/// the driver to report the first and fetch the next (a hop that costs a scheduler wake-up
/// on a loaded machine). More would only split the group that the next sync covers.
pub const DISK_WORKS_IN_FLIGHT_MAX: usize = 2;

/// One queued write.
#[derive(Debug)]
pub(crate) enum DiskOp {
    Persist(PersistBatch),
    Chunk(Box<SnapshotChunkWrite>),
    Compact(Index),
}

/// A snapshot being received from the leader, between its first and last chunk. It travels
/// with the disk work that writes its chunks and comes back with the completion.
pub(crate) type ChunkWriter<S> = Option<(SnapshotMeta, <S as Storage>::SnapshotWriter)>;

/// Writes for the storage, in order, then one sync if any of them needs durability. Run it
/// with [`DiskWork::run`] wherever the storage lives (a disk thread, a simulated disk at a
/// virtual time) and hand the [`DiskDone`] back to [`crate::Engine::handle_disk_done`].
#[must_use = "disk work must be run and its completion handed back to the engine"]
pub struct DiskWork<S: Storage> {
    pub(crate) seq: u64,
    pub(crate) ops: Vec<DiskOp>,
    /// True if it holds the writer of the snapshot being received (it writes chunks).
    pub(crate) carries_writer: bool,
    pub(crate) chunk_writer: ChunkWriter<S>,
}

/// The completion of one [`DiskWork`].
#[must_use = "hand the completion to Engine::handle_disk_done"]
pub struct DiskDone<S: Storage> {
    pub(crate) seq: u64,
    pub(crate) result: Result<Option<WriteToken>, String>,
    pub(crate) synced: bool,
    pub(crate) carries_writer: bool,
    pub(crate) chunk_writer: ChunkWriter<S>,
}

impl<S: Storage> std::fmt::Debug for DiskWork<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskWork")
            .field("seq", &self.seq)
            .field("ops", &self.ops.len())
            .field("sync", &self.needs_sync())
            .finish()
    }
}

impl<S: Storage> std::fmt::Debug for DiskDone<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskDone")
            .field("seq", &self.seq)
            .field("result", &self.result)
            .field("synced", &self.synced)
            .finish()
    }
}

/// True if `ops` write snapshot chunks (and so need the snapshot writer).
pub(crate) fn writes_chunks(ops: &[DiskOp]) -> bool {
    ops.iter().any(|op| matches!(op, DiskOp::Chunk(_)))
}

impl<S: Storage> DiskWork<S> {
    /// How many storage operations (persist batches, snapshot chunks, compactions) it holds.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// True if it ends with a sync (some write in it needs durability).
    pub fn needs_sync(&self) -> bool {
        self.ops.iter().any(|op| match op {
            DiskOp::Persist(batch) => batch.sync_required,
            DiskOp::Chunk(chunk) => chunk.done,
            DiskOp::Compact(_) => false,
        })
    }

    /// Carries out the writes in order on `storage`, then one `sync` if any write needs it.
    /// Errors are not returned here: they travel in the completion, which stops the node.
    pub fn run(mut self, storage: &mut S) -> DiskDone<S> {
        let ops = std::mem::take(&mut self.ops);
        let mut synced = false;
        let result = self.write_all(storage, ops, &mut synced);
        DiskDone {
            seq: self.seq,
            result,
            synced,
            carries_writer: self.carries_writer,
            chunk_writer: self.chunk_writer,
        }
    }

    fn write_all(
        &mut self,
        storage: &mut S,
        ops: Vec<DiskOp>,
        synced: &mut bool,
    ) -> Result<Option<WriteToken>, String> {
        let mut highest: Option<WriteToken> = None;
        let mut needs_sync = false;
        for op in ops {
            match op {
                DiskOp::Persist(batch) => {
                    persist(storage, &batch)?;
                    needs_sync |= batch.sync_required;
                    highest = highest.max(Some(batch.token));
                }
                DiskOp::Chunk(chunk) => {
                    // A final chunk commits the snapshot, which syncs everything before it;
                    // later removals of covered entries need the round's sync.
                    needs_sync |= self.write_chunk(storage, &chunk)?;
                    highest = highest.max(Some(chunk.token));
                }
                DiskOp::Compact(through_index) => storage
                    .compact(through_index)
                    .map_err(|e| format!("compacting the log through {through_index}: {e}"))?,
            }
        }
        if needs_sync {
            storage
                .sync()
                .map_err(|e| format!("fsync failed (fatal, never retried): {e}"))?;
            *synced = true;
        }
        Ok(highest)
    }

    /// Writes one received snapshot chunk; true if it was the last (and was installed).
    fn write_chunk(&mut self, store: &mut S, chunk: &SnapshotChunkWrite) -> Result<bool, String> {
        let index = chunk.meta.index;
        if chunk.offset == 0 {
            let writer = store
                .begin_snapshot(&chunk.meta)
                .map_err(|e| format!("starting snapshot {index} from the leader: {e}"))?;
            self.chunk_writer = Some((chunk.meta.clone(), writer));
        }
        let Some((meta, writer)) = &mut self.chunk_writer else {
            return Err(format!(
                "snapshot {index} chunk at offset {} arrived without its start",
                chunk.offset
            ));
        };
        if *meta != chunk.meta {
            return Err(format!(
                "snapshot chunk for index {index} while writing snapshot {}",
                meta.index
            ));
        }
        writer
            .write_all(&chunk.data)
            .map_err(|e| format!("writing snapshot {index} at offset {}: {e}", chunk.offset))?;
        if !chunk.done {
            return Ok(false);
        }
        let Some((meta, writer)) = self.chunk_writer.take() else {
            return Err(format!("snapshot {index} writer vanished"));
        };
        store
            .commit_snapshot(writer)
            .map_err(|e| format!("committing snapshot {index} from the leader: {e}"))?;
        store
            .install_snapshot_log(&meta)
            .map_err(|e| format!("trimming the log under snapshot {index}: {e}"))?;
        tracing::info!(
            index,
            term = meta.term,
            "snapshot from the leader is durable"
        );
        Ok(true)
    }
}

impl<S: Storage> DiskDone<S> {
    /// True if the work ended with a sync.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// The error that stopped the work, if any (the engine stops the node on it).
    pub fn error(&self) -> Option<&str> {
        self.result.as_ref().err().map(String::as_str)
    }
}

/// Applies one persist batch in the order the core prescribes: truncate, append, hard state.
fn persist<S: Storage>(store: &mut S, batch: &PersistBatch) -> Result<(), String> {
    if let Some(from) = batch.truncate_from {
        store
            .truncate_suffix(from)
            .map_err(|e| format!("truncating the log from {from}: {e}"))?;
    }
    if !batch.entries.is_empty() {
        store.append(&batch.entries).map_err(|e| {
            let first = batch.entries.first().map_or(0, |e| e.index);
            format!(
                "appending {} entries from {first}: {e}",
                batch.entries.len()
            )
        })?;
    }
    if let Some(hard_state) = &batch.hard_state {
        store
            .save_hard_state(hard_state)
            .map_err(|e| format!("saving the hard state: {e}"))?;
    }
    Ok(())
}
