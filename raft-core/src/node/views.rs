//! The narrow views and mutators the feature files use instead of the node's fields (which
//! are private to the node module): read-only views of the log, role, durability and
//! configurations, and methods that each do one named change and keep its invariant (the
//! commit index only moves forward, configurations and the snapshot change together).

use std::collections::BTreeMap;

use crate::action::{Action, WriteToken};
use crate::durability::Durability;
use crate::log::{AppendResult, RaftLog};
use crate::membership::Membership;
use crate::message::Message;
use crate::node::Node;
use crate::node::role::{Campaign, Follower, LeaderState, RoleState};
use crate::state::incoming_snapshot::IncomingSnapshot;
use crate::state::proposals::Proposals;
use crate::state::reads::FollowerReads;
use crate::state::rejections::Rejections;
use crate::types::{Entry, Index, NodeId, SnapshotMeta, Term};

/// The leader's state, writable, beside read-only views of the node's log, snapshot and
/// latest configuration (see [`Node::leader_with_log`]).
pub(crate) struct LeaderWithLog<'a> {
    pub(crate) leader: &'a mut LeaderState,
    pub(crate) log: &'a RaftLog,
    pub(crate) snapshot: &'a SnapshotMeta,
    pub(crate) membership: &'a Membership,
}

impl Node {
    // ----- clock, vote, bookkeeping of odd jobs -----

    /// Ticks since the node was created: the core's only clock (for leases).
    pub(crate) fn now(&self) -> u64 {
        self.ticks_total
    }

    /// The vote cast in the current term.
    pub(crate) fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// Messages refused by validation, per sender (raw: a plain counter type that keeps its
    /// own bound on senders).
    pub(crate) fn rejections_mut(&mut self) -> &mut Rejections {
        &mut self.rejections
    }

    /// Reads forwarded to the leader, waiting for its answer.
    pub(crate) fn follower_reads(&self) -> &FollowerReads {
        &self.follower_reads
    }

    /// Raw: the forwarded reads are a self-contained table no other field depends on.
    pub(crate) fn follower_reads_mut(&mut self) -> &mut FollowerReads {
        &mut self.follower_reads
    }

    /// The latest snapshot installed from the leader carried no data (a witness's).
    pub(crate) fn snapshot_without_data(&self) -> bool {
        self.snapshot_without_data
    }

    pub(crate) fn set_snapshot_without_data(&mut self, without_data: bool) {
        self.snapshot_without_data = without_data;
    }

    /// Records whether this node now holds incomplete (witness) data as a full member;
    /// true if that just started, so it is reported once.
    pub(crate) fn note_incomplete_state(&mut self, incomplete: bool) -> bool {
        let started = incomplete && !self.reported_incomplete;
        self.reported_incomplete = incomplete;
        started
    }

    /// Queues an action for the host.
    pub(crate) fn push_action(&mut self, action: Action) {
        self.actions.push(action);
    }

    // ----- log and commit -----

    /// The in-memory log.
    pub(crate) fn log(&self) -> &RaftLog {
        &self.log
    }

    /// Appends a leader's entries after (`prev_index`, `prev_term`) if they match (see
    /// [`RaftLog::try_append`]); the caller does the bookkeeping the result asks for.
    pub(crate) fn try_append_from_leader(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
    ) -> AppendResult {
        self.log.try_append(prev_index, prev_term, entries)
    }

    /// Moves the commit index to `to`, which is never behind it nor beyond the log.
    pub(crate) fn advance_commit(&mut self, to: Index) {
        assert!(to >= self.commit, "the commit index only moves forward");
        assert!(to <= self.log.last_index(), "commit <= last index");
        self.commit = to;
    }

    // ----- role -----

    /// The current role with its state (read only: only `node/transitions.rs` changes it).
    pub(crate) fn role_state(&self) -> &RoleState {
        self.role.state()
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.role.is_leader()
    }

