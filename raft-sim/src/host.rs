//! One simulated server: the production host engine ([`raft_host::Engine`]) around a real
//! `raft_core::Node`, the workload's state machine and a real store ([`SimStore`]:
//! `MemStorage`, or `FileStorage` on a simulated disk). This file is only the driver: it
//! feeds the engine time, messages, client requests and the completions of its work, and
//! carries the work out at virtual times with simulated latencies, crashes in between.
//! Every rule of the host contract (group commit, token reporting, apply order, joining
//! outcomes with results, snapshots) is the engine's, so a seed finds bugs in the code a
//! user ships. What the checker needs to see comes from the engine's observation feed
//! (`watch.rs`).
//!
//! Timing of the lanes: a disk work's writes reach the store when the engine hands it out
//! and its sync runs when the simulated disk finishes, so a crash in between loses what a
//! real disk may lose; apply and snapshot work runs when it finishes. Completions are
//! reported in order per lane; a crash drops the engine with everything out, so a
//! completion of an earlier life is never reported to a later one.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use raft_core::{Config, Index, MembershipChange, Message, Node, NodeId, StateMachine, Storage};
use raft_host::{
    AddressBook, ApplyWork, DiskWritten, Engine, EngineConfig, Init, LeaseGrant, Proposal,
    RequestId, SnapshotPolicy, SnapshotWork,
};
use raft_storage_file::{FaultInjector, FileStorage, Options, SimFaults, SimFs};

use crate::bugs::Bug;
use crate::checker::{SafetyChecker, ViolationKind};
use crate::profile::TICK_US;
use crate::rng::SimRng;
use crate::store::{SimStore, StorageKind};
use crate::workload::{ClientRequest, Reply, ReplyOf, RequestBody, SimMachine};

/// The engine every simulated node of state machine `M` runs.
pub type SimEngine<M> = Engine<M, SimStore, ()>;

/// Where a file store lives on its node's simulated disk.
const STORE_DIR: &str = "/raft";
/// Segments of 256 KiB: long runs roll over to new segments. Each is preallocated, which
/// SimFs holds in memory and copies on crashes and restarts: 1 MiB ones cost the file sweep
/// ~30% of its seeds per minute.
const SEGMENT_BYTES_MAX: u64 = 256 << 10;

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

/// Something the simulator must schedule or record for a host of a state machine whose
/// command responses are `R` and query answers `Q`.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect<R, Q> {
    /// Send a message through the network.
    Send(Message),
    /// Answer a client.
    Reply {
        /// The client.
        client: usize,
        /// Its operation.
        op_serial: u64,
        /// The answer.
        reply: Reply<R, Q>,
    },
    /// The oldest disk work out finishes at this time.
    DiskDone(u64),
    /// The oldest apply work out finishes at this time.
    ApplyDone(u64),
    /// The oldest snapshot work out finishes at this time.
    SnapshotDone(u64),
    /// A command was applied at `index` with this response (for the exactly-once check).
    Applied {
        /// Log index.
        index: Index,
        /// Digest of the command bytes as the client encoded them.
        digest: u64,
        /// The state machine's response.
        response: R,
    },
    /// The node's role or term changed.
    Role {
        /// New role.
        role: raft_core::Role,
        /// Its term.
        term: raft_core::Term,
    },
    /// Crash now (between a sync and its notice, or after a fatal storage error).
    CrashNow(String),
    /// A human note for the trace (membership and transfer outcomes, halts).
    Note(String),
}

/// The effects of a host of `M`.
pub type EffectOf<M> = Effect<<M as StateMachine>::Response, <M as StateMachine>::QueryResponse>;

/// The simulator's view of time and randomness, lent to a host of `M` for one event.
pub struct Ctx<'a, M: StateMachine> {
    /// Virtual now.
    pub now_us: u64,
    /// Disk randomness (latencies, crash-before-notice, file-store faults).
    pub rng: &'a mut SimRng,
    /// Safety checks.
    pub checker: &'a mut SafetyChecker,
    /// What the host asks of the simulator.
    pub effects: &'a mut Vec<EffectOf<M>>,
    /// Makes an empty state machine (for every start).
    pub machine: &'a dyn Fn() -> M,
    /// Disk latency base.
    pub disk_latency_us: u64,
    /// Probability of crashing between a sync and its notice.
    pub crash_before_notice: f64,
    /// Probability that a sync fails, and that a write finds the disk full (file store).
    pub disk_error: f64,
    /// Whether readable trace notes are wanted (they cost formatting).
    pub notes: bool,
}

