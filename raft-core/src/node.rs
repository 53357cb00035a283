//! The [`Node`]: state, role transitions, message dispatch and the output flush. The rules
//! of each part of the protocol live in their own files (`election.rs`, `replication.rs`,
//! `snapshot.rs`, `proposal.rs`, `read.rs`, `transfer.rs`, `reconfiguration.rs`).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::action::{Action, ProposalId, Role};
use crate::config::{Config, ConfigError};
use crate::durability::Durability;
use crate::log::RaftLog;
use crate::membership::Membership;
use crate::message::{Message, MessageBody};
use crate::progress::{PeerProgress, Progress};
use crate::proposal::Proposals;
use crate::read::{FollowerReads, LeaderReads};
use crate::reconfiguration::PendingChange;
use crate::snapshot::IncomingSnapshot;
use crate::transfer::Transfer;
use crate::types::{
    Entry, EntryPayload, HardState, Index, NodeId, RestoredState, SnapshotMeta, Term,
};
use crate::validate::Rejections;

/// One Raft node: a pure, deterministic state machine.
///
/// Its methods come in four kinds:
///
/// * **getters** on `&self`: [`Node::role`], [`Node::term`], [`Node::leader`],
///   [`Node::commit_index`], [`Node::status`], ...
/// * **inputs from the environment**: [`Node::tick`], [`Node::step`],
///   [`Node::on_persisted`], [`Node::on_applied`], [`Node::on_snapshot_saved`];
/// * **application commands**, whose outcome always arrives later as an action:
///   [`Node::propose`], [`Node::read`], [`Node::change_membership`],
///   [`Node::transfer_leadership`];
/// * **outputs**: [`Node::drain_actions`]. After every input or command, drain every action
///   and carry them out per lane as described on [`Action`].
///
/// Identical sequences of calls give identical actions, bit for bit.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: Config,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) commit: Index,
    pub(crate) log: RaftLog,
    pub(crate) snapshot: SnapshotMeta,
    /// The latest appended configuration and the index of its entry (the snapshot index
    /// when it came from the snapshot).
    pub(crate) membership: Membership,
    pub(crate) membership_index: Index,
    /// Configuration entries in the log after the snapshot, ascending by index.
    pub(crate) config_history: BTreeMap<Index, Membership>,
    pub(crate) role: RoleState,
    pub(crate) leader: Option<NodeId>,
    pub(crate) election_elapsed: u32,
    pub(crate) randomized_election_ticks: u32,
    /// Ticks since the node was created: the core's only notion of time (for leases).
    pub(crate) ticks_total: u64,
    pub(crate) applied: Index,
    /// Last index handed out in an `Apply` action.
    pub(crate) apply_handed: Index,
    /// Bytes of entries handed out for apply and not yet reported applied.
    pub(crate) apply_inflight_bytes: u64,
    pub(crate) halted: Option<String>,
    pub(crate) durability: Durability,
    pub(crate) proposals: Proposals,
    pub(crate) follower_reads: FollowerReads,
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// A campaign's own vote, waiting for the write (sequence) that makes it durable in
    /// this term.
    pub(crate) self_vote_pending: Option<(Term, u64)>,
    /// The latest snapshot installed from the leader carried no data (a witness's).
    pub(crate) snapshot_without_data: bool,
    /// A warning about holding a witness's data as a full member was logged.
    pub(crate) reported_incomplete: bool,
    pub(crate) next_request_id: u64,
    pub(crate) actions: Vec<Action>,
    /// Reused buffer of peer ids for broadcasts (no allocation per flush).
    pub(crate) peer_scratch: Vec<NodeId>,
    /// (role, term, leader) as last reported through `RoleChanged`.
    reported_role: Option<(Role, Term, Option<NodeId>)>,
    /// Messages refused by validation, per sender.
    pub(crate) rejections: Rejections,
}

/// Role-specific state; leader-only data cannot be touched in another role.
#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    PreCandidate(Votes),
    Candidate(Votes),
    Leader(Box<LeaderState>),
}

/// Votes received in a campaign, by voter.
pub(crate) type Votes = BTreeMap<NodeId, bool>;

