//! One simulated server: a `raft_core::Node`, its disk, its state machine and the host
//! contract of `CORE-API.md` carried out exactly:
//!
//! * disk lane (persist, snapshot chunk, compaction, own snapshots) in order; a token is
//!   handed back only after the write is durable (one sync covers the queued batch);
//! * apply lane (apply, restore) in order, `on_applied` afterwards;
//! * messages sent at once;
//! * a read is served once the state machine has applied its index.
//!
//! Crash drops the node and the volatile part of the disk; restart rebuilds the node from
//! what the disk restores. Sabotage for the broken variants is applied here when the run
//! asks for it (see [`crate::bugs`]).

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use raft_core::{
    Action, Config, Entry, EntryPayload, Index, Message, MessageBody, Node, NodeId, PersistBatch,
    ProposalError, ProposalId, ReadConsistency, ReadError, ReadId, Role, SnapshotChunkWrite,
    SnapshotMeta, Term,
};
use raft_kv::Response;

use crate::bugs::Bug;
use crate::checker::{Fingerprint, SafetyChecker, ViolationKind};
use crate::disk::{Disk, Record};
use crate::kv::Replica;
use crate::linearizability::Key;
use crate::rng::SimRng;
use crate::workload::{ClientRequest, Reply, RequestBody};

/// Whether the process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Running.
    Up,
    /// Crashed; waiting for its restart.
    Down,
    /// Stopped for good: its disk is corrupt, or the core halted.
    Halted(String),
}

/// Something the simulator must schedule or record for a host.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send a message through the network.
    Send(Message),
    /// Answer a client.
    Reply {
        /// The client.
        client: usize,
        /// Its operation.
        op_serial: u64,
        /// The answer.
        reply: Reply,
    },
    /// The disk lane's current sync completes at this time.
    DiskDone(u64),
    /// The apply lane's current batch completes at this time.
    ApplyDone(u64),
    /// A command was applied at `index` with this response (for the exactly-once check).
    Applied {
        /// Log index.
        index: Index,
        /// Digest of the command bytes.
        digest: u64,
        /// The state machine's response.
        response: Response,
    },
    /// The node's role or term changed.
    Role {
        /// New role.
        role: Role,
        /// Its term.
        term: Term,
    },
    /// Crash now, before the core learns that the last sync completed.
    CrashNow,
    /// A human note for the trace (membership and transfer outcomes, halts).
    Note(String),
}

/// The simulator's view of time and randomness, lent to a host for one event.
pub struct Ctx<'a> {
    /// Virtual now.
    pub now_us: u64,
    /// Disk randomness (latencies, crash-before-notice).
    pub rng: &'a mut SimRng,
    /// Safety checks.
    pub checker: &'a mut SafetyChecker,
    /// What the host asks of the simulator.
    pub effects: &'a mut Vec<Effect>,
    /// Disk latency base.
    pub disk_latency_us: u64,
    /// Probability of crashing between a sync and its notice.
    pub crash_before_notice: f64,
    /// Whether readable trace notes are wanted (they cost formatting).
    pub notes: bool,
}

impl Ctx<'_> {
    fn note(&mut self, text: impl FnOnce() -> String) {
        if self.notes {
            self.effects.push(Effect::Note(text()));
        }
    }
}

#[derive(Clone, Debug)]
enum DiskOp {
    Persist(PersistBatch),
    Chunk(SnapshotChunkWrite),
    Compact(Index),
    SaveSnapshot { meta: SnapshotMeta, data: Bytes },
}

#[derive(Clone, Debug)]
enum ApplyOp {
    Entries(Vec<Entry>),
    Restore(SnapshotMeta),
}

/// What a pending read is for.
#[derive(Clone, Copy, Debug)]
struct ReadWaiter {
    client: usize,
    op_serial: u64,
    key: Key,
}

