//! The discrete-event simulation: one queue of events ordered by (virtual time, sequence
//! number), processed one at a time; every random choice comes from the run's seed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Debug;

use raft_core::{Config, Message, NodeId, Role, StateMachine};
use raft_host::{AddressBook, PeerInfo};

use crate::bugs::{Bug, Mutator};
use crate::checker::{SafetyChecker, Violation, ViolationKind};
use crate::faults::{self, ScheduledFault};
use crate::host::{Ctx, Effect, EffectOf, Host, Liveness};
use crate::html::Timeline;
use crate::invariant::{Applied, Cluster, Invariant};
use crate::linearizability::{self, CheckLimits, Verdict};
use crate::network::{InFlight, Network};
use crate::profile::{ELECTION_TICKS, FaultProfile, LEASE_DRIFT_TICKS, TICK_US};
use crate::rng::{SimRng, Stream};
use crate::store::StorageKind;
use crate::trace::Trace;
use crate::workload::{
    ClientConfig, ClientRequest, ClientStep, Clients, Reply, SimMachine, Workload,
};

/// After healing, a leader must be seen within this much virtual time.
pub const LEADER_BOUND_US: u64 = 5_000_000;
/// After healing, every operation pending or not yet issued must finish within this much
/// virtual time, plus [`PER_OP_BOUND_US`] for each operation not yet issued.
pub const OPS_BOUND_US: u64 = 10_000_000;
/// Extra allowance per unissued operation (per client, as clients work in parallel).
pub const PER_OP_BOUND_US: u64 = 20_000;

/// Share of leader-churn knockouts that happen at once, before the new leader's first
/// messages leave: it then keeps what it appended to itself.
const CHURN_AT_ONCE: f64 = 0.4;

/// More events than this waiting at once is a message storm: the run stops with a liveness
/// failure instead of slowing to a crawl (healthy runs keep a few thousand queued).
const QUEUED_EVENTS_MAX: usize = 1_000_000;

/// Probability that a sync fails, and that a write finds the disk full, while disk faults
/// are on (the node stops and restarts; the store recovers what is durable).
const DISK_ERROR: f64 = 0.002;

/// More than `STORM_EVENTS_MAX` events within `STORM_WINDOW_US` of virtual time is a
/// livelock (healthy runs average a few hundred per 100 ms): stop at once rather
/// than run to `max_events`.
const STORM_EVENTS_MAX: u64 = 20_000;
const STORM_WINDOW_US: u64 = 100_000;

/// Most ticks fired at once when a paused node resumes (more than an election timeout's
/// worth changes nothing).
const MISSED_TICKS_MAX: u64 = 100;

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// The seed: every random choice derives from it.
    pub seed: u64,
    /// Founding voters (1 to 7).
    pub nodes: u64,
    /// Client operations in total.
    pub operations: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// A deliberately broken variant, if any.
    pub bug: Option<Bug>,
    /// Keep only these fault-schedule entries (by index); `None` keeps all.
    pub only_faults: Option<Vec<usize>>,
    /// Run without faults (the profile is calm).
    pub calm: bool,
    /// Keep a readable trace.
    pub trace: bool,
    /// Keep a timeline for the HTML view.
    pub timeline: bool,
    /// Give up (as a liveness failure) after this many events.
    pub max_events: u64,
    /// The store every node runs on.
    pub storage: StorageKind,
}

impl SimOptions {
    /// The standard run: 5 nodes, 1,000 client operations, all faults the seed draws.
    pub fn standard(seed: u64) -> Self {
        SimOptions {
            seed,
            nodes: 5,
            operations: 1_000,
            clients: 5,
            bug: None,
            only_faults: None,
            calm: false,
            trace: false,
            timeline: false,
            // Healthy runs take 30-200 thousand events; a livelocked one would take minutes to
            // reach a higher cap.
            max_events: 3_000_000,
            storage: StorageKind::Memory,
        }
    }
}

/// What a run found.
#[derive(Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The profile drawn.
    pub profile: FaultProfile,
    /// The full fault schedule (before `only_faults` filtering).
    pub schedule: Vec<ScheduledFault>,
    /// Indices of the schedule entries that were in force.
    pub kept_faults: Vec<usize>,
    /// Every violation, in order.
    pub violations: Vec<Violation>,
    /// Digest of the event trace.
    pub digest: String,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end.
    pub end_us: u64,
    /// Operations answered / unknown.
    pub ops_done: usize,
    /// Operations whose outcome stayed unknown.
    pub ops_unknown: usize,
    /// Linearizability search steps.
    pub lin_steps: u64,
    /// Whether some key's check ran out of budget.
    pub lin_inconclusive: bool,
    /// Readable trace (when asked for).
    pub trace_lines: Vec<String>,
    /// Timeline (when asked for).
    pub timeline: Option<Timeline>,
    /// The store the nodes ran on.
    pub storage: StorageKind,
    /// A crash found the store holding writes not yet synced: `MemStorage` then keeps a
    /// prefix of whole writes, `SimFs` a prefix of bytes, torn or not, from its own seeded
    /// randomness, and the two cannot agree on what survives. Or the disk filled up: how
    /// much of a write fits depends on the store's encoding. Every other step is the same
    /// on both stores: fault draws never depend on the store, a failing fsync is injected
    /// into both (it stops the node, which restarts), and a corruption makes both refuse
    /// to open. So runs of one seed on the two stores have
    /// the same trace digest when neither is storage-sensitive, and usually differ after
    /// the first such crash.
    pub storage_sensitive: bool,
}

