//! raft-runtime: see the workspace README; this crate is being built.