impl<M: StateMachine> Ctx<'_, M> {
    pub(crate) fn note(&mut self, text: impl FnOnce() -> String) {
        if self.notes {
            self.effects.push(Effect::Note(text()));
        }
    }
}

/// Who waits for an engine answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiter {
    pub(crate) client: usize,
    pub(crate) op_serial: u64,
}

/// One server running state machine `M`.
pub struct Host<M: StateMachine> {
    pub(crate) id: NodeId,
    config: Config,
    /// Founding members bootstrap from this membership; others join empty.
    founders: Option<AddressBook<()>>,
    pub(crate) kind: StorageKind,
    pub(crate) engine: Option<SimEngine<M>>,
    pub(crate) store: Mutex<SimStore>,
    /// The node's simulated disk (file stores); survives crashes.
    fs: Option<SimFs>,
    fs_seed: u64,
    /// Faults the file store injects on demand (a full disk, a failing sync).
    faults: FaultInjector,
    pub(crate) sm: M,
    /// Process state.
    pub liveness: Liveness,
    /// Bumped on every crash so that stale timers and completions are ignored.
    pub incarnation: u64,
    /// Until when the process is paused, if it is.
    pub paused_until: Option<u64>,
    /// When the current pause began.
    pub paused_at_us: u64,
    /// Nominal tick interval of this node, after drift.
    pub tick_us: u64,
    /// The node's own clock, in ticks (drift, jumps and pauses move it).
    local_ticks: u64,
    pub(crate) bug: Option<Bug>,
    lease_reads: bool,
    disk_out: VecDeque<DiskWritten<SimStore>>,
    disk_free_at_us: u64,
    apply_out: VecDeque<ApplyWork<M, ()>>,
    apply_free_at_us: u64,
    snapshot_out: VecDeque<SnapshotWork<M, SimStore, ()>>,
    snapshot_free_at_us: u64,
    pub(crate) waiters: BTreeMap<RequestId, Waiter>,
    /// A crash found writes not yet synced, or the disk filled up (see
    /// `RunReport::storage_sensitive`).
    pub(crate) diverges: bool,
    /// The memory store was "corrupted": the next start detects it (as `FileStorage`
    /// detects a flipped bit) and refuses.
    corrupt: bool,
    /// Highest index the state machine applied (or restored) in this life.
    pub(crate) applied: Index,
    /// The engine's lease grant as published in the last drive (before its messages and
    /// answers left), for lease reads served beside the engine as the runtime serves them.
    lease: Option<LeaseGrant>,
    /// The state machine's applied index as its last apply work left it.
    sm_applied: Index,
    /// The state machine skipped elided (witness) payloads since its last full restore.
    pub(crate) replica_incomplete: bool,
    /// This node's data was ever a witness's since its disk was last wiped: an operator
    /// wipes such a node before adding it back.
    pub held_witness_data: bool,
}

impl<M: SimMachine> Host<M> {
    /// A host that has never run, with `machine` (empty) as its state machine. `founders`
    /// is the founding membership for a founding member, `None` for a spare that joins
    /// later.
    #[allow(clippy::too_many_arguments)] // One constructor call, in `sim.rs`.
    pub fn new(
        config: Config,
        founders: Option<AddressBook<()>>,
        kind: StorageKind,
        fs_seed: u64,
        machine: M,
        bug: Option<Bug>,
        lease_reads: bool,
        tick_us: u64,
    ) -> Self {
        let mut host = Host {
            id: config.id,
            config,
            founders,
            kind,
            engine: None,
            store: Mutex::new(SimStore::Closed),
            fs: None,
            fs_seed,
            faults: FaultInjector::new(),
            sm: machine,
            liveness: Liveness::Down,
            incarnation: 0,
            paused_until: None,
            paused_at_us: 0,
            tick_us,
            local_ticks: 0,
            bug,
            lease_reads,
            disk_out: VecDeque::new(),
            disk_free_at_us: 0,
            apply_out: VecDeque::new(),
            apply_free_at_us: 0,
            snapshot_out: VecDeque::new(),
            snapshot_free_at_us: 0,
            waiters: BTreeMap::new(),
            diverges: false,
            corrupt: false,
            applied: 0,
            lease: None,
            sm_applied: 0,
            replica_incomplete: false,
            held_witness_data: false,
        };
        host.format_disk();
        host
    }

