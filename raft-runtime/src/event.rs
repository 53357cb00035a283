//! Completions from the apply thread and the snapshot tasks back to the driver, which
//! hands them to the engine (the disk thread's go through [`crate::doorbell`]).

use raft_core::{StateMachine, Storage};
use raft_host::{Applied, SnapshotDone};

/// A completion for the driver.
pub(crate) enum LaneEvent<M: StateMachine, S: Storage, A> {
    /// An apply work item ran.
    Applied(Applied<M, A>),
    /// A snapshot save or chunk read ran.
    Snapshot(SnapshotDone<S>),
}
