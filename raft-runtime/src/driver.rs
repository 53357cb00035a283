//! The driver: one tokio task per node that owns the [`Engine`] and does only wiring.
//!
//! On each wake-up (in the manner of quinn's `ConnectionDriver`) it takes a batch of inputs
//! (lane completions, client requests, peer messages), tells the engine the time, then
//! drains every engine output once: disk work to the disk thread (or run here when it is
//! light, see [`crate::lanes`]), apply work to the apply thread (or here when light),
//! snapshot work to the blocking pool, messages to the transport, answers to the
//! waiting clients, address changes to the transport. It sleeps until the engine's next
//! deadline, checked against the clock. Every rule (what to write, when to sync, what to
//! apply, which answer goes to whom) is the engine's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use raft_core::{
    Index, Membership, MembershipChange, Message, NodeId, Role, StateMachine, Storage,
};
use raft_host::{
    AddressBook, Consistency, DiskDone, Engine, Error, PeerChange, PeerInfo, Proposal, Reply,
    RequestId,
};
use raft_transport::Transport;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::RuntimeConfig;
use crate::event::LaneEvent;
use crate::lanes::Lanes;
use crate::metrics::{Counters, add};
use crate::status::{Lifecycle, NodeStatus};

/// An answer channel.
pub(crate) type AnswerTo<T> = oneshot::Sender<Result<T, Error>>;

/// A client request, from a [`crate::RaftNode`] handle to its driver.
pub(crate) enum Request<M: StateMachine, A> {
    Propose {
        proposal: Proposal,
        reply: AnswerTo<M::Response>,
    },
    SetPeer {
        id: NodeId,
        info: PeerInfo<A>,
        reply: AnswerTo<()>,
    },
    Read {
        query: M::Query,
        consistency: Consistency,
        reply: AnswerTo<M::QueryResponse>,
    },
    ChangeMembership {
        changes: Vec<MembershipChange>,
        reply: AnswerTo<Membership>,
    },
    Transfer {
        target: Option<NodeId>,
        reply: AnswerTo<NodeId>,
    },
    Snapshot {
        reply: AnswerTo<Index>,
    },
}

/// Where the answer to a request the engine accepted goes.
enum Waiter<M: StateMachine> {
    Propose(AnswerTo<M::Response>),
    SetPeer(AnswerTo<()>),
    Read(AnswerTo<M::QueryResponse>),
    Change(AnswerTo<Membership>),
    Transfer(AnswerTo<NodeId>),
    Snapshot(AnswerTo<Index>),
}

impl<M: StateMachine, A> Request<M, A> {
    fn fail(self, error: Error) {
        match self {
            Request::Propose { reply, .. } => drop(reply.send(Err(error))),
            Request::SetPeer { reply, .. } => drop(reply.send(Err(error))),
            Request::Read { reply, .. } => drop(reply.send(Err(error))),
            Request::ChangeMembership { reply, .. } => drop(reply.send(Err(error))),
            Request::Transfer { reply, .. } => drop(reply.send(Err(error))),
            Request::Snapshot { reply } => drop(reply.send(Err(error))),
        }
    }
}

/// Sends `result` through `reply` when the engine's answer has the kind the request asked
/// for. Any other kind would be an engine bug; the client then hears an unknown outcome.
fn answer<T, M: StateMachine>(
    reply: AnswerTo<T>,
    result: Result<Reply<M>, Error>,
    pick: impl FnOnce(Reply<M>) -> Option<T>,
) -> bool {
    let result = result.and_then(|r| {
        pick(r).ok_or_else(|| Error::OutcomeUnknown {
            reason: "the host answered with a reply of another kind".into(),
        })
    });
    let failed = result.is_err();
    // The caller may have timed out and gone; nothing to do then.
    let _ = reply.send(result);
    failed
}

