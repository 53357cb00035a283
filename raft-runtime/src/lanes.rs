//! The lanes: one thread that runs the engine's disk work against the storage and one that
//! runs the state machine's heavy apply work (snapshot restores and views, big batches).
//! Each runs the work it is given, in order, and sends the completion back to the driver;
//! the engine decides everything else (it hands out one work item per lane at a time,
//! which is what groups writes into one sync). Light apply work runs on the driver itself
//! ([`Lanes::apply_inline`]): two thread wake-ups cost more than applying a few puts; so
//! does light disk work, the unsynced write of a new commit index ([`Lanes::disk_inline`]).
//! A follower also writes and syncs a small append inline while syncs are quick
//! ([`Lanes::syncs_are_quick`]): at one client its ack then leaves on the thread that
//! read the append, without waking the disk thread and being woken back (two of the
//! three wake-ups on a follower's part of the critical path, BENCHMARKS.md, branch
//! perf-lone). A slow sync falls back to the thread, so heartbeats keep being answered
//! while a slow disk syncs.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use raft_core::{StateMachine, Storage};
use raft_host::{Applied, ApplyWork, DiskDone, DiskWork};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

use crate::doorbell::{self, BellReceiver, BellSender};
use crate::event::LaneEvent;
use crate::metrics::{Counters, add};

/// The lanes the driver hands work to.
pub(crate) struct Lanes<M: StateMachine, S: Storage, A> {
    pub(crate) disk: Sender<DiskWork<S>>,
    pub(crate) disk_thread: JoinHandle<()>,
    /// The disk thread's completions (see [`crate::doorbell`] for why not `events`).
    pub(crate) disk_done: BellReceiver<DiskDone<S>>,
    pub(crate) apply: Sender<ApplyWork<M, A>>,
    pub(crate) apply_thread: JoinHandle<()>,
    /// The state machine: locked by the apply thread for its work and by the driver for
    /// light work it runs itself (only while no work is out with the thread).
    pub(crate) state_machine: Arc<Mutex<M>>,
    /// The state machine's applied index, set under its lock (for lease reads).
    pub(crate) applied: Arc<AtomicU64>,
    pub(crate) storage: Arc<Mutex<S>>,
    pub(crate) counters: Arc<Counters>,
    /// How long the last sync took (inline or on the thread), in microseconds.
    pub(crate) last_sync_micros: Arc<AtomicU64>,
}

/// A sync slower than this sends the next synced writes to the disk thread until one is
/// quick again: a driver blocked in a sync answers no heartbeat, and election timeouts
/// are about 100 ms by default.
const QUICK_SYNC: Duration = Duration::from_millis(2);

/// Records how long a sync took.
fn record_sync(counters: &Counters, last_sync_micros: &AtomicU64, took: Duration) {
    counters.fsync_latency.record(took);
    add(&counters.fsyncs, 1);
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    last_sync_micros.store(micros, Ordering::Relaxed);
}

impl<M, S, A> Lanes<M, S, A>
where
    M: StateMachine,
    S: Storage,
    A: Clone + DeserializeOwned + Send + 'static,
{
    /// Runs light apply work on the calling (driver) thread. A state machine that panicked
    /// (now or earlier, on the thread) leaves its state unknown: that is an error, which
    /// stops the node.
    pub(crate) fn apply_inline(&self, work: ApplyWork<M, A>) -> Result<Applied<M, A>, String> {
        let started = Instant::now();
        let mut state_machine = self
            .state_machine
            .lock()
            .map_err(|_| "the state machine panicked earlier; its state is unknown")?;
        let done = std::panic::catch_unwind(AssertUnwindSafe(|| {
            work.run(&mut *state_machine, &self.storage)
        }))
        .map_err(|_| "the state machine panicked while applying".to_string())?;
        crate::lease::publish_applied(&self.applied, done.applied_index());
        drop(state_machine);
        self.counters.apply_latency.record(started.elapsed());
        Ok(done)
    }
}

impl<M: StateMachine, S: Storage, A> Lanes<M, S, A> {
    /// Whether the last sync was quick enough for the driver to run the next one itself.
    pub(crate) fn syncs_are_quick(&self) -> bool {
        let quick = u64::try_from(QUICK_SYNC.as_micros()).unwrap_or(u64::MAX);
        self.last_sync_micros.load(Ordering::Relaxed) <= quick
    }

