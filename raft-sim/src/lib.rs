//! raft-sim (being built): deterministic whole-cluster simulator.
#![forbid(unsafe_code)]

pub mod bugs;
mod chaos;
pub mod checker;
pub mod disk;
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
pub mod trace;
pub mod workload;