impl<M: StateMachine> Waiter<M> {
    /// Delivers the answer; true if it is an error.
    fn deliver(self, result: Result<Reply<M>, Error>) -> bool {
        match self {
            Waiter::Propose(reply) => answer(reply, result, |r| match r {
                Reply::Response(response) => Some(response),
                _ => None,
            }),
            Waiter::SetPeer(reply) => answer(reply, result, |r| match r {
                Reply::PeersUpdated => Some(()),
                _ => None,
            }),
            Waiter::Read(reply) => answer(reply, result, |r| match r {
                Reply::Query(response) => Some(response),
                _ => None,
            }),
            Waiter::Change(reply) => answer(reply, result, |r| match r {
                Reply::Membership(membership) => Some(membership),
                _ => None,
            }),
            Waiter::Transfer(reply) => answer(reply, result, |r| match r {
                Reply::Leader(leader) => Some(leader),
                _ => None,
            }),
            Waiter::Snapshot(reply) => answer(reply, result, |r| match r {
                Reply::Snapshot(index) => Some(index),
                _ => None,
            }),
        }
    }
}

/// The most log bytes a follower writes and syncs on its driver instead of the disk
/// thread (with [`Lanes::syncs_are_quick`]); bigger writes take longer than the two
/// thread wake-ups they would save.
const INLINE_SYNC_MAX_BYTES: u64 = 64 << 10;

/// Completes when the disk thread has rung the driver's doorbell; never without lanes.
async fn disk_rung<M: StateMachine, S: Storage, A>(lanes: Option<&mut Lanes<M, S, A>>) {
    match lanes {
        Some(lanes) => lanes.disk_done.rung().await,
        None => std::future::pending().await,
    }
}

/// What the driver shares with the handles.
pub(crate) struct DriverShared<A> {
    pub(crate) counters: Arc<Counters>,
    /// Where the engine's lease grant is published for the handles' lease reads.
    pub(crate) lease: Arc<crate::lease::LeaseSlot>,
    pub(crate) book: Arc<RwLock<AddressBook<A>>>,
    pub(crate) status: watch::Sender<NodeStatus>,
}