/// One server.
pub struct Host {
    id: NodeId,
    config: Config,
    /// The node while up.
    pub node: Option<Node>,
    /// Process state.
    pub liveness: Liveness,
    /// Bumped on every crash so that stale timers are ignored.
    pub incarnation: u64,
    /// Until when the process is paused, if it is.
    pub paused_until: Option<u64>,
    /// When the current pause began.
    pub paused_at_us: u64,
    /// Nominal tick interval of this node, after drift.
    pub tick_us: u64,
    /// The disk.
    pub disk: Disk,
    replica: Replica,
    /// Index the replica has applied (may run ahead of what the core was told).
    replica_applied: Index,
    /// The replica skipped elided (witness) payloads since its last full restore, so its
    /// state is incomplete and must not serve clients.
    replica_incomplete: bool,
    /// This node's data was ever a witness's (elided entries, a payload-less snapshot, or a
    /// configuration naming it a witness) since its disk was last wiped: an operator wipes
    /// such a node before adding it back.
    pub held_witness_data: bool,
    bug: Option<Bug>,
    consistency: ReadConsistency,
    disk_queue: VecDeque<DiskOp>,
    /// Ops written and waiting for the sync in flight.
    disk_in_flight: Vec<DiskOp>,
    apply_queue: VecDeque<ApplyOp>,
    apply_in_flight: Option<Index>,
    receiving: Option<(SnapshotMeta, Vec<u8>)>,
    proposals: BTreeMap<ProposalId, (usize, u64)>,
    awaiting_apply: BTreeMap<Index, Vec<(usize, u64)>>,
    /// Recent responses by index, for proposals whose outcome arrives after the apply.
    recent_responses: BTreeMap<Index, Response>,
    reads: BTreeMap<ReadId, ReadWaiter>,
    reads_waiting: Vec<(Index, ReadWaiter)>,
    actions: Vec<Action>,
}

/// Responses kept for late proposal outcomes.
const RECENT_RESPONSES_MAX: usize = 4096;

