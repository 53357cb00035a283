//! The numbers Raft is built on: node ids, terms and log indexes (re-exported from
//! [`crate::types`]).

/// Identifies a node in the cluster. `0` is never a valid id (it means "none" on the wire of
/// some adapters), so [`crate::Config::validate`] rejects it.
pub type NodeId = u64;

/// A Raft term. Terms only grow.
pub type Term = u64;

/// A position in the replicated log. The first real entry has index 1; index 0 is the empty
/// prefix (term 0).
pub type Index = u64;
