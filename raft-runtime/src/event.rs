//! Completions from the lanes (disk thread, apply thread, snapshot tasks) back to the
//! driver, which hands them to the engine.

use raft_core::{StateMachine, Storage};
use raft_host::{Applied, DiskDone, SnapshotDone};

/// A completion for the driver.
pub(crate) enum LaneEvent<M: StateMachine, S: Storage, A> {
    /// A disk work item ran.
    Disk(DiskDone<S>),
    /// An apply work item ran.
    Applied(Applied<M, A>),
    /// A snapshot save or chunk read ran.
    Snapshot(SnapshotDone<S>),
}