impl Host {
    /// A host whose disk holds `initial` and which starts `node` from it.
    pub fn new(
        config: Config,
        disk: Disk,
        bug: Option<Bug>,
        lease_reads: bool,
        tick_us: u64,
    ) -> Self {
        Host {
            id: config.id,
            config,
            node: None,
            liveness: Liveness::Down,
            incarnation: 0,
            paused_until: None,
            paused_at_us: 0,
            tick_us,
            disk,
            replica: Replica::new(),
            replica_applied: 0,
            replica_incomplete: false,
            held_witness_data: false,
            bug,
            consistency: if lease_reads {
                ReadConsistency::Lease
            } else {
                ReadConsistency::Linearizable
            },
            disk_queue: VecDeque::new(),
            disk_in_flight: Vec::new(),
            apply_queue: VecDeque::new(),
            apply_in_flight: None,
            receiving: None,
            proposals: BTreeMap::new(),
            awaiting_apply: BTreeMap::new(),
            recent_responses: BTreeMap::new(),
            reads: BTreeMap::new(),
            reads_waiting: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// True when the node runs and is not paused.
    pub fn is_running(&self) -> bool {
        self.liveness == Liveness::Up && self.paused_until.is_none()
    }

    /// Starts (or restarts) the node from its disk. Returns false when the disk is corrupt
    /// and the node stays halted.
    pub fn start(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let verify = self.bug != Some(Bug::SkipCorruptionCheck);
        let image = match self.disk.restore(verify) {
            Ok(image) => image,
            Err(error) => {
                self.liveness = Liveness::Halted(error.to_string());
                ctx.effects.push(Effect::Note(format!(
                    "n{} refuses to start: {error}",
                    self.id
                )));
                return false;
            }
        };
        let mut config = self.config.clone();
        config.seed = config.seed.wrapping_add(self.incarnation);
        let node = match Node::new(config, image.state.clone()) {
            Ok(node) => node,
            Err(error) => {
                let reason = format!("Node::new refused the restored state: {error}");
                ctx.checker
                    .report(ctx.now_us, ViolationKind::UnexpectedHalt, reason.clone());
                self.liveness = Liveness::Halted(reason);
                return false;
            }
        };
        self.replica = Replica::new();
        self.replica_incomplete = image.snapshot_data.is_empty() && image.state.snapshot.index > 0;
        if let Err(error) = self.replica.restore(&image.snapshot_data) {
            let reason = format!("snapshot on disk does not restore: {error}");
            ctx.checker
                .report(ctx.now_us, ViolationKind::UnexpectedHalt, reason.clone());
            self.liveness = Liveness::Halted(reason);
            return false;
        }
        self.replica_applied = image.state.snapshot.index;
        ctx.note(|| {
            format!(
                "n{} restored: snapshot {}@t{} ({} bytes), {} entries, hard state {:?}; node applied {} commit {}",
                self.id,
                image.state.snapshot.index,
                image.state.snapshot.term,
                image.snapshot_data.len(),
                image.state.entries.len(),
                image.state.hard_state,
                node.applied_index(),
                node.commit_index()
            )
        });
        ctx.checker
            .observe_restart(ctx.now_us, self.id, node.commit_index(), node.term());
        self.node = Some(node);
        self.liveness = Liveness::Up;
        self.drive(ctx);
        true
    }

    /// Power loss: the node and its volatile state are gone; part of the unsynced writes
    /// may survive, the last one possibly torn.
    pub fn crash(&mut self, rng: &mut SimRng, torn_write: f64) {
        if self.liveness != Liveness::Up {
            return;
        }
        self.node = None;
        self.liveness = Liveness::Down;
        self.incarnation += 1;
        self.paused_until = None;
        self.disk.crash(rng, torn_write);
        self.disk_queue.clear();
        self.disk_in_flight.clear();
        self.apply_queue.clear();
        self.apply_in_flight = None;
        self.receiving = None;
        self.proposals.clear();
        self.awaiting_apply.clear();
        self.recent_responses.clear();
        self.reads.clear();
        self.reads_waiting.clear();
    }

    /// One tick of the node's clock.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(node) = self.node.as_mut() {
            // The contract of `next_deadline`, checked on every tick of every run: a tick
            // before the deadline changes nothing anyone can see, so a host may skip it.
            let quiet =
                node.next_deadline().is_none_or(|due| due > 1) && !node.has_pending_actions();
            let (role, term) = (node.role(), node.term());
            node.tick();
            assert!(
                !quiet
                    || (!node.has_pending_actions() && node.role() == role && node.term() == term),
                "node {} acted on a tick before its next deadline",
                node.id()
            );
            self.drive(ctx);
        }
    }

    /// A message arrives.
    pub fn receive(&mut self, message: Message, ctx: &mut Ctx<'_>) {
        if let Some(node) = self.node.as_mut() {
            node.step(message);
            self.drive(ctx);
        }
    }

    /// A client request arrives.
    pub fn client_request(&mut self, request: ClientRequest, ctx: &mut Ctx<'_>) {
        let Some(node) = self.node.as_mut() else {
            return;
        };
        if node.membership().is_witness(self.id) || self.replica_incomplete {
            // A witness keeps no command payloads, so its state machine is incomplete (also
            // for a while after it stops being one): it serves no client.
            ctx.effects.push(Effect::Reply {
                client: request.client,
                op_serial: request.op_serial,
                reply: Reply::Redirect(node.leader()),
            });
            return;
        }
        match request.body {
            RequestBody::Write(bytes) => {
                let id = node.propose(bytes);
                self.proposals
                    .insert(id, (request.client, request.op_serial));
            }
            RequestBody::Read(key) => {
                let waiter = ReadWaiter {
                    client: request.client,
                    op_serial: request.op_serial,
                    key,
                };
                if self.bug == Some(Bug::StaleReads) {
                    // Broken variant: answer from local state without confirming leadership.
                    self.answer_read(waiter, ctx);
                    return;
                }
                let id = node.read(self.consistency);
                self.reads.insert(id, waiter);
            }
        }
        self.drive(ctx);
    }