/// Inputs of the driver.
pub(crate) struct DriverInputs<M: StateMachine, S: Storage, A> {
    pub(crate) inbound: mpsc::Receiver<Message>,
    pub(crate) requests: mpsc::Receiver<Request<M, A>>,
    pub(crate) events: mpsc::UnboundedReceiver<LaneEvent<M, S, A>>,
    pub(crate) events_sender: mpsc::UnboundedSender<LaneEvent<M, S, A>>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

pub(crate) struct Driver<M: StateMachine, S: Storage, T: Transport> {
    engine: Engine<M, S, T::Address>,
    /// The engine's time is the time elapsed since this instant.
    origin: Instant,
    config: RuntimeConfig,
    transport: Arc<T>,
    storage: Arc<Mutex<S>>,
    inputs: DriverInputs<M, S, T::Address>,
    inbound_open: bool,
    lanes: Option<Lanes<M, S, T::Address>>,
    shared: DriverShared<T::Address>,
    waiters: HashMap<RequestId, Waiter<M>>,
    blocking: JoinSet<()>,
    /// Apply work out with the apply thread; light work runs inline only when it is zero,
    /// so the state machine sees the work in order.
    apply_out: usize,
    /// Disk work out with the disk thread; light disk work runs inline only when it is
    /// zero, so the storage sees the writes in order.
    disk_out: usize,
}

/// Everything a driver is built from.
pub(crate) struct DriverParts<M: StateMachine, S: Storage, T: Transport> {
    pub(crate) engine: Engine<M, S, T::Address>,
    pub(crate) origin: Instant,
    pub(crate) config: RuntimeConfig,
    pub(crate) transport: Arc<T>,
    pub(crate) storage: Arc<Mutex<S>>,
    pub(crate) inputs: DriverInputs<M, S, T::Address>,
    pub(crate) lanes: Lanes<M, S, T::Address>,
    pub(crate) shared: DriverShared<T::Address>,
}

impl<M, S, T> Driver<M, S, T>
where
    M: StateMachine,
    S: Storage,
    T: Transport,
    T::Address: Serialize + DeserializeOwned,
{
    pub(crate) fn new(parts: DriverParts<M, S, T>) -> Self {
        Driver {
            engine: parts.engine,
            origin: parts.origin,
            config: parts.config,
            transport: parts.transport,
            storage: parts.storage,
            inputs: parts.inputs,
            inbound_open: true,
            lanes: Some(parts.lanes),
            shared: parts.shared,
            waiters: HashMap::new(),
            blocking: JoinSet::new(),
            apply_out: 0,
            disk_out: 0,
        }
    }

    /// Runs the node until shutdown or a fatal error, then shuts down gracefully.
    pub(crate) async fn run(mut self) {
        let result = self.main_loop().await;
        self.finish(result).await;
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn main_loop(&mut self) -> Result<(), String> {
        // Hand out what the restored state already allows (re-apply up to the persisted
        // commit index) before waiting for anything.
        self.flush()?;
        loop {
            let deadline = self.origin + self.engine.poll_timeout();
            tokio::select! {
                biased;
                _ = self.inputs.shutdown.changed() => return Ok(()),
                Some(event) = self.inputs.events.recv() => {
                    self.catch_up_time();
                    self.on_event(event);
                }
                () = disk_rung(self.lanes.as_mut()) => {
                    self.catch_up_time();
                    self.take_disk_done();
                }
                request = self.inputs.requests.recv() => match request {
                    Some(request) => {
                        self.catch_up_time();
                        self.on_request(request);
                    }
                    // Every handle is gone: nobody can use the node any more.
                    None => return Ok(()),
                },
                message = self.inputs.inbound.recv(), if self.inbound_open => match message {
                    Some(message) => {
                        self.catch_up_time();
                        self.on_message(message);
                    }
                    None => {
                        tracing::warn!("transport closed its inbound queue; no more peer messages");
                        self.inbound_open = false;
                    }
                },
                () = tokio::time::sleep_until(deadline) => {}
            }
            // With other clients' requests in flight, let the tasks that are ready (client
            // connections, peer readers) queue their inputs before taking them: tokio runs
            // a task woken by a message right after the sender, so without this each
            // wake-up would carry one proposal, and each batch costs a write and one
            // message per peer. Alone, a request has nobody to wait for, and a yield costs
            // a wake-up of another worker thread (the yielding worker goes searching for
            // work, and tokio wakes a parked worker when a searcher finds some): about one
            // context switch per driver wake-up, four per put on a leader.
            if self.waiters.len() > 1 {
                tokio::task::yield_now().await;
            }
            self.take_more_inputs();
            self.catch_up_time();
            self.flush()?;
            add(&self.shared.counters.driver_batches, 1);
        }
    }

    /// Delivers the ticks that elapsed while the driver slept, before the input that woke
    /// it: the engine sleeps until the core's next deadline, and the core must see the time
    /// a message arrived at (election timer, leader lease) as if it had been ticked all along.
    fn catch_up_time(&mut self) {
        self.engine.handle_timeout(self.now());
    }

    /// Takes whatever else is already queued, bounded per source, so one wake-up becomes
    /// one batch for the engine.
    fn take_more_inputs(&mut self) {
        self.take_disk_done();
        let budget = self.config.batch_inputs_max;
        for _ in 0..budget {
            match self.inputs.events.try_recv() {
                Ok(event) => self.on_event(event),
                Err(_) => break,
            }
        }
        for _ in 0..budget {
            match self.inputs.requests.try_recv() {
                Ok(request) => self.on_request(request),
                Err(_) => break,
            }
        }
        for _ in 0..budget {
            match self.inputs.inbound.try_recv() {
                Ok(message) => self.on_message(message),
                Err(_) => break,
            }
        }
    }

    /// Hands every disk completion queued to the engine (the engine has at most
    /// [`raft_host::DISK_WORKS_IN_FLIGHT_MAX`] out).
    fn take_disk_done(&mut self) {
        while let Some(done) = self.lanes.as_ref().and_then(|l| l.disk_done.try_recv()) {
            self.on_disk_done(done);
        }
    }

    fn on_disk_done(&mut self, done: DiskDone<S>) {
        self.disk_out = self.disk_out.saturating_sub(1);
        self.engine.handle_disk_done(done);
    }

    fn on_message(&mut self, message: Message) {
        add(&self.shared.counters.messages_received, 1);
        self.engine.handle_message(message);
    }

    fn on_event(&mut self, event: LaneEvent<M, S, T::Address>) {
        match event {
            LaneEvent::Applied(done) => {
                self.apply_out = self.apply_out.saturating_sub(1);
                self.engine.handle_applied(done);
            }
            LaneEvent::Snapshot(done) => self.engine.handle_snapshot_done(done),
        }
    }

    fn on_request(&mut self, request: Request<M, T::Address>) {
        let counters = &self.shared.counters;
        let (id, waiter) = match request {
            Request::Propose { proposal, reply } => {
                add(&counters.proposals_submitted, 1);
                (self.engine.handle_propose(proposal), Waiter::Propose(reply))
            }
            Request::SetPeer { id, info, reply } => (
                self.engine.handle_set_peer(id, info),
                Waiter::SetPeer(reply),
            ),
            Request::Read {
                query,
                consistency,
                reply,
            } => {
                add(&counters.reads_submitted, 1);
                let id = self.engine.handle_read(query, consistency);
                (id, Waiter::Read(reply))
            }
            Request::ChangeMembership { changes, reply } => (
                self.engine.handle_change_membership(changes),
                Waiter::Change(reply),
            ),
            Request::Transfer { target, reply } => {
                (self.engine.handle_transfer(target), Waiter::Transfer(reply))
            }
            Request::Snapshot { reply } => (
                self.engine.handle_trigger_snapshot(),
                Waiter::Snapshot(reply),
            ),
        };
        self.waiters.insert(id, waiter);
    }

    /// Drains every engine output once and hands each to its lane, messages first: an
    /// append on its way to a follower is a put's critical path (the leader's own write
    /// is not), so its link writer should be woken before the disk thread.
    fn flush(&mut self) -> Result<(), String> {
        // Before any message or answer leaves: see `Engine::lease_grant`.
        self.shared.lease.publish(self.engine.lease_grant());
        self.transmit();
        let lanes = self.lanes.as_ref().ok_or("the lanes are closed")?;
        let sync_inline = self.engine.node().role() != Role::Leader && lanes.syncs_are_quick();
        loop {
            while let Some(work) = self.engine.poll_disk() {
                // Inline only while nothing is out with the thread: the writes stay in
                // order, and the storage is free unless a snapshot task holds it. A
                // follower also syncs a small append here while syncs are quick: its ack
                // then leaves without two thread wake-ups (see `Lanes::disk_inline`).
                let inline = work.is_light()
                    || (sync_inline && work.persists_at_most(INLINE_SYNC_MAX_BYTES));
                let work = if self.disk_out == 0 && inline {
                    match lanes.disk_inline(work) {
                        Ok(done) => {
                            self.engine.handle_disk_done(done);
                            continue;
                        }
                        Err(work) => *work,
                    }
                } else {
                    work
                };
                self.disk_out += 1;
                lanes.disk.send(work).map_err(|_| "the disk lane stopped")?;
            }
            let mut applied_inline = false;
            while let Some(work) = self.engine.poll_apply() {
                if self.apply_out == 0 && work.is_light() {
                    let done = lanes.apply_inline(work)?;
                    self.engine.handle_applied(done);
                    applied_inline = true;
                } else {
                    self.apply_out += 1;
                    lanes
                        .apply
                        .send(work)
                        .map_err(|_| "the apply lane stopped")?;
                }
            }
            // What was applied here may release disk work (compaction) at once.
            if !applied_inline {
                break;
            }
        }
        // Before any message or answer leaves: see `Engine::lease_grant`.
        self.shared.lease.publish(self.engine.lease_grant());
        while let Some(work) = self.engine.poll_snapshot() {
            let storage = Arc::clone(&self.storage);
            let events = self.inputs.events_sender.clone();
            let span = tracing::Span::current();
            self.blocking.spawn_blocking(move || {
                let _entered = span.enter();
                let _ = events.send(LaneEvent::Snapshot(work.run(&storage)));
            });
        }
        // Messages the inline disk completions above released.
        self.transmit();
        self.deliver_replies();
        self.apply_peer_changes();
        self.reap_blocking();
        if let Some(reason) = self.engine.fatal_error() {
            return Err(reason.to_string());
        }
        // A leader's runtime is busy with its clients; anywhere else, or with one request
        // waiting, it is mostly idle between inputs (see `crate::doorbell`).
        let busy = self.engine.node().role() == Role::Leader && self.waiters.len() > 1;
        if let Some(lanes) = &self.lanes {
            lanes.disk_done.ring_through_reactor(!busy);
        }
        self.publish_status(Lifecycle::Running);
        self.shared.counters.copy_engine(self.engine.metrics());
        Ok(())
    }

    fn transmit(&mut self) {
        while let Some(message) = self.engine.poll_transmit() {
            add(&self.shared.counters.messages_sent, 1);
            self.transport.send(message);
        }
    }

    fn deliver_replies(&mut self) {
        while let Some((id, result)) = self.engine.poll_reply() {
            let Some(waiter) = self.waiters.remove(&id) else {
                continue;
            };
            let counters = &self.shared.counters;
            let failed_counter = match &waiter {
                Waiter::Propose(_) => Some(&counters.proposals_failed),
                Waiter::Read(_) => Some(&counters.reads_failed),
                _ => None,
            };
            if waiter.deliver(result)
                && let Some(counter) = failed_counter
            {
                add(counter, 1);
            }
        }
    }

    fn apply_peer_changes(&mut self) {
        let mut changed = false;
        while let Some(change) = self.engine.poll_peer_change() {
            changed = true;
            match change {
                PeerChange::Upsert { id, info } => {
                    if let Err(error) = self.transport.add_peer(id, info.address) {
                        tracing::warn!(peer = id, %error, "transport refused a peer address");
                    }
                }
                PeerChange::Remove { id } => {
                    self.transport.remove_peer(id);
                }
            }
        }
        if changed {
            let mut book = self
                .shared
                .book
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            *book = self.engine.book().clone();
        }
    }

    fn reap_blocking(&mut self) {
        while let Some(result) = self.blocking.try_join_next() {
            if let Err(error) = result {
                tracing::error!(%error, "a snapshot task panicked");
            }
        }
    }

    /// Publishes the status if it changed. It runs after every batch, so the status is
    /// brought up to date in place, which allocates only for what changed.
    fn publish_status(&self, lifecycle: Lifecycle) {
        let node = self.engine.node();
        self.shared.status.send_if_modified(|current| {
            let mut changed = node.refresh_status(&mut current.raft);
            if current.lifecycle != lifecycle {
                current.lifecycle = lifecycle;
                changed = true;
            }
            changed
        });
    }

    /// Graceful stop: finish in-flight IO, answer every waiting client, close connections.
    async fn finish(mut self, result: Result<(), String>) {
        let error = match &result {
            Ok(()) => {
                tracing::info!("shutting down");
                Error::Shutdown
            }
            Err(reason) => {
                tracing::error!(%reason, "node stopped on a fatal error");
                Error::Stopped {
                    reason: reason.clone(),
                }
            }
        };
        self.shared.lease.publish(None);
        self.inputs.requests.close();
        while let Ok(request) = self.inputs.requests.try_recv() {
            request.fail(error.clone());
        }
        self.close_lanes().await;
        while self.blocking.join_next().await.is_some() {}
        // Work that finished while the lanes wound down still answers its clients.
        while let Ok(event) = self.inputs.events.try_recv() {
            self.on_event(event);
        }
        self.engine.fail_all(&error);
        self.deliver_replies();
        for (_, waiter) in self.waiters.drain() {
            waiter.deliver(Err(error.clone()));
        }
        self.transport.shutdown().await;
        let lifecycle = match result {
            Ok(()) => Lifecycle::Stopped,
            Err(reason) => Lifecycle::Failed { reason },
        };
        self.publish_status(lifecycle);
        tracing::info!("stopped");
    }

    /// Closing the queues lets each lane finish what it holds, then end.
    async fn close_lanes(&mut self) {
        let Some(lanes) = self.lanes.take() else {
            return;
        };
        let Lanes {
            disk,
            disk_thread,
            disk_done,
            apply,
            apply_thread,
            ..
        } = lanes;
        drop(disk);
        drop(apply);
        let joined = tokio::task::spawn_blocking(move || {
            let disk = disk_thread.join().is_ok();
            let apply = apply_thread.join().is_ok();
            disk && apply
        })
        .await;
        match joined {
            Ok(true) => {}
            Ok(false) => tracing::error!("a lane thread panicked"),
            // The tokio runtime is going away; the threads end on their own.
            Err(error) => tracing::debug!(%error, "could not wait for the lane threads"),
        }
        // Writes that finished while the lane wound down still count.
        while let Some(done) = disk_done.try_recv() {
            self.on_disk_done(done);
        }
    }
}
