//! Validation of every inbound [`Message`] before any protocol code sees it.
//!
//! [`Node::step`] runs [`Node::validate`] first. A message that fails is dropped, counted
//! against its sender ([`Node::rejected_messages`]) and logged with the blame on the peer
//! (rate-limited per sender); it never panics the node and never halts it. Validation reads
//! the message and the node's state and allocates nothing, so honest traffic pays a few
//! comparisons per message and per entry.
//!
//! Every rule below is *provable*: an honest peer following this crate's protocol can never
//! send a message that breaks it, so a rejection is always the sender's fault (a bug, a
//! broken peer, or a forgery). Rules that would only be "usually true" are not here,
//! because refusing an honest message can stall a cluster.
//!
//! * **Envelope**: addressed to this node; a sender id that is neither 0 (reserved) nor ours.
//! * **Ranges**: terms at most [`MAX_TERM`] and indices at most [`MAX_INDEX`], so that every
//!   `+ 1` the core does on them fits in a `u64`. No honest cluster gets near: at a million
//!   elections a second it would take 290,000 years to reach `MAX_TERM`. A message may move
//!   this node's term forward by at most [`MAX_TERM_JUMP`], so that no single message can
//!   push a node (and through it the cluster) to a term it can never leave. This one rule is
//!   a bound rather than a proof: an honest node more than 2^32 terms behind its cluster
//!   would be refused, which takes 13 years of elections at ten a second.
//! * **Shape**: entries contiguous from `prev_log_index + 1`, entry terms non-decreasing, at
//!   least `prev_log_term` and at most the message term; a leader's messages carry a term of
//!   at least 1; snapshot metadata with index and term at least 1, term at most the message
//!   term, a chunk whose end fits in a `u64`; configurations with no id 0, witnesses among
//!   the voters and learners outside the incoming voters.
//! * **Who may send it**: one leader per term (section 5.2), so leader messages (append,
//!   heartbeat, snapshot chunk, `TimeoutNow`) of the current term must come from the leader
//!   this node already follows in it, and never reach the leader of that term itself.
//!   `TimeoutNow` is honoured only from the known leader (see [`Node::step`]).
//! * **Answers from the future**: a message that only ever answers something this node
//!   sent in its own term (a vote, heartbeat or snapshot response, a successful or hinted
//!   append response, forwarded proposals and reads, the answer to a forwarded proposal,
//!   `TimeoutNow`) cannot carry a term above this node's, since terms never decrease. Only
//!   vote requests, leader messages, refused pre-votes, the bare "your term is stale"
//!   append response and read-index answers (a deposed leader fails the reads it held in
//!   its new term) may bring a newer term. (One honest exception: a node that crashed before its new term
//!   was durable may, after the restart, receive the answer to a pre-vote or forwarded
//!   request it sent in that term; the answer belongs to its previous life and dropping it
//!   loses nothing, but it is counted against the peer.)
//! * **Against the log**: a leader of a term at least ours holds every entry we know to be
//!   committed (Leader Completeness, section 5.4), so an append or snapshot that contradicts
//!   a committed entry is refused instead of halting the node; a follower cannot acknowledge
//!   an index beyond the leader's own log.
//!
//! What validation cannot do: tell a forged message from a real one when it claims the id
//! of the real leader of the current term and agrees with everything this node knows. Peer
//! authentication (mutual TLS in the transport) closes that door. Nor can it require the
//! sender to be a member of this node's configuration: a node with an empty configuration
//! waits to be contacted by a leader it does not know yet, a lagging node hears from
//! candidates and leaders added by configurations it has not received, a leader replicates
//! to catching-up non-members and learners and hears their answers, and a removed node
//! still learns of its removal from the leader. Membership is therefore checked by the role
//! rules above, not by a list.

use thiserror::Error;

use crate::message::{Message, MessageBody};
use crate::node::Node;
use crate::node::role::RoleState;
use crate::types::{Index, NodeId, Term};

use shape::{check_shape, highest_answer_term, leader_kind};

/// The highest term a message may carry; see the module docs of validation in
/// [`Node::step`]. A node never campaigns beyond it.
pub const MAX_TERM: Term = u64::MAX / 2;

/// The highest log index a message may carry (or a node append).
pub const MAX_INDEX: Index = u64::MAX / 2;

