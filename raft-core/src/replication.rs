//! Log replication (section 5.3): the leader's sending, batching and pipelining per follower,
//! the follower's append handling, heartbeats, commit (section 5.4.2) and check-quorum.

use crate::log::AppendResult;
use crate::message::{ConflictHint, MessageBody};
use crate::node::Node;
use crate::node::views::LeaderWithLog;
use crate::progress::ReplicationState;
use crate::quorum;
use crate::types::{Entry, EntryPayload, Index, NodeId, Term};

impl Node {
    /// Check-quorum, every election timeout on the leader (thesis section 6.2): step down
    /// unless a quorum was heard from since the last check.
    pub(crate) fn check_quorum(&mut self) {
        if self.config().check_quorum && !self.quorum_recently_active() {
            tracing::info!(
                node = self.id(),
                term = self.term(),
                "stepping down: no quorum heard within an election timeout"
            );
            self.become_follower(self.term(), None);
            return;
        }
        if let Some(leader) = self.leader_state() {
            leader.quorum_check_elapsed = 0;
            leader
                .progress
                .values_mut()
                .for_each(|p| p.recently_active = false);
        }
    }

    fn quorum_recently_active(&self) -> bool {
        let Some(leader) = self.leader_view() else {
            return false;
        };
        let me = self.id();
        let membership = self.membership();
        quorum::joint_active(&membership.incoming, &membership.outgoing, |id| {
            id == me || leader.progress.get(&id).is_some_and(|p| p.recently_active)
        })
    }

    /// Sends a heartbeat to every peer, opening a new heartbeat round (reads and leases
    /// count acknowledgements per round).
    pub(crate) fn broadcast_heartbeat(&mut self) {
        let commit = self.commit_index();
        let now = self.now();
        let Some(leader) = self.leader_state() else {
            return;
        };
        leader.heartbeat_elapsed = 0;
        let round = leader.reads.open_round(now);
        let targets: Vec<(NodeId, Index)> = leader
            .progress
            .iter_mut()
            .map(|(id, p)| {
                let commit = commit.min(p.match_index);
                p.commit_sent = p.commit_sent.max(commit);
                (*id, commit)
            })
            .collect();
        for (to, commit) in targets {
            self.send(to, MessageBody::Heartbeat { commit, round });
        }
        self.assign_read_round(commit, round);
    }

    /// Sends whatever each follower's progress allows (called on every flush, does work
    /// only when something changed since the last one).
    pub(crate) fn broadcast_pending(&mut self) {
        let mut peers = match self.leader_state() {
            Some(leader) if leader.replication_dirty => {
                leader.replication_dirty = false;
                let mut peers = std::mem::take(&mut leader.peer_scratch);
                peers.extend(leader.progress.keys().copied());
                peers
            }
            _ => return,
        };
        for &peer in &peers {
            // Bounded: each iteration either fills the window or sends the log's tail.
            for _ in 0..self.config().max_inflight_appends {
                if !self.send_append(peer, false) {
                    break;
                }
            }
        }
        peers.clear();
        if let Some(leader) = self.leader_state() {
            leader.peer_scratch = peers;
        }
    }

    /// Notes that follower `peer` waits for the commit index to reach `index`.
    pub(crate) fn follower_waits_for_commit(&mut self, peer: NodeId, index: Index) {
        if let Some(progress) = self
            .leader_state()
            .and_then(|leader| leader.progress.get_mut(&peer))
        {
            progress.want_commit(index);
        }
    }

    /// Tells followers that wait on the commit index (for a proposal they forwarded, or a
    /// read index they were given) that it has reached what they wait for, at once rather
    /// than with the next heartbeat (up to a heartbeat interval later). Runs on every
    /// flush after the appends went out, so a follower that just got one carrying the new
    /// commit index gets nothing more; an empty append goes only to a follower that holds
    /// the entry (`match_index`), in steady replication, so it can adopt the commit index.
    pub(crate) fn notify_commit_waiters(&mut self) {
        let commit = self.commit_index();
        let mut peers = match self.leader_state() {
            Some(leader) => {
                let mut peers = std::mem::take(&mut leader.peer_scratch);
                peers.extend(leader.progress.iter().filter_map(|(id, p)| {
                    (p.commit_wanted > p.commit_sent
                        && p.commit_wanted <= commit
                        && p.commit_wanted <= p.match_index
                        && p.state == ReplicationState::Replicate)
                        .then_some(*id)
                }));
                peers
            }
            None => return,
        };
        for &peer in &peers {
            self.send_append(peer, true);
        }
        peers.clear();
        if let Some(leader) = self.leader_state() {
            for progress in leader.progress.values_mut() {
                if progress.commit_wanted <= progress.commit_sent {
                    progress.commit_wanted = 0;
                }
            }
            leader.peer_scratch = peers;
        }
    }

