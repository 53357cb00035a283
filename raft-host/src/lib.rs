//! # raft-host
//!
//! The host engine: everything a host of a [`raft_core::Node`] must do, as one IO-free
//! state machine, [`Engine`]. It owns the core node and carries out the whole host contract
//! (group commit, apply, client outcomes, reads, snapshots, compaction, the replicated
//! address book, timers), but reads no clock, owns no thread and touches no file or socket
//! itself. A *driver* feeds it inputs and runs the work it hands out: the tokio driver
//! (`raft-runtime`) on a disk thread, an apply thread and sockets; the simulator
//! (`raft-sim`) at virtual times it chooses, with crashes in between. Both run the same
//! rules, so a seed can find a bug in the production host.
//!
//! The shape is quinn-proto's, one level up:
//!
//! ```text
//!            requests, messages, completions, now
//!  driver ─────────────────────────────────────────▶ Engine<M: StateMachine, S: Storage, A>
//!  (tokio, sim)                                       owns the core Node, pending outcomes,
//!        ◀─────────────────────────────────────────   lane queues, snapshots, address book
//!     poll_disk / poll_apply / poll_snapshot / poll_transmit / poll_reply /
//!     poll_peer_change / poll_timeout
//! ```
//!
//! # The host contract, on one page
//!
//! **Inputs** (`handle_*`; each may give the core something to say):
//! client commands ([`Engine::handle_propose`], [`Engine::handle_read`],
//! [`Engine::handle_change_membership`], [`Engine::handle_transfer`],
//! [`Engine::handle_set_peer`]; each returns the [`RequestId`] its one answer will carry),
//! peer messages ([`Engine::handle_message`]), time ([`Engine::handle_timeout`]: time is
//! always an argument, an offset from any origin the driver picks), and completions of the
//! engine's own work ([`Engine::handle_disk_done`], [`Engine::handle_applied`],
//! [`Engine::handle_snapshot_done`]).
//!
//! **Outputs** (`poll_*`, all `#[must_use]`). After a batch of inputs, *drain until quiet*:
//! call every `poll_*` until each returns `None`, carrying out what it returns:
//!
//! | output | what to do |
//! |---|---|
//! | [`Engine::poll_disk`] → [`DiskWork`] | [`DiskWork::run`] on the storage, in order, then [`Engine::handle_disk_done`] |
//! | [`Engine::poll_apply`] → [`ApplyWork`] | [`ApplyWork::run`] on the state machine, in order, then [`Engine::handle_applied`] |
//! | [`Engine::poll_snapshot`] → [`SnapshotWork`] | [`SnapshotWork::run`] (beside the lanes), then [`Engine::handle_snapshot_done`] |
//! | [`Engine::poll_transmit`] → `Message` | send it at once; losing it is harmless |
//! | [`Engine::poll_reply`] → answer | give it to the client that holds the [`RequestId`] |
//! | [`Engine::poll_peer_change`] → [`PeerChange`] | add, move or remove the peer in the transport |
//! | [`Engine::poll_timeout`] → time | call [`Engine::handle_timeout`] then (or earlier) |
//! | [`Engine::lease_grant`] → [`LeaseGrant`] | (optional) publish it to the lease-read fast path *before* `poll_transmit` and `poll_reply` |
//!
//! Batch inputs before draining: the core turns everything since the last drain into one
//! write and one message per peer, so many proposals cost one sync. A completion may be
//! reported at any later time (a simulator may crash the node between `run` and the
//! report: the work then counts as never done, which is what a crash means).
//!
//! **What must be durable before what.** Run disk work in the order it was handed out.
//! The engine reports a write's token to the core only after `run` returned, that is after
//! the sync that covers it; while a work that syncs is out, everything queued meanwhile
//! goes into the next one (group commit; see [`DISK_WORKS_IN_FLIGHT_MAX`]). A batch that only raises the commit index (`PersistBatch::sync_required`
//! false) costs no sync of its own. The core never asks to send a message that depends on
//! an unfinished write (a vote, an acknowledgement), so messages go out in parallel with
//! the disk, and a leader counts itself toward commit only once its own write is durable.
//! A snapshot is saved only at an index that is applied *and* durable.
//!
//! **Apply may run ahead of local durability on a follower:** an entry is applied once it
//! is committed (a quorum has it), which a follower may learn before its own copy is
//! synced. That is safe: a crash loses only the local copy of an entry the quorum keeps.
//!
//! **Memory.** The core keeps the log since the last snapshot in memory; the
//! [`SnapshotPolicy`] bounds it. The engine's own queues are bounded by what is in flight:
//! client requests waiting (the driver bounds those), writes and entries not yet handed
//! out (bounded by the core's in-flight limits), and results kept for forwarded proposals
//! (only those above the oldest waiting proposal's floor).
//!
//! **What the engine does for you:** group commit; token reporting; apply in order with
//! queries placed right after the entries their read index needs; exactly one answer per
//! request, joining the core's outcome with the state machine's result (also when a
//! forwarded proposal learns its index after the entry applied); witness refusals; the
//! snapshot policy, saving views beside the lanes, streaming chunks to lagging peers from
//! per-peer cursors, installing the leader's snapshot and restoring the state machine;
//! compaction; the replicated address book (log records and snapshot header); ticks from
//! elapsed time. Restart: [`restore`] loads the snapshot, and the core re-hands entries up
//! to the persisted commit index for re-apply, so the state machine never goes backwards.
//!
//! **Watching and simulating.** A driver that runs the disk at simulated times may split
//! [`DiskWork::run`] into [`DiskWork::write`] (when the work starts) and
//! [`DiskWritten::sync`] (when the disk would finish), so a crash in between loses what a
//! real disk could. [`Engine::set_observing`] turns on a feed of [`Observation`]s (writes
//! handed out, durability reported, entries applied with their term and response, answers,
//! role changes, stops) for a checker; off, it costs one branch. With the `planted-bugs`
//! feature, `Engine::plant` gives an engine one of the [`PlantedBug`]s, so a simulator
//! can show that its checks catch host bugs; without the feature none can be switched on.
//!
//! **Misuse panics.** Reporting a completion for work that was never handed out, twice,
//! or out of order is a driver bug, not an input: the `handle_*_done` methods panic with a
//! message naming the misuse (see their `# Panics` sections). A storage, apply or core
//! failure is not misuse: the engine stops ([`Engine::fatal_error`]) and the driver
//! answers waiting clients with [`Engine::fail_all`].
//!
//! # Example: a synchronous driver
//!
//! ```
//! use std::sync::Mutex;
//! use std::time::Duration;
//! use raft_core::conformance::MemStorage;
//! # use raft_core::{Index, StateMachine};
//! # struct Counter(u64);
//! # impl StateMachine for Counter {
//! #     type Command = u64; type Response = u64; type Query = (); type QueryResponse = u64;
//! #     type Snapshot = u64;
//! #     fn apply(&mut self, _: Index, n: u64) -> u64 { self.0 += n; self.0 }
//! #     fn query(&self, _: &()) -> u64 { self.0 }
//! #     fn snapshot(&self) -> u64 { self.0 }
//! #     fn write_snapshot(v: u64, w: &mut dyn std::io::Write) -> std::io::Result<()> { w.write_all(&v.to_le_bytes()) }
//! #     fn restore(&mut self, r: &mut dyn std::io::Read) -> std::io::Result<()> {
//! #         let mut b = [0; 8]; r.read_exact(&mut b)?; self.0 = u64::from_le_bytes(b); Ok(()) }
//! # }
//! use raft_host::{AddressBook, Engine, EngineConfig, Init, PeerInfo, Proposal, Reply};
//!
//! let storage = Mutex::new(MemStorage::new());
//! let mut counter = Counter(0);
//! let members = AddressBook::from([(1, PeerInfo::new(()))]);
//! let startup = raft_host::restore(1, &storage, &mut counter, &Init::Bootstrap { members })?;
//! let config = EngineConfig::new(raft_core::Config::new(1, 7));
//! let mut engine: Engine<Counter, MemStorage, ()> = Engine::new(config, startup, Duration::ZERO)?;
//! let mut now = Duration::ZERO;
//! let mut request = None;
//! let mut answer = None;
//! while answer.is_none() {
//!     now = engine.poll_timeout();
//!     engine.handle_timeout(now);
//!     if request.is_none() && engine.node().leader() == Some(1) {
//!         request = Some(engine.handle_propose(Proposal::command(&5u64)?));
//!     }
//!     // Drain until quiet.
//!     loop {
//!         let mut busy = false;
//!         while let Some(work) = engine.poll_disk() {
//!             let done = work.run(&mut storage.lock().unwrap());
//!             engine.handle_disk_done(done);
//!             busy = true;
//!         }
//!         while let Some(work) = engine.poll_apply() {
//!             engine.handle_applied(work.run(&mut counter, &storage));
//!             busy = true;
//!         }
//!         while let Some((id, result)) = engine.poll_reply() {
//!             assert_eq!(Some(id), request);
//!             answer = Some(result);
//!         }
//!         while engine.poll_peer_change().is_some() {}
//!         if !busy { break; }
//!     }
//! }
//! assert!(matches!(answer, Some(Ok(Reply::Response(5)))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod apply;
mod book;
mod clock;
mod config;
mod disk;
mod engine;
mod envelope;
mod error;
mod lease;
mod observe;
mod outputs;
mod pending;
mod planted;
mod snapshot;
mod start;