    /// Runs disk work on the calling (driver) thread, if the storage is free; hands the
    /// work back otherwise, so the driver never waits for a snapshot that holds the
    /// storage. The driver passes light work ([`DiskWork::is_light`]: no sync, hard state
    /// only) and, on a follower whose syncs are quick, small appends with their sync.
    pub(crate) fn disk_inline(&self, work: DiskWork<S>) -> Result<DiskDone<S>, Box<DiskWork<S>>> {
        let mut store = match self.storage.try_lock() {
            Ok(store) => store,
            // A poisoned lock is the disk thread's to report (it stops the lane).
            Err(_) => return Err(Box::new(work)),
        };
        let started = Instant::now();
        add(&self.counters.disk_batches, 1);
        add(&self.counters.disk_ops, work.op_count() as u64);
        let done = work.run(&mut store);
        if done.synced() {
            record_sync(&self.counters, &self.last_sync_micros, started.elapsed());
        }
        Ok(done)
    }
}

/// Starts both lanes' threads. Each ends when its sender is dropped, after finishing
/// what it holds.
pub(crate) fn spawn<M, S, A>(
    storage: &Arc<Mutex<S>>,
    state_machine: M,
    events: &UnboundedSender<LaneEvent<M, S, A>>,
    counters: &Arc<Counters>,
    span: &tracing::Span,
) -> std::io::Result<Lanes<M, S, A>>
where
    M: StateMachine,
    S: Storage,
    A: Clone + DeserializeOwned + Send + 'static,
{
    let (disk, receiver) = std::sync::mpsc::channel();
    let (done_sender, disk_done) = doorbell::channel()?;
    let last_sync_micros = Arc::new(AtomicU64::new(0));
    let disk_thread = {
        let (storage, counters) = (storage.clone(), counters.clone());
        let last_sync_micros = Arc::clone(&last_sync_micros);
        let span = span.clone();
        std::thread::Builder::new()
            .name("raft-disk".into())
            .spawn(move || {
                let _entered = span.enter();
                run_disk(
                    &storage,
                    &receiver,
                    &done_sender,
                    &counters,
                    &last_sync_micros,
                );
            })?
    };
    let state_machine = Arc::new(Mutex::new(state_machine));
    let applied = Arc::new(AtomicU64::new(0));
    let (apply, receiver) = std::sync::mpsc::channel();
    let apply_thread = {
        let (storage, events, counters) = (storage.clone(), events.clone(), counters.clone());
        let state_machine = Arc::clone(&state_machine);
        let applied = Arc::clone(&applied);
        let span = span.clone();
        std::thread::Builder::new()
            .name("raft-apply".into())
            .spawn(move || {
                let _entered = span.enter();
                run_apply(
                    &state_machine,
                    &applied,
                    &storage,
                    &receiver,
                    &events,
                    &counters,
                );
            })?
    };
    Ok(Lanes {
        disk,
        disk_thread,
        disk_done,
        apply,
        apply_thread,
        state_machine,
        applied,
        storage: Arc::clone(storage),
        counters: Arc::clone(counters),
        last_sync_micros,
    })
}

fn run_disk<S: Storage>(
    storage: &Mutex<S>,
    receiver: &Receiver<DiskWork<S>>,
    done: &BellSender<DiskDone<S>>,
    counters: &Counters,
    last_sync_micros: &AtomicU64,
) {
    while let Ok(work) = receiver.recv() {
        let started = Instant::now();
        add(&counters.disk_batches, 1);
        add(&counters.disk_ops, work.op_count() as u64);
        // A poisoned lock means a storage call panicked mid-write: the store's state is
        // unknown. Running on it is what the engine must not do, so the lane stops and the
        // driver, seeing the lane gone, stops the node.
        let Ok(mut store) = storage.lock() else {
            tracing::error!("storage lock poisoned: a storage call panicked; disk lane stopped");
            return;
        };
        let outcome = work.run(&mut store);
        drop(store);
        if outcome.synced() {
            record_sync(counters, last_sync_micros, started.elapsed());
        }
        // The driver may be gone at shutdown; nothing is left to tell then.
        let _ = done.send(outcome);
    }
}

fn run_apply<M, S, A>(
    state_machine: &Mutex<M>,
    applied: &AtomicU64,
    storage: &Mutex<S>,
    receiver: &Receiver<ApplyWork<M, A>>,
    events: &UnboundedSender<LaneEvent<M, S, A>>,
    counters: &Counters,
) where
    M: StateMachine,
    S: Storage,
    A: Clone + DeserializeOwned,
{
    while let Ok(work) = receiver.recv() {
        let started = Instant::now();
        // A poisoned lock means the state machine panicked: its state is unknown, so the
        // lane stops and the driver, seeing it gone, stops the node.
        let Ok(mut state_machine) = state_machine.lock() else {
            tracing::error!("the state machine panicked earlier; apply lane stopped");
            return;
        };
        let done = work.run(&mut *state_machine, storage);
        crate::lease::publish_applied(applied, done.applied_index());
        drop(state_machine);
        counters.apply_latency.record(started.elapsed());
        let _ = events.send(LaneEvent::Applied(done));
    }
}
