//! The driver: one tokio task per node that owns the core [`Node`].
//!
//! On each wake-up it takes a batch of inputs (lane reports, client requests, peer
//! messages, due ticks), feeds them to the core, then drains the core's actions once and
//! dispatches them per lane: writes to the disk lane, entries and restores to the apply
//! lane, messages straight to the transport (in parallel with the disk write: the core
//! never emits a message that depends on an unfinished write), outcomes to the waiting
//! clients. One drain per batch is what turns many proposals into one persist batch and
//! one fsync.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use bytes::Bytes;
use raft_core::{
    Action, Index, Membership, MembershipChange, Message, MessageBody, Node, NodeId,
    ReadConsistency, Role, SnapshotMeta, StateMachine, Storage, Term,
};
use raft_transport_tcp::Transport;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::apply::{ApplyOp, QueryReply};
use crate::clock::TickClock;
use crate::config::RuntimeConfig;
use crate::disk::DiskOp;
use crate::envelope::AddressBook;
use crate::error::Error;
use crate::event::LaneEvent;
use crate::metrics::{Counters, add};
use crate::pending::{ChangeReply, Pending, ProposalReply, TransferReply};
use crate::snapshot::{self, ChunkReader};
use crate::status::{Lifecycle, NodeStatus};

/// How a read is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Consistency {
    /// ReadIndex: confirmed with a quorum heartbeat round, linearizable under any clock
    /// behaviour. Works on followers (the leader confirms the index).
    Linearizable,
    /// Served from the leader's lease when it holds (no round trip), otherwise as
    /// `Linearizable`. Needs `lease_reads` in the core config and bounded clock drift.
    Lease,
    /// Served at once from this node's state machine, however far behind it is. Never
    /// linearizable; cheapest.
    Stale,
}

/// A client request, from a [`crate::RaftNode`] handle to its driver.
pub(crate) enum Request<M: StateMachine> {
    Propose {
        data: Bytes,
        reply: ProposalReply<M::Response>,
    },
    Read {
        query: M::Query,
        consistency: Consistency,
        reply: QueryReply<M>,
    },
    ChangeMembership {
        changes: Vec<MembershipChange>,
        reply: ChangeReply,
    },
    Transfer {
        target: Option<NodeId>,
        reply: TransferReply,
    },
    Snapshot,
}

impl<M: StateMachine> Request<M> {
    fn fail(self, error: Error) {
        match self {
            Request::Propose { reply, .. } => drop(reply.send(Err(error))),
            Request::Read { reply, .. } => drop(reply.send(Err(error))),
            Request::ChangeMembership { reply, .. } => drop(reply.send(Err(error))),
            Request::Transfer { reply, .. } => drop(reply.send(Err(error))),
            Request::Snapshot => {}
        }
    }
}

/// A view waiting for the core to confirm the snapshot metadata at its index.
struct PendingView<M: StateMachine, A> {
    index: Index,
    view: M::Snapshot,
    book: AddressBook<A>,
}

/// The lanes the driver hands work to.
pub(crate) struct Lanes<M: StateMachine> {
    pub(crate) disk: std::sync::mpsc::Sender<DiskOp>,
    pub(crate) disk_thread: JoinHandle<()>,
    pub(crate) apply: std::sync::mpsc::Sender<ApplyOp<M>>,
    pub(crate) apply_thread: JoinHandle<()>,
}

/// What the driver shares with the handles.
pub(crate) struct DriverShared<A> {
    pub(crate) counters: Arc<Counters>,
    pub(crate) book: Arc<RwLock<AddressBook<A>>>,
    pub(crate) status: watch::Sender<NodeStatus>,
    pub(crate) snapshot_busy: Arc<AtomicBool>,
}

