//! The disk lane: the core's writes, grouped into one [`DiskWork`] at a time (group commit).
//!
//! The engine queues every `Persist`, `WriteSnapshotChunk` and `CompactLog` the core asks
//! for. [`crate::Engine::poll_disk`] hands out everything queued as one item, applied in
//! order and covered by ONE `sync`. While an item that syncs is out, new writes wait in the
//! engine (see [`DISK_WORKS_IN_FLIGHT_MAX`]), so under load the queue fills while a sync
//! runs and one sync covers many batches; a lone client pays one sync per write.
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

use crate::planted::{Planted, PlantedBug};

/// Disk work items out with the driver at once. A second item goes out only while the one
/// out needs no sync (it only raises the commit index): then the next write starts the
/// moment that cheap write is done, without a round trip through the driver. Behind an
/// item that syncs, writes wait in the engine, so the next sync covers all of them: that
/// is the group commit (measured: letting a second item follow a syncing one halved the
/// writes per fsync at 16 and 64 clients).
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
    /// Bugs planted in this engine (none in production).
    pub(crate) planted: Planted,
}

/// A [`DiskWork`] whose writes are done and whose sync (if it needs one) is not: call
/// [`DiskWritten::sync`] to finish it.
#[must_use = "finish the work with DiskWritten::sync and hand the completion to the engine"]
pub struct DiskWritten<S: Storage> {
    seq: u64,
    result: Result<Option<WriteToken>, String>,
    needs_sync: bool,
    carries_writer: bool,
    chunk_writer: ChunkWriter<S>,
}

impl<S: Storage> std::fmt::Debug for DiskWritten<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskWritten")
            .field("seq", &self.seq)
            .field("result", &self.result)
            .field("needs_sync", &self.needs_sync)
            .finish()
    }
}

impl<S: Storage> DiskWritten<S> {
    /// True if [`DiskWritten::sync`] will sync the storage.
    pub fn needs_sync(&self) -> bool {
        self.needs_sync && self.result.is_ok()
    }

    /// The second half of [`DiskWork::run`]: one `sync` if a write needs it, then the
    /// completion for [`crate::Engine::handle_disk_done`].
    pub fn sync(self, storage: &mut S) -> DiskDone<S> {
        let mut synced = false;
        let result = match self.result {
            Ok(token) if self.needs_sync => match storage.sync() {
                Ok(()) => {
                    synced = true;
                    Ok(token)
                }
                Err(e) => Err(format!("fsync failed (fatal, never retried): {e}")),
            },
            other => other,
        };
        DiskDone {
            seq: self.seq,
            result,
            synced,
            carries_writer: self.carries_writer,
            chunk_writer: self.chunk_writer,
        }
    }
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
        if self.planted.has(PlantedBug::SkipSync) && self.is_lone_small_write() {
            return false;
        }
        self.ops.iter().any(|op| match op {
            DiskOp::Persist(batch) => batch.sync_required,
            DiskOp::Chunk(chunk) => chunk.done,
            DiskOp::Compact(_) => false,
        })
    }

    /// True if the work is cheap enough to run on the driver's own thread instead of
    /// handing it to a disk thread: it needs no sync and only saves hard state (no entries,
    /// no truncation, no snapshot chunk, no compaction). That is the write that raises the
    /// commit index after a commit; a disk thread would cost two thread wake-ups for one
    /// small `pwrite`.
    pub fn is_light(&self) -> bool {
        !self.needs_sync()
            && self.ops.iter().all(|op| {
                matches!(op, DiskOp::Persist(batch)
                    if batch.entries.is_empty() && batch.truncate_from.is_none())
            })
    }

    /// True if it only persists log entries and hard state (no snapshot chunk, no
    /// compaction) and its entries weigh at most `max_bytes` ([`raft_core::Entry::size_bytes`]):
    /// a write a driver may run on its own thread when a sync is quick.
    pub fn persists_at_most(&self, max_bytes: u64) -> bool {
        let mut bytes = 0u64;
        self.ops.iter().all(|op| match op {
            DiskOp::Persist(batch) => {
                bytes += batch
                    .entries
                    .iter()
                    .map(raft_core::Entry::size_bytes)
                    .sum::<u64>();
                bytes <= max_bytes
            }
            DiskOp::Chunk(_) | DiskOp::Compact(_) => false,
        })
    }

    /// One persist batch of at most one entry and nothing else (what the planted
    /// `SkipSync` bug spares a sync).
    fn is_lone_small_write(&self) -> bool {
        matches!(self.ops.as_slice(), [DiskOp::Persist(batch)] if batch.entries.len() <= 1)
    }

    /// Carries out the writes in order on `storage`, then one `sync` if any write needs it.
    /// Errors are not returned here: they travel in the completion, which stops the node.
    pub fn run(self, storage: &mut S) -> DiskDone<S> {
        self.write(storage).sync(storage)
    }

    /// The first half of [`DiskWork::run`]: the writes, without the sync. A simulator
    /// calls it when the work starts and [`DiskWritten::sync`] when the disk would finish,
    /// so a crash in between loses exactly what a real disk could lose.
    pub fn write(mut self, storage: &mut S) -> DiskWritten<S> {
        let mut needs_sync = self.needs_sync();
        let ops = std::mem::take(&mut self.ops);
        let mut result = Ok(None);
        if self.planted.has(PlantedBug::DurableBeforeSync) && needs_sync {
            // Planted bug: the sync of the previous work runs now, this work's with the next.
            needs_sync = false;
            if let Err(e) = storage.sync() {
                result = Err(format!("fsync failed (fatal, never retried): {e}"));
            }
        }
        if result.is_ok() {
            result = self.write_all(storage, ops);
        }
        DiskWritten {
            seq: self.seq,
            result,
            needs_sync,
            carries_writer: self.carries_writer,
            chunk_writer: self.chunk_writer,
        }
    }

    fn write_all(
        &mut self,
        storage: &mut S,
        ops: Vec<DiskOp>,
    ) -> Result<Option<WriteToken>, String> {
        let mut highest: Option<WriteToken> = None;
        for op in ops {
            match op {
                DiskOp::Persist(batch) => {
                    persist(storage, &batch)?;
                    highest = highest.max(Some(batch.token));
                }
                DiskOp::Chunk(chunk) => {
                    // A final chunk commits the snapshot, which syncs everything before it;
                    // later removals of covered entries need the round's sync.
                    self.write_chunk(storage, &chunk)?;
                    highest = highest.max(Some(chunk.token));
                }
                DiskOp::Compact(through_index) => storage
                    .compact(through_index)
                    .map_err(|e| format!("compacting the log through {through_index}: {e}"))?,
            }
        }
        Ok(highest)
    }

    /// Writes one received snapshot chunk; true if it was the last (and was installed).
    fn write_chunk(&mut self, store: &mut S, chunk: &SnapshotChunkWrite) -> Result<(), String> {
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
            return Ok(());
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
        Ok(())
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
