//! # raft-sim-kv
//!
//! The `raft-kv` key-value store under the [`raft_sim`] simulator, as one user of its public
//! API: the workload ([`KvWorkload`]: get, put, delete and compare-and-set on a few keys,
//! with client sessions), the sequential model the history is checked against
//! ([`KvModel`], a register per key, keys checked independently) and the store's own
//! invariants ([`WritesOnce`]: exactly-once writes, acknowledged writes committed).
//!
//! It also holds the `raft-sim` command line, which runs this workload:
//!
//! ```text
//! cargo run --release -p raft-sim-kv -- run --seed 42              # exit 0: every check held; 1: a violation
//! cargo run --release -p raft-sim-kv -- run --seed 42 --trace t.log --html t.html
//! cargo run --release -p raft-sim-kv -- sweep --seeds 0..10000     # all cores, progress bar
//! cargo run --release -p raft-sim-kv -- run --seed 42 --bug stale-reads   # a broken variant
//! cargo run --release -p raft-sim-kv -- bugs --seeds 0..100        # the catch table
//! ```
//!
//! ```
//! use raft_sim::SimOptions;
//!
//! let options = SimOptions { operations: 100, ..SimOptions::standard(7) };
//! let report = raft_sim_kv::simulate(options.clone(), raft_sim_kv::DEFAULT_KEYS);
//! assert!(report.passed(), "{:?}", report.violations);
//! // The same seed and options replay the same run, event for event.
//! assert_eq!(raft_sim_kv::simulate(options, raft_sim_kv::DEFAULT_KEYS).digest, report.digest);
//! ```
#![forbid(unsafe_code)]

pub mod invariants;
pub mod machine;
pub mod model;
pub mod workload;

pub use invariants::WritesOnce;
pub use model::{Key, KvInput, KvModel, KvOp, KvOperation, KvOutput, Value};
pub use workload::KvWorkload;

use raft_sim::{Bug, RunReport, SimOptions, Simulation};

/// Keys the clients use unless told otherwise.
pub const DEFAULT_KEYS: u64 = 5;

/// The simulation of the key-value store for `options` on `keys` keys, with its
/// invariants. The `no-sessions` variant ([`Bug::NoSessions`]) makes the clients send
/// writes without a session.
pub fn simulation(options: SimOptions, keys: u64) -> Simulation<KvWorkload> {
    let workload = KvWorkload::new(keys, options.bug == Some(Bug::NoSessions));
    Simulation::new(options, workload).with_invariant(WritesOnce::default())
}

/// Runs [`simulation`] to the end.
pub fn simulate(options: SimOptions, keys: u64) -> RunReport {
    simulation(options, keys).run()
}
