//! The [`Transport`] trait lives in the `raft-transport` crate, so a host needs this crate
//! only for TCP; it is re-exported here for compatibility.

pub use raft_transport::Transport;
