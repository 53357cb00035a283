//! Snapshot IO beside the lanes: saving the state machine's point-in-time views, and
//! reading chunks of the current snapshot to stream to lagging peers. A driver may run
//! these in parallel with the disk and apply lanes (the tokio driver uses its blocking
//! pool), so neither append nor apply waits for a snapshot.

use std::io::{self, Read, Seek, Write};
use std::sync::Mutex;

use bytes::Bytes;
use raft_core::{Message, MessageBody, NodeId, SnapshotMeta, StateMachine, Storage, Term};
use serde::Serialize;

use crate::envelope::{self, AddressBook};

/// An open snapshot reader positioned for the next chunk to one peer, so a transfer of n
/// chunks reads the snapshot once instead of n times from the start. It travels with the
/// chunk work and comes back with the completion.
pub(crate) struct Cursor<R> {
    pub(crate) meta: SnapshotMeta,
    reader: R,
    pub(crate) position: u64,
    /// One byte read ahead to learn whether the previous chunk was the last.
    carry: Option<u8>,
}

/// Snapshot IO to run beside the lanes: [`SnapshotWork::run`], then hand the
/// [`SnapshotDone`] to [`crate::Engine::handle_snapshot_done`].
#[must_use = "snapshot work must be run and its completion handed back to the engine"]
pub struct SnapshotWork<M: StateMachine, S: Storage, A> {
    pub(crate) seq: u64,
    pub(crate) kind: WorkKind<M, S, A>,
}

pub(crate) enum WorkKind<M: StateMachine, S: Storage, A> {
    /// Save our own state machine's view as the snapshot `meta`.
    Save {
        meta: SnapshotMeta,
        view: M::Snapshot,
        book: AddressBook<A>,
    },
    /// Read the next chunk of snapshot `meta` for peer `to`.
    ReadChunk {
        from: NodeId,
        to: NodeId,
        term: Term,
        meta: SnapshotMeta,
        offset: u64,
        max_bytes: u64,
        cursor: Option<Cursor<S::SnapshotReader>>,
    },
}

/// The completion of one [`SnapshotWork`].
#[must_use = "hand the completion to Engine::handle_snapshot_done"]
pub struct SnapshotDone<S: Storage> {
    pub(crate) seq: u64,
    pub(crate) kind: DoneKind<S>,
}

/// A chunk message to send, and the cursor to keep for the next chunk.
pub(crate) type ChunkMessage<S> = (Message, Option<Cursor<<S as Storage>::SnapshotReader>>);

pub(crate) enum DoneKind<S: Storage> {
    /// The snapshot saved and the bytes it took, or why it failed.
    Saved(Result<(SnapshotMeta, u64), String>),
    /// `Ok(None)`: the storage's snapshot is not the one asked for any more.
    ChunkRead {
        to: NodeId,
        result: Result<Option<ChunkMessage<S>>, String>,
    },
}

impl<M: StateMachine, S: Storage, A> std::fmt::Debug for SnapshotWork<M, S, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            WorkKind::Save { .. } => "save",
            WorkKind::ReadChunk { .. } => "read chunk",
        };
        f.debug_struct("SnapshotWork")
            .field("seq", &self.seq)
            .field("kind", &kind)
            .finish()
    }
}

impl<S: Storage> std::fmt::Debug for SnapshotDone<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotDone")
            .field("seq", &self.seq)
            .finish()
    }
}

impl<M: StateMachine, S: Storage, A: Serialize> SnapshotWork<M, S, A> {
    /// True for a save of our own snapshot, false for a chunk read for a peer.
    pub fn is_save(&self) -> bool {
        matches!(self.kind, WorkKind::Save { .. })
    }

    /// Carries the work out. The storage lock is taken only to start and commit a save and
    /// to open a reader, so the bytes are written and read beside the disk lane.
    pub fn run(self, storage: &Mutex<S>) -> SnapshotDone<S> {
        let kind = match self.kind {
            WorkKind::Save { meta, view, book } => {
                DoneKind::Saved(save::<M, S, A>(storage, meta, view, &book))
            }
            WorkKind::ReadChunk {
                from,
                to,
                term,
                meta,
                offset,
                max_bytes,
                cursor,
            } => {
                let result = read_chunk(storage, cursor, &meta, offset, max_bytes).map(|read| {
                    read.map(|(data, done, cursor)| {
                        let message = Message {
                            from,
                            to,
                            term,
                            body: MessageBody::SnapshotChunk {
                                meta: Box::new(meta),
                                offset,
                                data,
                                done,
                            },
                        };
                        (message, cursor)
                    })
                });
                DoneKind::ChunkRead { to, result }
            }
        };
        SnapshotDone {
            seq: self.seq,
            kind,
        }
    }
}

