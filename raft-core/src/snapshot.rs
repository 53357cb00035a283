//! Snapshots (section 7): compaction after the host saved a snapshot, chunked and
//! restartable transfer to followers whose next entry was compacted, and installation.

use bytes::Bytes;

use crate::action::{Action, SnapshotChunkWrite};
use crate::message::MessageBody;
use crate::node::Node;
use crate::progress::ReplicationState;
use crate::state::incoming_snapshot::IncomingSnapshot;
use crate::types::{Index, NodeId, SnapshotMeta};

impl Node {
    /// The metadata to store with a snapshot of the state machine taken at applied `index`;
    /// `None` if `index` is not applied yet, not yet durable in the local log (a snapshot
    /// must never cover entries a pending log write could still bring back), or already
    /// compacted.
    pub fn snapshot_meta_at(&self, index: Index) -> Option<SnapshotMeta> {
        // A full member holding a witness's data keeps it visible instead of compacting it.
        if self.holds_witness_data() && !self.membership().is_witness(self.id()) {
            return None;
        }
        if index > self.applied_index()
            || index > self.durability().durable_index()
            || index < self.snapshot_meta().index
        {
            return None;
        }
        let term = self.log().term(index)?;
        let membership = self.membership_at(index);
        Some(SnapshotMeta {
            index,
            term,
            membership,
        })
    }

    /// Reports that the host durably saved a snapshot of its own state machine described by
    /// `meta` (from [`Node::snapshot_meta_at`]). The core drops the log prefix it covers and
    /// emits [`Action::CompactLog`]. A snapshot at or below the current one (one installed
    /// from the leader overtook it) is ignored.
    ///
    /// # Panics
    ///
    /// If `meta` is not what [`Node::snapshot_meta_at`] gave for an applied index: its
    /// index is beyond the applied index, or its term is not the term of the entry there.
    /// Both stay true of a genuine `snapshot_meta_at` answer until the snapshot is reported
    /// (applied entries are committed and never change), so a failure means the host made
    /// the metadata up or mixed up nodes.
    pub fn on_snapshot_saved(&mut self, meta: SnapshotMeta) {
        if self.is_halted() || meta.index <= self.snapshot_meta().index {
            return;
        }
        assert!(
            meta.index <= self.applied_index(),
            "host misuse: on_snapshot_saved at index {} beyond the applied index {} \
             (metadata not from snapshot_meta_at?)",
            meta.index,
            self.applied_index()
        );
        assert_eq!(
            self.log().term(meta.index),
            Some(meta.term),
            "host misuse: on_snapshot_saved with term {} at index {}, which the log does not \
             hold (metadata not from snapshot_meta_at?)",
            meta.term,
            meta.index
        );
        if meta.index > self.durability().durable_index() {
            // Unreachable for metadata from `snapshot_meta_at`: applied entries are durable
            // and committed entries are never truncated. Kept as a refusal, not a panic,
            // since compacting a prefix that is not durable would lose it in a crash.
            tracing::warn!(
                node = self.id(),
                index = meta.index,
                "ignoring snapshot beyond the durable log"
            );
            return;
        }
        self.compact_to_snapshot(meta);
    }

    /// Asks the host to send the chunk at `offset` of our current snapshot. Witnesses get
    /// the metadata only: they keep no state machine.
    pub(crate) fn send_snapshot_chunk(&mut self, to: NodeId, offset: u64) {
        let meta = self.snapshot_meta().clone();
        if self.stores_no_payloads(to) {
            let body = MessageBody::SnapshotChunk {
                meta: Box::new(meta),
                offset: 0,
                data: Bytes::new(),
                done: true,
            };
            self.send(to, body);
            return;
        }
        self.push_action(Action::SendSnapshotChunk {
            to,
            term: self.term(),
            meta: Box::new(meta),
            offset,
            max_bytes: self.config().snapshot_chunk_bytes,
        });
    }

    /// Resends the unacknowledged chunk of a stalled transfer, switching to a newer snapshot
    /// if one was taken meanwhile.
    pub(crate) fn retry_snapshot_transfers(&mut self) {
        let retry_ticks = self.config().snapshot_retry_ticks;
        let current = self.snapshot_meta().clone();
        let Some(leader) = self.leader_state() else {
            return;
        };
        let mut resend = Vec::new();
        for (id, progress) in leader.progress.iter_mut() {
            if let ReplicationState::Snapshot(transfer) = &mut progress.state
                && transfer.idle_ticks >= retry_ticks
            {
                transfer.idle_ticks = 0;
                if transfer.meta.index != current.index {
                    transfer.meta = current.clone();
                    transfer.acked_offset = 0;
                }
                resend.push((*id, transfer.acked_offset));
            }
        }
        for (id, offset) in resend {
            self.send_snapshot_chunk(id, offset);
        }
    }

