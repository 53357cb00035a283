//! The [`Node`]: its state (every field private to this module), construction and getters.
//! The feature files reach the state only through the named views and mutators of `views`
//! (read-only views, and methods that each make one change and keep its invariant). The
//! node's own machinery lives in the other submodules: `inbound` (term rules and dispatch),
//! `output` (host feedback, flush, invariants), `timer` (the timer table and [`Node::tick`])
//! and `transitions` (the `become_*` role changes, the only code that replaces the role). The
//! rules of each part of the protocol live in their own files (`election.rs`,
//! `replication.rs`, `snapshot.rs`, `proposal.rs`, `read.rs`, `transfer.rs`,
//! `reconfiguration.rs`, `validate.rs`); their plain state types live in `role.rs` and the
//! leaf modules under `state/`.

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
use crate::node::role::{Follower, RoleSlot, RoleState};
use crate::progress::PeerProgress;
use crate::state::incoming_snapshot::IncomingSnapshot;
use crate::state::proposals::Proposals;
use crate::state::reads::FollowerReads;
use crate::state::rejections::Rejections;
use crate::types::{
    Entry, EntryPayload, HardState, Index, NodeId, RestoredState, SnapshotMeta, Term,
};

mod inbound;
mod output;
pub(crate) mod role;
mod timer;
mod transitions;
pub(crate) mod views;

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
    config: Config,
    rng: ChaCha8Rng,
    term: Term,
    vote: Option<NodeId>,
    commit: Index,
    log: RaftLog,
    snapshot: SnapshotMeta,
    /// The latest appended configuration and the index of its entry (the snapshot index
    /// when it came from the snapshot).
    membership: Membership,
    membership_index: Index,
    /// Configuration entries in the log after the snapshot, ascending by index.
    config_history: BTreeMap<Index, Membership>,
    role: RoleSlot,
    /// The tick (`ticks_total`) the election timer was last restarted at.
    election_started: u64,
    randomized_election_ticks: u32,
    /// Ticks since the node was created: the core's only notion of time (for leases).
    ticks_total: u64,
    applied: Index,
    /// Last index handed out in an `Apply` action.
    apply_handed: Index,
    /// Bytes of entries handed out for apply and not yet reported applied.
    apply_inflight_bytes: u64,
    halted: Option<String>,
    durability: Durability,
    proposals: Proposals,
    follower_reads: FollowerReads,
    incoming_snapshot: Option<IncomingSnapshot>,
    /// The latest snapshot installed from the leader carried no data (a witness's).
    snapshot_without_data: bool,
    /// A warning about holding a witness's data as a full member was logged.
    reported_incomplete: bool,
    next_request_id: u64,
    actions: Vec<Action>,
    /// (role, term, leader) as last reported through `RoleChanged`.
    reported_role: Option<(Role, Term, Option<NodeId>)>,
    /// Messages refused by validation, per sender.
    rejections: Rejections,
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
            role: RoleSlot::new(RoleState::Follower(Follower::default())),
            election_started: 0,
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
            snapshot_without_data: false,
            reported_incomplete: false,
            next_request_id: 1,
            actions: Vec::new(),
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
        self.role.role()
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        match self.role.state() {
            RoleState::Follower(follower) => follower.leader,
            RoleState::PreCandidate(_) | RoleState::Candidate(_) => None,
            RoleState::Leader(_) => Some(self.id()),
        }
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
        Status {
            id: self.id(),
            role: self.role(),
            term: self.term,
            leader: self.leader(),
            commit: self.commit,
            applied: self.applied,
            last_index: self.log.last_index(),
            snapshot_index: self.snapshot.index,
            membership: self.membership.clone(),
            progress: self.progress_summary(),
            halted: self.halted.clone(),
            rejected_messages: self.rejections_snapshot(),
        }
    }

    /// Brings `status` (an earlier [`Node::status`] of this node) up to date in place; true
    /// if anything changed. A host that republishes the status after every step uses it
    /// instead of [`Node::status`]: it allocates only for what changed (the membership,
    /// the rejection counts, a leader's peer progress).
    ///
    /// ```
    /// use raft_core::{Config, Membership, Node, RestoredState, Role};
    ///
    /// let restored = RestoredState::bootstrap(Membership::with_voters([1]));
    /// let mut node = Node::new(Config::new(1, 42), restored).unwrap();
    /// let mut status = node.status();
    /// assert!(!node.refresh_status(&mut status));
    /// // Past its election timeout the node campaigns: its role and term change.
    /// for _ in 0..1_000 {
    ///     if node.role() != Role::Follower {
    ///         break;
    ///     }
    ///     node.tick();
    /// }
    /// assert_ne!(node.role(), Role::Follower);
    /// assert!(node.refresh_status(&mut status));
    /// assert_eq!(status, node.status());
    /// ```
    pub fn refresh_status(&self, status: &mut Status) -> bool {
        let mut changed = false;
        changed |= refresh(&mut status.id, self.id());
        changed |= refresh(&mut status.role, self.role());
        changed |= refresh(&mut status.term, self.term);
        changed |= refresh(&mut status.leader, self.leader());
        changed |= refresh(&mut status.commit, self.commit);
        changed |= refresh(&mut status.applied, self.applied);
        changed |= refresh(&mut status.last_index, self.log.last_index());
        changed |= refresh(&mut status.snapshot_index, self.snapshot.index);
        changed |= refresh_with(&mut status.membership, &self.membership);
        changed |= refresh_with(&mut status.halted, &self.halted);
        changed |= refresh_with(&mut status.rejected_messages, &self.rejections.by_sender);
        let progress_unchanged = match self.role.state() {
            RoleState::Leader(leader) => {
                status.progress.len() == leader.progress.len()
                    && status
                        .progress
                        .iter()
                        .zip(&leader.progress)
                        .all(|((id, kept), (peer, p))| id == peer && *kept == p.summary())
            }
            _ => status.progress.is_empty(),
        };
        if !progress_unchanged {
            status.progress = self.progress_summary();
            changed = true;
        }
        changed
    }

    /// Each peer's replication progress while leading; empty otherwise.
    fn progress_summary(&self) -> BTreeMap<NodeId, PeerProgress> {
        match self.role.state() {
            RoleState::Leader(leader) => leader
                .progress
                .iter()
                .map(|(id, p)| (*id, p.summary()))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// How many messages each sender had rejected by validation (see [`Node::step`]). Ids
    /// beyond the 256 first offenders are counted together under id 0.
    pub fn rejected_messages(&self) -> &BTreeMap<NodeId, u64> {
        &self.rejections.by_sender
    }

    pub(crate) fn rejections_snapshot(&self) -> BTreeMap<NodeId, u64> {
        self.rejections.by_sender.clone()
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

/// Sets `slot` to `fresh`; true if it differed.
fn refresh<T: PartialEq>(slot: &mut T, fresh: T) -> bool {
    let differs = *slot != fresh;
    if differs {
        *slot = fresh;
    }
    differs
}

/// Sets `slot` to a copy of `fresh` if it differs (no clone otherwise); true if it did.
fn refresh_with<T: PartialEq + Clone>(slot: &mut T, fresh: &T) -> bool {
    let differs = slot != fresh;
    if differs {
        slot.clone_from(fresh);
    }
    differs
}
