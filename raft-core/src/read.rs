//! Linearizable reads without log writes (thesis section 6.4): ReadIndex on the leader,
//! follower reads through the leader, and lease reads.
//!
//! ReadIndex: the leader records its commit index, then confirms it is still leader with a
//! heartbeat round *opened after the read arrived*; acknowledgements count once per peer
//! (each peer's highest acknowledged round), and only once the leader has committed an
//! entry of its own term (before that its commit index may be stale).
//!
//! Many reads share one round: a read only joins the queue; the round for every read
//! waiting without one is opened when the node flushes its outputs (one round per batch of
//! inputs, not one per read), and only while no round is in flight (the latest round sent
//! is acknowledged by a quorum). Reads arriving while a round is in flight wait for the
//! next one, so rounds per second are bounded by the heartbeat round trip and reads per
//! round grow with the load. Any heartbeat round sent, the periodic one included, takes
//! the reads waiting at that moment: a lost round delays them until the next periodic
//! heartbeat, it never strands them.
//!
//! Why that is still linearizable: a read is served at the commit index taken when its
//! round is *opened*, and the round is opened after the read arrived, so (1) that index is
//! at least the commit index at the read's arrival, hence covers every write acknowledged
//! before the read began, and (2) a quorum acknowledging the round proves this node was
//! still leader after the read arrived, so no other leader had committed anything newer
//! by then. Waiting longer for the round changes neither argument.
//!
//! Lease reads: a quorum that acknowledged a heartbeat sent at tick `t` will not elect
//! another leader before `t + election_ticks` by their clocks (check-quorum stickiness), so
//! the leader may serve locally until `t + election_ticks - lease_drift_ticks` by its own.
//! This is safe if, over one election timeout, no node's clock runs more than
//! `lease_drift_ticks` ticks slower than the leader's (bounded clock *rate* drift; clocks
//! need not be synchronized). The lease is void during a leadership transfer, which bypasses
//! stickiness.

use serde::{Deserialize, Serialize};

use crate::action::{Action, ReadError, ReadId};
use crate::message::MessageBody;
use crate::node::Node;
use crate::node::role::LeaderState;
use crate::quorum;
use crate::state::reads::{ForwardedRead, LeaderReads, PendingRead, ReadOrigin};
use crate::types::{Index, NodeId};

/// How a read is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// ReadIndex: one heartbeat round with a quorum. Linearizable under any clock behaviour.
    Linearizable,
    /// Served from the leader's lease when it holds, else as `Linearizable`. Needs
    /// [`crate::Config::lease_reads`] and a bounded clock drift (see the module docs).
    Lease,
}

/// A lease read the leader can answer without a heartbeat round: see [`Node::lease_read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRead {
    /// The index the state machine must have applied before the read is served.
    pub read_index: Index,
    /// The lease holds until this many more ticks are delivered (at least 1): with
    /// `ticks_left - 1` more ticks it still holds, with `ticks_left` it has lapsed.
    pub ticks_left: u64,
}

impl Node {
    /// Starts a read. The outcome, [`Action::ReadOutcome`], gives the index the state
    /// machine must have applied before the read is served.
    pub fn read(&mut self, consistency: ReadConsistency) -> ReadId {
        let id = ReadId(self.next_id());
        let outcome = if self.is_halted() {
            Some(Err(ReadError::NotLeader { leader_hint: None }))
        } else if self.is_leader() {
            self.leader_read(ReadOrigin::Local(id), consistency)
        } else if self.has_incomplete_state() {
            // Our state machine has holes (a witness's data): send the client elsewhere.
            Some(Err(ReadError::NotLeader {
                leader_hint: self.leader(),
            }))
        } else if let Some(leader) = self.leader() {
            if self.follower_reads().forwarded.len() >= self.config().max_pending_reads {
                Some(Err(ReadError::Overloaded))
            } else {
                self.forward_read(id.0, leader);
                None
            }
        } else {
            Some(Err(ReadError::NotLeader { leader_hint: None }))
        };
        if let Some(result) = outcome {
            self.push_action(Action::ReadOutcome { id, result });
        }
        id
    }

    fn forward_read(&mut self, id: u64, leader: NodeId) {
        let read = ForwardedRead {
            to: leader,
            term: self.term(),
            waited: 0,
        };
        self.follower_reads_mut().forwarded.insert(id, read);
        self.send(leader, MessageBody::ReadIndexRequest { id });
    }