impl RunReport {
    /// True when every check held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// One line: `seed=.. storage=.. result=pass|FAIL events=.. virtual=..ms ops=..
    /// unknown=.. lin_steps=.. trace=<digest>`. Two runs with the same seed and options print the same
    /// line.
    pub fn summary(&self) -> String {
        format!(
            "seed={} storage={} result={} events={} virtual={}ms ops={} unknown={} lin_steps={}{} trace={}",
            self.seed,
            self.storage,
            if self.passed() { "pass" } else { "FAIL" },
            self.events,
            self.end_us / 1000,
            self.ops_done,
            self.ops_unknown,
            self.lin_steps,
            if self.lin_inconclusive {
                " lin=inconclusive"
            } else {
                ""
            },
            self.digest
        )
    }

    /// The readable trace (of a run with [`SimOptions::trace`]): the fault schedule, one
    /// line per event and notable host action, the violations.
    pub fn trace_text(&self) -> String {
        let mut text = String::new();
        for (i, fault) in self.schedule.iter().enumerate() {
            let kept = self.kept_faults.contains(&i);
            text.push_str(&format!(
                "schedule #{i} at {}us{}: {}\n",
                fault.at_us,
                if kept { "" } else { " (dropped)" },
                fault.fault
            ));
        }
        text.push_str(&self.trace_lines.join("\n"));
        text.push('\n');
        for v in &self.violations {
            text.push_str(&format!("VIOLATION {v}\n"));
        }
        text
    }
}

/// A simulated event; `R` and `Q` are the state machine's command responses and query
/// answers (client replies carry them), `Q` also its queries.
#[derive(Clone, Debug)]
pub(crate) enum Event<R, Q, Query> {
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    Deliver(Message),
    DiskDone {
        node: NodeId,
        incarnation: u64,
    },
    ApplyDone {
        node: NodeId,
        incarnation: u64,
    },
    SnapshotDone {
        node: NodeId,
        incarnation: u64,
    },
    ClientRequest {
        node: NodeId,
        request: ClientRequest<Query>,
    },
    ClientReply {
        client: usize,
        op_serial: u64,
        reply: Reply<R, Q>,
    },
    ClientTimeout {
        client: usize,
        attempt: u64,
    },
    ClientIssue {
        client: usize,
    },
    Fault(usize),
    Restart {
        node: NodeId,
        incarnation: u64,
    },
    Resume {
        node: NodeId,
    },
    Uncut(Vec<(NodeId, NodeId)>),
    Unclog((NodeId, NodeId)),
    Heal,
    LeaderDeadline,
    /// Leader churn: knock `node` out if it still leads in `term`.
    KnockOut {
        node: NodeId,
        term: u64,
    },
}

/// The events of a simulation of `M`.
pub(crate) type EventOf<M> = Event<
    <M as StateMachine>::Response,
    <M as StateMachine>::QueryResponse,
    <M as StateMachine>::Query,
>;

impl<R, Q, Query> Event<R, Q, Query> {
    /// (kind code, detail a, detail b) for the digest.
    fn digest_words(&self) -> (u64, u64, u64) {
        match self {
            Event::Tick { node, incarnation } => (1, *node, *incarnation),
            Event::Deliver(m) => (2, m.from << 8 | m.to, m.term),
            Event::DiskDone { node, incarnation } => (3, *node, *incarnation),
            Event::ApplyDone { node, incarnation } => (4, *node, *incarnation),
            Event::ClientRequest { node, request } => (5, *node, request.op_serial),
            Event::ClientReply {
                client, op_serial, ..
            } => (6, *client as u64, *op_serial),
            Event::ClientTimeout { client, attempt } => (7, *client as u64, *attempt),
            Event::ClientIssue { client } => (8, *client as u64, 0),
            Event::Fault(i) => (9, *i as u64, 0),
            Event::Restart { node, incarnation } => (10, *node, *incarnation),
            Event::Resume { node } => (11, *node, 0),
            Event::Uncut(links) => (12, links.len() as u64, 0),
            Event::Unclog((a, b)) => (13, *a, *b),
            Event::Heal => (14, 0, 0),
            Event::LeaderDeadline => (15, 0, 0),
            Event::KnockOut { node, term } => (16, *node, *term),
            Event::SnapshotDone { node, incarnation } => (17, *node, *incarnation),
        }
    }
}

struct Scheduled<E> {
    at_us: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Scheduled<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_us, self.seq).cmp(&(other.at_us, other.seq))
    }
}

