//! # raft-sim
//!
//! A deterministic whole-cluster simulator for `raft-core`: 1 to 7 real
//! [`raft_core::Node`]s, each with the real key-value state machine of `raft-kv`, a
//! simulated disk and a simulated network, driven by one queue of events ordered by
//! (virtual time, sequence number). Every random choice comes from ChaCha streams of one
//! seed ([`rng`]); nothing depends on wall-clock time, threads or hash-map order, so a seed
//! and its options replay the same run, event for event.
//!
//! ## Running, replaying, viewing
//!
//! ```text
//! cargo run --release -p raft-sim -- run --seed 42              # exit 0: every check held; 1: a violation
//! cargo run --release -p raft-sim -- run --seed 42 --trace t.log --html t.html
//! cargo run --release -p raft-sim -- sweep --seeds 0..10000     # all cores, progress bar
//! cargo run --release -p raft-sim -- run --seed 42 --bug stale-reads   # a broken variant
//! ```
//!
//! `run` prints the profile, the violations, and as its last line
//! `seed=.. result=pass|FAIL events=.. trace=<digest>`; the digest covers every event, so two
//! runs with the same seed and options print the same line. A failing run is shrunk (delta
//! debugging over the fault schedule, [`shrink`]) and the command that replays the smaller
//! schedule is printed (`--faults=3,7,12`). `sweep` ends with `passed=<n> failed=<m>` and
//! prints the replay command of every failure. `--trace` writes a readable log (the fault
//! schedule, then one line per event and per notable host action); `--html` writes a
//! self-contained page with a lane per node (role, term, commit index, faults) and per
//! client (operations, green when answered, red when their outcome is unknown).
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
//! * Disk ([`disk`]), below the core's durability contract: writes not yet synced are lost
//!   on a crash except a random prefix, whose last write may be torn; a durable record may be
//!   corrupted on a minority of nodes (never more than the configuration survives). Records
//!   carry a checksum (modelled as a flag); on restore a torn tail past the sync marker is
//!   dropped, a damaged durable record makes the node refuse to start, so it can neither
//!   serve nor vote with a log that lost acknowledged entries.
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
//! The hosts ([`host`]) follow the host contract of raft-core to the letter: disk-lane
//! actions in order with one sync per group and `on_persisted` only once durable; apply-lane
//! actions in order; messages sent at once; a read is served once the state machine has
//! applied its index. A witness, and any replica that skipped payloads (it applied an
//! elided entry or restored a payload-less snapshot), serves no client.
//!
//! ## Checks
//!
//! On every event ([`checker`]): at most one leader per term; log matching (same index and
//! term means same payload and same predecessor term); commit safety (one entry per
//! committed index, ever) and commit indexes that never go back; leader completeness (a
//! leader of term t holds every entry committed in a term before t, and no elided payload);
//! state machine safety (one entry per applied index across nodes, no gaps); durable
//! promises (no two votes in one term, a restarted node's term at least the highest term it
//! promised in). At client level: the history (put, get, delete, compare-and-set on a small
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
//! sabotage in the host or on the wire with the effect of a protocol bug:
//!
//! | variant | sabotage | caught by |
//! |---|---|---|
//! | `ack-before-durable` | the host reports a persist's token as soon as it is issued | restore of a snapshot not on disk, forgotten terms, lost entries |
//! | `vote-without-log-check` | vote requests claim `last_log_term = term` | leader completeness |
//! | `commit-without-quorum` | appends tell followers to commit all the leader holds | leader completeness, linearizability |
//! | `commit-previous-term` | commit index raised to the majority-acknowledged index, any term (figure 8) | leader completeness, after leader changes over divergent logs |
//! | `stale-reads` | reads answered from local state at once | linearizability |
//! | `skip-corruption-check` | restore drops a corrupt durable record like a torn tail | forgotten terms, double votes |
//! | `no-sessions` | retries carry no session | "write took effect twice" |
//! | `lease-beyond-bound` | clocks beyond the lease bound: a leader's clock at a quarter rate, pauses stop clocks | linearizability (stale lease read) |
//!
//! Each variant's run draws a profile aimed at it ([`profile::FaultProfile::draw_for`]):
//! `commit-previous-term` gets many divergent-log faults, one-by-one appends, the figure-8
//! knockout always on and a longer fault phase; `lease-beyond-bound` many leader isolations,
//! a longer phase and none of the faults that end a leader's reign early. `raft-sim bugs`
//! prints the catch table (seeds caught of 100 and the first catching seed; `--require 10`
//! fails below 10; `--bug <name>` runs one variant; runs stop at 1,000,000 events there,
//! five times what a healthy run takes, so a livelocked variant is caught sooner). `tests/simulation.rs` requires each to be caught within 40 seeds, and
//! the real core to pass a short sweep; `ci-sweep.sh` runs 1,000 seeds in release mode. The linearizability checker is cross-checked against a brute-force search
//! and the `todc-utils` crate in `tests/linearizability_oracle.rs`.
#![forbid(unsafe_code)]

pub mod bugs;
mod chaos;
pub mod checker;
pub mod commit_point;
pub mod faults;
pub mod host;
pub mod html;
pub mod kv;
pub mod linearizability;
pub mod network;
pub mod profile;
pub mod rng;
pub mod shrink;
pub mod sim;
pub mod store;
pub mod trace;
mod watch;
pub mod workload;