    /// Asks the node (if it leads) for a membership change.
    pub fn change_membership(
        &mut self,
        changes: Vec<raft_core::MembershipChange>,
        ctx: &mut Ctx<'_>,
    ) {
        if let Some(node) = self.node.as_mut() {
            // The outcome is noted whatever its id: the simulator checks it, no client waits.
            let _change = node.change_membership(changes);
            self.drive(ctx);
        }
    }

    /// Asks the node (if it leads) to hand leadership to `target`.
    pub fn transfer_leadership(&mut self, target: NodeId, ctx: &mut Ctx<'_>) {
        if let Some(node) = self.node.as_mut() {
            // As above: the outcome is noted, no client waits on the id.
            let _transfer = node.transfer_leadership(Some(target));
            self.drive(ctx);
        }
    }

    /// Takes a snapshot of the state machine and saves it through the disk lane.
    pub fn take_snapshot(&mut self, ctx: &mut Ctx<'_>) {
        let Some(node) = self.node.as_ref() else {
            return;
        };
        // Only a state the core was told about can be described by it, and only with no
        // apply in flight is the replica exactly at that index.
        if self.apply_in_flight.is_some() || self.replica_applied <= node.snapshot_meta().index {
            return;
        }
        let Some(meta) = node.snapshot_meta_at(self.replica_applied) else {
            return;
        };
        let data = self.replica.snapshot_bytes();
        self.disk_queue
            .push_back(DiskOp::SaveSnapshot { meta, data });
        self.pump_disk(ctx);
    }

    /// Carries out every action the node has, then starts idle lanes.
    fn drive(&mut self, ctx: &mut Ctx<'_>) {
        let Some(node) = self.node.as_mut() else {
            return;
        };
        node.drain_actions(&mut self.actions);
        let actions = std::mem::take(&mut self.actions);
        for action in &actions {
            self.carry_out(action.clone(), ctx);
        }
        self.actions = actions;
        self.actions.clear();
        self.observe(ctx);
        self.pump_disk(ctx);
        self.pump_apply(ctx);
    }

    fn observe(&mut self, ctx: &mut Ctx<'_>) {
        let Some(node) = self.node.as_ref() else {
            return;
        };
        if node.membership().is_witness(self.id) {
            self.held_witness_data = true;
        }
        ctx.checker.observe_commit(
            ctx.now_us,
            self.id,
            node.term(),
            node.commit_index(),
            |index| {
                let term = node.entry_term(index)?;
                if index < node.first_index() {
                    return None;
                }
                let entry = node.entries(index, index + 1).first()?;
                Some((term, Fingerprint::of(&entry.payload)))
            },
        );
    }

