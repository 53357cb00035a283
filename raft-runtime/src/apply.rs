//! The apply lane: one dedicated thread that owns the state machine.
//!
//! It applies committed entries strictly in order, replaces the state from a snapshot when
//! the core says so, serves queries once the state has reached their read index, keeps the
//! replicated address book, and takes the cheap point-in-time view for automatic snapshots
//! (the bytes are written elsewhere, so applying never waits on a snapshot).
//!
//! A command that cannot be decoded is skipped on every replica alike and its client gets
//! an error; the lane keeps going. Failing to restore a snapshot is fatal: the node would
//! otherwise serve state it does not have.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use raft_core::{
    Entry, EntryPayload, Index, Membership, NodeId, SnapshotMeta, StateMachine, Storage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use crate::config::SnapshotPolicy;
use crate::envelope::{self, AddressBook, LogRecord, PeerInfo};
use crate::error::Error;
use crate::event::{EntryOutcome, LaneEvent, lock_storage};
use crate::metrics::{Counters, add};

/// The answer channel of a query.
pub(crate) type QueryReply<M> = oneshot::Sender<Result<<M as StateMachine>::QueryResponse, Error>>;

/// Queries waiting for the state to reach their index.
type WaitingQueries<M> = BTreeMap<Index, Vec<(<M as StateMachine>::Query, QueryReply<M>)>>;

/// A snapshot loaded from storage: its metadata and address book (`None` when it holds no
/// state).
pub(crate) type LoadedSnapshot<A> = (SnapshotMeta, Option<AddressBook<A>>);

/// Work for the apply lane.
pub(crate) enum ApplyOp<M: StateMachine> {
    /// Apply these committed entries.
    Apply(Vec<Entry>),
    /// Replace the state with the current snapshot (installed from the leader).
    Restore(SnapshotMeta),
    /// Serve `query` once the state has applied `min_index`.
    Query {
        min_index: Index,
        query: M::Query,
        reply: QueryReply<M>,
    },
    /// Take a snapshot view now, whatever the policy says.
    SnapshotNow,
}

/// The state the lane starts from (restored by [`crate::RaftNode::start`]).
pub(crate) struct ApplyStart<M, A> {
    pub(crate) state_machine: M,
    pub(crate) applied: Index,
    pub(crate) membership: Membership,
    pub(crate) book: AddressBook<A>,
    pub(crate) policy: SnapshotPolicy,
    /// Set while a snapshot is being saved, so views are not taken twice.
    pub(crate) snapshot_busy: Arc<AtomicBool>,
}

/// Starts the apply lane's thread. It ends when the sender is dropped (after finishing
/// what was queued) or after a fatal error.
pub(crate) fn spawn<M, S, A>(
    start: ApplyStart<M, A>,
    storage: Arc<Mutex<S>>,
    events: UnboundedSender<LaneEvent<M, A>>,
    counters: Arc<Counters>,
    span: tracing::Span,
) -> std::io::Result<(std::sync::mpsc::Sender<ApplyOp<M>>, JoinHandle<()>)>
where
    M: StateMachine,
    S: Storage,
    A: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("raft-apply".into())
        .spawn(move || {
            let _entered = span.enter();
            let mut lane = ApplyLane {
                sm: start.state_machine,
                applied: start.applied,
                membership: start.membership,
                book: start.book,
                policy: start.policy,
                snapshot_busy: start.snapshot_busy,
                since_snapshot_entries: 0,
                since_snapshot_bytes: 0,
                queries: BTreeMap::new(),
                storage,
                events,
                counters,
            };
            lane.run(&receiver);
        })?;
    Ok((sender, handle))
}

struct ApplyLane<M: StateMachine, S, A> {
    sm: M,
    applied: Index,
    /// The latest configuration applied (to notice removed members).
    membership: Membership,
    book: AddressBook<A>,
    policy: SnapshotPolicy,
    snapshot_busy: Arc<AtomicBool>,
    since_snapshot_entries: u64,
    since_snapshot_bytes: u64,
    /// Queries waiting for the state to reach their index.
    queries: WaitingQueries<M>,
    storage: Arc<Mutex<S>>,
    events: UnboundedSender<LaneEvent<M, A>>,
    counters: Arc<Counters>,
}

