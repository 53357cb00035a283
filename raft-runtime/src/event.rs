//! Messages from the lanes (disk, apply, snapshot tasks) back to the driver.

use std::sync::{Mutex, MutexGuard};

use raft_core::{Index, NodeId, SnapshotMeta, StateMachine, WriteToken};

use crate::envelope::{AddressBook, PeerInfo};

/// What applying one committed command produced.
#[derive(Debug)]
pub(crate) enum EntryOutcome<R> {
    /// The state machine's response.
    Response(R),
    /// An address book record was applied.
    PeersUpdated,
    /// The entry reached this node without its payload (this node is a witness): the
    /// write happened, its response is not here.
    Elided { index: Index },
    /// The command at `index` could not be decoded; every replica skipped it.
    Invalid { index: Index, reason: String },
}

/// A report to the driver.
pub(crate) enum LaneEvent<M: StateMachine, A> {
    /// Every write up to `token` is durable.
    Persisted { token: WriteToken },
    /// The state machine applied through `index`; `results` holds the outcome of each
    /// command entry of the batch.
    Applied {
        index: Index,
        results: Vec<(Index, EntryOutcome<M::Response>)>,
    },
    /// The state machine was replaced by the snapshot at `index`.
    Restored { index: Index },
    /// The replicated address book changed: tell the transport.
    PeersChanged {
        upsert: Vec<(NodeId, PeerInfo<A>)>,
        remove: Vec<NodeId>,
    },
    /// A point-in-time view of the state machine at applied `index`, to be saved.
    SnapshotView {
        index: Index,
        view: M::Snapshot,
        book: AddressBook<A>,
    },
    /// A snapshot of our own was saved (or failed to be).
    SnapshotSaved(Result<SnapshotMeta, String>),
    /// A lane hit an error the node cannot continue after.
    Fatal(String),
}

/// Locks the shared storage. A poisoned lock means a storage call panicked mid-write: the
/// store's state is unknown, so this is fatal for the node.
pub(crate) fn lock_storage<S>(storage: &Mutex<S>) -> Result<MutexGuard<'_, S>, String> {
    storage
        .lock()
        .map_err(|_| "storage lock poisoned: a storage call panicked".to_string())
}