    fn carry_out(&mut self, action: Action, ctx: &mut Ctx<'_>) {
        match action {
            Action::Persist(batch) => {
                self.observe_append(&batch, ctx);
                if self.bug == Some(Bug::AckBeforeDurable) {
                    // Broken variant: the token is reported before the write is durable.
                    if let Some(node) = self.node.as_mut() {
                        node.on_persisted(batch.token);
                    }
                }
                self.disk_queue.push_back(DiskOp::Persist(batch));
            }
            Action::WriteSnapshotChunk(chunk) => self.disk_queue.push_back(DiskOp::Chunk(*chunk)),
            Action::CompactLog { through_index } => {
                self.disk_queue.push_back(DiskOp::Compact(through_index))
            }
            Action::Send(message) => self.send(message, ctx),
            Action::SendSnapshotChunk {
                to,
                term,
                meta,
                offset,
                max_bytes,
            } => self.send_snapshot_chunk(to, term, *meta, offset, max_bytes, ctx),
            Action::Apply(entries) => self.apply_queue.push_back(ApplyOp::Entries(entries)),
            Action::RestoreStateMachine { meta } => {
                self.apply_queue.push_back(ApplyOp::Restore(*meta))
            }
            Action::ProposalOutcome { id, result } => self.proposal_outcome(id, result, ctx),
            Action::ReadOutcome { id, result } => self.read_outcome(id, result, ctx),
            Action::MembershipOutcome { id, result } => ctx.effects.push(Effect::Note(format!(
                "n{} membership change {} -> {}",
                self.id,
                id.0,
                match result {
                    Ok(m) => m.describe(),
                    Err(e) => e.to_string(),
                }
            ))),
            Action::TransferOutcome { target, result, .. } => ctx.effects.push(Effect::Note(
                format!("n{} transfer to n{target}: {result:?}", self.id),
            )),
            Action::RoleChanged { role, term, .. } => self.role_changed(role, term, ctx),
            Action::Halted { reason } => {
                ctx.effects
                    .push(Effect::Note(format!("n{} halted: {reason}", self.id)));
                ctx.checker.report(
                    ctx.now_us,
                    ViolationKind::UnexpectedHalt,
                    format!("n{} halted itself: {reason}", self.id),
                );
                self.liveness = Liveness::Halted(reason);
                self.node = None;
            }
        }
    }

    fn observe_append(&self, batch: &PersistBatch, ctx: &mut Ctx<'_>) {
        let (Some(node), Some(first)) = (self.node.as_ref(), batch.entries.first()) else {
            return;
        };
        let prev_term = node.entry_term(first.index - 1);
        ctx.checker
            .observe_append(ctx.now_us, self.id, prev_term, &batch.entries);
    }

    fn role_changed(&mut self, role: Role, term: Term, ctx: &mut Ctx<'_>) {
        ctx.effects.push(Effect::Role { role, term });
        let Some(node) = self.node.as_ref() else {
            return;
        };
        if role == Role::Leader {
            ctx.checker.observe_leader(ctx.now_us, self.id, term);
            let elided = node
                .entries(node.first_index(), node.last_index() + 1)
                .iter()
                .find(|e| e.payload == EntryPayload::Elided)
                .map(|e| e.index);
            if let Some(index) = elided {
                ctx.checker.report(
                    ctx.now_us,
                    ViolationKind::LeaderCompleteness,
                    format!(
                        "n{} leads term {term} but holds only an elided payload at index {index} \
                         (it was a witness once); its log and state machine are incomplete",
                        self.id
                    ),
                );
            }
            ctx.checker.observe_new_leader(
                ctx.now_us,
                self.id,
                term,
                node.last_index(),
                node.first_index(),
                |index| node.entry_term(index),
            );
        }
    }

    fn send(&mut self, message: Message, ctx: &mut Ctx<'_>) {
        match &message.body {
            MessageBody::VoteResponse {
                pre_vote: false,
                granted: true,
            } => ctx
                .checker
                .observe_vote(ctx.now_us, self.id, message.term, message.to),
            MessageBody::VoteRequest {
                pre_vote: false, ..
            }
            | MessageBody::AppendResponse { success: true, .. } => {
                ctx.checker.promise(self.id, message.term)
            }
            _ => {}
        }
        ctx.effects.push(Effect::Send(message));
    }

    fn send_snapshot_chunk(
        &mut self,
        to: NodeId,
        term: Term,
        meta: SnapshotMeta,
        offset: u64,
        max_bytes: u64,
        ctx: &mut Ctx<'_>,
    ) {
        let Some((current, data)) = self.disk.current_snapshot() else {
            return;
        };
        if *current != meta {
            return;
        }
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(max_bytes as usize).min(data.len());
        let message = Message {
            from: self.id,
            to,
            term,
            body: MessageBody::SnapshotChunk {
                meta: Box::new(meta),
                offset,
                data: data.slice(start..end),
                done: end == data.len(),
            },
        };
        ctx.effects.push(Effect::Send(message));
    }

