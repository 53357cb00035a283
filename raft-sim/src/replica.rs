//! One node's copy of the user's state machine, fed with log bytes.

use bytes::Bytes;
use raft_core::{Index, StateMachine};

/// A replica of the state machine under test.
#[derive(Debug)]
pub struct Replica<M> {
    machine: M,
}

impl<M: StateMachine> Replica<M> {
    /// A replica holding `machine`.
    pub fn new(machine: M) -> Self {
        Replica { machine }
    }

    /// The state machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// Applies the command bytes at `index`. `None` when the bytes do not decode (the
    /// clients never propose such bytes, so this means a corrupted entry).
    pub fn apply(&mut self, index: Index, bytes: &[u8]) -> Option<M::Response> {
        let command: M::Command = postcard::from_bytes(bytes).ok()?;
        Some(self.machine.apply(index, command))
    }

    /// Answers a query from the current state.
    pub fn query(&self, query: &M::Query) -> M::QueryResponse {
        self.machine.query(query)
    }

    /// The state's bytes, for a snapshot.
    pub fn snapshot_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        // Writing into a Vec fails only if the state machine's own writer fails; the
        // snapshot then holds what was written, and restoring it reports the damage.
        if let Err(error) = M::write_snapshot(self.machine.snapshot(), &mut out) {
            tracing::warn!(%error, "state machine failed to write its snapshot");
        }
        Bytes::from(out)
    }

    /// Replaces the state with a snapshot's bytes; empty bytes mean `fresh()`, the empty
    /// state.
    pub fn restore(&mut self, bytes: &[u8], fresh: impl FnOnce() -> M) -> std::io::Result<()> {
        if bytes.is_empty() {
            self.machine = fresh();
            return Ok(());
        }
        let mut reader = bytes;
        self.machine.restore(&mut reader)
    }
}
