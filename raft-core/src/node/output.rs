//! The output side: what the host reports back (writes durable, entries applied), and the
//! flush that turns state changes into actions, hands out committed entries and checks the
//! core's invariants.

use crate::action::Action;
use crate::node::Node;
use crate::types::{Entry, Index};

impl Node {
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
        if newly_durable && self.role.is_leader() {
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

    /// A snapshot restores the state machine through `index`: nothing before it is handed
    /// out for apply again, and entries handed out before it are superseded.
    pub(crate) fn apply_from_snapshot(&mut self, index: Index) {
        self.apply_handed = self.apply_handed.max(index);
        self.apply_inflight_bytes = 0;
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
        !self.actions.is_empty()
            || self.durability.has_unflushed(self.hard_state())
            || self.read_round_due()
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
        if self.role.is_leader() {
            self.open_read_round_if_due();
            self.broadcast_pending();
            self.notify_commit_waiters();
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
        if let Some(leader) = self.role.leader() {
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
        let now = (self.role(), self.term, self.leader());
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
}