/// Writes a snapshot of our own state machine: the host's header with the address book,
/// then the state machine's bytes; committed (durable and current) before returning.
/// Returns the bytes written, which the snapshot policy weighs against the log.
pub(crate) fn save<M, S, A>(
    storage: &Mutex<S>,
    meta: SnapshotMeta,
    view: M::Snapshot,
    book: &AddressBook<A>,
) -> Result<(SnapshotMeta, u64), String>
where
    M: StateMachine,
    S: Storage,
    A: Serialize,
{
    let index = meta.index;
    let mut writer = crate::lock(storage)?
        .begin_snapshot(&meta)
        .map_err(|e| format!("starting snapshot {index}: {e}"))?;
    let mut counted = Counting {
        inner: &mut writer,
        bytes: 0,
    };
    envelope::write_snapshot_header(book, &mut counted)
        .and_then(|()| M::write_snapshot(view, &mut counted))
        .map_err(|e| format!("writing snapshot {index}: {e}"))?;
    let bytes = counted.bytes;
    crate::lock(storage)?
        .commit_snapshot(writer)
        .map_err(|e| format!("committing snapshot {index}: {e}"))?;
    Ok((meta, bytes))
}

/// A writer that counts the bytes passed through it.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A chunk's bytes, whether it is the last, and the cursor to keep for the next one.
type ChunkRead<R> = (Bytes, bool, Option<Cursor<R>>);

fn read_chunk<S: Storage>(
    storage: &Mutex<S>,
    cached: Option<Cursor<S::SnapshotReader>>,
    meta: &SnapshotMeta,
    offset: u64,
    max_bytes: u64,
) -> Result<Option<ChunkRead<S::SnapshotReader>>, String> {
    let cached = cached.filter(|c| c.meta == *meta && c.position == offset);
    let mut cursor = match cached {
        Some(cursor) => cursor,
        None => match open_at(storage, meta, offset)? {
            Some(cursor) => cursor,
            None => return Ok(None),
        },
    };
    let (data, done) = next_chunk(&mut cursor, max_bytes)
        .map_err(|e| format!("reading snapshot {} at {offset}: {e}", meta.index))?;
    Ok(Some((data, done, (!done).then_some(cursor))))
}

fn open_at<S: Storage>(
    storage: &Mutex<S>,
    meta: &SnapshotMeta,
    offset: u64,
) -> Result<Option<Cursor<S::SnapshotReader>>, String> {
    let opened = crate::lock(storage)?
        .open_snapshot()
        .map_err(|e| format!("opening snapshot {}: {e}", meta.index))?;
    let Some((stored, mut reader)) = opened else {
        return Ok(None);
    };
    if stored != *meta {
        return Ok(None);
    }
    // A resumed transfer starts mid-snapshot: seek rather than read through the prefix.
    reader
        .seek(io::SeekFrom::Start(offset))
        .map_err(|e| format!("seeking snapshot {} to {offset}: {e}", meta.index))?;
    Ok(Some(Cursor {
        meta: stored,
        reader,
        position: offset,
        carry: None,
    }))
}

fn next_chunk<R: Read>(cursor: &mut Cursor<R>, max_bytes: u64) -> io::Result<(Bytes, bool)> {
    let max_bytes = max_bytes.max(1);
    let mut data = Vec::with_capacity(usize::try_from(max_bytes.min(1 << 20)).unwrap_or(0));
    if let Some(byte) = cursor.carry.take() {
        data.push(byte);
    }
    let wanted = max_bytes - data.len() as u64;
    (&mut cursor.reader).take(wanted).read_to_end(&mut data)?;
    let mut done = (data.len() as u64) < max_bytes;
    if !done {
        let mut probe = [0u8; 1];
        let read = read_some(&mut cursor.reader, &mut probe)?;
        if read == 0 {
            done = true;
        } else {
            cursor.carry = Some(probe[0]);
        }
    }
    cursor.position += data.len() as u64;
    Ok((Bytes::from(data), done))
}

/// `read` that retries on `Interrupted`.
fn read_some<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(bytes: &[u8]) -> Cursor<&[u8]> {
        Cursor {
            meta: SnapshotMeta::default(),
            reader: bytes,
            position: 0,
            carry: None,
        }
    }

    /// Goal: chunking reassembles the exact bytes, marks only the last chunk done, and
    /// handles lengths that are exact multiples of the chunk size.
    #[test]
    fn chunks_reassemble() {
        for length in [0usize, 1, 7, 8, 9, 64] {
            let bytes: Vec<u8> = (0..length).map(|i| i as u8).collect();
            let mut cursor = cursor(&bytes);
            let mut out = Vec::new();
            loop {
                let (data, done) = next_chunk(&mut cursor, 8).unwrap();
                assert!(data.len() <= 8);
                out.extend_from_slice(&data);
                assert_eq!(cursor.position, out.len() as u64);
                if done {
                    break;
                }
            }
            assert_eq!(out, bytes, "length {length}");
        }
    }
}
