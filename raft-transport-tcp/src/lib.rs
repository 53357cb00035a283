//! raft-transport-tcp: see the workspace README; this crate is being built.