    /// After a change of term or leader: reads forwarded to the old leader are registered
    /// with the new one (here, if that is us); they wait while no leader is known.
    pub(crate) fn settle_forwarded_reads(&mut self) {
        let (term, leader) = (self.term(), self.leader());
        let stale: Vec<u64> = self
            .follower_reads()
            .forwarded
            .iter()
            .filter(|(_, r)| r.term != term || Some(r.to) != leader)
            .map(|(id, _)| *id)
            .collect();
        let Some(leader) = leader else {
            return;
        };
        for id in stale {
            if leader != self.id() {
                self.forward_read(id, leader);
                continue;
            }
            self.follower_reads_mut().forwarded.remove(&id);
            let origin = ReadOrigin::Local(ReadId(id));
            if let Some(result) = self.leader_read(origin, ReadConsistency::Linearizable) {
                self.finish_read(origin, result);
            }
        }
    }

    /// Registers a read on the leader; returns an immediate outcome if there is one.
    fn leader_read(
        &mut self,
        origin: ReadOrigin,
        consistency: ReadConsistency,
    ) -> Option<Result<Index, ReadError>> {
        if consistency == ReadConsistency::Lease {
            if !self.config().lease_reads {
                return Some(Err(ReadError::LeaseDisabled));
            }
            if self.lease_valid() && self.committed_in_current_term() {
                return Some(Ok(self.commit_index()));
            }
        }
        let max_pending = self.config().max_pending_reads;
        let Some(leader) = self.leader_state() else {
            return Some(Err(ReadError::NotLeader {
                leader_hint: self.leader(),
            }));
        };
        if leader.reads.pending.len() >= max_pending {
            return Some(Err(ReadError::Overloaded));
        }
        leader.reads.pending.push_back(PendingRead {
            origin,
            confirm: None,
            waited_ticks: 0,
        });
        // The round is opened at the next flush (`open_read_round_if_due`), shared with
        // every other read of this batch of inputs.
        None
    }

    fn committed_in_current_term(&self) -> bool {
        self.log().term(self.commit_index()) == Some(self.term())
    }

    /// True if reads wait for a round and one may be opened now: this leader has committed
    /// an entry of its term and no round is in flight (the latest one sent is acknowledged
    /// by a quorum; a single voter acknowledges its own at once).
    pub(crate) fn read_round_due(&self) -> bool {
        if !self.committed_in_current_term() {
            return false;
        }
        self.leader_view().is_some_and(|leader| {
            leader.reads.needs_round() && self.quorum_acked_round(leader) >= leader.reads.round
        })
    }

    /// Called at every flush of a leader: opens one heartbeat round for every read waiting
    /// without one, when [`Node::read_round_due`] allows (see the module docs).
    pub(crate) fn open_read_round_if_due(&mut self) {
        if !self.read_round_due() {
            return;
        }
        // Assigns the waiting reads (`assign_read_round`).
        self.broadcast_heartbeat();
        // A single voter's round is acknowledged as it opens.
        self.confirm_reads();
    }

    /// Gives every read waiting without a round the round just opened at commit index
    /// `commit`, once the leader has committed an entry of its term (before that its
    /// commit index may be stale, and the reads wait for a later round). Called by
    /// whoever opens a round, periodic heartbeats included: every waiting read arrived
    /// before the round was sent.
    pub(crate) fn assign_read_round(&mut self, commit: Index, round: u64) {
        if !self.committed_in_current_term() {
            return;
        }
        let Some(leader) = self.leader_state() else {
            return;
        };
        for read in leader
            .reads
            .pending
            .iter_mut()
            .filter(|r| r.confirm.is_none())
        {
            read.confirm = Some((commit, round));
        }
    }

    /// The highest heartbeat round acknowledged by a quorum (counting ourselves).
    fn quorum_acked_round(&self, leader: &LeaderState) -> u64 {
        let me = self.id();
        let acked = |id: NodeId| {
            if id == me {
                leader.reads.round
            } else {
                leader.progress.get(&id).map_or(0, |p| p.acked_round)
            }
        };
        let membership = self.membership();
        let round = quorum::joint_committed(&membership.incoming, &membership.outgoing, acked);
        round.min(leader.reads.round)
    }

    fn lease_valid(&self) -> bool {
        self.lease_expiry()
            .is_some_and(|expiry| self.now() < expiry)
    }

    /// The tick at which the lease lapses (it holds while `now` is below it), if there is one
    /// at all: a leader not transferring leadership with a quorum-acknowledged round.
    fn lease_expiry(&self) -> Option<u64> {
        let leader = self.leader_view()?;
        if leader.transfer.is_some() {
            return None;
        }
        let round = self.quorum_acked_round(leader);
        let sent = *leader.reads.round_sent_tick.get(&round)?;
        let lease_ticks = u64::from(self.config().election_ticks - self.config().lease_drift_ticks);
        Some(sent + lease_ticks)
    }