/// State only a leader has.
#[derive(Debug)]
pub(crate) struct LeaderState {
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    pub(crate) heartbeat_elapsed: u32,
    pub(crate) quorum_check_elapsed: u32,
    pub(crate) reads: LeaderReads,
    /// Bytes of commands appended in this term and not yet committed.
    pub(crate) uncommitted_bytes: u64,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) pending_change: Option<PendingChange>,
    /// Something happened (an entry appended, a peer answered, a tick) that may let the
    /// leader send more; the next flush looks at every peer's window only if set.
    pub(crate) replication_dirty: bool,
}

/// A snapshot of a node's state for operators, returned by [`Node::status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node's id.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: Index,
    /// Applied index, as reported by the host.
    pub applied: Index,
    /// Last log index.
    pub last_index: Index,
    /// Index of the latest snapshot.
    pub snapshot_index: Index,
    /// The latest appended configuration.
    pub membership: Membership,
    /// Per-peer replication progress (leader only).
    pub progress: BTreeMap<NodeId, PeerProgress>,
    /// Set when the node halted on a detected inconsistency.
    pub halted: Option<String>,
    /// Messages refused by validation, per sender (see [`Node::rejected_messages`]).
    #[serde(default)]
    pub rejected_messages: BTreeMap<NodeId, u64>,
}

/// The term and vote to resume with. A crash can keep log entries of a term whose hard
/// state write was lost (entries and hard state need not reach the disk atomically): an
/// entry of term `t` proves the node was in term `t`, so it resumes there, and counts its
/// vote in `t` as cast (for itself, so it votes for no one else in `t`), since it cannot
/// know whom it voted for. Otherwise a single voter could lead the same term twice.
fn restored_term_and_vote(
    id: NodeId,
    hard_state: HardState,
    last_log_term: Term,
) -> (Term, Option<NodeId>) {
    if last_log_term > hard_state.term {
        (last_log_term, Some(id))
    } else {
        (hard_state.term, hard_state.vote)
    }
}

impl Node {
    /// Builds a node from its configuration and the state its host restored from storage.
    ///
    /// ```
    /// use raft_core::{Config, Membership, Node, RestoredState, Role};
    ///
    /// let restored = RestoredState::bootstrap(Membership::with_voters([1, 2, 3]));
    /// let node = Node::new(Config::new(1, 42), restored).unwrap();
    /// assert_eq!(node.role(), Role::Follower);
    /// ```
    ///
    /// # Panics
    ///
    /// If `restored` fails [`RestoredState::validate`] (entries not contiguous after the
    /// snapshot, or terms decreasing): the storage is corrupt, and the host should have
    /// checked it and refused to start.
    pub fn new(config: Config, restored: RestoredState) -> Result<Node, ConfigError> {
        config.validate()?;
        if let Err(error) = restored.validate() {
            panic!(
                "host misuse: Node::new with a restored state that fails RestoredState::validate: {error}"
            );
        }
        let RestoredState {
            hard_state,
            snapshot,
            entries,
        } = restored;
        let log = RaftLog::new(&snapshot, entries);
        let mut config_history = BTreeMap::new();
        for entry in log.slice(log.first_index(), log.next_index()) {
            if let EntryPayload::Membership(m) = &entry.payload {
                config_history.insert(entry.index, (**m).clone());
            }
        }
        let (membership_index, membership) = config_history
            .last_key_value()
            .map(|(i, m)| (*i, m.clone()))
            .unwrap_or((snapshot.index, snapshot.membership.clone()));
        // The snapshot covers applied state; the commit index never lags it.
        let commit = hard_state.commit.max(snapshot.index).min(log.last_index());
        let last = (log.last_index(), log.last_term());
        let (term, vote) = restored_term_and_vote(config.id, hard_state, last.1);
        let mut node = Node {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            term,
            vote,
            commit,
            log,
            membership,
            membership_index,
            config_history,
            role: RoleState::Follower,
            leader: None,
            election_elapsed: 0,
            randomized_election_ticks: config.election_ticks,
            ticks_total: 0,
            applied: snapshot.index,
            apply_handed: snapshot.index,
            apply_inflight_bytes: 0,
            halted: None,
            durability: Durability::new(
                last.0,
                last.1,
                HardState {
                    commit,
                    ..hard_state
                },
            ),
            proposals: Proposals::default(),
            follower_reads: FollowerReads::default(),
            incoming_snapshot: None,
            self_vote_pending: None,
            snapshot_without_data: false,
            reported_incomplete: false,
            next_request_id: 1,
            actions: Vec::new(),
            peer_scratch: Vec::new(),
            reported_role: None,
            rejections: Rejections::default(),
            snapshot,
            config,
        };
        // Request ids start at a random point so that a late answer to a request of an
        // earlier incarnation of this node cannot match a request of this one (given a
        // fresh seed per incarnation, see `Config::seed`).
        node.next_request_id = node.rng.random::<u64>() >> 16;
        node.reset_election_timer();
        node.check_witness_data();
        Ok(node)
    }