impl<M, S, A> ApplyLane<M, S, A>
where
    M: StateMachine,
    S: Storage,
    A: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + 'static,
{
    fn run(&mut self, receiver: &Receiver<ApplyOp<M>>) {
        while let Ok(op) = receiver.recv() {
            let result = match op {
                ApplyOp::Apply(entries) => {
                    self.apply(entries);
                    Ok(())
                }
                ApplyOp::Restore(meta) => self.restore(&meta),
                ApplyOp::Query {
                    min_index,
                    query,
                    reply,
                } => {
                    self.queries
                        .entry(min_index)
                        .or_default()
                        .push((query, reply));
                    Ok(())
                }
                ApplyOp::SnapshotNow => {
                    self.take_view();
                    Ok(())
                }
            };
            if let Err(reason) = result {
                tracing::error!(%reason, "apply lane stopped");
                let _ = self.events.send(LaneEvent::Fatal(reason));
                return;
            }
            self.serve_queries();
            if self
                .policy
                .is_due(self.since_snapshot_entries, self.since_snapshot_bytes)
            {
                self.take_view();
            }
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        let started = Instant::now();
        let mut results = Vec::new();
        let mut upsert = Vec::new();
        let mut remove = Vec::new();
        let mut count = 0;
        for entry in entries {
            // Entries a newer snapshot already covers (restored meanwhile) are skipped.
            if entry.index <= self.applied {
                continue;
            }
            self.since_snapshot_bytes += entry.size_bytes();
            let index = entry.index;
            match entry.payload {
                EntryPayload::Command(bytes) => {
                    let outcome = self.apply_command(index, &bytes, &mut upsert);
                    results.push((index, outcome));
                }
                EntryPayload::Membership(next) => {
                    remove.extend(self.note_membership(*next));
                }
                EntryPayload::Elided => results.push((index, EntryOutcome::Elided { index })),
                EntryPayload::Noop => {}
            }
            self.applied = index;
            self.since_snapshot_entries += 1;
            count += 1;
        }
        self.counters.apply_latency.record(started.elapsed());
        add(&self.counters.entries_applied, count);
        if !upsert.is_empty() || !remove.is_empty() {
            let _ = self.events.send(LaneEvent::PeersChanged { upsert, remove });
        }
        let _ = self.events.send(LaneEvent::Applied {
            index: self.applied,
            results,
        });
    }

    fn apply_command(
        &mut self,
        index: Index,
        bytes: &[u8],
        upsert: &mut Vec<(NodeId, PeerInfo<A>)>,
    ) -> EntryOutcome<M::Response> {
        match envelope::decode::<M::Command, A>(bytes) {
            Ok(LogRecord::Command(command)) => {
                EntryOutcome::Response(self.sm.apply(index, command))
            }
            Ok(LogRecord::Peers(peers)) => {
                for (id, info) in peers {
                    tracing::info!(peer = id, address = ?info.address, "address book updated");
                    self.book.insert(id, info.clone());
                    upsert.push((id, info));
                }
                EntryOutcome::PeersUpdated
            }
            Err(error) => {
                add(&self.counters.commands_invalid, 1);
                tracing::warn!(index, %error, "skipping a command that does not decode");
                EntryOutcome::Invalid {
                    index,
                    reason: error.to_string(),
                }
            }
        }
    }

    /// Records an applied configuration; returns members it removed, whose addresses leave
    /// the book.
    fn note_membership(&mut self, next: Membership) -> Vec<NodeId> {
        let before = self.membership.members();
        let after = next.members();
        let removed: Vec<NodeId> = before.difference(&after).copied().collect();
        for id in &removed {
            self.book.remove(id);
            tracing::info!(peer = id, "member removed; address dropped");
        }
        self.membership = next;
        removed
    }

    fn restore(&mut self, meta: &SnapshotMeta) -> Result<(), String> {
        let restored = restore_from_storage(&mut self.sm, &*self.storage)?;
        let (stored_meta, book) = match restored {
            Some((stored_meta, book)) if stored_meta.index >= meta.index => (stored_meta, book),
            Some((stored_meta, _)) => {
                return Err(format!(
                    "asked to restore snapshot {} but storage holds snapshot {}",
                    meta.index, stored_meta.index
                ));
            }
            None => (meta.clone(), None),
        };
        if let Some(book) = book {
            let upsert: Vec<_> = book.iter().map(|(id, p)| (*id, p.clone())).collect();
            let remove: Vec<_> = self
                .book
                .keys()
                .filter(|id| !book.contains_key(id))
                .copied()
                .collect();
            self.book = book;
            let _ = self.events.send(LaneEvent::PeersChanged { upsert, remove });
        }
        self.membership = stored_meta.membership.clone();
        self.applied = self.applied.max(stored_meta.index);
        self.since_snapshot_entries = 0;
        self.since_snapshot_bytes = 0;
        add(&self.counters.snapshots_restored, 1);
        tracing::info!(
            index = stored_meta.index,
            "state machine restored from snapshot"
        );
        let _ = self.events.send(LaneEvent::Restored { index: meta.index });
        let _ = self.events.send(LaneEvent::Applied {
            index: meta.index,
            results: Vec::new(),
        });
        Ok(())
    }

    fn serve_queries(&mut self) {
        if self.queries.is_empty() {
            return;
        }
        let later = self.queries.split_off(&(self.applied + 1));
        let ready = std::mem::replace(&mut self.queries, later);
        for (query, reply) in ready.into_values().flatten() {
            // The caller may have given up (timeout); nothing to do then.
            let _ = reply.send(Ok(self.sm.query(&query)));
        }
    }

    /// Takes the point-in-time view and hands it to the driver, unless one is being saved.
    fn take_view(&mut self) {
        if self.snapshot_busy.swap(true, Ordering::AcqRel) {
            return;
        }
        self.since_snapshot_entries = 0;
        self.since_snapshot_bytes = 0;
        let view = self.sm.snapshot();
        let _ = self.events.send(LaneEvent::SnapshotView {
            index: self.applied,
            view,
            book: self.book.clone(),
        });
    }
}

/// Loads the storage's current snapshot into `sm`. Returns its metadata and address book
/// (`None` for a snapshot without state, as witnesses hold), or `None` without a snapshot.
pub(crate) fn restore_from_storage<M, S, A>(
    sm: &mut M,
    storage: &Mutex<S>,
) -> Result<Option<LoadedSnapshot<A>>, String>
where
    M: StateMachine,
    S: Storage,
    A: DeserializeOwned,
{
    let opened = lock_storage(storage)?
        .open_snapshot()
        .map_err(|e| format!("opening the snapshot: {e}"))?;
    let Some((meta, mut reader)) = opened else {
        return Ok(None);
    };
    let index = meta.index;
    let book = envelope::read_snapshot_header::<A>(&mut reader)
        .map_err(|e| format!("reading snapshot {index}: {e}"))?;
    if book.is_some() {
        sm.restore(&mut reader as &mut dyn Read)
            .map_err(|e| format!("restoring the state machine from snapshot {index}: {e}"))?;
    }
    Ok(Some((meta, book)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raft_core::conformance::MemStorage;
    use tokio::sync::mpsc;

    /// Sums its commands; answers queries with the sum.
    #[derive(Default)]
    struct Sum(u64);

    impl StateMachine for Sum {
        type Command = u64;
        type Response = u64;
        type Query = ();
        type QueryResponse = u64;
        type Snapshot = u64;
        fn apply(&mut self, _: Index, command: u64) -> u64 {
            self.0 += command;
            self.0
        }
        fn query(&self, _: &()) -> u64 {
            self.0
        }
        fn snapshot(&self) -> u64 {
            self.0
        }
        fn write_snapshot(view: u64, writer: &mut dyn std::io::Write) -> std::io::Result<()> {
            writer.write_all(&view.to_le_bytes())
        }
        fn restore(&mut self, reader: &mut dyn Read) -> std::io::Result<()> {
            let mut bytes = [0u8; 8];
            reader.read_exact(&mut bytes)?;
            self.0 = u64::from_le_bytes(bytes);
            Ok(())
        }
    }

    type Events = mpsc::UnboundedReceiver<LaneEvent<Sum, u16>>;

    fn start(policy: SnapshotPolicy) -> (std::sync::mpsc::Sender<ApplyOp<Sum>>, Events) {
        let (events_sender, events) = mpsc::unbounded_channel();
        let start = ApplyStart {
            state_machine: Sum::default(),
            applied: 0,
            membership: Membership::with_voters([1, 2]),
            book: AddressBook::new(),
            policy,
            snapshot_busy: Arc::new(AtomicBool::new(false)),
        };
        let storage = Arc::new(Mutex::new(MemStorage::new()));
        let (sender, _thread) = spawn(
            start,
            storage,
            events_sender,
            Arc::new(Counters::default()),
            tracing::Span::none(),
        )
        .expect("spawn apply lane");
        (sender, events)
    }

    fn command(index: Index, value: u64) -> Entry {
        let bytes = envelope::encode_command::<u64, u16>(&value).unwrap();
        Entry {
            term: 1,
            index,
            payload: EntryPayload::Command(Bytes::from(bytes)),
        }
    }

    fn next_applied(events: &mut Events) -> (Index, Vec<(Index, EntryOutcome<u64>)>) {
        loop {
            match events.blocking_recv().expect("lane alive") {
                LaneEvent::Applied { index, results } => return (index, results),
                LaneEvent::Fatal(reason) => panic!("lane stopped: {reason}"),
                _ => {}
            }
        }
    }

    /// Goal: an undecodable command yields an error outcome for its index and the lane goes
    /// on applying the next ones; a query waits until its index is applied.
    #[test]
    fn undecodable_command_is_answered_and_skipped() {
        let (lane, mut events) = start(SnapshotPolicy::disabled());
        let (reply, mut answer) = oneshot::channel();
        lane.send(ApplyOp::Query {
            min_index: 3,
            query: (),
            reply,
        })
        .unwrap();
        let garbage = Entry {
            term: 1,
            index: 2,
            payload: EntryPayload::Command(Bytes::from_static(&[7, 1, 2])),
        };
        lane.send(ApplyOp::Apply(vec![command(1, 5), garbage]))
            .unwrap();
        let (index, results) = next_applied(&mut events);
        assert_eq!(index, 2);
        assert!(matches!(results[0], (1, EntryOutcome::Response(5))));
        assert!(matches!(
            results[1],
            (2, EntryOutcome::Invalid { index: 2, .. })
        ));
        assert!(answer.try_recv().is_err(), "query served before its index");

        lane.send(ApplyOp::Apply(vec![command(3, 7)])).unwrap();
        let (_, results) = next_applied(&mut events);
        assert!(matches!(results[0], (3, EntryOutcome::Response(12))));
        assert_eq!(answer.blocking_recv().unwrap(), Ok(12));
    }

    /// Goal: address records update the book and are reported; a membership entry that
    /// drops a node removes its address; the snapshot view carries the book.
    #[test]
    fn address_book_follows_records_and_membership() {
        let policy = SnapshotPolicy {
            every_entries: Some(3),
            every_bytes: None,
        };
        let (lane, mut events) = start(policy);
        let peers = envelope::encode_peers(vec![
            (1, PeerInfo::new(7001u16)),
            (2, PeerInfo::new(7002u16)),
        ])
        .unwrap();
        let record = Entry {
            term: 1,
            index: 1,
            payload: EntryPayload::Command(Bytes::from(peers)),
        };
        let shrink = Entry {
            term: 1,
            index: 2,
            payload: EntryPayload::Membership(Box::new(Membership::with_voters([1]))),
        };
        let noop = Entry {
            term: 1,
            index: 3,
            payload: EntryPayload::Noop,
        };
        lane.send(ApplyOp::Apply(vec![record, shrink, noop]))
            .unwrap();
        let mut changes = Vec::new();
        let view = loop {
            match events.blocking_recv().expect("lane alive") {
                LaneEvent::PeersChanged { upsert, remove } => changes.push((upsert, remove)),
                LaneEvent::SnapshotView { index, book, .. } => break (index, book),
                LaneEvent::Fatal(reason) => panic!("lane stopped: {reason}"),
                _ => {}
            }
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0.len(), 2, "both records reported");
        assert_eq!(changes[0].1, vec![2], "node 2 left the membership");
        assert_eq!(view.0, 3);
        assert_eq!(view.1.keys().copied().collect::<Vec<_>>(), vec![1]);
    }
}
