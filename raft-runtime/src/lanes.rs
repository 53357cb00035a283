//! The lanes: one thread that runs the engine's disk work against the storage and one that
//! owns the state machine and runs its apply work. Each runs the work it is given, in
//! order, and sends the completion back to the driver; the engine decides everything else
//! (it hands out one work item per lane at a time, which is what groups writes into one
//! sync).

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use raft_core::{StateMachine, Storage};
use raft_host::{ApplyWork, DiskWork};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

use crate::event::LaneEvent;
use crate::metrics::{Counters, add};

/// The lanes the driver hands work to.
pub(crate) struct Lanes<M: StateMachine, S: Storage, A> {
    pub(crate) disk: Sender<DiskWork<S>>,
    pub(crate) disk_thread: JoinHandle<()>,
    pub(crate) apply: Sender<ApplyWork<M, A>>,
    pub(crate) apply_thread: JoinHandle<()>,
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
    let disk_thread = {
        let (storage, events, counters) = (storage.clone(), events.clone(), counters.clone());
        let span = span.clone();
        std::thread::Builder::new()
            .name("raft-disk".into())
            .spawn(move || {
                let _entered = span.enter();
                run_disk(&storage, &receiver, &events, &counters);
            })?
    };
    let (apply, receiver) = std::sync::mpsc::channel();
    let apply_thread = {
        let (storage, events, counters) = (storage.clone(), events.clone(), counters.clone());
        let span = span.clone();
        std::thread::Builder::new()
            .name("raft-apply".into())
            .spawn(move || {
                let _entered = span.enter();
                run_apply(state_machine, &storage, &receiver, &events, &counters);
            })?
    };
    Ok(Lanes {
        disk,
        disk_thread,
        apply,
        apply_thread,
    })
}

fn run_disk<M: StateMachine, S: Storage, A>(
    storage: &Mutex<S>,
    receiver: &Receiver<DiskWork<S>>,
    events: &UnboundedSender<LaneEvent<M, S, A>>,
    counters: &Counters,
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
        let done = work.run(&mut store);
        drop(store);
        if done.synced() {
            counters.fsync_latency.record(started.elapsed());
            add(&counters.fsyncs, 1);
        }
        // The driver may be gone at shutdown; nothing is left to tell then.
        let _ = events.send(LaneEvent::Disk(done));
    }
}

fn run_apply<M, S, A>(
    mut state_machine: M,
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
        let done = work.run(&mut state_machine, storage);
        counters.apply_latency.record(started.elapsed());
        let _ = events.send(LaneEvent::Applied(done));
    }
}