/// How far one message may move this node's term forward. Without it a single message
/// with a term near [`MAX_TERM`] would leave the cluster without terms to elect leaders in;
/// with it, exhausting the terms takes 2^31 accepted messages. An honest node is never this
/// far behind its cluster: 2^32 elections at ten a second take 13 years.
pub const MAX_TERM_JUMP: Term = 1 << 32;

/// Why an inbound message was refused: the peer misbehaved (it is buggy, broken or hostile).
/// Each variant says what was expected and what arrived. The message is dropped and counted;
/// the node carries on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// The message names another receiver.
    #[error("addressed to node {got}, expected this node ({expected})")]
    WrongRecipient {
        /// This node's id.
        expected: NodeId,
        /// The `to` of the message.
        got: NodeId,
    },
    /// The sender id is 0 (reserved) or this node's own.
    #[error("sender id {got}: expected a peer's id, neither 0 nor this node's own")]
    InvalidSender {
        /// The `from` of the message.
        got: NodeId,
    },
    /// A term beyond [`MAX_TERM`].
    #[error("{field} {got}: expected at most {max}")]
    TermTooHigh {
        /// Which field.
        field: &'static str,
        /// The limit.
        max: Term,
        /// What arrived.
        got: Term,
    },
    /// An index outside the range the message allows (at most [`MAX_INDEX`]).
    #[error("{field} {got}: expected an index in {min}..={max}")]
    IndexOutOfRange {
        /// Which field.
        field: &'static str,
        /// Lowest allowed.
        min: Index,
        /// Highest allowed.
        max: Index,
        /// What arrived.
        got: Index,
    },
    /// A term outside the range the rest of the message allows.
    #[error("{field} {got}: expected a term in {min}..={max}")]
    TermOutOfRange {
        /// Which field (`term`, `prev_log_term`, `last_log_term`, `entry term`, ...).
        field: &'static str,
        /// Lowest allowed.
        min: Term,
        /// Highest allowed.
        max: Term,
        /// What arrived.
        got: Term,
    },
    /// Entries that are not contiguous from `prev_log_index + 1`.
    #[error("entry at position {position}: expected index {expected}, got {got}")]
    EntryIndexGap {
        /// Position in the message's entry list.
        position: usize,
        /// The index it must have.
        expected: Index,
        /// The index it has.
        got: Index,
    },
    /// A message only the leader of its term sends, from someone else.
    #[error(
        "{kind} in term {term}: expected it from node {expected}, the leader of that term, got it from node {got}"
    )]
    NotFromLeader {
        /// The message kind.
        kind: &'static str,
        /// The term.
        term: Term,
        /// The leader of that term as this node knows it (itself if it leads).
        expected: NodeId,
        /// The sender.
        got: NodeId,
    },
    /// An answer (or a leader's request to a follower it caught up) in a term above this
    /// node's: it cannot answer anything this node sent.
    #[error("{kind} in term {got}: expected at most term {max}, the term it answers")]
    TermAhead {
        /// The message kind.
        kind: &'static str,
        /// The highest term such a message can carry.
        max: Term,
        /// What arrived.
        got: Term,
    },
    /// An entry, snapshot or previous entry that contradicts one this node knows committed.
    #[error("index {index} is committed with term {expected}, got term {got}")]
    ContradictsCommitted {
        /// The index.
        index: Index,
        /// The committed entry's term.
        expected: Term,
        /// The term the message claims.
        got: Term,
    },
    /// A follower acknowledged an index beyond the leader's log.
    #[error("acknowledged index {got}: expected at most this leader's last index {max}")]
    AckBeyondLog {
        /// The leader's last index.
        max: Index,
        /// What was acknowledged.
        got: Index,
    },
    /// A heartbeat acknowledgement of a round this leader never opened (it would confirm
    /// reads without a quorum).
    #[error("heartbeat round {got} acknowledged: expected at most this leader's round {max}")]
    RoundAhead {
        /// The latest round opened.
        max: u64,
        /// The round acknowledged.
        got: u64,
    },
    /// A snapshot chunk whose end does not fit in a `u64`.
    #[error("snapshot chunk at offset {offset} of {len_bytes} bytes: expected an end below 2^64")]
    SnapshotChunkOverflow {
        /// The chunk's offset.
        offset: u64,
        /// The chunk's length.
        len_bytes: u64,
    },
    /// A configuration (in an entry or a snapshot) that no membership change produces.
    #[error("configuration: expected {expected}")]
    InvalidMembership {
        /// The rule it breaks.
        expected: &'static str,
    },
}

