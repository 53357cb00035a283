//! The engine's outputs (`poll_*`), the completions of its work (`handle_*_done`), and the
//! one place where the core's actions are sorted into lanes.

use raft_core::{Action, Entry, Message, Role, StateMachine, Storage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::{
    APPLY_WORKS_IN_FLIGHT_MAX, Applied, AppliedEvent, ApplyStep, ApplyWork, EntryOutcome,
};
use crate::book::PeerChange;
use crate::disk::{DISK_WORKS_IN_FLIGHT_MAX, DiskDone, DiskOp, DiskWork, writes_chunks};
use crate::engine::{Answer, Engine};
use crate::observe::Observation;
use crate::pending::{EntryResult, Reply};
use crate::planted::PlantedBug;
use crate::snapshot::{DoneKind, SnapshotDone, SnapshotWork, WorkKind};

impl<M, S, A> Engine<M, S, A>
where
    M: StateMachine,
    S: Storage,
    A: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + 'static,
{
    // ----- outputs -----

    /// The next disk work: every write queued since the last one, to run after the work
    /// already out, in order, with one sync. `None` when nothing is queued, while a work
    /// that syncs is out (that is what makes the group), or while
    /// [`crate::DISK_WORKS_IN_FLIGHT_MAX`] items are out.
    #[must_use]
    pub fn poll_disk(&mut self) -> Option<DiskWork<S>> {
        self.pump_if_dirty();
        let in_flight = &self.disk.in_flight;
        let blocked = in_flight.len() >= DISK_WORKS_IN_FLIGHT_MAX
            || in_flight.iter().any(|(_, syncs)| *syncs);
        if blocked || self.disk.ops.is_empty() || self.fatal.is_some() {
            return None;
        }
        let carries_writer = writes_chunks(&self.disk.ops);
        if carries_writer && self.disk.writer_out {
            return None;
        }
        let seq = self.disk.next_seq;
        self.disk.next_seq += 1;
        let ops = std::mem::take(&mut self.disk.ops);
        self.metrics.disk_ops += ops.len() as u64;
        let chunk_writer = if carries_writer {
            self.disk.writer_out = true;
            self.disk.chunk_writer.take()
        } else {
            None
        };
        let work = DiskWork {
            seq,
            ops,
            carries_writer,
            chunk_writer,
            planted: self.planted,
        };
        self.disk.in_flight.push_back((seq, work.needs_sync()));
        Some(work)
    }

    /// The next apply work: every step queued since the last one, to run after the work
    /// already out. `None` when nothing is queued or while
    /// [`crate::APPLY_WORKS_IN_FLIGHT_MAX`] items (or one that restores a snapshot) are out.
    #[must_use]
    pub fn poll_apply(&mut self) -> Option<ApplyWork<M, A>> {
        self.pump_if_dirty();
        let in_flight = &self.apply.in_flight;
        let blocked = in_flight.len() >= APPLY_WORKS_IN_FLIGHT_MAX
            || in_flight.iter().any(|(_, restores)| *restores);
        if blocked || self.apply.steps.is_empty() || self.fatal.is_some() {
            return None;
        }
        let seq = self.apply.next_seq;
        self.apply.next_seq += 1;
        let work = ApplyWork {
            seq,
            applied: self.apply.applied,
            steps: std::mem::take(&mut self.apply.steps),
            observe: self.observations.on,
            _address: std::marker::PhantomData,
        };
        self.apply.in_flight.push_back((seq, work.restores()));
        Some(work)
    }

    /// The next snapshot work (a save of our own, or a chunk to read for a lagging peer).
    /// Several may be out at once; they may run beside the lanes.
    #[must_use]
    pub fn poll_snapshot(&mut self) -> Option<SnapshotWork<M, S, A>> {
        self.pump_if_dirty();
        if self.fatal.is_some() {
            return None;
        }
        let (seq, kind) = self.snapshots.queue.pop_front()?;
        self.snapshots.in_flight.insert(seq);
        Some(SnapshotWork { seq, kind })
    }

    /// The next message to send. Send at once, in parallel with the disk: the core never
    /// asks to send something that depends on an unfinished write. Losing it is harmless.
    /// A driver that serves lease reads beside the engine publishes
    /// [`Engine::lease_grant`] before the first call after a batch of inputs: a message
    /// may start a leadership transfer or reveal a newer commit, and the grant it then
    /// reads is void or carries that commit.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.pump_if_dirty();
        self.transmit.pop_front()
    }

    /// The next answer to a client request: each [`crate::RequestId`] gets exactly one.
    #[must_use]
    pub fn poll_reply(&mut self) -> Option<Answer<M>> {
        self.pump_if_dirty();
        let answer = self.pending.answers.pop_front()?;
        self.observations.push(|| Observation::Answered {
            request: answer.0,
            ok: answer.1.is_ok(),
        });
        Some(answer)
    }

    /// The next change of the address book to make in the transport.
    #[must_use]
    pub fn poll_peer_change(&mut self) -> Option<PeerChange<A>> {
        self.pump_if_dirty();
        self.book.changes.pop_front()
    }

    // ----- completions -----

    fn misuse(what: &str, seq: u64, expected: Option<u64>) -> ! {
        match expected {
            Some(out) => panic!(
                "engine misuse: {what} for work #{seq}, but the oldest work out is #{out} \
                 (completions must be reported once each, in order)"
            ),
            None => panic!(
                "engine misuse: {what} for work #{seq}, but no such work was handed out \
                 (reported twice, or from another engine?)"
            ),
        }
    }

    /// Reports that a [`DiskWork`] ran (or failed: the node then stops).
    ///
    /// # Panics
    /// If `done` is not the completion of the oldest disk work this engine handed out and
    /// has not yet been told about (reported twice, out of order, or from another engine).
    pub fn handle_disk_done(&mut self, done: DiskDone<S>) {
        let oldest = self.disk.in_flight.front().map(|(seq, _)| *seq);
        if oldest != Some(done.seq) {
            Self::misuse("handle_disk_done", done.seq, oldest);
        }
        self.disk.in_flight.pop_front();
        if done.carries_writer {
            self.disk.chunk_writer = done.chunk_writer;
            self.disk.writer_out = false;
        }
        self.metrics.disk_works += 1;
        self.metrics.disk_syncs += u64::from(done.synced);
        match done.result {
            Ok(Some(token)) => {
                self.observations.push(|| Observation::Durable {
                    token,
                    synced: done.synced,
                });
                self.node.on_persisted(token)
            }
            Ok(None) => {}
            Err(reason) => self.stop(reason),
        }
        self.dirty = true;
    }

    /// Reports that an [`ApplyWork`] ran (or failed to restore a snapshot: the node then
    /// stops).
    ///
    /// # Panics
    /// If `done` is not the completion of the oldest apply work this engine handed out and
    /// has not yet been told about (reported twice, out of order, or from another engine).
    pub fn handle_applied(&mut self, done: Applied<M, A>) {
        let oldest = self.apply.in_flight.front().map(|(seq, _)| *seq);
        if oldest != Some(done.seq) {
            Self::misuse("handle_applied", done.seq, oldest);
        }
        self.apply.in_flight.pop_front();
        self.metrics.entries_applied += done.entry_count;
        for event in done.events {
            self.on_applied_event(event);
        }
        if let Some(reason) = done.error {
            self.stop(reason);
        }
        self.apply.applied = self.apply.applied.max(done.applied);
        self.pending.on_applied(done.applied);
        // A restore may land beyond what the core handed out; the core hears of what it did.
        self.node
            .on_applied(done.applied.min(self.apply.queued_index));
        self.dirty = true;
    }

    fn on_applied_event(&mut self, event: AppliedEvent<M, A>) {
        match event {
            AppliedEvent::Observed {
                index,
                term,
                payload,
            } => self.observations.push(|| Observation::Applied {
                index,
                term,
                payload,
                response: None,
            }),
            AppliedEvent::Entry { index, outcome } => {
                let result = match outcome {
                    EntryOutcome::Response(response) => {
                        if let Some(Observation::Applied {
                            index: observed,
                            response: slot,
                            ..
                        }) = self.observations.queue.back_mut()
                            && *observed == index
                        {
                            *slot = Some(response.clone());
                        }
                        EntryResult::Response(response)
                    }
                    EntryOutcome::Peers(records) => {
                        self.book.on_records(records);
                        EntryResult::PeersUpdated
                    }
                    EntryOutcome::Elided => EntryResult::Elided,
                    EntryOutcome::Invalid { reason } => {
                        self.metrics.commands_invalid += 1;
                        EntryResult::Invalid { reason }
                    }
                };
                self.pending.on_result(index, result);
            }
            AppliedEvent::Membership(membership) => self.book.on_membership(membership),
            AppliedEvent::Restored {
                requested,
                stored,
                book,
                bytes,
            } => {
                self.metrics.snapshots_restored += 1;
                self.metrics.last_snapshot_bytes = bytes;
                self.observations.push(|| Observation::Restored {
                    index: stored.index,
                    has_state: book.is_some(),
                });
                self.book.on_restored(book, stored.membership);
                self.pending.on_restored(requested.max(stored.index));
            }
            AppliedEvent::Answer { id, response } => {
                self.pending.answer(id, Ok(Reply::Query(response)));
            }
            AppliedEvent::View { index, view } => {
                let book = self.book.replicated.clone();
                self.snapshots.view = Some((index, view, book));
            }
        }
    }

    /// Reports that a [`SnapshotWork`] ran.
    ///
    /// # Panics
    /// If `done` is not the completion of snapshot work this engine handed out and has not
    /// yet been told about.
    pub fn handle_snapshot_done(&mut self, done: SnapshotDone<S>) {
        if !self.snapshots.in_flight.remove(&done.seq) {
            Self::misuse("handle_snapshot_done", done.seq, None);
        }
        match done.kind {
            DoneKind::Saved(Ok((meta, bytes))) => {
                tracing::info!(
                    index = meta.index,
                    term = meta.term,
                    bytes,
                    "snapshot saved"
                );
                self.metrics.last_snapshot_bytes = bytes;
                self.metrics.snapshots_saved += 1;
                self.snapshots.busy = false;
                self.pending.on_snapshot_outcome(Ok(meta.index));
                self.node.on_snapshot_saved(meta);
            }
            DoneKind::Saved(Err(reason)) => {
                tracing::warn!(%reason, "snapshot failed; the log is not compacted");
                self.metrics.snapshots_failed += 1;
                self.snapshots.busy = false;
                self.pending.on_snapshot_outcome(Err(reason));
            }
            DoneKind::ChunkRead { to, result } => match result {
                Ok(Some((message, cursor))) => {
                    self.metrics.snapshot_chunks_sent += 1;
                    self.transmit.push_back(message);
                    if let Some(cursor) = cursor
                        && self.node.role() == Role::Leader
                    {
                        self.snapshots.cursors.insert(to, cursor);
                    }
                }
                Ok(None) => {
                    tracing::debug!(peer = to, "snapshot changed before its chunk was sent");
                }
                Err(reason) => tracing::warn!(peer = to, %reason, "cannot read snapshot chunk"),
            },
        }
        self.dirty = true;
    }

    // ----- the core's actions -----

    pub(crate) fn pump_if_dirty(&mut self) {
        if self.dirty {
            self.pump();
        }
    }

    /// Drains the core's actions once and sorts them into the engine's queues. One drain
    /// per batch of inputs is what turns many proposals into one write and one message per
    /// peer.
    pub(crate) fn pump(&mut self) {
        self.dirty = false;
        if std::mem::take(&mut self.silence_unjudged) {
            self.node.judge_silence();
        }
        let mut actions = std::mem::take(&mut self.actions);
        self.node.drain_actions(&mut actions);
        for action in actions.drain(..) {
            self.dispatch(action);
        }
        self.actions = actions;
        self.maybe_save_snapshot();
    }

    fn dispatch(&mut self, action: Action) {
        match action {
            Action::Persist(batch) => self.queue_persist(batch),
            Action::WriteSnapshotChunk(chunk) => self.disk.ops.push(DiskOp::Chunk(chunk)),
            Action::CompactLog { through_index } => {
                self.disk.ops.push(DiskOp::Compact(through_index))
            }
            Action::Send(message) => self.transmit.push_back(message),
            Action::SendSnapshotChunk {
                to,
                term,
                meta,
                offset,
                max_bytes,
            } => {
                let cursor = self.snapshots.cursors.remove(&to);
                let from = self.node.id();
                self.queue_snapshot_work(WorkKind::ReadChunk {
                    from,
                    to,
                    term,
                    meta: *meta,
                    offset,
                    max_bytes,
                    cursor,
                });
            }
            Action::Apply(entries) => self.queue_entries(entries),
            Action::RestoreStateMachine { meta } => {
                self.apply.queued_index = self.apply.queued_index.max(meta.index);
                self.apply.since_snapshot_entries = 0;
                self.apply.since_snapshot_bytes = 0;
                self.apply.steps.push(ApplyStep::Restore(*meta));
                self.release_parked();
            }
            other => self.dispatch_report(other),
        }
    }

    fn dispatch_report(&mut self, action: Action) {
        match action {
            Action::ProposalOutcome { id, result } => {
                self.pending.on_proposal_outcome(id, result);
            }
            Action::ReadOutcome { id, result } => {
                if let Some((index, request, query)) = self.pending.on_read_outcome(id, result) {
                    // Planted bug: the read does not wait for its index to be applied.
                    let index = if self.planted.has(PlantedBug::ReplyBeforeApply) {
                        0
                    } else {
                        index
                    };
                    self.queue_query(index, request, query);
                }
            }
            Action::MembershipOutcome { id, result } => {
                if let Ok(membership) = &result {
                    tracing::info!(membership = %membership.describe(), "membership change committed");
                }
                self.pending.on_change_outcome(id, result);
            }
            Action::TransferOutcome { id, target, result } => {
                self.pending.on_transfer_outcome(id, target, result);
            }
            Action::RoleChanged { role, term, leader } => {
                self.metrics.role_changes += 1;
                self.observations
                    .push(|| Observation::Role { role, term, leader });
                tracing::info!(?role, term, ?leader, "role changed");
                if role != Role::Leader {
                    // Each cursor may pin a replaced snapshot; a follower sends none.
                    self.snapshots.cursors.clear();
                }
            }
            Action::Halted { reason } => {
                self.stop_with(
                    format!("the core halted on an inconsistency: {reason}"),
                    true,
                );
            }
            // The lanes' actions are sorted in `dispatch`.
            _ => {}
        }
    }

    fn queue_persist(&mut self, batch: raft_core::PersistBatch) {
        self.observations.push(|| Observation::Persist {
            truncate_from: batch.truncate_from,
            entries: batch.entries.clone(),
            prev_term: batch
                .entries
                .first()
                .and_then(|first| self.node.entry_term(first.index - 1)),
            hard_state: batch.hard_state,
            sync_required: batch.sync_required,
            token: batch.token,
        });
        if self.planted.has(PlantedBug::AckBeforeDurable) {
            // Planted bug: durable before it is even written.
            self.node.on_persisted(batch.token);
        }
        if self.planted.has(PlantedBug::ApplyBeforeCommit) && !batch.entries.is_empty() {
            // Planted bug: appended entries go to the state machine at once. The core is
            // still told only of what it handed out (`queued_index` is not moved).
            self.apply
                .steps
                .push(ApplyStep::Entries(batch.entries.clone()));
        }
        self.disk.ops.push(DiskOp::Persist(batch));
    }

    fn queue_entries(&mut self, entries: Vec<Entry>) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        // The core's side of this boundary asserts the same (`hand_out_committed`); checked
        // here too so that a host fed by anything else never applies out of order.
        assert!(
            first.index == self.apply.queued_index + 1
                && last.index == first.index + (entries.len() as u64 - 1),
            "apply batch {}..={} does not continue the queued index {} contiguously",
            first.index,
            last.index,
            self.apply.queued_index
        );
        let last = last.index;
        self.apply.since_snapshot_entries += entries.len() as u64;
        self.apply.since_snapshot_bytes += entries.iter().map(Entry::size_bytes).sum::<u64>();
        self.apply.steps.push(ApplyStep::Entries(entries));
        self.apply.queued_index = self.apply.queued_index.max(last);
        self.release_parked();
        let policy = &self.config.snapshot_policy;
        if policy.is_due(
            self.apply.since_snapshot_entries,
            self.apply.since_snapshot_bytes,
            self.metrics.last_snapshot_bytes,
        ) {
            self.queue_view();
        }
    }
}