    pub(crate) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        index: Index,
        next_offset: u64,
        installed: bool,
    ) {
        let Some(leader) = self.leader_state() else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&from) else {
            return;
        };
        progress.recently_active = true;
        let ReplicationState::Snapshot(transfer) = &mut progress.state else {
            return;
        };
        if transfer.meta.index != index {
            return;
        }
        if installed {
            progress.on_match(index);
            progress.become_replicate();
            tracing::info!(
                node = self.id(),
                peer = from,
                index,
                "snapshot installed on follower"
            );
            self.maybe_commit();
            self.on_follower_progress(from);
            return;
        }
        transfer.acked_offset = next_offset;
        transfer.idle_ticks = 0;
        self.send_snapshot_chunk(from, next_offset);
    }

    /// Follower side: write each chunk in order; on the last one install the snapshot.
    pub(crate) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Bytes,
        done: bool,
    ) {
        if !self.accept_leader(from) {
            return;
        }
        let index = meta.index;
        if index <= self.commit_index() {
            // We already hold everything it covers (committed entries match the leader's).
            let ack = self
                .log()
                .term(self.commit_index())
                .map(|t| (self.commit_index(), t));
            let body = MessageBody::SnapshotResponse {
                index,
                next_offset: 0,
                installed: true,
            };
            self.send_after_persist(from, body, ack);
            return;
        }
        let Some(expected) = self.expected_chunk_offset(from, &meta, offset) else {
            return;
        };
        if offset != expected {
            // Out of order (a chunk was lost): tell the leader where to resume.
            let body = MessageBody::SnapshotResponse {
                index,
                next_offset: expected,
                installed: false,
            };
            self.send(from, body);
            return;
        }
        // Validation refused a chunk whose end overflows.
        let next_offset = offset.saturating_add(data.len() as u64);
        if let Some(incoming) = self.incoming_snapshot_mut() {
            incoming.next_offset = next_offset;
        }
        let token = self.write_snapshot_chunk(meta.clone(), offset, data, done);
        if done {
            // A snapshot without bytes is a witness's: no state machine comes with it.
            self.set_snapshot_without_data(next_offset == 0);
            self.install_snapshot_in_memory(meta, token);
        }
        let body = MessageBody::SnapshotResponse {
            index,
            next_offset,
            installed: done,
        };
        self.send_after_persist(from, body, None);
    }

    /// The offset expected next for the snapshot `meta` from leader `from` in this term (a
    /// chunk at offset 0 of another snapshot or from another stream starts it afresh);
    /// `None` while a received snapshot is being installed.
    fn expected_chunk_offset(
        &mut self,
        from: NodeId,
        meta: &SnapshotMeta,
        offset: u64,
    ) -> Option<u64> {
        let source = (from, self.term());
        let fresh = || IncomingSnapshot {
            meta: meta.clone(),
            source,
            next_offset: 0,
            installing: None,
        };
        let incoming = self.incoming_snapshot_or(fresh);
        if incoming.installing.is_some() {
            return None;
        }
        let same_stream = incoming.meta == *meta && incoming.source == source;
        if offset == 0 && !same_stream {
            *incoming = fresh();
            return Some(0);
        }
        // Bytes from another leader (or another term) cannot be spliced onto this one's:
        // a chunk of a different stream is answered with offset 0, so it starts over.
        Some(if same_stream { incoming.next_offset } else { 0 })
    }

    /// Queues one chunk on the disk lane, after every earlier log write.
    fn write_snapshot_chunk(
        &mut self,
        meta: SnapshotMeta,
        offset: u64,
        data: Bytes,
        done: bool,
    ) -> crate::action::WriteToken {
        self.persist_pending_writes();
        let token = self.issue_snapshot_chunk_write(done.then(|| meta.clone()));
        let chunk = SnapshotChunkWrite {
            meta,
            offset,
            data,
            done,
            token,
        };
        self.push_action(Action::WriteSnapshotChunk(Box::new(chunk)));
        token
    }

    fn install_snapshot_in_memory(&mut self, meta: SnapshotMeta, token: crate::action::WriteToken) {
        let cleared = self.install_snapshot_state(meta);
        if let Some(incoming) = self.incoming_snapshot_mut() {
            incoming.installing = Some(token);
        }
        tracing::info!(
            node = self.id(),
            index = self.snapshot_meta().index,
            cleared,
            "installed snapshot from leader"
        );
        self.on_commit_advanced();
    }

    /// The final chunk is durable: the state machine may now be restored from it.
    pub(crate) fn finish_snapshot_install(&mut self, meta: SnapshotMeta) {
        self.clear_incoming_snapshot();
        self.apply_from_snapshot(meta.index);
        self.push_action(Action::RestoreStateMachine {
            meta: Box::new(meta),
        });
        if self.is_leader() {
            self.maybe_commit();
        }
    }
}