impl Node {
    /// Checks `message` against the rules in the module docs; `Err` says why it must be
    /// dropped. Pure and allocation-free.
    pub(crate) fn validate(&self, message: &Message) -> Result<(), PeerMisbehaved> {
        if message.to != self.id() {
            return Err(PeerMisbehaved::WrongRecipient {
                expected: self.id(),
                got: message.to,
            });
        }
        if message.from == 0 || message.from == self.id() {
            return Err(PeerMisbehaved::InvalidSender { got: message.from });
        }
        check_shape(message)?;
        let max_term = self.term().saturating_add(MAX_TERM_JUMP).min(MAX_TERM);
        if message.term > max_term {
            return Err(PeerMisbehaved::TermTooHigh {
                field: "term (too far ahead of this node's)",
                max: max_term,
                got: message.term,
            });
        }
        if let Some(max) = highest_answer_term(&message.body, self.term())
            && message.term > max
        {
            return Err(PeerMisbehaved::TermAhead {
                kind: message.kind(),
                max,
                got: message.term,
            });
        }
        self.check_leader_sender(message)?;
        self.check_against_log(message)
    }

    /// One leader per term: leader messages of our term come from the leader we follow.
    fn check_leader_sender(&self, message: &Message) -> Result<(), PeerMisbehaved> {
        if message.term != self.term() || !leader_kind(&message.body) {
            return Ok(());
        }
        let expected = match self.role_state() {
            RoleState::Leader(_) => Some(self.id()),
            _ => self.leader(),
        };
        match expected {
            Some(leader) if leader != message.from => Err(PeerMisbehaved::NotFromLeader {
                kind: message.kind(),
                term: message.term,
                expected: leader,
                got: message.from,
            }),
            _ => Ok(()),
        }
    }

    /// Leader Completeness: a leader of a term at least ours holds our committed entries.
    fn check_against_log(&self, message: &Message) -> Result<(), PeerMisbehaved> {
        if message.term < self.term() {
            return Ok(()); // stale: answered as such and otherwise ignored
        }
        match &message.body {
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                ..
            } => {
                self.check_committed(*prev_log_index, *prev_log_term)?;
                entries
                    .iter()
                    .take_while(|entry| entry.index <= self.commit_index())
                    .try_for_each(|entry| self.check_committed(entry.index, entry.term))
            }
            MessageBody::SnapshotChunk { meta, .. } => self.check_committed(meta.index, meta.term),
            MessageBody::HeartbeatResponse { round } => match self.role_state() {
                RoleState::Leader(leader) if *round > leader.reads.current_round() => {
                    Err(PeerMisbehaved::RoundAhead {
                        max: leader.reads.current_round(),
                        got: *round,
                    })
                }
                _ => Ok(()),
            },
            MessageBody::AppendResponse {
                success: true,
                match_index,
                ..
            } if self.is_leader() && *match_index > self.log().last_index() => {
                Err(PeerMisbehaved::AckBeyondLog {
                    max: self.log().last_index(),
                    got: *match_index,
                })
            }
            _ => Ok(()),
        }
    }

    /// A claim that `index` has `term`, checked if `index` is committed and still held.
    fn check_committed(&self, index: Index, term: Term) -> Result<(), PeerMisbehaved> {
        if index > self.commit_index() {
            return Ok(());
        }
        match self.log().term(index) {
            Some(expected) if expected != term => Err(PeerMisbehaved::ContradictsCommitted {
                index,
                expected,
                got: term,
            }),
            _ => Ok(()),
        }
    }

    /// Drops a message that failed validation: counted against its sender and logged with
    /// the blame on the peer, at the first rejection and then at every power of two, so a
    /// flood costs a handful of log lines.
    pub(crate) fn reject_message(&mut self, message: &Message, reason: PeerMisbehaved) {
        let count = self.rejections_mut().record(message.from);
        if count.is_power_of_two() {
            tracing::warn!(
                node = self.id(),
                peer = message.from,
                kind = message.kind(),
                term = message.term,
                rejected_from_peer = count,
                %reason,
                "dropping invalid message from peer"
            );
        }
    }
}

mod shape;
#[cfg(test)]
mod tests;
