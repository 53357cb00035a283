//! # raft-core
//!
//! The Raft consensus protocol as a pure, deterministic state machine. The host (see
//! `raft-runtime`, or the simulator `raft-sim`) feeds it inputs and carries out the typed
//! actions it returns; the core itself does no IO, reads no clock and owns no thread.
#![forbid(unsafe_code)]

pub mod action;
pub mod config;
pub mod conformance;
pub mod membership;
pub mod message;
pub mod state_machine;
pub mod storage;
pub mod types;

mod durability;
mod election;
mod log;
mod node;
mod progress;
mod proposal;
mod quorum;
mod read;
mod reconfiguration;
mod replication;
mod snapshot;
mod transfer;

pub use action::{
    Action, ChangeId, PersistBatch, ProposalError, ProposalId, ReadError, ReadId, Role,
    SnapshotChunkWrite, TransferError, WriteToken,
};
pub use config::{Config, ConfigError};
pub use membership::{Membership, MembershipChange, MembershipError};
pub use message::{ConflictHint, Message, MessageBody};
pub use node::{Node, Status};
pub use progress::{PeerProgress, PeerState};
pub use read::ReadConsistency;
pub use state_machine::StateMachine;
pub use storage::Storage;
pub use types::{Entry, EntryPayload, HardState, Index, NodeId, RestoredState, SnapshotMeta, Term};
