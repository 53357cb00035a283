//! The apply lane: what the state machine must do, one [`ApplyWork`] at a time.
//!
//! A work item is a list of steps run strictly in order: apply committed entries, replace
//! the state from the current snapshot, answer queries whose read index the preceding steps
//! reach, take the point-in-time view for a snapshot. The engine decides which steps go in
//! (a query is placed right after the entries it must see; a view when the
//! [`crate::SnapshotPolicy`] is due); running them is mechanical, so the tokio driver's
//! apply thread and a simulator run the same code.
//!
//! A command that cannot be decoded is skipped on every replica alike and its client gets
//! an error; the lane keeps going. Failing to restore a snapshot is fatal: the node would
//! otherwise serve state it does not have.

use std::io::{Read, Seek};
use std::sync::Mutex;

use bytes::Bytes;
use raft_core::{
    Entry, EntryPayload, Index, Membership, NodeId, SnapshotMeta, StateMachine, Storage,
};
use serde::de::DeserializeOwned;

use crate::envelope::{self, AddressBook, LogRecord, PeerInfo};
use crate::pending::RequestId;

/// Apply work items out with the driver at once. Two, so the apply thread starts the next
/// batch the moment it finishes one, without a round trip through the driver; a work item
/// holding a restore is never followed by another until it is back (the next one's view of
/// what the state machine has applied would be stale).
pub const APPLY_WORKS_IN_FLIGHT_MAX: usize = 2;

/// What applying one committed command produced.
#[derive(Debug)]
pub(crate) enum EntryOutcome<R, A> {
    /// The state machine's response.
    Response(R),
    /// Address book records were applied.
    Peers(Vec<(NodeId, PeerInfo<A>)>),
    /// The entry reached this node without its payload (this node is a witness): the
    /// write happened, its response is not here.
    Elided,
    /// The command could not be decoded; every replica skipped it.
    Invalid { reason: String },
}

/// One step of an apply work item.
pub(crate) enum ApplyStep<M: StateMachine> {
    Entries(Vec<Entry>),
    Restore(SnapshotMeta),
    Query { id: RequestId, query: M::Query },
    View,
}

/// What one step produced, in the order the steps ran.
pub(crate) enum AppliedEvent<M: StateMachine, A> {
    Entry {
        index: Index,
        outcome: EntryOutcome<M::Response, A>,
    },
    Membership(Membership),
    Restored {
        /// The snapshot the core asked for.
        requested: Index,
        /// The snapshot the storage held (at least `requested`).
        stored: SnapshotMeta,
        /// Its address book; `None` for a snapshot without state (a witness's).
        book: Option<AddressBook<A>>,
        /// Bytes of state read from it, for the snapshot policy (0 without state).
        bytes: u64,
    },
    Answer {
        id: RequestId,
        response: M::QueryResponse,
    },
    View {
        index: Index,
        view: M::Snapshot,
    },
    /// An entry was applied (only while the observation feed is on); its own event, if
    /// any, follows.
    Observed {
        index: Index,
        term: raft_core::Term,
        payload: EntryPayload,
    },
}

/// Steps for the state machine. Run it with [`ApplyWork::run`] wherever the state machine
/// lives and hand the [`Applied`] back to [`crate::Engine::handle_applied`].
#[must_use = "apply work must be run and its completion handed back to the engine"]
pub struct ApplyWork<M: StateMachine, A> {
    pub(crate) seq: u64,
    /// The state machine's applied index when the work was made: entries at or below it are
    /// skipped (a restore may have jumped past them).
    pub(crate) applied: Index,
    pub(crate) steps: Vec<ApplyStep<M>>,
    /// Report every applied entry (the observation feed is on).
    pub(crate) observe: bool,
    pub(crate) _address: std::marker::PhantomData<fn() -> A>,
}

/// The completion of one [`ApplyWork`].
#[must_use = "hand the completion to Engine::handle_applied"]
pub struct Applied<M: StateMachine, A> {
    pub(crate) seq: u64,
    pub(crate) applied: Index,
    pub(crate) events: Vec<AppliedEvent<M, A>>,
    pub(crate) entry_count: u64,
    pub(crate) error: Option<String>,
}

impl<M: StateMachine, A> std::fmt::Debug for ApplyWork<M, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyWork")
            .field("seq", &self.seq)
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl<M: StateMachine, A> std::fmt::Debug for Applied<M, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applied")
            .field("seq", &self.seq)
            .field("applied", &self.applied)
            .field("error", &self.error)
            .finish()
    }
}

/// Entries at most in an apply work [`ApplyWork::is_light`] calls light.
pub const APPLY_LIGHT_ENTRIES_MAX: usize = 1024;

/// Payload bytes at most in an apply work [`ApplyWork::is_light`] calls light.
pub const APPLY_LIGHT_BYTES_MAX: u64 = 1 << 20;

impl<M: StateMachine, A> ApplyWork<M, A> {
    /// True if a step replaces the state from a snapshot.
    pub(crate) fn restores(&self) -> bool {
        self.steps
            .iter()
            .any(|step| matches!(step, ApplyStep::Restore(_)))
    }

    /// True if the work is cheap enough to run on the driver's own thread instead of
    /// handing it to an apply thread: it applies at most [`APPLY_LIGHT_ENTRIES_MAX`] entries
    /// of at most [`APPLY_LIGHT_BYTES_MAX`] bytes and answers queries, and neither restores
    /// a snapshot (storage reads) nor takes a snapshot view. Handing a put's apply to
    /// another thread costs two thread wake-ups, more than applying it.
    pub fn is_light(&self) -> bool {
        let mut entries = 0usize;
        let mut bytes = 0u64;
        for step in &self.steps {
            match step {
                ApplyStep::Entries(batch) => {
                    entries += batch.len();
                    bytes += batch.iter().map(Entry::size_bytes).sum::<u64>();
                }
                ApplyStep::Query { .. } => {}
                ApplyStep::Restore(_) | ApplyStep::View => return false,
            }
        }
        entries <= APPLY_LIGHT_ENTRIES_MAX && bytes <= APPLY_LIGHT_BYTES_MAX
    }
}

