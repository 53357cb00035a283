//! What the core asks its host to do, and the outcomes it reports.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::membership::{Membership, MembershipError};
use crate::message::Message;
pub use crate::outcome_error::{ProposalError, ReadError, TransferError};
use crate::types::{Entry, HardState, Index, NodeId, SnapshotMeta, Term};

/// Proof that a write was issued by the core. Only the core creates tokens; the host hands
/// each back through [`crate::Node::on_persisted`] once the write is durable. A token names
/// one write of one node's life, so a late notice for a log suffix that has since been
/// overwritten cannot be mistaken for a fresh one (the ABA race of asynchronous storage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use = "hand the token back through Node::on_persisted once the write is durable"]
pub struct WriteToken(pub(crate) u64);

impl WriteToken {
    /// The write's sequence number, for logs and metrics only. Writes are numbered from 1 in
    /// the order the core issued them.
    pub fn sequence(&self) -> u64 {
        self.0
    }
}

/// Identifies a client proposal for the lifetime of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[must_use = "the id is the only way to match the proposal's outcome action"]
pub struct ProposalId(pub u64);

/// Identifies a read request for the lifetime of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[must_use = "the id is the only way to match the read's outcome action"]
pub struct ReadId(pub u64);

/// Identifies a membership change request for the lifetime of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[must_use = "the id is the only way to match the change's outcome action"]
pub struct ChangeId(pub u64);

/// Identifies a leadership transfer request for the lifetime of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[must_use = "the id is the only way to match the transfer's outcome action"]
pub struct TransferId(pub u64);

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes before campaigning for real.
    PreCandidate,
    /// Campaigning in its current term.
    Candidate,
    /// Leads its current term.
    Leader,
}

/// Everything a host writes to stable storage in one go: optionally a new hard state, and
/// optionally a change to the log's tail. Apply the parts in this order: remove entries from
/// `truncate_from` on, append `entries`, save `hard_state`; then make all of it durable (one
/// fsync may cover several batches) and report the token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a batch must be written and its token reported"]
pub struct PersistBatch {
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Remove every stored entry with index >= this before appending (a conflicting suffix).
    pub truncate_from: Option<Index>,
    /// Entries to append after the (possibly truncated) log, contiguous.
    pub entries: Vec<Entry>,
    /// False when the batch only raises the commit index: losing it in a crash only delays
    /// re-applying after restart, so a host may report its token as soon as every earlier
    /// batch is durable, without an fsync of its own (it becomes durable with the next
    /// synced write). True whenever the log, the term or the vote changes: then the token
    /// may only be reported after an fsync that covers this batch.
    pub sync_required: bool,
    /// Hand back to [`crate::Node::on_persisted`] once this batch (and every earlier one) is
    /// durable.
    pub token: WriteToken,
}

/// One chunk of an incoming snapshot, to be written by the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunkWrite {
    /// The snapshot being received. A chunk at offset 0 starts it afresh.
    pub meta: SnapshotMeta,
    /// Byte offset of `data`.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
    /// True for the last chunk: the host then makes the snapshot its current one (fsync,
    /// rename), and removes stored log entries it covers; if the stored entry at
    /// `meta.index` has a term other than `meta.term`, or the log is shorter, it removes the
    /// whole stored log.
    pub done: bool,
    /// Hand back to [`crate::Node::on_persisted`] once the chunk is durable.
    pub token: WriteToken,
}

/// An instruction or a report from the core. Drain them after every input with
/// [`crate::Node::drain_actions`] and carry them out per lane, in order within a lane:
///
/// * disk lane, strictly in order: [`Action::Persist`], [`Action::WriteSnapshotChunk`],
///   [`Action::CompactLog`];
/// * apply lane, strictly in order: [`Action::Apply`], [`Action::RestoreStateMachine`];
/// * network: [`Action::Send`], [`Action::SendSnapshotChunk`], in any order, at once (the
///   core never asks to send something that depends on an unfinished write);
/// * reports: everything else.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "every action is an instruction or a report the host must handle"]
pub enum Action {
    /// Write to stable storage, then report the token.
    Persist(PersistBatch),
    /// Write one chunk of a snapshot received from the leader, then report the token.
    WriteSnapshotChunk(Box<SnapshotChunkWrite>),
    /// The log prefix through `through_index` is covered by the current snapshot: the host
    /// may drop those stored entries.
    CompactLog {
        /// The last index that may be dropped.
        through_index: Index,
    },
    /// Send a message to a peer. Losing it is harmless.
    Send(Message),
    /// Read up to `max_bytes` of the current snapshot from byte `offset` and send it to `to`
    /// as a [`crate::MessageBody::SnapshotChunk`] with the given term and metadata, `done` set
    /// when the chunk reaches the end. If the host's current snapshot is not `meta` any more,
    /// it sends nothing: the core will ask again for the newer one.
    SendSnapshotChunk {
        /// The receiver.
        to: NodeId,
        /// The leader's term, to put in the message.
        term: Term,
        /// The snapshot to send (boxed: large and rare).
        meta: Box<SnapshotMeta>,
        /// Where to start reading.
        offset: u64,
        /// The most bytes to put in this chunk.
        max_bytes: u64,
    },
    /// Apply these committed entries to the state machine, in order, then report the last
    /// index through [`crate::Node::on_applied`]. `Noop`, `Membership` and `Elided` entries
    /// carry nothing for the state machine but still advance the applied index.
    Apply(Vec<Entry>),
    /// Replace the state machine's state with the current snapshot's (installed from the
    /// leader). Later `Apply` actions continue from `meta.index + 1`.
    RestoreStateMachine {
        /// The snapshot installed.
        meta: Box<SnapshotMeta>,
    },
    /// A proposal's one and only outcome.
    ProposalOutcome {
        /// The proposal.
        id: ProposalId,
        /// `Ok(index)`: committed at `index`; its state machine result comes when that index
        /// is applied. `Err`: why it will never commit (or why its fate is unknown).
        result: Result<Index, ProposalError>,
    },
    /// A read's one and only outcome.
    ReadOutcome {
        /// The read.
        id: ReadId,
        /// `Ok(index)`: the read is linearizable once the state machine has applied `index`.
        result: Result<Index, ReadError>,
    },
    /// A membership change's one and only outcome.
    MembershipOutcome {
        /// The change request.
        id: ChangeId,
        /// `Ok(membership)`: the new configuration has committed.
        result: Result<Box<Membership>, MembershipError>,
    },
    /// A leadership transfer's one and only outcome.
    TransferOutcome {
        /// The transfer request.
        id: TransferId,
        /// The node leadership was handed to, or that was asked for (0 when none was named
        /// and none could be chosen).
        target: NodeId,
        /// `Ok` once the target was told to campaign and this leader stepped down for it.
        result: Result<(), TransferError>,
    },
    /// The node's role, term or known leader changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The leader of `term`, if known.
        leader: Option<NodeId>,
    },
    /// The node found its own stored data inconsistent with what the protocol requires
    /// (e.g. a peer's proof that its log lost durable entries). It has stopped: every later
    /// input is ignored. The host should stop the node and alert an operator.
    Halted {
        /// What was found.
        reason: String,
    },
}