/// One run of the simulator: a cluster running workload `W`'s state machine under the
/// faults the seed draws, checked all along. See the [crate docs](crate) for an example.
pub struct Simulation<W: Workload> {
    pub(crate) options: SimOptions,
    pub(crate) profile: FaultProfile,
    pub(crate) schedule: Vec<ScheduledFault>,
    pub(crate) now_us: u64,
    queue: BinaryHeap<Reverse<Scheduled<EventOf<W::Machine>>>>,
    seq: u64,
    pub(crate) hosts: Vec<Host<W::Machine>>,
    pub(crate) network: Network,
    pub(crate) checker: SafetyChecker,
    pub(crate) clients: Clients<W>,
    invariants: Vec<Box<dyn Invariant<W>>>,
    pub(crate) mutator: Mutator,
    pub(crate) net_rng: SimRng,
    pub(crate) client_rng: SimRng,
    pub(crate) disk_rng: SimRng,
    pub(crate) node_rng: SimRng,
    pub(crate) trace: Trace,
    pub(crate) timeline: Option<Timeline>,
    /// Events deferred while a node is paused, in arrival order.
    pub(crate) deferred: BTreeMap<NodeId, Vec<EventOf<W::Machine>>>,
    /// Extra delay of each node's next tick (a backward clock jump).
    pub(crate) tick_lag_us: BTreeMap<NodeId, u64>,
    client_attempts: Vec<u64>,
    /// Ticks seen per node (for the slow leader clock of `lease-beyond-bound`).
    slow_ticks: BTreeMap<NodeId, u64>,
    pub(crate) corrupted: Vec<NodeId>,
    pub(crate) healed_at_us: Option<u64>,
    leader_after_heal: bool,
    ops_deadline_us: u64,
    effects: Vec<EffectOf<W::Machine>>,
    in_flight: Vec<InFlight>,
    pub(crate) kept_faults: Vec<usize>,
    /// Leader churn is on until this time, knocking new leaders out within
    /// `churn_knockout_max_us`.
    pub(crate) churn_until_us: u64,
    pub(crate) churn_knockout_max_us: u64,
    pub(crate) churn_rng: SimRng,
    /// A `DivergeLogs` fault that found no leader: it cuts off the next one.
    pub(crate) diverge_armed: Option<(u64, u64)>,
    /// Watch for the figure-8 moment (see [`crate::commit_point`]).
    pub(crate) commit_watch: crate::commit_point::CommitPointWatch,
    /// See [`RunReport::storage_sensitive`].
    pub(crate) storage_sensitive: bool,
}

impl<W: Workload> Simulation<W> {
    /// Builds the cluster for `options`, whose clients run `workload`: draws the profile
    /// first, then the schedule.
    pub fn new(options: SimOptions, workload: W) -> Self {
        let seed = options.seed;
        let nodes = options.nodes.clamp(1, 7);
        let profile = if options.calm {
            FaultProfile::calm()
        } else {
            FaultProfile::draw_for(&mut SimRng::new(seed, Stream::Profile), options.bug)
        };
        let spares = if profile.membership_rate > 0.0 {
            (7 - nodes).min(2)
        } else {
            0
        };
        let max_node = nodes + spares;
        let schedule = faults::generate(&profile, max_node, &mut SimRng::new(seed, Stream::Faults));
        let kept_faults: Vec<usize> = match &options.only_faults {
            Some(keep) => keep
                .iter()
                .copied()
                .filter(|i| *i < schedule.len())
                .collect(),
            None => (0..schedule.len()).collect(),
        };
        let mut node_rng = SimRng::new(seed, Stream::Nodes);
        let hosts = (1..=max_node)
            .map(|id| {
                let machine = workload.machine();
                build_host(id, nodes, &profile, &options, machine, &mut node_rng)
            })
            .collect();
        let clients = Clients::new(
            ClientConfig {
                clients: options.clients.max(1),
                operations: options.operations,
                think_mean_us: (profile.fault_phase_us * options.clients.max(1))
                    .checked_div(options.operations.max(1))
                    .unwrap_or(1_000)
                    .max(100),
                request_timeout_us: 100_000,
                give_up_us: 1_500_000,
            },
            workload,
            max_node,
        );
        let timeline = options
            .timeline
            .then(|| Timeline::new((1..=max_node).collect()));
        Simulation {
            trace: Trace::new(options.trace),
            client_attempts: vec![0; clients.client_count()],
            slow_ticks: BTreeMap::new(),
            options,
            profile,
            schedule,
            now_us: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            hosts,
            network: Network::default(),
            checker: SafetyChecker::default(),
            clients,
            invariants: Vec::new(),
            mutator: Mutator::default(),
            net_rng: SimRng::new(seed, Stream::Network),
            client_rng: SimRng::new(seed, Stream::Clients),
            disk_rng: SimRng::new(seed, Stream::Disk),
            node_rng,
            timeline,
            deferred: BTreeMap::new(),
            tick_lag_us: BTreeMap::new(),
            corrupted: Vec::new(),
            healed_at_us: None,
            leader_after_heal: false,
            ops_deadline_us: u64::MAX,
            effects: Vec::new(),
            in_flight: Vec::new(),
            kept_faults,
            churn_until_us: 0,
            churn_knockout_max_us: 0,
            churn_rng: SimRng::new(seed, Stream::Churn),
            diverge_armed: None,
            commit_watch: Default::default(),
            storage_sensitive: false,
        }
    }

    /// Adds a check of the workload's own (any number; checked in the order added).
    pub fn with_invariant(mut self, invariant: impl Invariant<W> + 'static) -> Self {
        self.invariants.push(Box::new(invariant));
        self
    }

