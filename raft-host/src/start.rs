//! How a node starts: restore from its storage alone, or found or join a cluster when the
//! storage is empty.

use std::sync::Mutex;

use raft_core::{Membership, NodeId, RestoredState, SnapshotMeta, StateMachine, Storage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::restore_sized;
use crate::envelope::AddressBook;
use crate::error::RestoreError;

/// How a node joins its cluster on its first start. On a restart (the storage holds
/// state) the storage wins and only the peer addresses are used.
#[derive(Clone, Debug)]
pub enum Init<A> {
    /// Found a new cluster whose voters are exactly `members` (this node included), with
    /// their addresses. Give every founding member the same map.
    Bootstrap {
        /// Every founding member and its address.
        members: AddressBook<A>,
    },
    /// Start empty and wait to be added by the leader. `peers` are current members'
    /// addresses, so this node accepts their connections before the replicated address
    /// book reaches it.
    Join {
        /// Addresses of (some of) the current members; the leader at least.
        peers: AddressBook<A>,
    },
    /// Restart from the storage alone.
    Restart,
}

/// What [`restore`] read from the storage: everything [`crate::Engine::new`] needs.
#[derive(Debug)]
pub struct Startup<A> {
    /// The core's state.
    pub restored: RestoredState,
    /// The replicated address book as of the snapshot.
    pub book: AddressBook<A>,
    /// Peers given at start ([`Init::Bootstrap`] members or [`Init::Join`] peers).
    pub peers: AddressBook<A>,
    /// Bytes of the stored snapshot that were read, so the snapshot policy amortises the
    /// first snapshot after a restart against it (0 without a snapshot).
    pub snapshot_bytes: u64,
}

/// The membership a bootstrapped cluster starts with: every founding member votes.
pub fn founding_membership<A>(members: &AddressBook<A>) -> Membership {
    Membership::with_voters(members.keys().copied())
}

/// Restores node `id` from `storage`, loading the latest snapshot into `state_machine`
/// (pass an empty one). An empty storage with [`Init::Bootstrap`] founds the cluster: the
/// founding membership and addresses are saved as a snapshot at index 0, so they survive
/// restarts like any other snapshot. Blocking IO: run it where blocking is allowed.
pub fn restore<M, S, A>(
    id: NodeId,
    storage: &Mutex<S>,
    state_machine: &mut M,
    init: &Init<A>,
) -> Result<Startup<A>, RestoreError>
where
    M: StateMachine,
    S: Storage,
    A: Clone + Serialize + DeserializeOwned,
{
    let restored = crate::lock(storage)
        .map_err(|reason| RestoreError::Storage {
            operation: "restore",
            source: reason.into(),
        })?
        .restore()
        .map_err(|e| RestoreError::Storage {
            operation: "restore",
            source: Box::new(e),
        })?;
    // Read-back check: corrupt or buggy storage is an error here, not a panic in the core.
    restored
        .validate()
        .map_err(|error| RestoreError::Inconsistent(error.to_string()))?;
    let peers = match init {
        Init::Bootstrap { members } => members.clone(),
        Init::Join { peers } => peers.clone(),
        Init::Restart => AddressBook::new(),
    };
    let is_empty = restored.hard_state == Default::default()
        && restored.snapshot.index == 0
        && restored.entries.is_empty()
        && restored.snapshot.membership.members().is_empty();
    if is_empty && let Init::Bootstrap { members } = init {
        return bootstrap(id, storage, state_machine, members);
    }
    let loaded = restore_sized::<M, S, A>(state_machine, storage).map_err(|reason| {
        RestoreError::Snapshot {
            index: restored.snapshot.index,
            reason,
        }
    })?;
    let (book, snapshot_bytes) = match loaded {
        Some(((_, book), bytes)) => (book.unwrap_or_default(), bytes),
        None => (AddressBook::default(), 0),
    };
    tracing::info!(
        node = id,
        snapshot_index = restored.snapshot.index,
        entries = restored.entries.len(),
        commit = restored.hard_state.commit,
        term = restored.hard_state.term,
        "restored from storage"
    );
    Ok(Startup {
        restored,
        book,
        peers,
        snapshot_bytes,
    })
}

fn bootstrap<M, S, A>(
    id: NodeId,
    storage: &Mutex<S>,
    state_machine: &M,
    members: &AddressBook<A>,
) -> Result<Startup<A>, RestoreError>
where
    M: StateMachine,
    S: Storage,
    A: Clone + Serialize,
{
    if !members.contains_key(&id) {
        return Err(RestoreError::BootstrapWithoutSelf(id));
    }
    let membership = founding_membership(members);
    let meta = SnapshotMeta {
        index: 0,
        term: 0,
        membership: membership.clone(),
    };
    crate::snapshot::save::<M, S, A>(storage, meta, state_machine.snapshot(), members).map_err(
        |reason| RestoreError::Storage {
            operation: "bootstrap snapshot",
            source: reason.into(),
        },
    )?;
    tracing::info!(node = id, membership = %membership.describe(), "bootstrapped a new cluster");
    Ok(Startup {
        restored: RestoredState::bootstrap(membership),
        book: members.clone(),
        peers: members.clone(),
        // The founding snapshot holds an empty state: nothing to amortise against.
        snapshot_bytes: 0,
    })
}
