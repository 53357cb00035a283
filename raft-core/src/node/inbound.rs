//! Inbound messages: validation first, then the term rules every message obeys (section
//! 5.1), then dispatch to the feature that handles it.

use crate::message::{Message, MessageBody};
use crate::node::Node;

impl Node {
    /// Handles a message from a peer.
    ///
    /// Every message is validated first, before any protocol rule sees it: addressing,
    /// index and term ranges ([`crate::MAX_INDEX`], [`crate::MAX_TERM`]), contiguous entries
    /// with sane terms, consistent snapshot metadata, and whether the sender can
    /// legitimately send it (one leader per term; answers cannot come from a newer term;
    /// nothing may contradict a committed entry). An invalid message is dropped, counted
    /// against its sender ([`Node::rejected_messages`]) and logged with the blame on the
    /// peer ([`crate::PeerMisbehaved`] says why); it never panics or halts the node.
    /// Messages from an older term are answered so that a stale leader learns it is stale,
    /// and otherwise ignored.
    pub fn step(&mut self, message: Message) {
        if self.halted.is_some() {
            return;
        }
        if let Err(reason) = self.validate(&message) {
            self.reject_message(&message, reason);
            return;
        }
        if !self.check_term(&message) {
            return;
        }
        self.dispatch(message);
        // Any answer may have opened a follower's window.
        self.mark_replication_dirty();
    }

    /// Term rules applied once for every message (section 5.1): a newer term turns any role
    /// into a follower; an older one is answered so a stale leader or candidate learns it is
    /// stale, and otherwise ignored. Returns false if the message must not be processed.
    fn check_term(&mut self, message: &Message) -> bool {
        use std::cmp::Ordering;
        match message.term.cmp(&self.term) {
            Ordering::Equal => true,
            Ordering::Greater => self.on_newer_term(message),
            Ordering::Less => {
                self.answer_stale(message);
                false
            }
        }
    }

    fn on_newer_term(&mut self, message: &Message) -> bool {
        match &message.body {
            MessageBody::VoteRequest {
                pre_vote, transfer, ..
            } => {
                if !*transfer && self.in_leader_lease() {
                    tracing::debug!(
                        node = self.id(),
                        from = message.from,
                        "ignoring vote request: leader is alive"
                    );
                    return false;
                }
                if !*pre_vote {
                    self.become_follower(message.term, None);
                }
                true
            }
            // A granted pre-vote carries the term the candidate will campaign in.
            MessageBody::VoteResponse {
                pre_vote: true,
                granted: true,
            } => true,
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::SnapshotChunk { .. } => {
                self.become_follower(message.term, Some(message.from));
                true
            }
            _ => {
                self.become_follower(message.term, None);
                true
            }
        }
    }

    fn answer_stale(&mut self, message: &Message) {
        let reply = match &message.body {
            // Tell a deposed leader about the newer term so it steps down (it may be cut off
            // from everyone else and would otherwise keep serving stale leases).
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::SnapshotChunk { .. } => MessageBody::AppendResponse {
                success: false,
                match_index: 0,
                hint: None,
            },
            MessageBody::VoteRequest { pre_vote: true, .. } => MessageBody::VoteResponse {
                pre_vote: true,
                granted: false,
            },
            _ => return,
        };
        self.send(message.from, reply);
    }

    /// True while this follower heard from a leader within the minimum election timeout
    /// (check-quorum stickiness, thesis section 4.2.3): it then ignores vote requests.
    pub(crate) fn in_leader_lease(&self) -> bool {
        self.config.check_quorum
            && self.leader().is_some()
            && (self.role.is_leader() || self.within_min_election_timeout())
    }

    fn dispatch(&mut self, message: Message) {
        let Message { from, body, .. } = message;
        match body {
            MessageBody::VoteRequest {
                pre_vote,
                last_log_index,
                last_log_term,
                transfer,
            } => self.handle_vote_request(
                from,
                message.term,
                pre_vote,
                last_log_index,
                last_log_term,
                transfer,
            ),
            MessageBody::VoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, pre_vote, granted)
            }
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => self.handle_append(from, prev_log_index, prev_log_term, entries, leader_commit),
            MessageBody::AppendResponse {
                success,
                match_index,
                hint,
            } => self.handle_append_response(from, success, match_index, hint),
            MessageBody::Heartbeat { commit, round } => self.handle_heartbeat(from, commit, round),
            MessageBody::HeartbeatResponse { round } => self.handle_heartbeat_response(from, round),
            MessageBody::SnapshotChunk {
                meta,
                offset,
                data,
                done,
            } => self.handle_snapshot_chunk(from, *meta, offset, data, done),
            MessageBody::SnapshotResponse {
                index,
                next_offset,
                installed,
            } => self.handle_snapshot_response(from, index, next_offset, installed),
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
            MessageBody::ForwardProposal { id, data } => {
                self.handle_forward_proposal(from, id, data)
            }
            MessageBody::ForwardProposalResponse { id, result } => {
                self.handle_forward_response(from, id, result)
            }
            MessageBody::ReadIndexRequest { id } => self.handle_read_index_request(from, id),
            MessageBody::ReadIndexResponse { id, result } => {
                self.handle_read_index_response(id, result)
            }
        }
    }
}
