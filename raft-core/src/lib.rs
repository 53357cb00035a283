//! # raft-core
//!
//! The Raft consensus protocol as a pure, deterministic state machine. A host feeds a
//! [`Node`] inputs (ticks, peer messages, client commands, durability and apply notices)
//! and carries out the typed [`Action`]s it returns. The core does no IO, reads no clock,
//! owns no thread and draws randomness only from a ChaCha generator seeded by
//! [`Config::seed`]: the same inputs give the same actions, bit for bit. `raft-runtime` is
//! the tokio host; `raft-sim` is a deterministic simulator host.
//!
//! ## The host contract
//!
//! After every input, call [`Node::drain_actions`] and carry out each action in its lane:
//!
//! * **disk lane**, strictly in order: [`Action::Persist`], [`Action::WriteSnapshotChunk`],
//!   [`Action::CompactLog`]. Report [`Node::on_persisted`] with a write's token only once it
//!   is durable; one fsync may cover many writes, and reporting the last token covers all
//!   earlier ones.
//! * **apply lane**, strictly in order: [`Action::Apply`], [`Action::RestoreStateMachine`];
//!   report [`Node::on_applied`].
//! * **network**: [`Action::Send`] and [`Action::SendSnapshotChunk`] at once, in parallel
//!   with the disk. The core never emits a message that depends on state that is not yet
//!   durable (a vote grant, an append acknowledgement, a vote request): it holds such
//!   messages until the matching durability notice arrives. The leader replicates in
//!   parallel with its own write and counts itself toward commit only once durable.
//! * **reports**: outcomes of proposals, reads, membership changes and transfers; role
//!   changes; [`Action::Halted`].
//!
//! That is all the ordering a host needs. A durability notice names the write it is for
//! (a [`WriteToken`] only the core can create) and is re-checked against the log, so a
//! late notice for a log suffix that has since been overwritten cannot be mistaken for a
//! fresh one. On restart, build a new node from what storage restored
//! ([`RestoredState`]); it re-applies up to its persisted commit index.
//!
//! A minimal host for a single-node cluster, with "storage" that is durable at once:
//!
//! ```
//! use bytes::Bytes;
//! use raft_core::{Action, Config, EntryPayload, Membership, Node, RestoredState};
//!
//! let mut node = Node::new(Config::new(1, 42), RestoredState::bootstrap(Membership::with_voters([1]))).unwrap();
//! let mut log = Vec::new();          // the "disk"
//! let mut state = Vec::new();        // the "state machine"
//! let mut actions = Vec::new();
//! let mut proposed = false;
//! for _tick in 0..100 {
//!     node.tick();
//!     if node.leader() == Some(1) && !proposed {
//!         node.propose(Bytes::from_static(b"hello"));
//!         proposed = true;
//!     }
//!     // Drain until quiet: carrying out actions produces new inputs.
//!     loop {
//!         node.drain_actions(&mut actions);
//!         if actions.is_empty() {
//!             break;
//!         }
//!         for action in actions.drain(..) {
//!             match action {
//!                 Action::Persist(batch) => {
//!                     if let Some(from) = batch.truncate_from {
//!                         log.retain(|e: &raft_core::Entry| e.index < from);
//!                     }
//!                     log.extend(batch.entries);
//!                     node.on_persisted(batch.token); // "fsync" done
//!                 }
//!                 Action::Apply(entries) => {
//!                     let last = entries.last().map(|e| e.index).unwrap();
//!                     for entry in entries {
//!                         if let EntryPayload::Command(data) = entry.payload {
//!                             state.push(data);
//!                         }
//!                     }
//!                     node.on_applied(last);
//!                 }
//!                 Action::Send(_) => unreachable!("no peers in a single-node cluster"),
//!                 _ => {} // outcomes, role changes, snapshots
//!             }
//!         }
//!     }
//! }
//! assert_eq!(state, vec![Bytes::from_static(b"hello")]);
//! ```
//!
//! ## Features
//!
//! * **Elections** (section 5.2): randomized timeouts in `[election_ticks, 2*election_ticks)`,
//!   votes durable before granted, a no-op entry at the start of each term, commit only
//!   through entries of the current term. **Pre-vote** and **check-quorum** are on by
//!   default (thesis 9.6, 6.2).
//! * **Replication** (5.3): per-follower progress in probe, replicate or snapshot state; a
//!   pipeline of appends bounded by count and bytes; batching by bytes per message; fast
//!   backtracking with conflict hints.
//! * **Proposals**: every [`Node::propose`] gets exactly one [`Action::ProposalOutcome`]:
//!   committed at an index, or an error saying why (not leader, dropped after a leader
//!   change, outcome unknown, too large, overloaded, transfer in progress). Followers forward
//!   proposals to the leader unless [`Config::forward_proposals`] is off. Every command
//!   returns an id ([`ProposalId`], [`ReadId`], [`ChangeId`], [`TransferId`], all
//!   `#[must_use]`) and ends in exactly one outcome action carrying it, across leader
//!   changes; a proposal whose fate this node cannot learn (it was removed from the
//!   cluster) ends as unknown.
//! * **Snapshots**: the host saves a snapshot at an index from [`Node::snapshot_meta_at`] and
//!   reports it with [`Node::on_snapshot_saved`]; the core compacts. Followers whose next
//!   entry is compacted receive the snapshot in bounded chunks that resume after a loss.
//! * **Reads** ([`Node::read`]): ReadIndex on the leader, follower reads through the leader,
//!   and opt-in lease reads. See [`ReadConsistency`] for the clock assumption of leases: over
//!   one election timeout no node's clock may run more than `lease_drift_ticks` ticks slower
//!   than the leader's.
//!
//!   ```
//!   # use raft_core::{Action, Config, Membership, Node, ReadConsistency, RestoredState};
//!   # let mut node = Node::new(Config::new(1, 1), RestoredState::bootstrap(Membership::with_voters([1]))).unwrap();
//!   # let mut actions = Vec::new();
//!   # while node.leader() != Some(1) || node.commit_index() == 0 {
//!   #     node.tick();
//!   #     node.drain_actions(&mut actions);
//!   #     for a in actions.drain(..) { if let Action::Persist(b) = a { node.on_persisted(b.token); } }
//!   # }
//!   let read = node.read(ReadConsistency::Linearizable);
//!   node.drain_actions(&mut actions);
//!   // Serve the query once the state machine has applied `index`.
//!   assert!(actions.iter().any(|a| matches!(a, Action::ReadOutcome { id, result: Ok(_) } if *id == read)));
//!   ```
//! * **Leadership transfer** ([`Node::transfer_leadership`]): the leader refuses proposals,
//!   brings the target up to date and sends it `TimeoutNow`; the target campaigns at once,
//!   bypassing pre-vote and the check-quorum stickiness of other voters; the transfer aborts
//!   after an election timeout or when the target is removed. One
//!   [`Action::TransferOutcome`] per [`TransferId`]: done once the target was told to
//!   campaign and this leader stepped down, or failed with the reason.
//! * **Membership** ([`Node::change_membership`]): joint consensus for any set of changes.
//!   New voters catch up as non-members first; if they do not within
//!   [`Config::catch_up_timeout_ticks`] the change is abandoned. C(old,new) is left
//!   automatically, also by a new leader. A leader not in C(new) steps down once it commits.
//!   Learners replicate without voting and can be promoted automatically
//!   ([`Config::auto_promote_learners`]).
//! * **Witnesses** ([`MembershipChange::AddWitness`]): vote and count toward quorums but
//!   store no command payloads and never lead. Two full voters and a witness survive one
//!   voter down. The trade-off: a committed entry may then be stored in full on a single
//!   node (the other full voter being down), so losing that node's disk at that moment loses
//!   data that a three-full-voter cluster would keep; witnesses buy availability, not
//!   durability. A known limit: a witness may hold the only copy of a crashed leader's
//!   unsynced (hence uncommitted) tail; its log is then more up to date than the surviving
//!   full voters', so it refuses them its vote until an operator removes it. A witness
//!   cannot change role in place (remove it, wipe it, add it back);
//!   a node holding a witness's data ([`Node::has_incomplete_state`]) never leads and
//!   refuses reads and proposals.
//!
//! * **Hostile input**: [`Node::step`] validates every message before any protocol rule
//!   sees it: ranges that keep all index and term arithmetic within a `u64`
//!   ([`MAX_INDEX`], [`MAX_TERM`], [`MAX_TERM_JUMP`]), contiguous entries with sane terms,
//!   consistent snapshot metadata, one leader per term, no answer from a newer term, nothing
//!   contradicting a committed entry. An invalid message is dropped, counted per sender
//!   ([`Node::rejected_messages`]) and logged with the blame on the peer
//!   ([`PeerMisbehaved`]); it never panics or halts the node. Host misuse (a write token
//!   never issued, applying beyond what was handed out) panics with a message saying so,
//!   and the core asserts its own cheap invariants in release builds. What validation
//!   cannot catch is a forgery that claims the id of the real leader and agrees with
//!   everything the node knows: authenticate peers in the transport.
//!
//! ## Deviations from the thesis
//!
//! * Configuration entries take effect on append (as the thesis says), and a leader leaves a
//!   joint configuration as soon as it commits, including a leader elected while it was joint.
//! * A snapshot must not cover entries that are not yet durable in the local log
//!   ([`Node::snapshot_meta_at`] refuses), so storage never sees a write for a compacted
//!   index.
//! * An append or snapshot that contradicts an entry this node knows committed is refused
//!   as the sender's fault (dropped, counted, logged) instead of complied with: a real
//!   leader of a term at least ours holds every committed entry (Leader Completeness), so
//!   a single forged or broken message cannot halt a node. [`Action::Halted`] remains for
//!   a node whose own state is found inconsistent.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
mod ids;
mod log;
mod node;
mod outcome_error;
mod progress;
mod proposal;
mod quorum;
mod read;
mod reconfiguration;
mod replication;
mod snapshot;
mod state;
mod transfer;
mod validate;

pub use action::{
    Action, ChangeId, PersistBatch, ProposalError, ProposalId, ReadError, ReadId, Role,
    SnapshotChunkWrite, TransferError, TransferId, WriteToken,
};
pub use config::{Config, ConfigError, RetrySafe};
pub use membership::{Membership, MembershipChange, MembershipError};
pub use message::{ConflictHint, Message, MessageBody};
pub use node::{Node, Status};
pub use progress::{PeerProgress, PeerState};
pub use read::{LeaseRead, ReadConsistency};
pub use state_machine::StateMachine;
pub use storage::{MemStorage, Storage};
pub use types::{
    Entry, EntryPayload, HardState, Index, NodeId, RestoredState, RestoredStateError, SnapshotMeta,
    Term,
};
pub use validate::{MAX_INDEX, MAX_TERM, MAX_TERM_JUMP, PeerMisbehaved};