use std::sync::{Mutex, MutexGuard};

pub use apply::{
    APPLY_LIGHT_BYTES_MAX, APPLY_LIGHT_ENTRIES_MAX, APPLY_WORKS_IN_FLIGHT_MAX, Applied, ApplyWork,
};
pub use book::PeerChange;
pub use config::{EngineConfig, EngineConfigError, SnapshotPolicy};
pub use disk::{DISK_WORKS_IN_FLIGHT_MAX, DiskDone, DiskWork, DiskWritten};
pub use engine::{Answer, Consistency, Engine, EngineMetrics, Proposal};
pub use envelope::{AddressBook, PeerInfo};
pub use error::{Error, RestoreError};
pub use lease::LeaseGrant;
pub use observe::Observation;
pub use pending::{Reply, RequestId};
pub use planted::PlantedBug;
pub use snapshot::{SnapshotDone, SnapshotWork};
pub use start::{Init, Startup, founding_membership, restore};

/// Locks the storage. A poisoned lock means a storage call panicked mid-write: the store's
/// state is unknown, so this is fatal for the node.
pub(crate) fn lock<S>(storage: &Mutex<S>) -> Result<MutexGuard<'_, S>, String> {
    storage
        .lock()
        .map_err(|_| "storage lock poisoned: a storage call panicked".to_string())
}
