//! [`Engine`]: the host contract in one IO-free state machine. This file holds the type,
//! its inputs and its getters; `outputs.rs` holds the `poll_*` side and the core's actions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use raft_core::{
    Action, Index, MembershipChange, Message, Node, NodeId, ReadConsistency, StateMachine, Status,
    Storage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::ApplyStep;
use crate::book::Book;
use crate::clock::TickClock;
use crate::config::{EngineConfig, EngineConfigError};
use crate::disk::{ChunkWriter, DiskOp};
use crate::envelope::{self, AddressBook, PeerInfo};
use crate::error::Error;
use crate::observe::{Observation, Observations};
use crate::pending::{Pending, ProposalKind, Reply, RequestId};
use crate::planted::Planted;
use crate::snapshot::{Cursor, WorkKind};
use crate::start::Startup;

/// How a read is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Consistency {
    /// ReadIndex: confirmed with a quorum heartbeat round, linearizable under any clock
    /// behaviour. Works on followers (the leader confirms the index).
    Linearizable,
    /// Served from the leader's lease when it holds (no round trip), otherwise as
    /// `Linearizable`. Needs `lease_reads` in the core config and bounded clock drift.
    Lease,
    /// Served from this node's state machine as it is, however far behind it is. Never
    /// linearizable; cheapest.
    Stale,
}

/// A command encoded for the log, ready for [`Engine::handle_propose`]. Encoding can run
/// anywhere (on the caller's thread, off the driver).
#[derive(Clone, Debug)]
pub struct Proposal {
    pub(crate) bytes: bytes::Bytes,
    pub(crate) kind: ProposalKind,
}

impl Proposal {
    /// Encodes a state machine command (postcard, inside the host's log record).
    pub fn command<C: Serialize>(command: &C) -> Result<Proposal, Error> {
        let bytes = envelope::encode_command(command).map_err(|e| Error::Encode {
            reason: e.to_string(),
        })?;
        Ok(Proposal {
            bytes: bytes.into(),
            kind: ProposalKind::Command,
        })
    }

