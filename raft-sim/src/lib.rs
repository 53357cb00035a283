//! raft-sim (being built): deterministic whole-cluster simulator.
#![forbid(unsafe_code)]

pub mod checker;
pub mod disk;
pub mod faults;
pub mod kv;
pub mod linearizability;
pub mod network;
pub mod profile;
pub mod rng;
pub mod workload;