    fn proposal_outcome(
        &mut self,
        id: ProposalId,
        result: Result<Index, ProposalError>,
        ctx: &mut Ctx<'_>,
    ) {
        ctx.note(|| format!("n{} proposal {} outcome {result:?}", self.id, id.0));
        let Some((client, op_serial)) = self.proposals.remove(&id) else {
            return;
        };
        let reply = match result {
            Ok(index) => {
                if let Some(response) = self.recent_responses.get(&index) {
                    Reply::Write(response.clone())
                } else {
                    self.awaiting_apply
                        .entry(index)
                        .or_default()
                        .push((client, op_serial));
                    return;
                }
            }
            Err(ProposalError::NotLeader { leader_hint }) => Reply::Redirect(leader_hint),
            Err(_) => Reply::Retry,
        };
        ctx.effects.push(Effect::Reply {
            client,
            op_serial,
            reply,
        });
    }

    fn read_outcome(&mut self, id: ReadId, result: Result<Index, ReadError>, ctx: &mut Ctx<'_>) {
        let role = self.node.as_ref().map(|n| (n.role(), n.term()));
        ctx.note(|| {
            format!(
                "n{} read {} outcome {result:?} as {role:?}, applied {}",
                self.id, id.0, self.replica_applied
            )
        });
        let Some(waiter) = self.reads.remove(&id) else {
            return;
        };
        match result {
            Ok(index) if index <= self.replica_applied => self.answer_read(waiter, ctx),
            Ok(index) => self.reads_waiting.push((index, waiter)),
            Err(ReadError::NotLeader { leader_hint }) => ctx.effects.push(Effect::Reply {
                client: waiter.client,
                op_serial: waiter.op_serial,
                reply: Reply::Redirect(leader_hint),
            }),
            Err(_) => ctx.effects.push(Effect::Reply {
                client: waiter.client,
                op_serial: waiter.op_serial,
                reply: Reply::Retry,
            }),
        }
    }

    fn answer_read(&self, waiter: ReadWaiter, ctx: &mut Ctx<'_>) {
        ctx.note(|| {
            format!(
                "n{} answers client {} op {}: key {} = {:?} at applied {}",
                self.id,
                waiter.client,
                waiter.op_serial,
                waiter.key,
                self.replica.get(waiter.key),
                self.replica_applied
            )
        });
        let reply = if self.replica_incomplete {
            Reply::Redirect(self.node.as_ref().and_then(|n| n.leader()))
        } else {
            Reply::Read(self.replica.get(waiter.key))
        };
        ctx.effects.push(Effect::Reply {
            client: waiter.client,
            op_serial: waiter.op_serial,
            reply,
        });
    }

    /// Starts the next group of disk writes if the disk is idle.
    fn pump_disk(&mut self, ctx: &mut Ctx<'_>) {
        if !self.disk_in_flight.is_empty() || self.liveness != Liveness::Up {
            return;
        }
        while let Some(op) = self.disk_queue.pop_front() {
            match &op {
                DiskOp::Compact(through) => {
                    // Dropping covered entries needs no sync and reports nothing.
                    self.disk.write(Record::Compact(*through));
                    continue;
                }
                DiskOp::Persist(batch) => {
                    if let Some(from) = batch.truncate_from {
                        self.disk.write(Record::Truncate(from));
                    }
                    if !batch.entries.is_empty() {
                        self.disk.write(Record::Entries(batch.entries.clone()));
                    }
                    if let Some(hard_state) = batch.hard_state {
                        self.disk.write(Record::HardState(hard_state));
                    }
                }
                DiskOp::Chunk(chunk) => self.write_chunk(chunk),
                DiskOp::SaveSnapshot { meta, data } => self.disk.write(Record::Snapshot {
                    meta: meta.clone(),
                    data: data.clone(),
                }),
            }
            self.disk_in_flight.push(op);
        }
        if !self.disk_in_flight.is_empty() {
            let latency = ctx
                .rng
                .range(ctx.disk_latency_us / 2, ctx.disk_latency_us * 2 + 1);
            ctx.effects.push(Effect::DiskDone(ctx.now_us + latency));
        }
    }