    pub(crate) fn schedule(&mut self, at_us: u64, event: EventOf<W::Machine>) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at_us: at_us.max(self.now_us),
            seq: self.seq,
            event,
        }));
    }

    /// Runs to the end and checks everything.
    pub fn run(mut self) -> RunReport {
        self.start();
        let (mut window_start_us, mut window_events) = (0u64, 0u64);
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at_us >= window_start_us + STORM_WINDOW_US {
                (window_start_us, window_events) = (next.at_us, 0);
            }
            window_events += 1;
            if window_events > STORM_EVENTS_MAX {
                let detail = format!(
                    "{window_events} events within {STORM_WINDOW_US}us of virtual time \
                     (messages bouncing with almost no delay: a livelock)"
                );
                self.checker
                    .report(self.now_us, ViolationKind::Liveness, detail);
                break;
            }
            self.now_us = next.at_us;
            let (code, a, b) = next.event.digest_words();
            self.trace.event(self.now_us, code, a, b);
            if self.trace.readable() {
                let text = describe(&next.event);
                self.trace.line(self.now_us, || text);
            }
            self.handle(next.event);
            if !self.invariants.is_empty() && self.checker.violations().is_empty() {
                self.check_invariants(|invariant, cluster| invariant.on_event(cluster));
            }
            if !self.checker.violations().is_empty() || self.finished() {
                break;
            }
            if self.queue.len() > QUEUED_EVENTS_MAX {
                let detail = format!(
                    "{} events queued at once (a message storm), {} events",
                    self.queue.len(),
                    self.trace.events()
                );
                self.checker
                    .report(self.now_us, ViolationKind::Liveness, detail);
                break;
            }
            if self.trace.events() >= self.options.max_events || self.now_us > self.ops_deadline_us
            {
                self.report_stall();
                break;
            }
        }
        self.finish()
    }

    fn start(&mut self) {
        for i in 0..self.hosts.len() {
            self.with_host(i as NodeId + 1, |host, ctx| {
                host.start(ctx);
            });
            let offset = self.node_rng.range(0, TICK_US);
            let incarnation = self.hosts[i].incarnation;
            self.schedule(
                offset,
                Event::Tick {
                    node: i as NodeId + 1,
                    incarnation,
                },
            );
        }
        for i in self.kept_faults.clone() {
            let at = self.schedule[i].at_us;
            self.schedule(at, Event::Fault(i));
        }
        self.schedule(self.profile.fault_phase_us, Event::Heal);
        for client in 0..self.clients.client_count() {
            let at = self.client_rng.range(0, 20_000);
            self.schedule(at, Event::ClientIssue { client });
        }
    }

    fn finished(&mut self) -> bool {
        if self.healed_at_us.is_none() || self.clients.outstanding() != (0, 0) {
            return false;
        }
        if !self.leader_after_heal && self.current_leader().is_some() {
            self.leader_after_heal = true;
        }
        self.leader_after_heal
    }

    fn report_stall(&mut self) {
        let (pending, unissued) = self.clients.outstanding();
        let detail = format!(
            "after healing at {}us: {pending} operations pending and {unissued} not issued at \
             {}us (bound {}us), {} events",
            self.healed_at_us.unwrap_or(0),
            self.now_us,
            self.ops_deadline_us,
            self.trace.events()
        );
        self.checker
            .report(self.now_us, ViolationKind::Liveness, detail);
    }

    /// Runs every invariant's `check` on the cluster as it is now; reports the first
    /// failure.
    fn check_invariants(
        &mut self,
        check: impl Fn(&mut dyn Invariant<W>, &Cluster<'_, W>) -> Result<(), String>,
    ) {
        let cluster = Cluster {
            now_us: self.now_us,
            hosts: &self.hosts,
            checker: &self.checker,
            history: self.clients.history(),
        };
        let failure = self
            .invariants
            .iter_mut()
            .find_map(|invariant| check(invariant.as_mut(), &cluster).err());
        if let Some(detail) = failure {
            self.checker
                .report(self.now_us, ViolationKind::Invariant, detail);
        }
    }

    /// Runs `f` on host `node` with a context, then carries out what it asked for.
    pub(crate) fn with_host(
        &mut self,
        node: NodeId,
        f: impl FnOnce(&mut Host<W::Machine>, &mut Ctx<'_, W::Machine>),
    ) {
        let Some(host) = self.hosts.get_mut(node as usize - 1) else {
            return;
        };
        let mut effects = std::mem::take(&mut self.effects);
        let workload = self.clients.workload();
        let machine = || workload.machine();
        let mut ctx = Ctx {
            now_us: self.now_us,
            rng: &mut self.disk_rng,
            checker: &mut self.checker,
            effects: &mut effects,
            machine: &machine,
            disk_latency_us: self.profile.disk_latency_us,
            crash_before_notice: if self.healed_at_us.is_some() {
                0.0
            } else {
                self.profile.crash_before_notice
            },
            disk_error: if self.healed_at_us.is_some() || self.profile.torn_write <= 0.0 {
                0.0
            } else {
                DISK_ERROR
            },
            notes: self.trace.readable(),
        };
        f(host, &mut ctx);
        self.storage_sensitive |= std::mem::take(&mut host.diverges);
        // A node that just won an election may be knocked out before anything it sent
        // in the same step leaves (leader churn).
        for effect in &effects {
            if let Effect::Role {
                role: Role::Leader,
                term,
            } = effect
            {
                self.churn_new_leader(node, *term);
            }
        }
        for effect in effects.drain(..) {
            self.carry_out(node, effect);
        }
        self.effects = effects;
        if let Some(timeline) = self.timeline.as_mut() {
            timeline.sample(self.now_us, &self.hosts[node as usize - 1]);
        }
    }

    /// Leader churn: a new leader is knocked out now or within the churn's bound.
    fn churn_new_leader(&mut self, node: NodeId, term: u64) {
        if self.healed_at_us.is_some() || self.now_us >= self.churn_until_us {
            return;
        }
        if let Some((pick, duration_us)) = self.diverge_armed.take() {
            self.cut_off_with_follower(node, pick, duration_us);
            return;
        }
        let delay = self.churn_rng.range(0, self.churn_knockout_max_us);
        if self.churn_rng.chance(CHURN_AT_ONCE) {
            // In the middle of the node's step: cut it off (a crash would leave its
            // remaining effects to carry out).
            self.knock_out(node, term, false);
        } else {
            self.schedule(self.now_us + delay, Event::KnockOut { node, term });
        }
    }

    fn carry_out(&mut self, node: NodeId, effect: EffectOf<W::Machine>) {
        let incarnation = self.hosts[node as usize - 1].incarnation;
        match effect {
            Effect::Send(message) => self.send(message),
            Effect::Reply {
                client,
                op_serial,
                reply,
            } => {
                if self.network.is_healed() || !self.net_rng.chance(self.profile.loss) {
                    let delay = self.net_rng.delay_us(self.profile.delay_base_us, 0.0, 0);
                    self.schedule(
                        self.now_us + delay,
                        Event::ClientReply {
                            client,
                            op_serial,
                            reply,
                        },
                    );
                }
            }
            Effect::DiskDone(at) => self.schedule(at, Event::DiskDone { node, incarnation }),
            Effect::ApplyDone(at) => self.schedule(at, Event::ApplyDone { node, incarnation }),
            Effect::SnapshotDone(at) => {
                self.schedule(at, Event::SnapshotDone { node, incarnation })
            }
            Effect::Applied {
                index,
                digest,
                response,
            } => self.on_applied(node, index, digest, &response),
            Effect::Role { role, term } => {
                if role == Role::Leader && self.healed_at_us.is_some() {
                    self.leader_after_heal = true;
                    self.retire_removed(node);
                }
                self.trace.line(self.now_us, || {
                    format!("n{node} is {role:?} in term {term}")
                });
            }
            Effect::CrashNow(why) => {
                let down_us = self.disk_rng.range(1_000, 500_000);
                self.crash(node, &why, down_us);
            }
            Effect::Note(text) => self.trace.line(self.now_us, || text),
        }
    }

    fn send(&mut self, mut message: Message) {
        if self.options.bug.is_some() {
            let (last, voters) = self.leader_view(message.from);
            self.mutator
                .mutate(self.options.bug, &mut message, last, &voters);
        }
        let mut out = std::mem::take(&mut self.in_flight);
        self.network.send(
            message,
            self.now_us,
            &self.profile,
            &mut self.net_rng,
            &mut out,
        );
        for flight in out.drain(..) {
            self.schedule(flight.deliver_at_us, Event::Deliver(flight.message));
        }
        self.in_flight = out;
    }

    pub(crate) fn deliver_all(&mut self, mut out: Vec<InFlight>) {
        for flight in out.drain(..) {
            self.schedule(flight.deliver_at_us, Event::Deliver(flight.message));
        }
    }

    /// The sender's last index and voters when it leads (for the commit sabotage).
    fn leader_view(&self, node: NodeId) -> (u64, Vec<NodeId>) {
        match self.hosts[node as usize - 1].node() {
            Some(n) if n.role() == Role::Leader => (
                n.last_index(),
                n.membership().incoming.iter().copied().collect(),
            ),
            _ => (0, Vec::new()),
        }
    }

    /// Tells the invariants about an applied command.
    fn on_applied(
        &mut self,
        node: NodeId,
        index: u64,
        digest: u64,
        response: &<W::Machine as StateMachine>::Response,
    ) {
        if self.invariants.is_empty() {
            return;
        }
        let applied = Applied {
            node,
            index,
            response,
            operation: self.clients.write_by_digest(digest),
            history: self.clients.history(),
        };
        let failure = self
            .invariants
            .iter_mut()
            .find_map(|invariant| invariant.on_apply(&applied).err());
        if let Some(detail) = failure {
            self.checker
                .report(self.now_us, ViolationKind::Invariant, detail);
        }
    }

    /// Crashes a node now and schedules its restart.
    pub(crate) fn crash(&mut self, node: NodeId, why: &str, down_us: u64) {
        if self.hosts[node as usize - 1].liveness != Liveness::Up {
            return;
        }
        self.power_off(node, self.profile.torn_write);
        self.deferred.remove(&node);
        let incarnation = self.hosts[node as usize - 1].incarnation;
        self.schedule(self.now_us + down_us, Event::Restart { node, incarnation });
        self.trace
            .line(self.now_us, || format!("n{node} crashes ({why})"));
        if let Some(t) = self.timeline.as_mut() {
            t.mark(self.now_us, Some(node), format!("crash: {why}"));
            t.sample(self.now_us, &self.hosts[node as usize - 1]);
        }
    }

    /// Crashes host `node` (if up): the store keeps what its kind keeps. The randomness is
    /// drawn the same way whatever the store.
    pub(crate) fn power_off(&mut self, node: NodeId, torn_write: f64) {
        let pick = self.disk_rng.next_u64();
        let torn = self.disk_rng.chance(torn_write);
        let host = &mut self.hosts[node as usize - 1];
        if host.liveness != Liveness::Up {
            return;
        }
        host.crash(pick, torn);
        self.storage_sensitive |= std::mem::take(&mut host.diverges);
    }

    fn handle(&mut self, event: EventOf<W::Machine>) {
        match event {
            Event::Tick { .. }
            | Event::Deliver(_)
            | Event::DiskDone { .. }
            | Event::ApplyDone { .. }
            | Event::SnapshotDone { .. }
            | Event::ClientRequest { .. } => self.handle_node_event(event),
            Event::ClientReply {
                client,
                op_serial,
                reply,
            } => {
                let rng = &mut self.client_rng;
                let step = self
                    .clients
                    .on_reply(client, op_serial, reply, self.now_us, rng);
                self.client_step(client, step, true);
            }
            Event::ClientTimeout { client, attempt } => self.client_timeout(client, attempt),
            Event::ClientIssue { client } => {
                let rng = &mut self.client_rng;
                let step = self.clients.issue(client, self.now_us, rng);
                self.client_step(client, step, false);
            }
            Event::Fault(index) => self.apply_fault(index),
            Event::Restart { node, incarnation } => self.restart(node, incarnation),
            Event::Resume { node } => self.resume(node),
            Event::Uncut(links) => self.network.uncut(&links),
            Event::Unclog(link) => {
                let mut out = Vec::new();
                let (now, rng) = (self.now_us, &mut self.net_rng);
                self.network.unclog(link, now, &self.profile, rng, &mut out);
                self.deliver_all(out);
            }
            Event::Heal => self.heal(),
            Event::LeaderDeadline => self.leader_deadline(),
            Event::KnockOut { node, term } => self.knock_out(node, term, true),
        }
    }

    /// Events addressed to one node: dropped when stale, deferred while it is paused.
    fn handle_node_event(&mut self, event: EventOf<W::Machine>) {
        match event {
            Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Event::Deliver(message) => {
                let to = message.to;
                if self.defer_if_paused(to, &Event::Deliver(message.clone())) {
                    return;
                }
                self.mutator.observe_delivery(self.options.bug, &message);
                self.watch_commit_point(&message);
                self.with_host(to, |host, ctx| host.receive(message, ctx));
            }
            Event::DiskDone { node, incarnation }
                if self.current(node, incarnation) && !self.defer_if_paused(node, &event) =>
            {
                self.with_host(node, |host, ctx| host.disk_done(ctx));
            }
            Event::ApplyDone { node, incarnation }
                if self.current(node, incarnation) && !self.defer_if_paused(node, &event) =>
            {
                self.with_host(node, |host, ctx| host.apply_done(ctx));
            }
            Event::SnapshotDone { node, incarnation }
                if self.current(node, incarnation) && !self.defer_if_paused(node, &event) =>
            {
                self.with_host(node, |host, ctx| host.snapshot_done(ctx));
            }
            Event::ClientRequest { node, request } => {
                let deferred = Event::ClientRequest {
                    node,
                    request: request.clone(),
                };
                if !self.defer_if_paused(node, &deferred) {
                    self.with_host(node, |host, ctx| host.client_request(request, ctx));
                }
            }
            _ => {}
        }
    }

    fn client_timeout(&mut self, client: usize, attempt: u64) {
        if self.client_attempts[client] != attempt {
            return;
        }
        let Some(serial) = self.clients.pending_serial(client) else {
            return;
        };
        let may_give_up = self.healed_at_us.is_none();
        let rng = &mut self.client_rng;
        let step = self
            .clients
            .on_timeout(client, serial, self.now_us, may_give_up, rng);
        self.client_step(client, step, false);
    }

    fn leader_deadline(&mut self) {
        if !self.leader_after_heal && self.current_leader().is_none() {
            let detail = format!("no leader within {LEADER_BOUND_US}us after healing");
            self.checker
                .report(self.now_us, ViolationKind::Liveness, detail);
        } else {
            self.leader_after_heal = true;
        }
    }

    fn current(&self, node: NodeId, incarnation: u64) -> bool {
        let host = &self.hosts[node as usize - 1];
        host.incarnation == incarnation && host.liveness == Liveness::Up
    }

    fn on_tick(&mut self, node: NodeId, incarnation: u64) {
        if !self.current(node, incarnation) {
            return;
        }
        if self.hosts[node as usize - 1].paused_until.is_some() {
            // Timers of a stalled process fire late: at resume, in a burst.
            self.deferred
                .entry(node)
                .or_default()
                .push(Event::Tick { node, incarnation });
            return;
        }
        if self.skip_tick_beyond_bound(node) {
            // The tick is lost: this clock runs slow.
        } else {
            self.with_host(node, |host, ctx| host.tick(ctx));
        }
        let host = &self.hosts[node as usize - 1];
        if host.incarnation == incarnation && host.liveness == Liveness::Up {
            let lag = self.tick_lag_us.remove(&node).unwrap_or(0);
            let at = self.now_us + host.tick_us + lag;
            self.schedule(at, Event::Tick { node, incarnation });
        }
    }

    /// `lease-beyond-bound`: a leader's clock runs at a quarter of the nominal rate (far
    /// beyond any drift the lease margin covers), the worst case for its lease.
    fn skip_tick_beyond_bound(&mut self, node: NodeId) -> bool {
        if self.options.bug != Some(Bug::LeaseBeyondBound) {
            return false;
        }
        let leads = self.hosts[node as usize - 1]
            .node()
            .is_some_and(|n| n.role() == Role::Leader);
        let count = self.slow_ticks.entry(node).or_default();
        *count += 1;
        leads && !(*count).is_multiple_of(4)
    }

    fn defer_if_paused(&mut self, node: NodeId, event: &EventOf<W::Machine>) -> bool {
        let Some(host) = self.hosts.get(node as usize - 1) else {
            return true;
        };
        if host.liveness == Liveness::Up && host.paused_until.is_some() {
            self.deferred.entry(node).or_default().push(event.clone());
            return true;
        }
        false
    }

    fn client_step(
        &mut self,
        client: usize,
        step: ClientStep<<W::Machine as StateMachine>::Query>,
        after_reply: bool,
    ) {
        match step {
            ClientStep::Send { to, request } => {
                self.client_attempts[client] += 1;
                let attempt = self.client_attempts[client];
                // Back off a little after a refusal, so retries do not spin.
                let backoff = if after_reply {
                    self.client_rng.range(1_000, 10_000)
                } else {
                    0
                };
                let lost = !self.network.is_healed() && self.net_rng.chance(self.profile.loss);
                if !lost {
                    let delay = self.net_rng.delay_us(self.profile.delay_base_us, 0.0, 0);
                    self.schedule(
                        self.now_us + backoff + delay,
                        Event::ClientRequest { node: to, request },
                    );
                }
                let timeout = self.clients.config().request_timeout_us;
                self.schedule(
                    self.now_us + backoff + timeout,
                    Event::ClientTimeout { client, attempt },
                );
            }
            ClientStep::Finished { think_us } => {
                self.schedule(self.now_us + think_us, Event::ClientIssue { client });
            }
            ClientStep::Nothing => {}
        }
    }

    fn restart(&mut self, node: NodeId, incarnation: u64) {
        let host = &self.hosts[node as usize - 1];
        if host.liveness != Liveness::Down || host.incarnation != incarnation {
            return;
        }
        self.start_node(node);
    }

    pub(crate) fn start_node(&mut self, node: NodeId) {
        let mut started = false;
        self.with_host(node, |host, ctx| started = host.start(ctx));
        self.trace.line(self.now_us, || {
            format!(
                "n{node} restarts{}",
                if started {
                    ""
                } else {
                    " and halts: disk corrupt"
                }
            )
        });
        if let Some(t) = self.timeline.as_mut() {
            t.mark(
                self.now_us,
                Some(node),
                if started {
                    "restart".into()
                } else {
                    "halted: corrupt disk".into()
                },
            );
        }
        if started {
            let incarnation = self.hosts[node as usize - 1].incarnation;
            let at = self.now_us + self.hosts[node as usize - 1].tick_us;
            self.schedule(at, Event::Tick { node, incarnation });
        }
    }

    /// Ends a pause. The node's clock kept running while it was stalled, so the ticks it
    /// missed fire first, in a burst, before anything that arrived meanwhile; a runtime
    /// that skipped them would slow the node's clock and break the lease bound. The
    /// `lease-beyond-bound` variant does exactly that: its clock stops during a pause.
    pub(crate) fn resume(&mut self, node: NodeId) {
        let host = &mut self.hosts[node as usize - 1];
        if host.paused_until.take().is_none() {
            return;
        }
        let missed = (self.now_us - host.paused_at_us) / host.tick_us.max(1);
        self.trace.line(self.now_us, || {
            format!("n{node} resumes ({missed} ticks missed)")
        });
        if self.options.bug != Some(Bug::LeaseBeyondBound) {
            let ticks = missed.min(MISSED_TICKS_MAX);
            self.with_host(node, |host, ctx| host.advance_clock(ticks, ctx));
        }
        for event in self.deferred.remove(&node).unwrap_or_default() {
            self.schedule(self.now_us, event);
        }
    }

    /// The up node that leads the highest term, if any.
    pub(crate) fn current_leader(&self) -> Option<NodeId> {
        self.hosts
            .iter()
            .filter(|h| h.liveness == Liveness::Up)
            .filter_map(|h| h.node().map(|n| (n.term(), n.role(), h.id())))
            .filter(|(_, role, _)| *role == Role::Leader)
            .max()
            .map(|(_, _, id)| id)
    }

    /// After healing, nodes outside the leader's configuration are shut down, as an
    /// operator does once a removal commits. Without pre-vote and check-quorum a removed
    /// node that keeps running disrupts the cluster forever with ever higher terms (thesis
    /// section 4.2.3); that is a known limit of those settings, not a bug to report.
    fn retire_removed(&mut self, leader: NodeId) {
        let Some(members) = self.hosts[leader as usize - 1]
            .node()
            .map(|n| n.membership().members())
        else {
            return;
        };
        for id in 1..=self.hosts.len() as NodeId {
            let host = &self.hosts[id as usize - 1];
            if members.contains(&id) || host.liveness != Liveness::Up {
                continue;
            }
            let knows_members = host.node().is_some_and(|n| n.membership().node_count() > 0);
            if knows_members {
                self.power_off(id, 0.0);
                self.trace.line(self.now_us, || {
                    format!("n{id} retired: not in the configuration of leader n{leader}")
                });
            }
        }
    }

    fn heal(&mut self) {
        let now = self.now_us;
        self.healed_at_us = Some(now);
        self.trace.line(now, || {
            "heal: network reliable, crashed nodes restart, paused nodes resume".into()
        });
        if let Some(t) = self.timeline.as_mut() {
            t.mark(now, None, "heal".into());
        }
        let mut out = Vec::new();
        self.network
            .heal(now, &self.profile, &mut self.net_rng, &mut out);
        self.deliver_all(out);
        for node in 1..=self.hosts.len() as NodeId {
            match self.hosts[node as usize - 1].liveness {
                Liveness::Down => self.start_node(node),
                Liveness::Up => self.resume(node),
                Liveness::Halted(_) => {}
            }
        }
        self.tick_lag_us.clear();
        if let Some(leader) = self.current_leader() {
            self.leader_after_heal = true;
            self.retire_removed(leader);
        }
        let (_, unissued) = self.clients.outstanding();
        let clients = self.clients.client_count().max(1) as u64;
        // Each unissued operation also waits out a client's think time first.
        let per_op_us = PER_OP_BOUND_US + self.clients.config().think_mean_us;
        self.ops_deadline_us = now + OPS_BOUND_US + unissued * per_op_us / clients;
        self.schedule(now + LEADER_BOUND_US, Event::LeaderDeadline);
    }

    fn finish(mut self) -> RunReport {
        let history = self.clients.history();
        let model = self.clients.workload().model();
        let report = linearizability::check_history(model, history, CheckLimits::default());
        let lin_inconclusive = matches!(report.verdict, Verdict::Inconclusive { .. });
        if let Verdict::Violation { partition, detail } = &report.verdict
            && self.checker.violations().is_empty()
        {
            let detail = format!("history of partition {partition} is not linearizable: {detail}");
            self.checker
                .report(self.now_us, ViolationKind::Client, detail);
        }
        if self.checker.violations().is_empty() {
            self.check_invariants(|invariant, cluster| invariant.at_end(cluster));
        }
        let history = self.clients.history();
        let ops_unknown = history.iter().filter(|op| op.output.is_none()).count();
        let mut timeline = self.timeline.take();
        if let Some(t) = timeline.as_mut() {
            t.finish(self.now_us, history, self.checker.violations());
        }
        RunReport {
            seed: self.options.seed,
            profile: self.profile.clone(),
            schedule: self.schedule.clone(),
            kept_faults: self.kept_faults.clone(),
            violations: self.checker.violations().to_vec(),
            digest: self.trace.digest_hex(),
            events: self.trace.events(),
            end_us: self.now_us,
            ops_done: history.len() - ops_unknown,
            ops_unknown,
            lin_steps: report.steps,
            lin_inconclusive,
            trace_lines: self.trace.take_lines(),
            timeline,
            storage: self.options.storage,
            storage_sensitive: self.storage_sensitive,
        }
    }
}

/// One readable line for an event.
fn describe<R: Debug, Q: Debug, Query: Debug>(event: &Event<R, Q, Query>) -> String {
    match event {
        Event::Tick { node, .. } => format!("n{node} tick"),
        Event::Deliver(m) => format!("n{} -> n{} t{} {:?}", m.from, m.to, m.term, m.body),
        Event::DiskDone { node, .. } => format!("n{node} disk sync done"),
        Event::ApplyDone { node, .. } => format!("n{node} apply done"),
        Event::SnapshotDone { node, .. } => format!("n{node} snapshot work done"),
        Event::ClientRequest { node, request } => {
            format!(
                "client {} -> n{node} op {} {:?}",
                request.client, request.op_serial, request.body
            )
        }
        Event::ClientReply {
            client,
            op_serial,
            reply,
        } => {
            format!("client {client} <- op {op_serial} {reply:?}")
        }
        Event::ClientTimeout { client, attempt } => {
            format!("client {client} timeout (attempt {attempt})")
        }
        Event::ClientIssue { client } => format!("client {client} issues its next operation"),
        Event::Fault(i) => format!("fault #{i} fires"),
        Event::Restart { node, .. } => format!("n{node} restart due"),
        Event::Resume { node } => format!("n{node} resume due"),
        Event::Uncut(links) => format!("links restored: {links:?}"),
        Event::Unclog((a, b)) => format!("link n{a}->n{b} unclogged"),
        Event::Heal => "heal".into(),
        Event::LeaderDeadline => "leader deadline".into(),
        Event::KnockOut { node, term } => format!("knock out n{node} if it leads term {term}"),
    }
}

fn build_host<M: SimMachine>(
    id: NodeId,
    founders: u64,
    profile: &FaultProfile,
    options: &SimOptions,
    machine: M,
    rng: &mut SimRng,
) -> Host<M> {
    let bug = options.bug;
    let members = (id <= founders).then(|| {
        (1..=founders)
            .map(|member| (member, PeerInfo::new(())))
            .collect::<AddressBook<()>>()
    });
    let mut config = Config::new(id, rng.next_u64());
    config.election_ticks = ELECTION_TICKS;
    config.pre_vote = profile.pre_vote;
    config.check_quorum = profile.check_quorum;
    config.lease_reads = profile.lease_reads;
    config.lease_drift_ticks = LEASE_DRIFT_TICKS;
    config.snapshot_chunk_bytes = profile.snapshot_chunk_bytes;
    config.max_append_bytes = profile.max_append_bytes;
    let window = rng.range(1, 64) as usize;
    config.max_inflight_appends = match profile.inflight_window {
        0 => window,
        fixed => fixed as usize,
    };
    config.auto_promote_learners = rng.chance(0.5);
    let drift = if bug == Some(Bug::LeaseBeyondBound) {
        // Beyond the bound on purpose: each clock is either far too slow or far too fast.
        if rng.chance(0.5) {
            profile.clock_drift
        } else {
            -profile.clock_drift
        }
    } else {
        rng.range_f64(-profile.clock_drift, profile.clock_drift + f64::EPSILON)
    };
    let tick_us = ((TICK_US as f64) * (1.0 + drift)).round().max(1.0) as u64;
    // The simulated disk's own randomness (which unsynced bytes survive a crash, where a
    // torn write tears) comes from the seed too, one stream per node.
    let fs_seed = options.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut host = Host::new(
        config,
        members,
        options.storage,
        fs_seed,
        machine,
        bug,
        profile.lease_reads,
        tick_us,
    );
    host.set_torn_write(profile.torn_write);
    host
}