/// Inputs of the driver.
pub(crate) struct DriverInputs<M: StateMachine, A> {
    pub(crate) inbound: mpsc::Receiver<Message>,
    pub(crate) requests: mpsc::Receiver<Request<M>>,
    pub(crate) events: mpsc::UnboundedReceiver<LaneEvent<M, A>>,
    pub(crate) events_sender: mpsc::UnboundedSender<LaneEvent<M, A>>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

pub(crate) struct Driver<M: StateMachine, S: Storage, T: Transport> {
    node: Node,
    config: RuntimeConfig,
    transport: Arc<T>,
    storage: Arc<Mutex<S>>,
    inputs: DriverInputs<M, T::Address>,
    inbound_open: bool,
    lanes: Option<Lanes<M>>,
    shared: DriverShared<T::Address>,
    pending: Pending<M>,
    actions: Vec<Action>,
    clock: TickClock,
    view: Option<PendingView<M, T::Address>>,
    chunks: Arc<ChunkReader<S>>,
    blocking: JoinSet<()>,
    /// Set while a transfer request's own outcome may be among the drained actions.
    transfer_immediate: bool,
}

impl<M, S, T> Driver<M, S, T>
where
    M: StateMachine,
    S: Storage,
    T: Transport,
    T::Address: serde::Serialize + serde::de::DeserializeOwned,
{
    pub(crate) fn new(
        node: Node,
        config: RuntimeConfig,
        transport: Arc<T>,
        storage: Arc<Mutex<S>>,
        inputs: DriverInputs<M, T::Address>,
        lanes: Lanes<M>,
        shared: DriverShared<T::Address>,
    ) -> Self {
        let clock = TickClock::new(
            config.tick_interval,
            Instant::now(),
            config.raft.election_ticks.saturating_mul(4).max(4),
        );
        let pending = Pending::new(node.applied_index());
        Driver {
            node,
            config,
            transport,
            storage,
            inputs,
            inbound_open: true,
            lanes: Some(lanes),
            shared,
            pending,
            actions: Vec::new(),
            clock,
            view: None,
            chunks: Arc::new(ChunkReader::default()),
            blocking: JoinSet::new(),
            transfer_immediate: false,
        }
    }

    /// Runs the node until shutdown or a fatal error, then shuts down gracefully.
    pub(crate) async fn run(mut self) {
        let result = self.main_loop().await;
        self.finish(result).await;
    }

    async fn main_loop(&mut self) -> Result<(), String> {
        // Hand out what the restored state already allows (re-apply up to the persisted
        // commit index) before waiting for anything.
        self.flush()?;
        loop {
            let deadline = self.clock.next_deadline();
            tokio::select! {
                biased;
                _ = self.inputs.shutdown.changed() => return Ok(()),
                Some(event) = self.inputs.events.recv() => self.on_event(event)?,
                request = self.inputs.requests.recv() => match request {
                    Some(request) => self.on_request(request)?,
                    // Every handle is gone: nobody can use the node any more.
                    None => return Ok(()),
                },
                message = self.inputs.inbound.recv(), if self.inbound_open => match message {
                    Some(message) => self.on_message(message),
                    None => {
                        tracing::warn!("transport closed its inbound queue; no more peer messages");
                        self.inbound_open = false;
                    }
                },
                () = tokio::time::sleep_until(deadline) => {}
            }
            self.take_more_inputs()?;
            self.tick_due();
            self.flush()?;
            add(&self.shared.counters.driver_batches, 1);
        }
    }

    /// Takes whatever else is already queued, bounded per source, so one wake-up becomes
    /// one batch for the core.
    fn take_more_inputs(&mut self) -> Result<(), String> {
        let budget = self.config.batch_inputs_max;
        for _ in 0..budget {
            match self.inputs.events.try_recv() {
                Ok(event) => self.on_event(event)?,
                Err(_) => break,
            }
        }
        for _ in 0..budget {
            match self.inputs.requests.try_recv() {
                Ok(request) => self.on_request(request)?,
                Err(_) => break,
            }
        }
        for _ in 0..budget {
            match self.inputs.inbound.try_recv() {
                Ok(message) => self.on_message(message),
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn tick_due(&mut self) {
        let ticks = self.clock.due(Instant::now());
        for _ in 0..ticks {
            self.node.tick();
        }
        add(&self.shared.counters.ticks, u64::from(ticks));
    }

    fn on_message(&mut self, message: Message) {
        add(&self.shared.counters.messages_received, 1);
        self.node.step(message);
    }

    fn on_request(&mut self, request: Request<M>) -> Result<(), String> {
        let incomplete = self.node.has_incomplete_state();
        if incomplete && matches!(request, Request::Propose { .. } | Request::Read { .. }) {
            // A witness (or a node holding a witness's data) has a state machine with holes:
            // a read would answer from it, and a write's response never reaches it.
            request.fail(Error::Witness);
            return Ok(());
        }
        match request {
            Request::Propose { data, reply } => {
                add(&self.shared.counters.proposals_submitted, 1);
                let id = self.node.propose(data);
                self.pending.add_proposal(id, reply);
            }
            Request::Read {
                query,
                consistency,
                reply,
            } => {
                add(&self.shared.counters.reads_submitted, 1);
                let core = match consistency {
                    Consistency::Stale => {
                        self.send_apply(ApplyOp::Query {
                            min_index: 0,
                            query,
                            reply,
                        })?;
                        return Ok(());
                    }
                    Consistency::Linearizable => ReadConsistency::Linearizable,
                    Consistency::Lease => ReadConsistency::Lease,
                };
                let id = self.node.read(core);
                self.pending.add_read(id, query, reply);
            }
            Request::ChangeMembership { changes, reply } => {
                let id = self.node.change_membership(changes);
                self.pending.add_change(id, reply);
            }
            Request::Transfer { target, reply } => {
                // Outcomes of earlier transfers go out first, so that an immediate refusal
                // of this one is told apart from them.
                self.flush()?;
                self.pending.add_transfer(reply);
                self.node.transfer_leadership(target);
                self.transfer_immediate = true;
                let result = self.flush();
                self.transfer_immediate = false;
                result?;
            }
            Request::Snapshot => self.send_apply(ApplyOp::SnapshotNow)?,
        }
        Ok(())
    }

    fn on_event(&mut self, event: LaneEvent<M, T::Address>) -> Result<(), String> {
        match event {
            LaneEvent::Persisted { token } => self.node.on_persisted(token),
            LaneEvent::Applied { index, results } => {
                self.node.on_applied(index);
                self.pending.on_applied(index, results);
            }
            LaneEvent::Restored { index } => self.pending.on_restored(index),
            LaneEvent::PeersChanged { upsert, remove } => self.on_peers_changed(upsert, remove),
            LaneEvent::SnapshotView { index, view, book } => {
                self.view = Some(PendingView { index, view, book });
            }
            LaneEvent::SnapshotSaved(Ok(meta)) => {
                tracing::info!(index = meta.index, term = meta.term, "snapshot saved");
                add(&self.shared.counters.snapshots_saved, 1);
                self.node.on_snapshot_saved(meta);
                self.shared.snapshot_busy.store(false, Ordering::Release);
            }
            LaneEvent::SnapshotSaved(Err(reason)) => {
                tracing::warn!(%reason, "snapshot failed; the log is not compacted");
                add(&self.shared.counters.snapshots_failed, 1);
                self.shared.snapshot_busy.store(false, Ordering::Release);
            }
            LaneEvent::Fatal(reason) => return Err(reason),
        }
        Ok(())
    }

    fn on_peers_changed(
        &mut self,
        upsert: Vec<(NodeId, crate::PeerInfo<T::Address>)>,
        remove: Vec<NodeId>,
    ) {
        let me = self.node.id();
        let mut book = self
            .shared
            .book
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        for (id, info) in upsert {
            if id != me
                && let Err(error) = self.transport.add_peer(id, info.address.clone())
            {
                tracing::warn!(peer = id, %error, "transport refused a peer address");
            }
            book.insert(id, info);
        }
        for id in remove {
            if id != me {
                self.transport.remove_peer(id);
            }
            book.remove(&id);
        }
    }

    /// Drains the core's actions and carries them out per lane.
    fn flush(&mut self) -> Result<(), String> {
        let mut actions = std::mem::take(&mut self.actions);
        self.node.drain_actions(&mut actions);
        let mut result = Ok(());
        for action in actions.drain(..) {
            if let Err(reason) = self.dispatch(action) {
                result = Err(reason);
                break;
            }
        }
        actions.clear();
        self.actions = actions;
        result?;
        self.maybe_save_snapshot();
        self.reap_blocking();
        self.publish_status(Lifecycle::Running);
        Ok(())
    }

    fn dispatch(&mut self, action: Action) -> Result<(), String> {
        match action {
            Action::Persist(batch) => self.send_disk(DiskOp::Persist(batch))?,
            Action::WriteSnapshotChunk(chunk) => self.send_disk(DiskOp::Chunk(chunk))?,
            Action::CompactLog { through_index } => {
                self.send_disk(DiskOp::Compact(through_index))?
            }
            Action::Send(message) => {
                add(&self.shared.counters.messages_sent, 1);
                self.transport.send(message);
            }
            Action::SendSnapshotChunk {
                to,
                term,
                meta,
                offset,
                max_bytes,
            } => self.send_snapshot_chunk(to, term, *meta, offset, max_bytes),
            Action::Apply(entries) => self.send_apply(ApplyOp::Apply(entries))?,
            Action::RestoreStateMachine { meta } => self.send_apply(ApplyOp::Restore(*meta))?,
            Action::ProposalOutcome { id, result } => {
                if self.pending.on_proposal_outcome(id, result).is_some() {
                    add(&self.shared.counters.proposals_failed, 1);
                }
            }
            Action::ReadOutcome { id, result } => match self.pending.on_read_outcome(id, result) {
                Some((min_index, query, reply)) => self.send_apply(ApplyOp::Query {
                    min_index,
                    query,
                    reply,
                })?,
                None => add(&self.shared.counters.reads_failed, 1),
            },
            Action::MembershipOutcome { id, result } => {
                if let Ok(membership) = &result {
                    tracing::info!(membership = %membership.describe(), "membership change committed");
                }
                self.pending.on_change_outcome(id, result);
            }
            Action::TransferOutcome { target, result } => {
                self.pending
                    .on_transfer_outcome(target, result, self.transfer_immediate);
            }
            Action::RoleChanged { role, term, leader } => {
                add(&self.shared.counters.role_changes, 1);
                tracing::info!(?role, term, ?leader, "role changed");
                if role != Role::Leader {
                    self.chunks.clear();
                }
            }
            Action::Halted { reason } => {
                return Err(format!("the core halted on an inconsistency: {reason}"));
            }
        }
        Ok(())
    }

    fn send_disk(&self, op: DiskOp) -> Result<(), String> {
        let lanes = self.lanes.as_ref().ok_or("the disk lane is closed")?;
        lanes
            .disk
            .send(op)
            .map_err(|_| "the disk lane stopped".to_string())
    }

    fn send_apply(&self, op: ApplyOp<M>) -> Result<(), String> {
        let lanes = self.lanes.as_ref().ok_or("the apply lane is closed")?;
        lanes
            .apply
            .send(op)
            .map_err(|_| "the apply lane stopped".to_string())
    }

    /// Reads the chunk on the blocking pool and sends it from there.
    fn send_snapshot_chunk(
        &mut self,
        to: NodeId,
        term: Term,
        meta: SnapshotMeta,
        offset: u64,
        max_bytes: u64,
    ) {
        let storage = Arc::clone(&self.storage);
        let chunks = Arc::clone(&self.chunks);
        let transport = Arc::clone(&self.transport);
        let counters = Arc::clone(&self.shared.counters);
        let from = self.node.id();
        let span = tracing::Span::current();
        self.blocking.spawn_blocking(move || {
            let _entered = span.enter();
            match chunks.read(&storage, to, &meta, offset, max_bytes) {
                Ok(Some(chunk)) => {
                    add(&counters.snapshot_chunks_sent, 1);
                    add(&counters.messages_sent, 1);
                    transport.send(Message {
                        from,
                        to,
                        term,
                        body: MessageBody::SnapshotChunk {
                            meta: Box::new(meta),
                            offset,
                            data: chunk.data,
                            done: chunk.done,
                        },
                    });
                }
                Ok(None) => {
                    tracing::debug!(peer = to, "snapshot changed before its chunk was sent")
                }
                Err(reason) => tracing::warn!(peer = to, %reason, "cannot read snapshot chunk"),
            }
        });
    }

    /// Saves a pending view once the core can describe it (applied and durable).
    fn maybe_save_snapshot(&mut self) {
        let Some(pending) = self.view.take() else {
            return;
        };
        if pending.index <= self.node.snapshot_meta().index {
            self.shared.snapshot_busy.store(false, Ordering::Release);
            return;
        }
        let Some(meta) = self.node.snapshot_meta_at(pending.index) else {
            // Not durable yet (or not reported applied): try again after the next batch.
            self.view = Some(pending);
            return;
        };
        let storage = Arc::clone(&self.storage);
        let events = self.inputs.events_sender.clone();
        let span = tracing::Span::current();
        self.blocking.spawn_blocking(move || {
            let _entered = span.enter();
            let result =
                snapshot::save::<M, S, T::Address>(&storage, meta, pending.view, &pending.book);
            let _ = events.send(LaneEvent::SnapshotSaved(result));
        });
    }

    fn reap_blocking(&mut self) {
        while let Some(result) = self.blocking.try_join_next() {
            if let Err(error) = result {
                tracing::error!(%error, "a snapshot task panicked");
            }
        }
    }

    fn publish_status(&self, lifecycle: Lifecycle) {
        let status = NodeStatus {
            raft: self.node.status(),
            lifecycle,
        };
        self.shared.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
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
        self.inputs.requests.close();
        while let Ok(request) = self.inputs.requests.try_recv() {
            request.fail(error.clone());
        }
        if let Some(lanes) = self.lanes.take() {
            let Lanes {
                disk,
                disk_thread,
                apply,
                apply_thread,
            } = lanes;
            // Closing the queues lets each lane finish what it holds, then end.
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
        }
        // Results that arrived while the lanes wound down still answer their clients.
        while let Ok(event) = self.inputs.events.try_recv() {
            match event {
                LaneEvent::Applied { index, results } => self.pending.on_applied(index, results),
                LaneEvent::Restored { index } => self.pending.on_restored(index),
                _ => {}
            }
        }
        self.pending.fail_all(&error);
        while self.blocking.join_next().await.is_some() {}
        self.transport.shutdown().await;
        let lifecycle = match result {
            Ok(()) => Lifecycle::Stopped,
            Err(reason) => Lifecycle::Failed { reason },
        };
        self.publish_status(lifecycle);
        tracing::info!("stopped");
    }
}

/// The membership a bootstrapped cluster starts with: every founding member votes.
pub(crate) fn founding_membership<A>(members: &AddressBook<A>) -> Membership {
    Membership::with_voters(members.keys().copied())
}
