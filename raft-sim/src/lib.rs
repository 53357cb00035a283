//! raft-sim (being built): deterministic whole-cluster simulator.
#![forbid(unsafe_code)]

pub mod disk;
pub mod faults;
pub mod linearizability;
pub mod profile;
pub mod rng;