    /// The lease read [`Node::read`] with [`ReadConsistency::Lease`] would answer at once
    /// right now, if it would: this node leads, lease reads are on, no leadership transfer
    /// is under way, a quorum acknowledged a recent heartbeat round and an entry of this
    /// term is committed. Read-only: a host uses it to serve lease reads beside the node
    /// (the read index is the commit index), while fewer than
    /// [`LeaseRead::ticks_left`] more ticks have been delivered and nothing else was
    /// stepped into the node.
    ///
    /// ```
    /// use raft_core::{Config, Membership, Node, RestoredState};
    ///
    /// let restored = RestoredState::bootstrap(Membership::with_voters([1, 2, 3]));
    /// let mut config = Config::new(1, 42);
    /// config.lease_reads = true;
    /// let node = Node::new(config, restored).unwrap();
    /// assert_eq!(node.lease_read(), None, "a follower holds no lease");
    /// ```
    pub fn lease_read(&self) -> Option<LeaseRead> {
        if self.is_halted() || !self.config().lease_reads || !self.committed_in_current_term() {
            return None;
        }
        let expiry = self.lease_expiry()?;
        let ticks_left = expiry.checked_sub(self.now()).filter(|left| *left > 0)?;
        Some(LeaseRead {
            read_index: self.commit_index(),
            ticks_left,
        })
    }

    /// Completes every read whose round a quorum acknowledged.
    pub(crate) fn confirm_reads(&mut self) {
        let Some(leader) = self.leader_view() else {
            return;
        };
        if leader.reads.pending.is_empty() {
            return;
        }
        let acked = self.quorum_acked_round(leader);
        let Some(leader) = self.leader_state() else {
            return;
        };
        // Keep the send tick of the acknowledged round for the lease; older ones are moot.
        leader.reads.round_sent_tick = leader.reads.round_sent_tick.split_off(&acked);
        let mut done = Vec::new();
        leader.reads.pending.retain(|read| match read.confirm {
            Some((index, round)) if round <= acked => {
                done.push((read.origin, index));
                false
            }
            _ => true,
        });
        for (origin, index) in done {
            self.finish_read(origin, Ok(index));
        }
    }

    fn finish_read(&mut self, origin: ReadOrigin, result: Result<Index, ReadError>) {
        match origin {
            ReadOrigin::Local(id) => self.push_action(Action::ReadOutcome { id, result }),
            ReadOrigin::Remote { from, id } => {
                // The follower serves the read once it has applied `index`.
                if let Ok(index) = result {
                    self.follower_waits_for_commit(from, index);
                }
                self.send(from, MessageBody::ReadIndexResponse { id, result })
            }
        }
    }

    pub(crate) fn handle_read_index_request(&mut self, from: NodeId, id: u64) {
        let origin = ReadOrigin::Remote { from, id };
        let outcome = if self.is_leader() {
            self.leader_read(origin, ReadConsistency::Linearizable)
        } else {
            Some(Err(ReadError::NotLeader {
                leader_hint: self.leader(),
            }))
        };
        if let Some(result) = outcome {
            self.finish_read(origin, result);
        }
    }

    pub(crate) fn handle_read_index_response(&mut self, id: u64, result: Result<Index, ReadError>) {
        if self.follower_reads_mut().forwarded.remove(&id).is_some() {
            self.push_action(Action::ReadOutcome {
                id: ReadId(id),
                result,
            });
        }
    }

    /// Reads forwarded to the leader and unanswered within the request timeout fail.
    pub(crate) fn expire_forwarded_reads(&mut self) {
        let timeout = self.config().request_timeout_ticks;
        let mut expired = Vec::new();
        self.follower_reads_mut().forwarded.retain(|id, read| {
            let keep = read.waited < timeout;
            if !keep {
                expired.push(ReadOrigin::Local(ReadId(*id)));
            }
            keep
        });
        for origin in expired {
            self.finish_read(origin, Err(ReadError::Timeout));
        }
    }

    /// Reads waiting on this leader longer than the request timeout fail.
    pub(crate) fn expire_leader_reads(&mut self) {
        let timeout = self.config().request_timeout_ticks;
        let mut expired = Vec::new();
        if let Some(leader) = self.leader_state() {
            leader.reads.pending.retain(|read| {
                let keep = read.waited_ticks < timeout;
                if !keep {
                    expired.push(read.origin);
                }
                keep
            });
        }
        for origin in expired {
            self.finish_read(origin, Err(ReadError::Timeout));
        }
    }

    /// Fails every read waiting on a leader that just lost leadership.
    pub(crate) fn fail_reads(&mut self, reads: LeaderReads) {
        for read in reads.pending {
            self.finish_read(read.origin, Err(ReadError::LeadershipLost));
        }
    }
}