    fn write_chunk(&mut self, chunk: &SnapshotChunkWrite) {
        if chunk.offset == 0
            || self
                .receiving
                .as_ref()
                .is_none_or(|(meta, _)| *meta != chunk.meta)
        {
            self.receiving = Some((chunk.meta.clone(), Vec::new()));
        }
        if let Some((_, buffer)) = self.receiving.as_mut() {
            buffer.truncate(chunk.offset as usize);
            buffer.extend_from_slice(&chunk.data);
        }
        if chunk.done
            && let Some((meta, buffer)) = self.receiving.take()
        {
            self.disk.write(Record::Snapshot {
                meta: meta.clone(),
                data: Bytes::from(buffer),
            });
            self.disk.write(Record::InstallLog(meta));
        }
    }

    /// The sync in flight completed: everything written is durable; tell the core.
    pub fn disk_done(&mut self, ctx: &mut Ctx<'_>) {
        if self.node.is_none() || self.disk_in_flight.is_empty() {
            return;
        }
        self.disk.sync();
        if ctx.rng.chance(ctx.crash_before_notice) {
            ctx.effects.push(Effect::CrashNow);
            return;
        }
        let done = std::mem::take(&mut self.disk_in_flight);
        let ack_early = self.bug == Some(Bug::AckBeforeDurable);
        if let Some(node) = self.node.as_mut() {
            for op in done {
                match op {
                    DiskOp::Persist(batch) if !ack_early => node.on_persisted(batch.token),
                    DiskOp::Persist(_) | DiskOp::Compact(_) => {}
                    DiskOp::Chunk(chunk) => node.on_persisted(chunk.token),
                    DiskOp::SaveSnapshot { meta, .. } => node.on_snapshot_saved(meta),
                }
            }
        }
        self.drive(ctx);
    }

    /// Starts the next apply-lane action if the lane is idle.
    fn pump_apply(&mut self, ctx: &mut Ctx<'_>) {
        if self.apply_in_flight.is_some() || self.liveness != Liveness::Up {
            return;
        }
        let Some(op) = self.apply_queue.pop_front() else {
            return;
        };
        let through = match op {
            ApplyOp::Entries(entries) => {
                ctx.note(|| {
                    let first = entries.first().map_or(0, |e| e.index);
                    let last = entries.last().map_or(0, |e| e.index);
                    format!("n{} applies {first}..={last}", self.id)
                });
                self.apply_entries(&entries, ctx)
            }
            ApplyOp::Restore(meta) => self.restore_state_machine(&meta, ctx),
        };
        self.apply_in_flight = Some(through);
        let latency = ctx.rng.range(0, 200);
        ctx.effects.push(Effect::ApplyDone(ctx.now_us + latency));
    }

