//! The disk lane: one dedicated thread that carries out the core's writes in order, with
//! group commit.
//!
//! Each round takes every queued operation (persist batches, snapshot chunks, compactions),
//! applies them to the storage in order, issues ONE `sync` if any of them needs durability,
//! then reports the highest token to the driver, which hands it to
//! [`raft_core::Node::on_persisted`] (a token covers every earlier write). Under load the
//! queue fills while a sync runs, so the next round covers many batches with one sync.
//!
//! A persist batch the core marks as not needing a sync (`PersistBatch::sync_required`: it
//! only raises the commit index) is written but does not by itself cost a sync; it becomes
//! durable with the next one and its token is reported at once. Without this, every commit
//! advance would cost a second fsync per write for a lone client.
//!
//! Any storage error is fatal: a write the core believes issued but that did not happen
//! would make a later token vouch for missing data, and a failed sync leaves the store in
//! an unknown state (never retry it). The lane reports [`LaneEvent::Fatal`] and stops.

use std::io::Write;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use raft_core::{
    Index, PersistBatch, SnapshotChunkWrite, SnapshotMeta, StateMachine, Storage, WriteToken,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::event::{LaneEvent, lock_storage};
use crate::metrics::{Counters, add};

/// Most operations taken in one round; bounds how long the storage lock is held.
const OPS_PER_ROUND_MAX: usize = 4096;

/// One write for the disk lane.
#[derive(Debug)]
pub(crate) enum DiskOp {
    Persist(PersistBatch),
    Chunk(Box<SnapshotChunkWrite>),
    Compact(Index),
}

/// Starts the disk lane's thread. It ends when the sender is dropped (after finishing what
/// was queued) or after a fatal error.
pub(crate) fn spawn<S, M, A>(
    storage: Arc<Mutex<S>>,
    events: UnboundedSender<LaneEvent<M, A>>,
    counters: Arc<Counters>,
    span: tracing::Span,
) -> std::io::Result<(Sender<DiskOp>, JoinHandle<()>)>
where
    S: Storage,
    M: StateMachine,
    A: Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("raft-disk".into())
        .spawn(move || {
            let _entered = span.enter();
            let lane = DiskLane::<S> { chunk_writer: None };
            run(lane, &storage, &receiver, &events, &counters);
        })?;
    Ok((sender, handle))
}

fn run<S: Storage, M: StateMachine, A>(
    mut lane: DiskLane<S>,
    storage: &Mutex<S>,
    receiver: &Receiver<DiskOp>,
    events: &UnboundedSender<LaneEvent<M, A>>,
    counters: &Counters,
) {
    while let Ok(first) = receiver.recv() {
        let mut ops = vec![first];
        while ops.len() < OPS_PER_ROUND_MAX {
            match receiver.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        add(&counters.disk_batches, 1);
        add(&counters.disk_ops, ops.len() as u64);
        match lane.round(storage, ops, counters) {
            Ok(Some(token)) => {
                // The driver may be gone at shutdown; nothing is left to tell then.
                let _ = events.send(LaneEvent::Persisted { token });
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::error!(%reason, "disk lane stopped");
                let _ = events.send(LaneEvent::Fatal(reason));
                return;
            }
        }
    }
}

struct DiskLane<S: Storage> {
    /// The snapshot being received from the leader, between its first and last chunk.
    chunk_writer: Option<(SnapshotMeta, S::SnapshotWriter)>,
}

impl<S: Storage> DiskLane<S> {
    /// Carries out one round; returns the highest token now durable.
    fn round(
        &mut self,
        storage: &Mutex<S>,
        ops: Vec<DiskOp>,
        counters: &Counters,
    ) -> Result<Option<WriteToken>, String> {
        let mut store = lock_storage(storage)?;
        let mut highest: Option<WriteToken> = None;
        let mut needs_sync = false;
        for op in ops {
            match op {
                DiskOp::Persist(batch) => {
                    persist(&mut *store, &batch)?;
                    needs_sync |= batch.sync_required;
                    highest = highest.max(Some(batch.token));
                }
                DiskOp::Chunk(chunk) => {
                    // A final chunk commits the snapshot, which syncs everything before it;
                    // later removals of covered entries need the round's sync.
                    needs_sync |= self.write_chunk(&mut *store, &chunk)?;
                    highest = highest.max(Some(chunk.token));
                }
                DiskOp::Compact(through_index) => store
                    .compact(through_index)
                    .map_err(|e| format!("compacting the log through {through_index}: {e}"))?,
            }
        }
        if needs_sync {
            let started = Instant::now();
            store
                .sync()
                .map_err(|e| format!("fsync failed (fatal, never retried): {e}"))?;
            counters.fsync_latency.record(started.elapsed());
            add(&counters.fsyncs, 1);
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