    /// Sends one append (or starts a snapshot) to `to` if its progress allows. An empty
    /// append is sent only when `probe` is set. Returns true if something was sent.
    pub(crate) fn send_append(&mut self, to: NodeId, probe: bool) -> bool {
        let (max_count, max_bytes, max_append) = (
            self.config().max_inflight_appends,
            self.config().max_inflight_bytes,
            self.config().max_append_bytes,
        );
        let commit = self.commit_index();
        let witness = self.stores_no_payloads(to);
        let Some(LeaderWithLog {
            leader,
            log,
            snapshot,
            ..
        }) = self.leader_with_log()
        else {
            return false;
        };
        let Some(progress) = leader.progress.get_mut(&to) else {
            return false;
        };
        match progress.state {
            ReplicationState::Snapshot(_) | ReplicationState::Probe { paused: true } => {
                return false;
            }
            ReplicationState::Replicate
                if !probe && progress.inflights.is_full(max_count, max_bytes) =>
            {
                return false;
            }
            _ => {}
        }
        if !probe && progress.next_index > log.last_index() {
            return false;
        }
        assert!(
            progress.match_index < progress.next_index,
            "a follower's match index stays below its next index"
        );
        let prev_log_index = progress.next_index - 1; // next_index > match_index >= 0
        let Some(prev_log_term) = log.term(prev_log_index) else {
            // The entries this follower needs are compacted: send the snapshot instead.
            let meta = snapshot.clone();
            progress.become_snapshot(meta);
            self.send_snapshot_chunk(to, 0);
            return true;
        };
        let entries: Vec<Entry> = log
            .slice_bounded(progress.next_index, max_append, max_count.max(1) * 64)
            .iter()
            .map(|e| if witness { e.elided() } else { e.clone() })
            .collect();
        if entries.is_empty() && !probe {
            return false;
        }
        // The follower commits no further than the last entry this append shows it.
        let shown = entries.last().map_or(prev_log_index, |e| e.index);
        progress.commit_sent = progress.commit_sent.max(commit.min(shown));
        if let Some(last) = entries.last() {
            let bytes: u64 = entries.iter().map(Entry::size_bytes).sum();
            match progress.state {
                ReplicationState::Replicate => {
                    progress.next_index = last.index.saturating_add(1);
                    progress.inflights.add(last.index, bytes);
                }
                _ => progress.state = ReplicationState::Probe { paused: true },
            }
        } else if let ReplicationState::Probe { .. } = progress.state {
            progress.state = ReplicationState::Probe { paused: true };
        }
        self.send(
            to,
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit: commit,
            },
        );
        true
    }

    /// Follower side of AppendEntries.
    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        prev_log_index: Index,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: Index,
    ) {
        if !self.accept_leader(from) {
            return;
        }
        // No shortcut for requests that only cover committed entries: acknowledging our
        // commit index for them would vouch for entries the request never showed us (a
        // forged append could have put them there), and the leader would count them as
        // replicated here. `try_append` checks every entry's term and writes nothing for
        // what matches; validation already refused anything contradicting a committed entry.
        match self.try_append_from_leader(prev_log_index, prev_log_term, entries) {
            AppendResult::Rejected(hint) => {
                let response = MessageBody::AppendResponse {
                    success: false,
                    match_index: prev_log_index,
                    hint: Some(hint),
                };
                self.send(from, response);
            }
            AppendResult::Matched {
                last_new_index,
                truncate_from,
                first_written,
            } => {
                if let Some(from_index) = truncate_from {
                    // Unreachable from the network: validation refuses an append that
                    // contradicts a committed entry. Reaching it means our own state is
                    // inconsistent (a broken store handed us a log that disagrees with
                    // the commit index), which no message can repair.
                    if from_index <= self.commit_index() {
                        self.halt(format!(
                            "leader {from} would overwrite committed entry {from_index} (commit {})",
                            self.commit_index()
                        ));
                        return;
                    }
                    self.on_log_truncated(from_index);
                }
                if let Some(first) = first_written {
                    self.on_entries_appended(first);
                }
                // Section 5.3: commit no further than the last entry this request vouched for.
                self.advance_follower_commit(leader_commit.min(last_new_index));
                let ack = self.log().term(last_new_index).map(|t| (last_new_index, t));
                let response = MessageBody::AppendResponse {
                    success: true,
                    match_index: last_new_index,
                    hint: None,
                };
                self.send_after_persist(from, response, ack);
            }
        }
    }

    /// A message from the leader of our term: it resets the election timer. A candidate of
    /// the same term steps down (section 5.2). Returns false for a node that cannot follow
    /// (another leader of our term would be a protocol violation).
    pub(crate) fn accept_leader(&mut self, from: NodeId) -> bool {
        if self.is_leader() {
            tracing::error!(
                node = self.id(),
                from,
                term = self.term(),
                "two leaders in one term; ignoring"
            );
            false
        } else if let Some(follower) = self.follower_state() {
            follower.leader = Some(from);
            self.restart_election_timer();
            true
        } else {
            self.become_follower(self.term(), Some(from));
            true
        }
    }

    fn advance_follower_commit(&mut self, index: Index) {
        if index > self.commit_index() {
            self.advance_commit(index.min(self.log().last_index()));
            self.on_commit_advanced();
        }
    }

    /// New entries were appended at `first` and after: adopt configurations among them.
    fn on_entries_appended(&mut self, first: Index) {
        self.note_log_appended(first);
        let configs: Vec<(Index, crate::membership::Membership)> = self
            .log()
            .slice(first, self.log().next_index())
            .iter()
            .filter_map(|e| match &e.payload {
                EntryPayload::Membership(m) => Some((e.index, (**m).clone())),
                _ => None,
            })
            .collect();
        for (index, membership) in configs {
            self.adopt_configuration(index, membership);
        }
    }

    /// The log lost its suffix from `from`: roll back configurations appended there and fail
    /// the proposals whose entries are gone.
    fn on_log_truncated(&mut self, from: Index) {
        self.note_log_truncated(from);
        self.rollback_configuration(from);
        self.drop_proposals_from(from);
    }

    pub(crate) fn handle_heartbeat(&mut self, from: NodeId, commit: Index, round: u64) {
        if !self.accept_leader(from) {
            return;
        }
        // The leader caps `commit` at what it knows we hold, so it is safe to adopt.
        self.advance_follower_commit(commit.min(self.log().last_index()));
        self.send(from, MessageBody::HeartbeatResponse { round });
    }

    pub(crate) fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        let last_index = self.log().last_index();
        let Some(leader) = self.leader_state() else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&from) else {
            return;
        };
        progress.recently_active = true;
        progress.acked_round = progress.acked_round.max(round);
        if let ReplicationState::Probe { paused: true } = progress.state {
            progress.state = ReplicationState::Probe { paused: false };
        }
        let lagging = progress.match_index < last_index;
        if lagging {
            self.send_append(from, true);
        }
        self.confirm_reads();
    }

    pub(crate) fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        match_index: Index,
        hint: Option<ConflictHint>,
    ) {
        let Some(leader) = self.leader_state() else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&from) else {
            return;
        };
        progress.recently_active = true;
        if success {
            if progress.on_match(match_index) {
                match progress.state {
                    ReplicationState::Probe { .. } => progress.become_replicate(),
                    ReplicationState::Snapshot(ref transfer)
                        if match_index >= transfer.meta.index =>
                    {
                        progress.become_replicate()
                    }
                    _ => {}
                }
                self.maybe_commit();
                self.on_follower_progress(from);
            } else if let ReplicationState::Probe { paused: true } = progress.state {
                progress.state = ReplicationState::Probe { paused: false };
            }
            return;
        }
        let Some(hint) = hint else { return };
        let stale = match progress.state {
            ReplicationState::Replicate => match_index <= progress.match_index,
            ReplicationState::Probe { .. } => {
                Some(match_index) != progress.next_index.checked_sub(1)
            }
            ReplicationState::Snapshot(_) => true,
        };
        if stale {
            return;
        }
        let next = self.log().next_probe_index(match_index, hint);
        let Some(leader) = self.leader_state() else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&from) else {
            return;
        };
        // At most one append per rejection, and none unless it backtracks (no storm of
        // identical appends and rejections): see `Progress::on_reject`.
        if progress.on_reject(match_index, next) {
            self.send_append(from, true);
        }
    }

    /// Section 5.3/5.4.2: commit the highest index held (durably) by a quorum, but only if
    /// it is from the current term; earlier terms' entries commit with it.
    pub(crate) fn maybe_commit(&mut self) {
        let me = self.id();
        let durable = self.durability().durable_index();
        let Some(leader) = self.leader_view() else {
            return;
        };
        let acked = |id: NodeId| {
            if id == me {
                durable
            } else {
                leader.progress.get(&id).map_or(0, |p| p.match_index)
            }
        };
        let membership = self.membership();
        let committed = quorum::joint_committed(&membership.incoming, &membership.outgoing, acked);
        if committed > self.commit_index()
            && committed != Index::MAX
            && self.log().term(committed) == Some(self.term())
        {
            let previous = self.commit_index();
            self.advance_commit(committed);
            let released: u64 = self
                .log()
                .slice(previous.saturating_add(1), committed.saturating_add(1))
                .iter()
                .filter(|e| e.term == self.term())
                .map(Entry::size_bytes)
                .sum();
            if let Some(leader) = self.leader_state() {
                leader.uncommitted_bytes = leader.uncommitted_bytes.saturating_sub(released);
            }
            self.on_commit_advanced();
        }
    }

    /// Everything that waits for the commit index: proposals, reads, configuration changes.
    pub(crate) fn on_commit_advanced(&mut self) {
        self.resolve_committed_proposals();
        if self.is_leader() {
            self.confirm_reads();
            self.on_configuration_committed();
        }
    }
}