    fn apply_entries(&mut self, entries: &[Entry], ctx: &mut Ctx<'_>) -> Index {
        let mut through = self.replica_applied;
        for entry in entries {
            if entry.index != through + 1 {
                ctx.checker.report(
                    ctx.now_us,
                    ViolationKind::StateMachineSafety,
                    format!(
                        "n{} asked to apply entry {} after applying through {through}: entries \
                         skipped or applied twice",
                        self.id, entry.index
                    ),
                );
            }
            ctx.checker.observe_apply(
                ctx.now_us,
                self.id,
                entry.index,
                entry.term,
                Fingerprint::of(&entry.payload),
            );
            if entry.payload == EntryPayload::Elided {
                self.replica_incomplete = true;
                self.held_witness_data = true;
            }
            if let EntryPayload::Command(bytes) = &entry.payload {
                // A witness (or a node becoming one) may get a mix of elided and full
                // payloads around the configuration change; its state machine never serves.
                let full_member = self.node.as_ref().is_some_and(|n| {
                    n.membership().contains(self.id) && !n.membership().is_witness(self.id)
                });
                if self.replica_incomplete && full_member {
                    ctx.checker.report(
                        ctx.now_us,
                        ViolationKind::StateMachineSafety,
                        format!(
                            "n{} applies command {} onto a state machine that skipped elided \
                             payloads (it was a witness and got full entries again without a \
                             snapshot)",
                            self.id, entry.index
                        ),
                    );
                }
                match self.replica.apply(entry.index, bytes) {
                    Some(response) => {
                        ctx.note(|| format!("n{} applied {}: {response:?}", self.id, entry.index));
                        ctx.effects.push(Effect::Applied {
                            index: entry.index,
                            digest: crate::checker::fnv1a(bytes),
                            response: response.clone(),
                        });
                        self.remember_response(entry.index, response);
                    }
                    None => ctx.checker.report(
                        ctx.now_us,
                        ViolationKind::StateMachineSafety,
                        format!(
                            "n{} applied undecodable command at {}",
                            self.id, entry.index
                        ),
                    ),
                }
            }
            through = entry.index;
        }
        self.replica_applied = through;
        through
    }

    fn remember_response(&mut self, index: Index, response: Response) {
        self.recent_responses.insert(index, response);
        while self.recent_responses.len() > RECENT_RESPONSES_MAX {
            self.recent_responses.pop_first();
        }
    }

    fn restore_state_machine(&mut self, meta: &SnapshotMeta, ctx: &mut Ctx<'_>) -> Index {
        ctx.note(|| {
            format!(
                "n{} restores its state machine from snapshot {}",
                self.id, meta.index
            )
        });
        let data = match self.disk.current_snapshot() {
            Some((current, data)) if current == meta => data.clone(),
            _ => {
                ctx.checker.report(
                    ctx.now_us,
                    ViolationKind::StateMachineSafety,
                    format!(
                        "n{} asked to restore snapshot {} it does not hold",
                        self.id, meta.index
                    ),
                );
                return self.replica_applied;
            }
        };
        if let Err(error) = self.replica.restore(&data) {
            ctx.checker.report(
                ctx.now_us,
                ViolationKind::StateMachineSafety,
                format!(
                    "n{} cannot restore snapshot {}: {error}",
                    self.id, meta.index
                ),
            );
            return self.replica_applied;
        }
        self.replica_applied = meta.index;
        // A snapshot without bytes is a witness's (the leader sends no payloads to a
        // present or future witness): the state machine it leaves is not the cluster's.
        self.replica_incomplete = data.is_empty() && meta.index > 0;
        self.held_witness_data |= self.replica_incomplete;
        self.recent_responses.clear();
        meta.index
    }

    /// The apply in flight completed: report it and answer whoever waited for it.
    pub fn apply_done(&mut self, ctx: &mut Ctx<'_>) {
        let Some(through) = self.apply_in_flight.take() else {
            return;
        };
        let Some(node) = self.node.as_mut() else {
            return;
        };
        node.on_applied(through);
        let ready: Vec<Index> = self
            .awaiting_apply
            .range(..=through)
            .map(|(i, _)| *i)
            .collect();
        for index in ready {
            let waiters = self.awaiting_apply.remove(&index).unwrap_or_default();
            let reply = match self.recent_responses.get(&index) {
                Some(response) => Reply::Write(response.clone()),
                // Covered by a restored snapshot: the outcome cannot be told.
                None => Reply::Retry,
            };
            for (client, op_serial) in waiters {
                ctx.effects.push(Effect::Reply {
                    client,
                    op_serial,
                    reply: reply.clone(),
                });
            }
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .reads_waiting
            .drain(..)
            .partition(|(index, _)| *index <= through);
        self.reads_waiting = waiting;
        for (_, waiter) in ready {
            self.answer_read(waiter, ctx);
        }
        self.drive(ctx);
    }
}