    // ----- getters -----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The node's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The hard state as it is in memory (it may be ahead of what is durable).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit,
        }
    }

    /// The commit index.
    pub fn commit_index(&self) -> Index {
        self.commit
    }

    /// The applied index, as reported through [`Node::on_applied`].
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// The first index held in the in-memory log (snapshot index + 1).
    pub fn first_index(&self) -> Index {
        self.log.first_index()
    }

    /// The last log index.
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    /// The term of the entry at `index`; `None` if compacted away or beyond the end.
    pub fn entry_term(&self, index: Index) -> Option<Term> {
        self.log.term(index)
    }

    /// The in-memory entries in `[low, high)`, clamped to what the log holds.
    pub fn entries(&self, low: Index, high: Index) -> &[Entry] {
        self.log.slice(low, high)
    }

    /// The latest snapshot known to the core.
    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// The latest appended configuration (in force on this node, committed or not).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// True if this node's state machine cannot be trusted to serve clients: it holds a
    /// witness's data (entries without payloads, or a snapshot without data), because it is
    /// or was a witness, or is becoming one. Such a node never leads and refuses reads and
    /// proposals with `NotLeader`; a host must not serve stale reads from it either.
    pub fn has_incomplete_state(&self) -> bool {
        self.membership.is_witness(self.id()) || self.holds_witness_data()
    }

    /// True once the node has halted on a detected inconsistency.
    pub fn is_halted(&self) -> bool {
        self.halted.is_some()
    }

    /// A summary for operators.
    pub fn status(&self) -> Status {
        let progress = match &self.role {
            RoleState::Leader(leader) => leader
                .progress
                .iter()
                .map(|(id, p)| (*id, p.summary()))
                .collect(),
            _ => BTreeMap::new(),
        };
        Status {
            id: self.id(),
            role: self.role(),
            term: self.term,
            leader: self.leader,
            commit: self.commit,
            applied: self.applied,
            last_index: self.log.last_index(),
            snapshot_index: self.snapshot.index,
            membership: self.membership.clone(),
            progress,
            halted: self.halted.clone(),
            rejected_messages: self.rejections_snapshot(),
        }
    }

    // ----- inputs -----

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        if self.halted.is_some() {
            return;
        }
        self.ticks_total += 1;
        self.tick_requests();
        if matches!(self.role, RoleState::Leader(_)) {
            self.mark_replication_dirty();
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

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
            && self.leader.is_some()
            && match self.role {
                RoleState::Leader(_) => true,
                _ => self.election_elapsed < self.config.election_ticks,
            }
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

    /// Reports that every write up to the one `token` was issued with is durable.
    ///
    /// # Panics
    ///
    /// If `token` was never issued by this node (it came from another node, or from an
    /// earlier incarnation of this one): the host mixed up its lanes. A token reported twice
    /// or out of order is harmless.
    pub fn on_persisted(&mut self, token: crate::action::WriteToken) {
        if self.halted.is_some() {
            return;
        }
        let newly_durable = self.durability.on_persisted(token, &self.log);
        if let Some(meta) = self.durability.take_installed_snapshot(token) {
            self.finish_snapshot_install(meta);
        }
        if newly_durable && matches!(self.role, RoleState::Leader(_)) {
            self.maybe_commit();
        }
        self.count_durable_self_vote();
    }

    /// Reports that the state machine has applied every entry through `index`. Reporting
    /// an index at or below an earlier report is harmless.
    ///
    /// # Panics
    ///
    /// If `index` is beyond the last entry handed out in an [`Action::Apply`] (or the last
    /// snapshot restored): the host claims to have applied entries it never received.
    pub fn on_applied(&mut self, index: Index) {
        assert!(
            index <= self.apply_handed,
            "host misuse: on_applied({index}) beyond the last index handed out for apply ({})",
            self.apply_handed
        );
        if index > self.applied {
            // Both bounds are at most `apply_handed`, itself at most the last log index.
            let released: u64 = self
                .log
                .slice(self.applied.saturating_add(1), index.saturating_add(1))
                .iter()
                .map(Entry::size_bytes)
                .sum();
            self.apply_inflight_bytes = self.apply_inflight_bytes.saturating_sub(released);
            self.applied = index;
        }
    }

    // ----- outputs -----

    /// Moves every pending action into `out`, in the order they must be carried out per
    /// lane. Call after every input or command.
    pub fn drain_actions(&mut self, out: &mut Vec<Action>) {
        self.flush();
        out.append(&mut self.actions);
    }

    /// True if [`Node::drain_actions`] would return something.
    pub fn has_pending_actions(&self) -> bool {
        !self.actions.is_empty() || self.durability.has_unflushed(self.hard_state())
    }

    /// Turns the state changes of the last inputs into actions: one write for everything
    /// not yet persisted, appends to followers, held messages whose writes are durable, and
    /// committed entries to apply.
    fn flush(&mut self) {
        if self.halted.is_some() {
            return;
        }
        self.settle_forwarded();
        let hard_state = self.hard_state();
        if let Some(batch) = self.durability.take_batch(hard_state, &self.log) {
            self.actions.push(Action::Persist(batch));
        }
        if matches!(self.role, RoleState::Leader(_)) {
            self.broadcast_pending();
        }
        self.durability.release_held(&self.log, &mut self.actions);
        self.hand_out_committed();
        self.report_role();
        self.assert_invariants();
    }

    /// Cheap invariants, checked in release builds at every flush (the core's output
    /// boundary): a broken one means a bug in the core, never bad input.
    fn assert_invariants(&self) {
        assert!(
            self.applied <= self.apply_handed,
            "applied <= handed out for apply"
        );
        assert!(
            self.apply_handed <= self.commit,
            "handed out for apply <= commit"
        );
        assert!(self.commit <= self.log.last_index(), "commit <= last index");
        assert!(self.snapshot.index <= self.commit, "snapshot <= commit");
        if let RoleState::Leader(leader) = &self.role {
            assert_eq!(self.leader, Some(self.id()), "a leader knows it leads");
            for progress in leader.progress.values() {
                assert!(progress.match_index < progress.next_index, "match < next");
                assert!(
                    progress.match_index <= self.log.last_index(),
                    "match <= leader's last index"
                );
            }
        }
    }

    fn report_role(&mut self) {
        let now = (self.role(), self.term, self.leader);
        if self.reported_role != Some(now) {
            self.reported_role = Some(now);
            self.actions.push(Action::RoleChanged {
                role: now.0,
                term: now.1,
                leader: now.2,
            });
        }
    }

    /// Hands committed entries to the apply lane, bounded by `max_apply_bytes` in flight.
    fn hand_out_committed(&mut self) {
        if self.commit <= self.apply_handed {
            return;
        }
        if self
            .incoming_snapshot
            .as_ref()
            .is_some_and(|s| s.installing.is_some())
        {
            return;
        }
        let mut inflight_bytes = self.apply_inflight_bytes;
        let mut batch = Vec::new();
        for entry in self.log.slice(
            self.apply_handed.saturating_add(1),
            self.commit.saturating_add(1),
        ) {
            let size = entry.size_bytes();
            if !batch.is_empty() && inflight_bytes + size > self.config.max_apply_bytes {
                break;
            }
            if batch.is_empty() && inflight_bytes >= self.config.max_apply_bytes {
                break;
            }
            inflight_bytes += size;
            batch.push(entry.clone());
        }
        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
            assert_eq!(
                Some(first.index),
                self.apply_handed.checked_add(1),
                "apply continues"
            );
            assert_eq!(
                Some(last.index),
                first.index.checked_add(batch.len() as u64 - 1),
                "apply batches are contiguous"
            );
            self.apply_handed = last.index;
            self.apply_inflight_bytes = inflight_bytes;
            self.actions.push(Action::Apply(batch));
        }
    }

    // ----- shared helpers -----

    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }

    /// Queues a message that depends on nothing unpersisted.
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        let message = Message {
            from: self.id(),
            to,
            term: self.term,
            body,
        };
        self.actions.push(Action::Send(message));
    }

    /// Queues a message that may only leave once every write issued so far is durable;
    /// `ack` (index, term) is re-checked at release so a stale acknowledgement of an
    /// overwritten suffix is never sent.
    pub(crate) fn send_after_persist(
        &mut self,
        to: NodeId,
        body: MessageBody,
        ack: Option<(Index, Term)>,
    ) {
        let message = Message {
            from: self.id(),
            to,
            term: self.term,
            body,
        };
        let hard_state = self.hard_state();
        self.durability.hold(message, ack, hard_state);
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = self.config.election_ticks;
        self.randomized_election_ticks = self.rng.random_range(base..2 * base);
    }

    /// Becomes a follower of `term` (section 5.1). A new term clears the vote.
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "terms never decrease");
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        let previous = std::mem::replace(&mut self.role, RoleState::Follower);
        if let RoleState::Leader(state) = previous {
            self.on_leadership_lost(*state);
        }
        self.leader = leader;
        self.reset_election_timer();
    }

    /// Becomes leader of the current term. Only a candidate that won this term may call it.
    pub(crate) fn become_leader(&mut self) {
        assert!(
            matches!(self.role, RoleState::Candidate(_)),
            "only a candidate becomes leader"
        );
        let next = self.log.next_index();
        let progress = self
            .membership
            .members()
            .into_iter()
            .filter(|&id| id != self.id())
            .map(|id| (id, Progress::new(next)))
            .collect();
        self.role = RoleState::Leader(Box::new(LeaderState {
            progress,
            heartbeat_elapsed: 0,
            quorum_check_elapsed: 0,
            reads: LeaderReads::default(),
            uncommitted_bytes: 0,
            transfer: None,
            pending_change: None,
            replication_dirty: true,
        }));
        self.leader = Some(self.id());
        tracing::info!(node = self.id(), term = self.term, "became leader");
        // Section 5.4.2 / 8: a no-op of the new term lets earlier entries commit promptly.
        // A joint configuration inherited from the previous leader is left as soon as it
        // commits (see `on_configuration_committed`), which this entry brings about.
        self.append_as_leader(EntryPayload::Noop);
    }

    /// Gives every request that waited on this leader its outcome.
    fn on_leadership_lost(&mut self, state: LeaderState) {
        tracing::info!(node = self.id(), term = self.term, "lost leadership");
        let LeaderState {
            reads,
            transfer,
            pending_change,
            ..
        } = state;
        self.fail_reads(reads);
        if let Some(transfer) = transfer {
            self.finish_transfer_on_step_down(transfer);
        }
        if let Some(change) = pending_change {
            let error = crate::membership::MembershipError::LeadershipLost;
            self.actions.push(Action::MembershipOutcome {
                id: change.id,
                result: Err(error),
            });
        }
    }

    /// Appends an entry created by this leader; configuration entries take effect at once.
    pub(crate) fn append_as_leader(&mut self, payload: EntryPayload) -> Index {
        let index = self.log.next_index();
        let entry = Entry {
            term: self.term,
            index,
            payload,
        };
        if let EntryPayload::Membership(m) = &entry.payload {
            self.adopt_configuration(index, (**m).clone());
        }
        self.log.push(entry);
        self.durability.note_appended(index);
        self.mark_replication_dirty();
        index
    }

    pub(crate) fn mark_replication_dirty(&mut self) {
        if let RoleState::Leader(leader) = &mut self.role {
            leader.replication_dirty = true;
        }
    }

    pub(crate) fn leader_state(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            RoleState::Leader(state) => Some(state),
            _ => None,
        }
    }

    /// Stops the node for good on a detected inconsistency.
    pub(crate) fn halt(&mut self, reason: String) {
        tracing::error!(node = self.id(), %reason, "halting");
        self.halted = Some(reason.clone());
        self.actions.push(Action::Halted { reason });
    }

    pub(crate) fn new_proposal_id(&mut self) -> ProposalId {
        ProposalId(self.next_id())
    }
}
