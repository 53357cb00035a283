//! # raft-sim
//!
//! A deterministic whole-cluster simulator for `raft-core` and any state machine: 1 to 7
//! real [`raft_core::Node`]s, each hosted by the production host engine of `raft-host` with
//! a replica of the state machine under test and a real store (`MemStorage`, or
//! `FileStorage` on a simulated disk), and a simulated network, driven by one queue of
//! events ordered by (virtual time, sequence number). Every random choice comes from ChaCha
//! streams of one seed ([`rng`]); nothing depends on wall-clock time, threads or hash-map
//! order, so a seed and its options replay the same run, event for event (the
//! [`RunReport::digest`] proves it).
//!
//! ## Simulating your own state machine
//!
//! Bring four things and get seeds, swarm faults, replay, shrinking, a readable trace and
//! an HTML timeline:
//!
//! * a [`raft_core::StateMachine`], the very type your servers run;
//! * a [`Workload`]: what each client sends next ([`Workload::next_call`], a command
//!   through the log or a query) and what it learns from the answer;
//! * a [`Model`]: the sequential specification the client history must be linearizable
//!   against ([`linearizability`]); [`Model::partition`] splits it by key when operations
//!   on different keys are independent, which keeps the check fast;
//! * optionally [`Invariant`]s of your own, told about every apply, shown the cluster
//!   after every event ([`invariant::Cluster`]: each node's role, log and state machine)
//!   and at the end.
//!
//! Clients resend a command through timeouts and redirects with the same bytes, so a state
//! machine must apply a retried command once (sessions, as below); the protocol checks,
//! faults and liveness bounds are those of the key-value runs described further down. A
//! counter, its model, its clients, and a broken variant whose `restore` forgets the total:
//!
//! ```
//! use std::collections::BTreeMap;
//! use raft_core::{Index, StateMachine};
//! use raft_sim::{Call, Model, Request, SimOptions, SimRng, Simulation, Workload};
//!
//! /// Adds numbers; a command is (client, sequence, amount) and applies once per sequence.
//! #[derive(Default)]
//! struct Counter { total: u64, sessions: BTreeMap<u64, (u64, u64)>, broken: bool }
//!
//! impl StateMachine for Counter {
//!     type Command = (u64, u64, u64);
//!     type Response = u64;
//!     type Query = ();
//!     type QueryResponse = u64;
//!     type Snapshot = (u64, BTreeMap<u64, (u64, u64)>);
//!     fn apply(&mut self, _: Index, (client, seq, amount): (u64, u64, u64)) -> u64 {
//!         match self.sessions.get(&client) {
//!             Some(&(last, total)) if seq <= last => total, // a retry: answered, not applied
//!             _ => {
//!                 self.total += amount;
//!                 self.sessions.insert(client, (seq, self.total));
//!                 self.total
//!             }
//!         }
//!     }
//!     fn query(&self, _: &()) -> u64 { self.total }
//!     fn snapshot(&self) -> Self::Snapshot { (self.total, self.sessions.clone()) }
//!     fn write_snapshot(s: Self::Snapshot, w: &mut dyn std::io::Write) -> std::io::Result<()> {
//!         w.write_all(&postcard::to_allocvec(&s).map_err(std::io::Error::other)?)
//!     }
//!     fn restore(&mut self, r: &mut dyn std::io::Read) -> std::io::Result<()> {
//!         let mut bytes = Vec::new();
//!         r.read_to_end(&mut bytes)?;
//!         let (total, sessions): Self::Snapshot =
//!             postcard::from_bytes(&bytes).map_err(std::io::Error::other)?;
//!         if !self.broken { self.total = total; } // the bug: the total is not restored
//!         self.sessions = sessions;
//!         Ok(())
//!     }
//! }
//!
//! /// The specification: an add answers the new total, a read (`None`) the current one.
//! struct Sum;
//! impl Model for Sum {
//!     type State = u64;
//!     type Input = Option<u64>;
//!     type Output = u64;
//!     fn init(&self) -> u64 { 0 }
//!     fn step(&self, total: &u64, input: &Option<u64>, told: Option<&u64>) -> Option<u64> {
//!         let next = total + input.unwrap_or(0);
//!         told.is_none_or(|told| *told == next).then_some(next)
//!     }
//! }
//!
//! struct Clients { sequence: u64, broken: bool }
//! impl Workload for Clients {
//!     type Machine = Counter;
//!     type Model = Sum;
//!     fn machine(&self) -> Counter { Counter { broken: self.broken, ..Counter::default() } }
//!     fn model(&self) -> &Sum { &Sum }
//!     fn next_call(&mut self, client: usize, _: u64, rng: &mut SimRng) -> Option<Call<Counter, Option<u64>>> {
//!         if rng.chance(0.3) {
//!             return Some(Call { input: None, request: Request::Query(()) });
//!         }
//!         self.sequence += 1;
//!         let amount = rng.range(1, 10);
//!         let command = (client as u64, self.sequence, amount);
//!         Some(Call { input: Some(amount), request: Request::Command(command) })
//!     }
//!     fn command_output(&mut self, _: usize, _: &Option<u64>, total: &u64) -> Option<u64> { Some(*total) }
//!     fn query_output(&mut self, _: usize, _: &Option<u64>, total: &u64) -> Option<u64> { Some(*total) }
//! }
//!
//! let run = |seed, broken| {
//!     let options = SimOptions { operations: 100, ..SimOptions::standard(seed) };
//!     Simulation::new(options, Clients { sequence: 0, broken }).run()
//! };
//! let report = run(1, false);
//! assert!(report.passed(), "{:?}", report.violations);
//! assert_eq!(run(1, false).digest, report.digest); // replay, bit for bit
//! assert!((0..20).any(|seed| !run(seed, true).passed()), "the broken counter is caught");
//! ```
//!
//! `SimOptions` chooses the cluster size, the client count and operations, the store every
//! node runs on ([`store::StorageKind`]: `MemStorage`, or the real `FileStorage` on a
//! simulated disk), a broken protocol or host variant ([`Bug`]), a subset of the fault
//! schedule (what [`shrink()`] narrows down) and whether to keep a trace
//! ([`RunReport::trace_text`]) and a timeline ([`html::Timeline::render_html`]).
//! [`sweep()`] runs many seeds on all cores. `examples/examples/simulate.rs` is a runnable version
//! that prints a line per seed: `cargo run -p examples --example simulate -- 0..20`.
//!
//! ## The key-value runs and the command line
//!
//! The `raft-sim-kv` crate runs the real `raft-kv` store through this API (its workload,
//! model and invariants) and holds the `raft-sim` command line:
//!
//! ```text
//! cargo run --release -p raft-sim-kv -- run --seed 42              # exit 0: every check held; 1: a violation
//! cargo run --release -p raft-sim-kv -- run --seed 42 --trace t.log --html t.html
//! cargo run --release -p raft-sim-kv -- sweep --seeds 0..10000     # all cores, progress bar
//! cargo run --release -p raft-sim-kv -- run --seed 42 --bug stale-reads   # a broken variant
//! cargo run --release -p raft-sim-kv -- sweep --seeds 0..500 --storage file  # the real FileStorage
//! ```
//!
//! `run` prints the profile, the violations, and as its last line
//! `seed=.. result=pass|FAIL events=.. trace=<digest>` ([`RunReport::summary`]); the
//! digest covers every event, so two runs with the same seed and options print the same
//! line. A failing run is shrunk (delta debugging over the fault schedule, [`shrink()`]) and
//! the command that replays the smaller schedule is printed (`--faults=3,7,12`). `sweep`
//! ends with `passed=<n> failed=<m>` and prints the replay command of every failure.
//! `--trace` writes a readable log (the fault schedule, then one line per event and per
//! notable host action); `--html` writes a self-contained page with a lane per node (role,
//! term, commit index, faults) and per client (operations, green when answered, red when
//! their outcome is unknown).
//!
//! ## A run
//!
//! 1. The seed first draws a [`profile::FaultProfile`] ("swarm testing"): each fault class
//!    is off with probability one half, otherwise it gets a random intensity; pre-vote,
//!    check-quorum, lease reads, message and snapshot-chunk sizes are drawn too. Then the
//!    fault schedule is drawn ([`faults`]).
//! 2. The fault phase (2 to 6 virtual seconds): clients issue operations while faults fire.
//! 3. Healing: the network becomes reliable, crashed nodes restart, paused nodes resume,
//!    nodes outside the leader's configuration are shut down (as an operator does). The
//!    liveness bounds start (below).
//! 4. The end: when every operation is answered (or a bound is exceeded), the history is
//!    checked for linearizability and acknowledged writes are checked.
//!
//! ## Fault model
//!
//! * Network ([`network`]): delays with a long tail, loss, duplication, reordering, very old
//!   messages delivered again, symmetric and one-way partitions, isolating the leader,
//!   clogging a link then releasing everything it held; a follower kept far behind while
//!   every node snapshots, so it must install a snapshot.
//! * Process: crash and restart at any moment, including right after a sync completed and
//!   before the core was told; pause and resume (a stalled node whose timers fire late: the
//!   ticks it missed fire in a burst before anything that arrived meanwhile).
//! * Disk ([`store`]), below the core's durability contract, on the real stores:
//!   `--storage memory` runs `raft_core::MemStorage` (a crash keeps a random prefix of the
//!   unsynced writes), `--storage file` the real `raft_storage_file::FileStorage` on a
//!   seeded `SimFs` per node (a crash keeps a random prefix of each file's unsynced bytes,
//!   its last sector possibly torn; recovery must cut the torn tail). On both, syncs fail
//!   and the disk fills up now and then (the node stops and is restarted; the store
//!   recovers what is durable), and a durable bit may be flipped on a minority of nodes
//!   (never more than the configuration survives): the store must refuse to open, so the
//!   node can neither serve nor vote with a log that lost acknowledged entries
//!   (`MemStorage` has no checksums, so there the refusal is modelled). Read-time bit flips
//!   of `SimFs` stay off: a node that refuses to start is out for good, and only the
//!   corruption fault keeps such losses survivable. The same seed gives the same trace
//!   digest on both stores unless the run is storage-sensitive
//!   ([`sim::RunReport::storage_sensitive`]: a crash that finds unsynced writes, or a full
//!   disk, where the stores keep different bytes by design).
//! * Clock: per-node tick-rate drift and jumps. Lease reads depend on clocks, so when a
//!   seed uses them its drift stays within the bound the lease margin covers
//!   ([`profile::LEASE_SAFE_DRIFT`]: `(E - d)(1 + r) <= E(1 - r)` with E = 10 election
//!   ticks, d = 2) and jumps are off; the `lease-beyond-bound` variant violates the bound and
//!   is caught.
//! * Leader changes over divergent logs: leader churn (for a while, every new leader is
//!   cut off or crashed within a few milliseconds of its election, sometimes before its
//!   first messages leave) and "cut the leader and one follower off, churning leaders
//!   meanwhile" (the pair appends entries nobody else has; leaders on the other side are
//!   knocked out before replicating theirs), the situation of the Raft paper's figure 8.
//!   The figure-8 knockout (a watch on the wire) strikes at the
//!   moment itself: a leader that has just brought a majority up to date on an uncommitted
//!   entry of an earlier term, while a node with a later last term lacks it, is knocked out
//!   there. Some seeds also send entries one by one with one append in flight, so that
//!   moment lasts.
//! * Operations: membership changes (add voter, learner or witness, promote, demote,
//!   remove; only changes that leave a majority of healthy full voters), leadership
//!   transfers, snapshots and compaction at random points. A former witness is wiped before
//!   it joins again, as raft-core requires.
//!
//! Each node runs the production host engine, `raft_host::Engine` ([`host`] is only its
//! driver): group commit with `sync_required`, token reporting, the apply lane, joining
//! outcomes with results, snapshots, witness refusals are the engine's, exactly as the tokio
//! runtime runs them. The driver writes a disk work's batches when the engine hands it out
//! and syncs at the simulated completion, so a crash in between loses what a real disk
//! could; apply and snapshot work run at their completion time. A crash drops the engine
//! with all its work; restart is `raft_host::restore` from the store. The checker sees
//! the engine through its observation feed (`Engine::set_observing`: writes handed out,
//! entries applied with their term and payload, role changes, stops), the messages it
//! sends and its commit index.
//!
//! ## Checks
//!
//! On every event ([`checker`]): at most one leader per term; log matching (same index and
//! term means same payload and same predecessor term); commit safety (one entry per
//! committed index, ever) and commit indexes that never go back; leader completeness (a
//! leader of term t holds every entry committed in a term before t, and no elided payload);
//! state machine safety (one entry per applied index across nodes, no gaps); durable
//! promises (no two votes in one term, a restarted node's term at least the highest term it
//! promised in; a restarted node's log holds every entry it reported durable or acknowledged
//! to a leader, unless a leader's conflicting append or a snapshot install removed it since,
//! and a node is never sent an append after such an entry it no longer holds: see
//! `durable.rs`). At client level: the history (put, get, delete, compare-and-set on a small
//! key space, with sessions and retries) must be linearizable ([`linearizability`], per key,
//! Wing-Gong/Lowe search with memoization; an unanswered operation may take effect at any
//! time after its call or never); every acknowledged write took effect at one committed
//! index; no write (by its session and sequence) changes the state twice.
//!
//! Liveness, after healing: a leader within [`sim::LEADER_BOUND_US`] (5 s of virtual
//! time); every pending and not yet issued operation answered within
//! [`sim::OPS_BOUND_US`] (10 s) plus [`sim::PER_OP_BOUND_US`] (20 ms) per unissued
//! operation per client.
//!
//! ## Showing the checks are not vacuous
//!
//! raft-core is not modified: each broken variant ([`bugs::Bug`], `--bug <name>`) is
//! sabotage on the wire with the effect of a protocol bug, or a bug planted in the
//! production host engine or file store (their `planted-bugs` feature, switched on per run;
//! the simulator's driver is never sabotaged):
//!
//! | variant | sabotage | caught by |
//! |---|---|---|
//! | `ack-before-durable` | the engine reports a persist's token as soon as the core issues it | durability lost, forgotten terms, double votes, lost entries |
//! | `vote-without-log-check` | vote requests claim `last_log_term = term` | leader completeness |
//! | `commit-without-quorum` | appends tell followers to commit all the leader holds | leader completeness, linearizability |
//! | `commit-previous-term` | commit index raised to the majority-acknowledged index, any term (figure 8) | leader completeness, after leader changes over divergent logs |
//! | `stale-reads` | the engine serves every read from local state at once | linearizability |
//! | `skip-corruption-check` | file-store recovery cuts a corrupt record of the last segment like a torn tail (file storage) | durability lost, forgotten terms, double votes |
//! | `no-sessions` | retries carry no session | "write took effect twice" |
//! | `lease-beyond-bound` | clocks beyond the lease bound: a leader's clock at a quarter rate, pauses stop clocks | linearizability (stale lease read) |
//! | `durable-before-sync` | the engine's disk lane reports a work durable and syncs it with the next one | durability lost, forgotten terms, lost entries |
//! | `skip-sync` | the disk lane skips the sync of a lone small write | durability lost, forgotten terms, double votes, lost entries |
//! | `apply-before-commit` | the engine applies entries when they are appended | "applied before any node committed it" |
//! | `reply-before-apply` | the engine answers a read before its read index is applied | linearizability |
//! | `lose-unsynced-segment` | file-store recovery drops a last segment with a torn tail whole (file storage) | durability lost, forgotten terms, lost entries |
//!
//! Each variant's run draws a profile aimed at it ([`profile::FaultProfile::draw_for`]):
//! `commit-previous-term` gets many divergent-log faults, one-by-one appends, the figure-8
//! knockout always on and a longer fault phase; `lease-beyond-bound` many leader isolations,
//! a longer phase and none of the faults that end a leader's reign early;
//! `reply-before-apply` slow and held links and none of the faults that stop reads;
//! `skip-corruption-check` corruptions in every run. `raft-sim bugs` prints the catch table
//! (seeds caught of 100 and the first catching seed; `--require 10` fails below 10; `--bug
//! <name>` runs one variant). `tests/simulation.rs` requires
//! each to be caught within 40 seeds, and the real core to pass a short sweep;
//! `ci-sweep.sh` runs 1,000 seeds on memory and 500 on file storage in release mode, then
//! the catch table with `--require 10`. The linearizability checker is cross-checked
//! against a brute-force search
//! and the `todc-utils` crate in `tests/linearizability_oracle.rs`.
#![forbid(unsafe_code)]

pub mod bugs;
mod chaos;
pub mod checker;
pub mod commit_point;
mod durable;
pub mod faults;
pub mod host;
pub mod html;
pub mod invariant;
pub mod linearizability;
pub mod model;
pub mod network;
pub mod profile;
pub mod rng;
pub mod shrink;
pub mod sim;
pub mod store;
pub mod sweep;
pub mod trace;
mod watch;
pub mod workload;

pub use bugs::Bug;
pub use checker::{Violation, ViolationKind};
pub use invariant::Invariant;
pub use linearizability::Operation;
pub use model::Model;
pub use rng::SimRng;
pub use shrink::shrink;
pub use sim::{RunReport, SimOptions, Simulation};
pub use sweep::sweep;
pub use workload::{Call, Request, SimMachine, Workload};