    /// A fresh, empty disk.
    fn format_disk(&mut self) {
        match self.kind {
            StorageKind::Memory => *self.store_mut() = SimStore::memory(),
            StorageKind::File => {
                let fs = SimFs::new(self.fs_seed);
                self.fs = Some(fs);
                *self.store_mut() = SimStore::Closed;
            }
        }
        self.corrupt = false;
    }

    pub(crate) fn store_mut(&mut self) -> &mut SimStore {
        // The lock is only ever taken on this thread and never across a panic that is
        // caught, so it cannot be poisoned; recover the data if it ever were.
        self.store.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The core node while the process runs.
    pub fn node(&self) -> Option<&Node> {
        self.engine.as_ref().map(|e| e.node())
    }

    /// The state machine, when it holds the cluster's state (not a witness's partial one).
    pub fn machine(&self) -> Option<&M> {
        (!self.replica_incomplete).then_some(&self.sm)
    }

    /// The index the state machine has applied (or restored) through in this life.
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// True when the node runs and is not paused.
    pub fn is_running(&self) -> bool {
        self.liveness == Liveness::Up && self.paused_until.is_none()
    }

    fn local_now(&self) -> Duration {
        Duration::from_micros(self.local_ticks * TICK_US)
    }

    /// Sets the faults the file store's disk injects on its own (torn writes on a crash).
    pub fn set_torn_write(&mut self, torn_write: f64) {
        if let Some(fs) = &self.fs {
            fs.set_faults(SimFaults {
                torn_write,
                ..SimFaults::default()
            });
        }
    }

    /// Starts (or restarts) the node from its store. Returns false when the store does not
    /// open (corrupt) and the node stays halted.
    pub fn start(&mut self, ctx: &mut Ctx<'_, M>) -> bool {
        if let Err(reason) = self.open_store() {
            self.liveness = Liveness::Halted(reason.clone());
            ctx.effects.push(Effect::Note(format!(
                "n{} refuses to start: {reason}",
                self.id
            )));
            return false;
        }
        let mut sm = (ctx.machine)();
        let init = match &self.founders {
            Some(members) => Init::Bootstrap {
                members: members.clone(),
            },
            None => Init::Join {
                peers: AddressBook::new(),
            },
        };
        let startup = match raft_host::restore(self.id, &self.store, &mut sm, &init) {
            Ok(startup) => startup,
            Err(error) => return self.refuse(ctx, format!("restore failed: {error}")),
        };
        let mut config = self.config.clone();
        config.seed = config.seed.wrapping_add(self.incarnation);
        let engine_config = EngineConfig {
            raft: config,
            tick_interval: Duration::from_micros(TICK_US),
            // Snapshots come from the fault schedule, as the checks were tuned for.
            snapshot_policy: SnapshotPolicy::disabled(),
        };
        let restored_index = startup.restored.snapshot.index;
        // A snapshot without bytes is a witness's: the state it leaves is not the cluster's.
        let incomplete = restored_index > 0 && !self.snapshot_has_state();
        let mut engine = match SimEngine::new(engine_config, startup, self.local_now()) {
            Ok(engine) => engine,
            Err(error) => {
                return self.refuse(
                    ctx,
                    format!("the engine refused the restored state: {error}"),
                );
            }
        };
        engine.set_observing(true);
        if let Some(bug) = self.bug.and_then(Bug::engine_bug) {
            engine.plant(bug);
        }
        self.sm = sm;
        self.applied = restored_index;
        self.sm_applied = restored_index;
        self.lease = None;
        self.replica_incomplete = incomplete;
        let node = engine.node();
        ctx.note(|| {
            format!(
                "n{} restored: snapshot {}, log {}..={}, term {}, commit {}",
                self.id,
                node.snapshot_meta().index,
                node.first_index(),
                node.last_index(),
                node.term(),
                node.commit_index()
            )
        });
        ctx.checker
            .observe_restart(ctx.now_us, self.id, node.commit_index(), node.term());
        crate::watch::restored(self.id, node, ctx);
        self.engine = Some(engine);
        self.liveness = Liveness::Up;
        self.drive(ctx);
        true
    }

    /// True if the store's snapshot carries state (a witness's carries none).
    fn snapshot_has_state(&mut self) -> bool {
        use std::io::Read as _;
        let Ok(Some((_, mut reader))) = self.store_mut().open_snapshot() else {
            return false;
        };
        let mut byte = [0u8; 1];
        reader.read(&mut byte).is_ok_and(|n| n > 0)
    }

    fn refuse(&mut self, ctx: &mut Ctx<'_, M>, reason: String) -> bool {
        ctx.checker
            .report(ctx.now_us, ViolationKind::UnexpectedHalt, reason.clone());
        self.liveness = Liveness::Halted(reason);
        false
    }

    /// Opens the store after a crash; an error means the disk is corrupt.
    fn open_store(&mut self) -> Result<(), String> {
        if self.corrupt {
            return Err("the store fails its checksums: the disk is corrupt".into());
        }
        let Some(fs) = self.fs.clone() else {
            return Ok(());
        };
        let options = Options {
            segment_bytes_max: SEGMENT_BYTES_MAX,
            // One thread: recovery stays deterministic.
            recovery_threads: Some(0),
            faults: self.faults.clone(),
            ..Options::default()
        };
        if let Some(bug) = self.bug.and_then(Bug::storage_bug) {
            options.faults.plant(bug);
        }
        let store = FileStorage::open_on(fs, STORE_DIR, options).map_err(|e| e.to_string())?;
        *self.store_mut() = SimStore::File(store);
        Ok(())
    }

    /// Power loss: the engine and everything it had out are gone; the store keeps what was
    /// synced plus, perhaps, part of what was not. `pick` and `torn` are drawn by the
    /// caller whatever the store, so both kinds consume the same randomness.
    pub fn crash(&mut self, pick: u64, torn: bool) {
        if self.liveness != Liveness::Up {
            return;
        }
        self.engine = None;
        self.lease = None;
        self.liveness = Liveness::Down;
        self.incarnation += 1;
        self.paused_until = None;
        self.disk_out.clear();
        self.apply_out.clear();
        self.snapshot_out.clear();
        self.waiters.clear();
        self.diverges |= self.store_mut().has_unsynced_writes();
        match self.store_mut() {
            SimStore::Memory(store, _) => {
                let unsynced = store.unsynced_writes() as u64;
                let mut keep = pick % (unsynced + 1);
                if torn {
                    // A torn last write fails its checksum and is dropped on restart.
                    keep = keep.saturating_sub(1);
                }
                store.crash_keeping(keep as usize);
            }
            store => {
                *store = SimStore::Closed;
                if let Some(fs) = &self.fs {
                    fs.crash();
                }
            }
        }
    }

    /// Damages durable data (a bit flip at rest). Returns false when there is nothing
    /// durable to damage.
    pub fn corrupt(&mut self, pick: u64) -> bool {
        let Some(fs) = &self.fs else {
            // MemStorage has no checksums to fail: model the outcome, a store that
            // refuses to open.
            self.corrupt = true;
            return true;
        };
        // A bit at rest anywhere in the store's durable bytes, every byte equally likely
        // (so mostly in the log, as on a real disk); not in the zeros reserved past a
        // segment's last record, which hold no data.
        let files: Vec<_> = fs
            .durable_written_files(std::path::Path::new(STORE_DIR))
            .into_iter()
            .filter(|(path, len)| {
                *len > 0
                    && path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy() != "LOCK")
            })
            .collect();
        let total: u64 = files.iter().map(|(_, len)| len).sum();
        if total == 0 {
            return false;
        }
        let mut at = pick % total;
        for (path, len) in &files {
            if at < *len {
                let bit = (pick >> 56) % 8;
                return fs.flip_durable_bit(path, (bit << 32) | at);
            }
            at -= len;
        }
        false
    }