    pub(crate) fn is_follower(&self) -> bool {
        self.role.is_follower()
    }

    /// The leader's state, in the leader role.
    pub(crate) fn leader_view(&self) -> Option<&LeaderState> {
        self.role.leader()
    }

    /// The leader's state to change, in the leader role (raw: it is that role's own state;
    /// replacing the role stays with `node/transitions.rs`).
    pub(crate) fn leader_state(&mut self) -> Option<&mut LeaderState> {
        self.role.leader_mut()
    }

    /// The leader's state to change together with read-only views of what it replicates:
    /// a raw split borrow, since a follower's progress changes by what the log holds.
    pub(crate) fn leader_with_log(&mut self) -> Option<LeaderWithLog<'_>> {
        let leader = self.role.leader_mut()?;
        Some(LeaderWithLog {
            leader,
            log: &self.log,
            snapshot: &self.snapshot,
            membership: &self.membership,
        })
    }

    /// The follower's state to change, in the follower role.
    pub(crate) fn follower_state(&mut self) -> Option<&mut Follower> {
        self.role.follower_mut()
    }

    /// The campaign of a candidate (not a pre-candidate).
    pub(crate) fn candidate_campaign(&mut self) -> Option<&mut Campaign> {
        self.role.candidate_mut()
    }

    /// The campaign of a pre-candidate or candidate.
    pub(crate) fn campaign_state(&mut self) -> Option<&mut Campaign> {
        self.role.campaign_mut()
    }

    pub(crate) fn mark_replication_dirty(&mut self) {
        if let Some(leader) = self.role.leader_mut() {
            leader.replication_dirty = true;
        }
    }

    // ----- durability -----

    /// What is durable and what waits for a write (read only).
    pub(crate) fn durability(&self) -> &Durability {
        &self.durability
    }

    /// Holds `message` until every write issued so far (our term and vote among them) is
    /// durable; see [`Node::send_after_persist`] for one whose acknowledgement is re-checked.
    pub(crate) fn hold_until_persisted(&mut self, message: Message) {
        let hard_state = self.hard_state();
        self.durability.hold(message, None, hard_state);
    }

    /// New entries were written to the log from `first` on.
    pub(crate) fn note_log_appended(&mut self, first: Index) {
        self.durability.note_appended(first);
    }

    /// The log lost its suffix from `from` on.
    pub(crate) fn note_log_truncated(&mut self, from: Index) {
        self.durability.note_truncated(from);
    }

    /// Queues one write of everything not yet persisted (hard state and entries), if any.
    pub(crate) fn persist_pending_writes(&mut self) {
        let hard_state = self.hard_state();
        if let Some(batch) = self.durability.take_batch(hard_state, &self.log) {
            self.actions.push(Action::Persist(batch));
        }
    }

    /// A token for a snapshot chunk write, ordered after every earlier write; the final
    /// chunk carries the snapshot it installs.
    pub(crate) fn issue_snapshot_chunk_write(
        &mut self,
        installs: Option<SnapshotMeta>,
    ) -> WriteToken {
        self.durability.issue_snapshot_chunk(installs)
    }

    // ----- proposals -----

    /// Proposals waiting for their outcome.
    pub(crate) fn proposals(&self) -> &Proposals {
        &self.proposals
    }

    /// Raw access for the proposal bookkeeping that needs neither the log nor the action
    /// queue (`Proposals` keeps its own order); the rest goes through the methods below.
    pub(crate) fn proposals_mut(&mut self) -> &mut Proposals {
        &mut self.proposals
    }

    /// Gives every proposal at or below the commit index its outcome.
    pub(crate) fn resolve_committed_proposals(&mut self) {
        self.proposals
            .resolve_committed(self.commit, &self.log, &self.snapshot, &mut self.actions);
    }

    /// Fails the proposals whose entries (from `from` on) were overwritten.
    pub(crate) fn drop_proposals_from(&mut self, from: Index) {
        self.proposals.drop_from(from, &mut self.actions);
    }

    /// Ends every appended proposal as unknown, for `reason`.
    pub(crate) fn abandon_appended_proposals(&mut self, reason: &str) {
        self.proposals.abandon_appended(reason, &mut self.actions);
    }

    // ----- configurations -----

    /// The index of the latest configuration's entry (the snapshot's index when it came
    /// from the snapshot).
    pub(crate) fn membership_index(&self) -> Index {
        self.membership_index
    }

    /// The configuration in force at `index` (the latest at or before it).
    pub(crate) fn membership_at(&self, index: Index) -> Membership {
        self.config_history
            .range(..=index)
            .next_back()
            .map_or_else(|| self.snapshot.membership.clone(), |(_, m)| m.clone())
    }

    /// A configuration entry appended at `index` becomes the latest configuration.
    pub(crate) fn record_configuration(&mut self, index: Index, membership: Membership) {
        self.config_history.insert(index, membership.clone());
        self.membership = membership;
        self.membership_index = index;
    }

    /// A truncation removed configuration entries from `from` on: fall back to the latest
    /// one still in the log (or the snapshot's).
    pub(crate) fn rollback_configuration(&mut self, from: Index) {
        if self.config_history.split_off(&from).is_empty() {
            return;
        }
        let (index, membership) = self.config_history.last_key_value().map_or(
            (self.snapshot.index, self.snapshot.membership.clone()),
            |(i, m)| (*i, m.clone()),
        );
        self.membership = membership;
        self.membership_index = index;
    }

    // ----- snapshots -----

    /// Our own snapshot `meta` is saved: drop the log prefix and configurations it covers
    /// and tell the host to compact.
    pub(crate) fn compact_to_snapshot(&mut self, meta: SnapshotMeta) {
        self.log.compact(meta.index, meta.term);
        self.config_history = self.config_history.split_off(&meta.index.saturating_add(1));
        let through_index = meta.index;
        self.snapshot = meta;
        self.actions.push(Action::CompactLog { through_index });
    }

    /// Installs the leader's snapshot `meta` in memory: the log keeps only a matching
    /// suffix, the configuration and commit index follow. Returns true if the whole log was
    /// cleared (it did not hold the snapshot's last entry).
    pub(crate) fn install_snapshot_state(&mut self, meta: SnapshotMeta) -> bool {
        let cleared = self.log.term(meta.index) != Some(meta.term);
        self.log.install_snapshot(meta.index, meta.term);
        self.durability.note_snapshot_installed(&self.log, cleared);
        self.config_history = if cleared {
            BTreeMap::new()
        } else {
            self.config_history.split_off(&meta.index.saturating_add(1))
        };
        let (membership_index, membership) = self
            .config_history
            .last_key_value()
            .map_or((meta.index, meta.membership.clone()), |(i, m)| {
                (*i, m.clone())
            });
        self.membership_index = membership_index;
        self.membership = membership;
        self.advance_commit(self.commit.max(meta.index));
        self.snapshot = meta;
        cleared
    }

    /// The snapshot being received from the leader, if any.
    pub(crate) fn incoming_snapshot(&self) -> Option<&IncomingSnapshot> {
        self.incoming_snapshot.as_ref()
    }

    /// The snapshot being received, to update its progress.
    pub(crate) fn incoming_snapshot_mut(&mut self) -> Option<&mut IncomingSnapshot> {
        self.incoming_snapshot.as_mut()
    }

    /// The snapshot being received, started with `fresh` if none is.
    pub(crate) fn incoming_snapshot_or(
        &mut self,
        fresh: impl FnOnce() -> IncomingSnapshot,
    ) -> &mut IncomingSnapshot {
        self.incoming_snapshot.get_or_insert_with(fresh)
    }

    /// The received snapshot is installed (or abandoned).
    pub(crate) fn clear_incoming_snapshot(&mut self) {
        self.incoming_snapshot = None;
    }
}