    /// The encoded size in bytes (what counts against the core's entry limit).
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Counters of what the engine did, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineMetrics {
    /// Core ticks delivered by [`Engine::handle_timeout`].
    pub ticks: u64,
    /// Log entries the state machine applied.
    pub entries_applied: u64,
    /// Committed commands that did not decode (skipped on every replica).
    pub commands_invalid: u64,
    /// Disk work items completed, and how many of them ended with a sync.
    pub disk_works: u64,
    /// Disk work items that ended with a sync.
    pub disk_syncs: u64,
    /// Storage operations (persist batches, snapshot chunks, compactions) handed out.
    pub disk_ops: u64,
    /// Snapshots of our own saved, and failed.
    pub snapshots_saved: u64,
    /// Snapshot saves that failed (the log is not compacted; a later one retries).
    pub snapshots_failed: u64,
    /// Snapshots from the leader loaded into the state machine.
    pub snapshots_restored: u64,
    /// Snapshot chunks read for lagging peers and queued for sending.
    pub snapshot_chunks_sent: u64,
    /// Role, term or leader changes.
    pub role_changes: u64,
    /// Size in bytes of the last snapshot this node saved or loaded (at start too): the
    /// snapshot policy waits for that much log before writing a large state again.
    pub last_snapshot_bytes: u64,
}

/// The disk lane's queue: writes wait here while one work item is out.
pub(crate) struct DiskQueue<S: Storage> {
    pub(crate) ops: Vec<DiskOp>,
    /// Work out with the driver, oldest first, and whether it syncs; completions must come
    /// in this order.
    pub(crate) in_flight: VecDeque<(u64, bool)>,
    /// True while an item out holds the snapshot writer (then no other item may write
    /// chunks until it is back).
    pub(crate) writer_out: bool,
    pub(crate) next_seq: u64,
    pub(crate) chunk_writer: ChunkWriter<S>,
}

/// The apply lane's queue and what the engine knows of the state machine.
pub(crate) struct ApplyQueue<M: StateMachine> {
    pub(crate) steps: Vec<ApplyStep<M>>,
    /// Work out with the driver, oldest first, and whether it restores a snapshot.
    pub(crate) in_flight: VecDeque<(u64, bool)>,
    pub(crate) next_seq: u64,
    /// Highest index handed to the apply queue (by entries or a restore).
    pub(crate) queued_index: Index,
    /// The state machine's applied index as last reported.
    pub(crate) applied: Index,
    /// Queries whose read index is above `queued_index`.
    pub(crate) parked: BTreeMap<Index, Vec<(RequestId, M::Query)>>,
    pub(crate) since_snapshot_entries: u64,
    pub(crate) since_snapshot_bytes: u64,
}

/// Snapshot work waiting, out, or about to be made.
pub(crate) struct Snapshots<M: StateMachine, S: Storage, A> {
    pub(crate) queue: VecDeque<(u64, WorkKind<M, S, A>)>,
    pub(crate) in_flight: BTreeSet<u64>,
    pub(crate) next_seq: u64,
    /// A view waiting for the core to describe its index (applied and durable).
    pub(crate) view: Option<(Index, M::Snapshot, AddressBook<A>)>,
    /// Set from asking for a view until its save ends, so views are not taken twice.
    pub(crate) busy: bool,
    /// Per-peer readers into the current snapshot.
    pub(crate) cursors: BTreeMap<NodeId, Cursor<S::SnapshotReader>>,
}

/// The IO-free host of one [`raft_core::Node`]. See the crate docs for the contract.
pub struct Engine<M: StateMachine, S: Storage, A> {
    pub(crate) node: Node,
    pub(crate) config: EngineConfig,
    pub(crate) clock: TickClock,
    pub(crate) actions: Vec<Action>,
    /// Set by every input that may give the core something to say.
    pub(crate) dirty: bool,
    /// Ticks were delivered unjudged since the last pump: the core judges silence (election
    /// timeout, check-quorum) when the batch of inputs is pumped, after its messages.
    pub(crate) silence_unjudged: bool,
    next_request: u64,
    pub(crate) pending: Pending<M>,
    pub(crate) disk: DiskQueue<S>,
    pub(crate) apply: ApplyQueue<M>,
    pub(crate) snapshots: Snapshots<M, S, A>,
    pub(crate) transmit: VecDeque<Message>,
    pub(crate) book: Book<A>,
    pub(crate) metrics: EngineMetrics,
    pub(crate) fatal: Option<String>,
    /// The observation feed (off unless a driver turns it on).
    pub(crate) observations: Observations<M>,
    /// Bugs planted on purpose (only with the `planted-bugs` feature; none otherwise).
    pub(crate) planted: Planted,
}

impl<M, S, A> Engine<M, S, A>
where
    M: StateMachine,
    S: Storage,
    A: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + 'static,
{
    /// An engine for the node [`crate::restore`] read, with its first tick due one
    /// `tick_interval` after `now` (the driver's time; any origin, never going backwards).
    /// The peers to register with the transport come out of [`Engine::poll_peer_change`].
    pub fn new(
        config: EngineConfig,
        startup: Startup<A>,
        now: Duration,
    ) -> Result<Self, EngineConfigError> {
        config.validate()?;
        let Startup {
            restored,
            book,
            peers,
            snapshot_bytes,
        } = startup;
        let snapshot = restored.snapshot.clone();
        let node = Node::new(config.raft.clone(), restored)?;
        let catch_up_max = config.raft.election_ticks.saturating_mul(4).max(4);
        let applied = node.applied_index();
        Ok(Engine {
            clock: TickClock::new(config.tick_interval, now, catch_up_max),
            book: Book::new(node.id(), book, &peers, snapshot.membership.clone()),
            node,
            config,
            actions: Vec::new(),
            dirty: true,
            silence_unjudged: false,
            next_request: 0,
            pending: Pending::new(applied),
            disk: DiskQueue {
                ops: Vec::new(),
                in_flight: VecDeque::new(),
                writer_out: false,
                next_seq: 1,
                chunk_writer: None,
            },
            apply: ApplyQueue {
                steps: Vec::new(),
                in_flight: VecDeque::new(),
                next_seq: 1,
                queued_index: snapshot.index,
                applied: snapshot.index,
                parked: BTreeMap::new(),
                since_snapshot_entries: 0,
                since_snapshot_bytes: 0,
            },
            snapshots: Snapshots {
                queue: VecDeque::new(),
                in_flight: BTreeSet::new(),
                next_seq: 1,
                view: None,
                busy: false,
                cursors: BTreeMap::new(),
            },
            transmit: VecDeque::new(),
            metrics: EngineMetrics {
                last_snapshot_bytes: snapshot_bytes,
                ..EngineMetrics::default()
            },
            fatal: None,
            observations: Observations::new(),
            planted: Planted::default(),
        })
    }

    // ----- observation and planted bugs -----

    /// Turns the observation feed on or off (off by default; off costs nothing). While on,
    /// drain it with [`Engine::poll_observation`] or it grows without bound.
    pub fn set_observing(&mut self, on: bool) {
        self.observations.on = on;
        if !on {
            self.observations.queue.clear();
        }
    }

    /// The next observation of what the engine did, oldest first (see [`Observation`]).
    #[must_use]
    pub fn poll_observation(&mut self) -> Option<Observation<M>> {
        self.pump_if_dirty();
        self.observations.queue.pop_front()
    }

    /// Gives this engine a deliberate bug, to show that a simulator's checks catch it.
    /// Never use outside such tests.
    #[cfg(feature = "planted-bugs")]
    pub fn plant(&mut self, bug: crate::PlantedBug) {
        self.planted.add(bug);
    }

    // ----- getters -----

    /// The core node (read-only: every input goes through the engine).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The core's status.
    pub fn status(&self) -> Status {
        self.node.status()
    }

    /// The address book as this node knows it: the replicated records plus the peers it was
    /// started with.
    pub fn book(&self) -> &AddressBook<A> {
        &self.book.known
    }

    /// The engine's counters.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    /// Why the node stopped (the core halted, a write or a restore failed), if it did. Stop
    /// driving the engine then: answer waiting clients with [`Engine::fail_all`].
    pub fn fatal_error(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Client requests waiting for an outcome.
    pub fn requests_waiting(&self) -> usize {
        self.pending.waiting()
    }

    /// True while disk, apply or snapshot work is out with the driver.
    pub fn has_work_in_flight(&self) -> bool {
        !self.disk.in_flight.is_empty()
            || !self.apply.in_flight.is_empty()
            || !self.snapshots.in_flight.is_empty()
    }

    // ----- inputs from the environment -----

    /// A message from a peer (as the transport delivered it).
    ///
    /// A driver that slept until [`Engine::poll_timeout`] calls [`Engine::handle_timeout`]
    /// with the current time *before* handing over messages that woke it, so the core sees
    /// every tick that elapsed before the message (its election timer and leader lease
    /// depend on it).
    pub fn handle_message(&mut self, message: Message) {
        self.node.step(message);
        self.dirty = true;
    }

    /// The time is now `now` (the driver's clock, same origin as [`Engine::new`]): delivers
    /// every core tick due since the last call (a long stall delivers at most four election
    /// timeouts' worth; more would change nothing).
    ///
    /// Whether the node heard nobody for too long (a follower's election timeout, a
    /// leader's check-quorum) is judged when this batch's outputs are first polled, after
    /// the messages handed over with it ([`raft_core::Node::tick_unjudged`]): a driver that
    /// wakes late, on a busy machine, finds the leader's heartbeats or the followers'
    /// acknowledgements that arrived meanwhile in its queue, and they count. Judged at once,
    /// a stall of an election timeout cost a pre-vote (the follower forgets its leader and
    /// refuses requests) or a step-down and an election, with the answers already queued.
    pub fn handle_timeout(&mut self, now: Duration) {
        let ticks = self.clock.due(now);
        for _ in 0..ticks {
            self.node.tick_unjudged();
        }
        if ticks > 0 {
            self.metrics.ticks += u64::from(ticks);
            self.dirty = true;
            self.silence_unjudged = true;
        }
    }

    /// When [`Engine::handle_timeout`] next has something to do: the time of the core's
    /// next deadline ([`raft_core::Node::next_deadline`]), so an idle follower sleeps until
    /// its election timeout instead of waking every tick. The sleep is capped at the most
    /// ticks one [`Engine::handle_timeout`] delivers (four election timeouts), and a halted
    /// node wakes at that cap too. Ask again after every input: inputs move deadlines.
    #[must_use]
    pub fn poll_timeout(&self) -> Duration {
        let ticks = self.node.next_deadline().unwrap_or(u64::MAX);
        self.clock.deadline_after(ticks)
    }

    // ----- application commands -----

    fn next_request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Refuses a request a node with a witness's data cannot serve: its state machine has
    /// holes, so a read would answer from it and a write's response never reaches it.
    fn refuse_if_witness(&mut self, request: RequestId) -> bool {
        if self.node.has_incomplete_state() {
            self.pending.answer(request, Err(Error::Witness));
            return true;
        }
        false
    }

    /// Proposes a command. Its one answer is [`Reply::Response`] once applied on this node,
    /// or an error. Works on followers too (the core forwards it to the leader).
    pub fn handle_propose(&mut self, proposal: Proposal) -> RequestId {
        let request = self.next_request_id();
        if !self.refuse_if_witness(request) {
            let id = self.node.propose(proposal.bytes);
            self.pending.add_proposal(id, request, proposal.kind);
            self.dirty = true;
        }
        request
    }

    /// Records (or moves) node `id`'s address in the replicated address book, through the
    /// log. The record carries the whole book as this node knows it, so a newly added node
    /// learns every member. Answered with [`Reply::PeersUpdated`] once applied.
    pub fn handle_set_peer(&mut self, id: NodeId, info: PeerInfo<A>) -> RequestId {
        let mut records: Vec<_> = self
            .book
            .known
            .iter()
            .filter(|(known, _)| **known != id)
            .map(|(known, info)| (*known, info.clone()))
            .collect();
        records.push((id, info));
        let request = self.next_request_id();
        match envelope::encode_peers(records) {
            Ok(bytes) => {
                let id = self.node.propose(bytes.into());
                self.pending.add_proposal(id, request, ProposalKind::Peers);
                self.dirty = true;
            }
            Err(e) => self.pending.answer(
                request,
                Err(Error::Encode {
                    reason: e.to_string(),
                }),
            ),
        }
        request
    }

    /// Reads with `query`. Answered with [`Reply::Query`] from a state that has applied the
    /// read's index (at once for [`Consistency::Stale`]).
    pub fn handle_read(&mut self, query: M::Query, consistency: Consistency) -> RequestId {
        let request = self.next_request_id();
        if self.refuse_if_witness(request) {
            return request;
        }
        let consistency = if self.planted.has(crate::PlantedBug::StaleReads) {
            // Planted bug: every read is served from the local state at once.
            Consistency::Stale
        } else {
            consistency
        };
        let core = match consistency {
            Consistency::Stale => {
                self.queue_query(0, request, query);
                return request;
            }
            Consistency::Linearizable => ReadConsistency::Linearizable,
            Consistency::Lease => ReadConsistency::Lease,
        };
        let id = self.node.read(core);
        self.pending.add_read(id, request, query);
        self.dirty = true;
        request
    }

    /// Changes the membership (joint consensus for several changes). Answered with
    /// [`Reply::Membership`] once the new configuration commits.
    pub fn handle_change_membership(&mut self, changes: Vec<MembershipChange>) -> RequestId {
        let request = self.next_request_id();
        let id = self.node.change_membership(changes);
        self.pending.add_change(id, request);
        self.dirty = true;
        request
    }

    /// Hands leadership to `target` (or the most up-to-date voter). Answered with
    /// [`Reply::Leader`] once the target leads.
    pub fn handle_transfer(&mut self, target: Option<NodeId>) -> RequestId {
        let request = self.next_request_id();
        let id = self.node.transfer_leadership(target);
        self.pending.add_transfer(id, request);
        self.dirty = true;
        request
    }

    /// Snapshots the state machine now, whatever the policy says. Answered with
    /// [`Reply::Snapshot`] and the snapshot's index once it is saved (a request made while a
    /// snapshot is being taken is answered with that one), or
    /// [`Error::SnapshotFailed`] if saving fails.
    pub fn handle_trigger_snapshot(&mut self) -> RequestId {
        let request = self.next_request_id();
        self.pending.add_snapshot(request);
        self.queue_view();
        self.dirty = true;
        request
    }

    /// Answers every waiting request with `error` (shutdown or a fatal stop). Report the
    /// completions of work still out first: their results still answer their clients.
    pub fn fail_all(&mut self, error: &Error) {
        self.pending.fail_all(error);
        let parked = std::mem::take(&mut self.apply.parked);
        let steps = std::mem::take(&mut self.apply.steps);
        let queued = steps.into_iter().filter_map(|step| match step {
            ApplyStep::Query { id, .. } => Some(id),
            _ => None,
        });
        let mut requests: Vec<RequestId> = parked
            .into_values()
            .flatten()
            .map(|(id, _)| id)
            .chain(queued)
            .collect();
        requests.sort_unstable();
        for request in requests {
            self.pending.answer(request, Err(error.clone()));
        }
    }

    // ----- apply queue -----

    /// Serves `query` once the state machine has applied `index`: right after the entries
    /// that reach it if they are already queued, else when they are.
    pub(crate) fn queue_query(&mut self, index: Index, request: RequestId, query: M::Query) {
        // A node may learn it holds a witness's data (elided payloads while it catches up
        // as a witness, a payload-less snapshot) after it accepted the read, so the check
        // of `handle_read` is repeated when the read is served.
        if self.refuse_if_witness(request) {
            return;
        }
        if index <= self.apply.queued_index {
            self.apply
                .steps
                .push(ApplyStep::Query { id: request, query });
        } else {
            self.apply
                .parked
                .entry(index)
                .or_default()
                .push((request, query));
        }
    }

    /// Moves parked queries whose index is now queued behind it.
    pub(crate) fn release_parked(&mut self) {
        let later = self.apply.parked.split_off(&(self.apply.queued_index + 1));
        let ready = std::mem::replace(&mut self.apply.parked, later);
        for (request, query) in ready.into_values().flatten() {
            // Entries up to the read's index are in the log now; see `queue_query`.
            if self.refuse_if_witness(request) {
                continue;
            }
            self.apply
                .steps
                .push(ApplyStep::Query { id: request, query });
        }
    }

    /// Asks the apply lane for a snapshot view, unless one is being taken or saved.
    pub(crate) fn queue_view(&mut self) {
        if self.snapshots.busy {
            return;
        }
        self.snapshots.busy = true;
        self.apply.since_snapshot_entries = 0;
        self.apply.since_snapshot_bytes = 0;
        self.apply.steps.push(ApplyStep::View);
    }

    /// Queues a snapshot save or chunk read.
    pub(crate) fn queue_snapshot_work(&mut self, kind: WorkKind<M, S, A>) {
        let seq = self.snapshots.next_seq;
        self.snapshots.next_seq += 1;
        self.snapshots.queue.push_back((seq, kind));
    }

    /// Saves a pending view once the core can describe it (applied and durable).
    pub(crate) fn maybe_save_snapshot(&mut self) {
        let Some((index, view, book)) = self.snapshots.view.take() else {
            return;
        };
        if index <= self.node.snapshot_meta().index {
            self.snapshots.busy = false;
            // Nothing newer to save: the current snapshot answers the requests.
            let current = self.node.snapshot_meta().index;
            self.pending.on_snapshot_outcome(Ok(current));
            return;
        }
        let Some(meta) = self.node.snapshot_meta_at(index) else {
            // Not durable yet (or not reported applied): try again after the next input.
            self.snapshots.view = Some((index, view, book));
            return;
        };
        self.queue_snapshot_work(WorkKind::Save { meta, view, book });
    }

    pub(crate) fn stop(&mut self, reason: String) {
        self.stop_with(reason, false);
    }

    /// Stops the node; `core` when the core itself halted.
    pub(crate) fn stop_with(&mut self, reason: String, core: bool) {
        tracing::error!(%reason, "node stopped on a fatal error");
        if self.fatal.is_none() {
            self.observations.push(|| Observation::Stopped {
                reason: reason.clone(),
                core,
            });
            self.fatal = Some(reason);
        }
    }
}

/// One answer out of [`Engine::poll_reply`]: the request it answers and its outcome.
pub type Answer<M> = (RequestId, Result<Reply<M>, Error>);