    /// An operator wipes the node's disk (it joins again as a new, empty node).
    pub fn wipe(&mut self, pick: u64) {
        self.crash(pick, false);
        self.founders = None;
        self.fs_seed = self.fs_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.format_disk();
        if self.liveness != Liveness::Up {
            self.liveness = Liveness::Down;
        }
    }

    // ----- inputs -----

    /// One tick of the node's clock.
    pub fn tick(&mut self, ctx: &mut Ctx<'_, M>) {
        self.advance_clock(1, ctx);
    }

    /// The node's clock moves `ticks` ahead (a tick, a jump, ticks missed in a pause).
    pub fn advance_clock(&mut self, ticks: u64, ctx: &mut Ctx<'_, M>) {
        self.local_ticks += ticks;
        let now = self.local_now();
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_timeout(now);
            self.drive(ctx);
        }
    }

    /// A message arrives.
    pub fn receive(&mut self, message: Message, ctx: &mut Ctx<'_, M>) {
        if let Some(engine) = self.engine.as_mut() {
            crate::watch::received(self.id, &message, engine.node(), ctx);
            engine.handle_message(message);
            self.drive(ctx);
        }
    }

    /// A client request arrives.
    pub fn client_request(&mut self, request: ClientRequest<M::Query>, ctx: &mut Ctx<'_, M>) {
        if self.engine.is_none() {
            return;
        }
        let waiter = Waiter {
            client: request.client,
            op_serial: request.op_serial,
        };
        if let RequestBody::Read(query) = &request.body
            && self.lease_reads
            && self.serve_from_lease(query, &waiter, ctx)
        {
            return;
        }
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let id = match request.body {
            RequestBody::Write(bytes) => {
                let proposal = postcard::from_bytes::<M::Command>(&bytes)
                    .ok()
                    .and_then(|command| Proposal::command(&command).ok());
                let Some(proposal) = proposal else {
                    // The workload only sends commands it encoded itself.
                    ctx.effects.push(Effect::Reply {
                        client: waiter.client,
                        op_serial: waiter.op_serial,
                        reply: Reply::Retry,
                    });
                    return;
                };
                engine.handle_propose(proposal)
            }
            RequestBody::Read(query) => {
                let consistency = if self.lease_reads {
                    raft_host::Consistency::Lease
                } else {
                    raft_host::Consistency::Linearizable
                };
                engine.handle_read(query, consistency)
            }
        };
        self.waiters.insert(id, waiter);
        self.drive(ctx);
    }

    /// Answers a lease read from the state machine at once when the grant published in the
    /// last drive allows it at this node's clock, as the runtime's handle does; false when
    /// the read must go through the engine.
    fn serve_from_lease(
        &mut self,
        query: &M::Query,
        waiter: &Waiter,
        ctx: &mut Ctx<'_, M>,
    ) -> bool {
        let now = self.local_now();
        let servable = !self.replica_incomplete
            && LeaseGrant::serves(self.lease.as_ref(), now, self.sm_applied);
        if !servable {
            return false;
        }
        let reply = Reply::Read(self.sm.query(query));
        self.reply_to(waiter, reply, " from its lease", self.sm_applied, ctx);
        true
    }

    /// Sends `reply` to `waiter`'s client, noted with where it came from (`source`) and the
    /// applied index it reflects.
    pub(crate) fn reply_to(
        &self,
        waiter: &Waiter,
        reply: ReplyOf<M>,
        source: &str,
        applied: Index,
        ctx: &mut Ctx<'_, M>,
    ) {
        ctx.note(|| {
            format!(
                "n{} answers client {} op {}{source}: {reply:?} at applied {applied}",
                self.id, waiter.client, waiter.op_serial
            )
        });
        ctx.effects.push(Effect::Reply {
            client: waiter.client,
            op_serial: waiter.op_serial,
            reply,
        });
    }

    /// Asks the node (if it leads) for a membership change.
    pub fn change_membership(&mut self, changes: Vec<MembershipChange>, ctx: &mut Ctx<'_, M>) {
        if let Some(engine) = self.engine.as_mut() {
            let _ = engine.handle_change_membership(changes);
            self.drive(ctx);
        }
    }

    /// Asks the node (if it leads) to hand leadership to `target`.
    pub fn transfer_leadership(&mut self, target: NodeId, ctx: &mut Ctx<'_, M>) {
        if let Some(engine) = self.engine.as_mut() {
            let _ = engine.handle_transfer(Some(target));
            self.drive(ctx);
        }
    }

    /// Asks the engine for a snapshot now.
    pub fn take_snapshot(&mut self, ctx: &mut Ctx<'_, M>) {
        if let Some(engine) = self.engine.as_mut() {
            let _ = engine.handle_trigger_snapshot();
            self.drive(ctx);
        }
    }

    // ----- the lanes -----

    /// Takes every output of the engine until it is quiet.
    pub(crate) fn drive(&mut self, ctx: &mut Ctx<'_, M>) {
        let mut observations = Vec::new();
        let mut answers = Vec::new();
        loop {
            let Some(engine) = self.engine.as_mut() else {
                return;
            };
            observations.extend(std::iter::from_fn(|| engine.poll_observation()));
            let mut busy = !observations.is_empty();
            for observation in observations.drain(..) {
                self.watch(observation, ctx);
            }
            let Some(engine) = self.engine.as_mut() else {
                return;
            };
            // Published before any message or answer leaves (the engine's contract).
            self.lease = engine.lease_grant();
            while let Some(message) = engine.poll_transmit() {
                crate::watch::sent(self.id, &message, engine.node(), ctx);
                ctx.effects.push(Effect::Send(message));
                busy = true;
            }
            while let Some(work) = engine.poll_apply() {
                let at = self.apply_free_at_us.max(ctx.now_us) + ctx.rng.range(0, 200);
                self.apply_free_at_us = at;
                self.apply_out.push_back(work);
                ctx.effects.push(Effect::ApplyDone(at));
                busy = true;
            }
            while let Some(work) = engine.poll_snapshot() {
                let at = self.snapshot_free_at_us.max(ctx.now_us) + ctx.rng.range(0, 500);
                self.snapshot_free_at_us = at;
                self.snapshot_out.push_back(work);
                ctx.effects.push(Effect::SnapshotDone(at));
                busy = true;
            }
            while engine.poll_peer_change().is_some() {}
            answers.extend(std::iter::from_fn(|| engine.poll_reply()));
            busy |= !answers.is_empty();
            for (request, result) in answers.drain(..) {
                self.answer(request, result, ctx);
            }
            while let Some(work) = self.engine.as_mut().and_then(|e| e.poll_disk()) {
                self.start_disk_work(work, ctx);
                busy = true;
            }
            if !busy {
                break;
            }
        }
        self.after_drive(ctx);
    }

    fn start_disk_work(&mut self, work: raft_host::DiskWork<SimStore>, ctx: &mut Ctx<'_, M>) {
        let full = ctx.rng.chance(ctx.disk_error);
        let budget = ctx.rng.range(0, 4096);
        // How much of the work fits before the disk is full depends on the store's own
        // encoding (the memory store fails at once): the runs part ways here.
        self.diverges |= full;
        if full {
            self.inject(Some(budget), false);
        }
        let written = work.write(self.store_mut());
        if full {
            self.inject(None, false);
        }
        let latency = ctx
            .rng
            .range(ctx.disk_latency_us / 2, ctx.disk_latency_us * 2 + 1);
        let at = self.disk_free_at_us.max(ctx.now_us) + latency;
        self.disk_free_at_us = at;
        self.disk_out.push_back(written);
        ctx.effects.push(Effect::DiskDone(at));
    }

    /// Makes the disk full (after `full_after` more bytes on the file store; at once on the
    /// memory store) or its syncs fail, or (`None`, `false`) heals it. The same draws make
    /// the same faults on either store.
    fn inject(&mut self, full_after: Option<u64>, fail_syncs: bool) {
        match self.kind {
            StorageKind::Memory => self.store_mut().set_mem_faults(crate::store::MemFaults {
                disk_full: full_after.is_some(),
                fail_syncs,
            }),
            StorageKind::File => {
                self.faults.heal();
                if let Some(bytes) = full_after {
                    self.faults.fill_disk_after(bytes);
                }
                if fail_syncs {
                    self.faults.fail_syncs();
                }
            }
        }
    }

    /// The oldest disk work finishes: its sync runs, then the engine hears of it (unless
    /// the process crashes in between).
    pub fn disk_done(&mut self, ctx: &mut Ctx<'_, M>) {
        let Some(written) = self.disk_out.pop_front() else {
            return;
        };
        let fail_sync = ctx.rng.chance(ctx.disk_error) && written.needs_sync();
        if fail_sync {
            self.inject(None, true);
        }
        let done = written.sync(self.store_mut());
        if fail_sync {
            self.inject(None, false);
        }
        if ctx.rng.chance(ctx.crash_before_notice) {
            ctx.effects
                .push(Effect::CrashNow("crash between sync and notice".into()));
            return;
        }
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_disk_done(done);
            self.drive(ctx);
        }
    }

    /// The oldest apply work finishes.
    pub fn apply_done(&mut self, ctx: &mut Ctx<'_, M>) {
        let Some(work) = self.apply_out.pop_front() else {
            return;
        };
        let done = work.run(&mut self.sm, &self.store);
        self.sm_applied = done.applied_index();
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_applied(done);
            self.drive(ctx);
        }
    }

    /// The oldest snapshot work finishes.
    pub fn snapshot_done(&mut self, ctx: &mut Ctx<'_, M>) {
        let Some(work) = self.snapshot_out.pop_front() else {
            return;
        };
        let done = work.run(&self.store);
        if let Some(engine) = self.engine.as_mut() {
            engine.handle_snapshot_done(done);
            self.drive(ctx);
        }
    }
}
