//! raft-storage-file: see the workspace README; this crate is being built.
