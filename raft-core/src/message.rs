//! Messages exchanged between peers. Adapters encode them with serde (postcard); the core
//! never sees bytes on the wire.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::types::{Entry, Index, NodeId, SnapshotMeta, Term};

/// A message from one node to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// The sender's term (for a pre-vote request: the term it would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// RequestVote (section 5.2), or its pre-vote form (thesis section 9.6).
    VoteRequest {
        /// A pre-vote asks "would you vote for me?" without anyone changing term.
        pre_vote: bool,
        /// Index of the candidate's last log entry.
        last_log_index: Index,
        /// Term of the candidate's last log entry.
        last_log_term: Term,
        /// Set when the leader asked the candidate to campaign (leadership transfer): voters
        /// then ignore their check-quorum stickiness.
        transfer: bool,
    },
    /// The answer to a [`MessageBody::VoteRequest`].
    VoteResponse {
        /// Echoes the request's `pre_vote`.
        pre_vote: bool,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries (section 5.3). With no entries it doubles as a probe.
    Append {
        /// Index of the entry just before `entries`.
        prev_log_index: Index,
        /// Term of the entry at `prev_log_index`.
        prev_log_term: Term,
        /// Entries to append, contiguous from `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: Index,
    },
    /// The answer to an [`MessageBody::Append`].
    AppendResponse {
        /// True if the follower's log now matches the leader's through `match_index`.
        success: bool,
        /// On success: the last index known to match (and durable on the follower). On
        /// failure: the `prev_log_index` that was rejected.
        match_index: Index,
        /// On failure: where the leader should look next (fast backtracking).
        hint: Option<ConflictHint>,
    },
    /// Leader liveness and commit propagation. `round` ties acknowledgements to the
    /// heartbeat round that confirmed leadership for pending reads.
    Heartbeat {
        /// The leader's commit index capped at the follower's known match index.
        commit: Index,
        /// The leader's heartbeat round number.
        round: u64,
    },
    /// The answer to a [`MessageBody::Heartbeat`].
    HeartbeatResponse {
        /// Echoes the heartbeat's round.
        round: u64,
    },
    /// One chunk of a snapshot (section 7). Chunks are sent one at a time and acknowledged.
    SnapshotChunk {
        /// The snapshot being sent (boxed: it is large and rare).
        meta: Box<SnapshotMeta>,
        /// Byte offset of `data` in the snapshot.
        offset: u64,
        /// The chunk's bytes.
        data: Bytes,
        /// True for the last chunk.
        done: bool,
    },
    /// The answer to a [`MessageBody::SnapshotChunk`].
    SnapshotResponse {
        /// Index of the snapshot the answer is about.
        index: Index,
        /// The offset the follower expects next (the resume point after a loss).
        next_offset: u64,
        /// True once the whole snapshot is durable and installed.
        installed: bool,
    },
    /// Leadership transfer: "campaign now" (thesis section 3.10).
    TimeoutNow,
    /// A follower forwards a client proposal to the leader.
    ForwardProposal {
        /// The follower's proposal id, echoed in the answer.
        id: u64,
        /// The command.
        data: Bytes,
    },
    /// The leader's answer to a [`MessageBody::ForwardProposal`].
    ForwardProposalResponse {
        /// The follower's proposal id.
        id: u64,
        /// Where the proposal was appended (index, term), or why it was refused.
        result: Result<(Index, Term), crate::outcome_error::ProposalError>,
    },
    /// A follower asks the leader for a confirmed read index (thesis section 6.4).
    ReadIndexRequest {
        /// The follower's read id, echoed in the answer.
        id: u64,
    },
    /// The leader's answer to a [`MessageBody::ReadIndexRequest`].
    ReadIndexResponse {
        /// The follower's read id.
        id: u64,
        /// The index to wait for before reading, or why the read failed.
        result: Result<Index, crate::outcome_error::ReadError>,
    },
}

/// Where a follower's log diverges, so the leader can skip a whole term per round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictHint {
    /// The first index of the conflicting term in the follower's log, or the follower's last
    /// index + 1 when its log is too short.
    pub index: Index,
    /// The term of the follower's entry at `prev_log_index`, or 0 when its log is too short.
    pub term: Term,
}

impl Message {
    /// True for messages that carry snapshot data; transports send these on a separate lane
    /// so heartbeats and appends are never stuck behind a large snapshot.
    pub fn is_snapshot_data(&self) -> bool {
        matches!(self.body, MessageBody::SnapshotChunk { .. })
    }

    /// A short name of the message kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match &self.body {
            MessageBody::VoteRequest { pre_vote: true, .. } => "pre_vote_request",
            MessageBody::VoteRequest { .. } => "vote_request",
            MessageBody::VoteResponse { pre_vote: true, .. } => "pre_vote_response",
            MessageBody::VoteResponse { .. } => "vote_response",
            MessageBody::Append { .. } => "append",
            MessageBody::AppendResponse { .. } => "append_response",
            MessageBody::Heartbeat { .. } => "heartbeat",
            MessageBody::HeartbeatResponse { .. } => "heartbeat_response",
            MessageBody::SnapshotChunk { .. } => "snapshot_chunk",
            MessageBody::SnapshotResponse { .. } => "snapshot_response",
            MessageBody::TimeoutNow => "timeout_now",
            MessageBody::ForwardProposal { .. } => "forward_proposal",
            MessageBody::ForwardProposalResponse { .. } => "forward_proposal_response",
            MessageBody::ReadIndexRequest { .. } => "read_index_request",
            MessageBody::ReadIndexResponse { .. } => "read_index_response",
        }
    }
}