impl<M: StateMachine, A> Applied<M, A> {
    /// The state machine's applied index after the work.
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// How many log entries the work applied.
    pub fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// The error that stopped the work (a snapshot that could not be restored), if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl<M, A> ApplyWork<M, A>
where
    M: StateMachine,
    A: Clone + DeserializeOwned,
{
    /// Runs the steps in order on `state_machine`. `storage` is read only to restore a
    /// snapshot installed from the leader (hold its lock no longer than the call needs).
    pub fn run<S: Storage>(self, state_machine: &mut M, storage: &Mutex<S>) -> Applied<M, A> {
        let mut done = Applied {
            seq: self.seq,
            applied: self.applied,
            events: Vec::new(),
            entry_count: 0,
            error: None,
        };
        for step in self.steps {
            match step {
                ApplyStep::Entries(entries) => {
                    apply_entries(state_machine, entries, self.observe, &mut done)
                }
                ApplyStep::Restore(meta) => {
                    if let Err(reason) = restore(state_machine, storage, &meta, &mut done) {
                        done.error = Some(reason);
                        return done;
                    }
                }
                ApplyStep::Query { id, query } => {
                    let response = state_machine.query(&query);
                    done.events.push(AppliedEvent::Answer { id, response });
                }
                ApplyStep::View => done.events.push(AppliedEvent::View {
                    index: done.applied,
                    view: state_machine.snapshot(),
                }),
            }
        }
        done
    }
}

fn apply_entries<M: StateMachine, A: DeserializeOwned>(
    sm: &mut M,
    entries: Vec<Entry>,
    observe: bool,
    done: &mut Applied<M, A>,
) {
    for entry in entries {
        // Entries a newer snapshot already covers (restored meanwhile) are skipped.
        if entry.index <= done.applied {
            continue;
        }
        let index = entry.index;
        if observe {
            done.events.push(AppliedEvent::Observed {
                index,
                term: entry.term,
                payload: entry.payload.clone(),
            });
        }
        match entry.payload {
            EntryPayload::Command(bytes) => {
                let outcome = apply_command(sm, index, &bytes);
                done.events.push(AppliedEvent::Entry { index, outcome });
            }
            EntryPayload::Membership(next) => done.events.push(AppliedEvent::Membership(*next)),
            EntryPayload::Elided => done.events.push(AppliedEvent::Entry {
                index,
                outcome: EntryOutcome::Elided,
            }),
            EntryPayload::Noop => {}
        }
        done.applied = index;
        done.entry_count += 1;
    }
}

fn apply_command<M: StateMachine, A: DeserializeOwned>(
    sm: &mut M,
    index: Index,
    bytes: &Bytes,
) -> EntryOutcome<M::Response, A> {
    if let Some(command) = envelope::command_bytes(bytes).and_then(|c| M::decode_command(&c)) {
        return EntryOutcome::Response(sm.apply(index, command));
    }
    match envelope::decode::<M::Command, A>(bytes) {
        Ok(LogRecord::Command(command)) => EntryOutcome::Response(sm.apply(index, command)),
        Ok(LogRecord::Peers(peers)) => EntryOutcome::Peers(peers),
        Err(error) => {
            tracing::warn!(index, %error, "skipping a command that does not decode");
            EntryOutcome::Invalid {
                reason: error.to_string(),
            }
        }
    }
}

fn restore<M: StateMachine, S: Storage, A: DeserializeOwned>(
    sm: &mut M,
    storage: &Mutex<S>,
    meta: &SnapshotMeta,
    done: &mut Applied<M, A>,
) -> Result<(), String> {
    let loaded = restore_sized::<M, S, A>(sm, storage)?;
    let (stored, book, bytes) = match loaded {
        Some(((stored, book), bytes)) if stored.index >= meta.index => (stored, book, bytes),
        Some(((stored, _), _)) => {
            return Err(format!(
                "asked to restore snapshot {} but storage holds snapshot {}",
                meta.index, stored.index
            ));
        }
        None => (meta.clone(), None, 0),
    };
    tracing::info!(index = stored.index, "state machine restored from snapshot");
    done.applied = done.applied.max(stored.index);
    done.events.push(AppliedEvent::Restored {
        requested: meta.index,
        stored,
        book,
        bytes,
    });
    Ok(())
}

/// A snapshot loaded from storage: its metadata and address book (`None` when it holds no
/// state).
pub(crate) type LoadedSnapshot<A> = (SnapshotMeta, Option<AddressBook<A>>);

/// Loads the storage's current snapshot into `sm`. Returns its metadata and address book
/// (`None` for a snapshot without state, as witnesses hold) with how many bytes of it were
/// read (its size, as far as the snapshot policy is concerned), or `None` without a
/// snapshot.
pub(crate) fn restore_sized<M, S, A>(
    sm: &mut M,
    storage: &Mutex<S>,
) -> Result<Option<(LoadedSnapshot<A>, u64)>, String>
where
    M: StateMachine,
    S: Storage,
    A: DeserializeOwned,
{
    let opened = crate::lock(storage)?
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
    // Only a hint for the policy: a reader that cannot tell its position counts as empty.
    let bytes = reader.stream_position().unwrap_or(0);
    Ok(Some(((meta, book), bytes)))
}
