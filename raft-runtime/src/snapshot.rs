//! Snapshot IO off the driver: saving the state machine's point-in-time views, and reading
//! chunks of the current snapshot to stream to lagging peers. Both run on tokio's blocking
//! pool, so neither append, apply nor the driver waits for them.

use std::collections::HashMap;
use std::io::{self, Read, Seek};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use raft_core::{NodeId, SnapshotMeta, StateMachine, Storage};
use serde::Serialize;

use crate::envelope::{self, AddressBook};
use crate::event::lock_storage;

/// Writes a snapshot of our own state machine: the runtime header with the address book,
/// then the state machine's bytes; committed (durable and current) before returning.
pub(crate) fn save<M, S, A>(
    storage: &Mutex<S>,
    meta: SnapshotMeta,
    view: M::Snapshot,
    book: &AddressBook<A>,
) -> Result<SnapshotMeta, String>
where
    M: StateMachine,
    S: Storage,
    A: Serialize,
{
    let index = meta.index;
    // The lock is held only to start and to commit: writing the bytes runs beside the disk
    // lane.
    let mut writer = lock_storage(storage)?
        .begin_snapshot(&meta)
        .map_err(|e| format!("starting snapshot {index}: {e}"))?;
    envelope::write_snapshot_header(book, &mut writer)
        .and_then(|()| M::write_snapshot(view, &mut writer))
        .map_err(|e| format!("writing snapshot {index}: {e}"))?;
    lock_storage(storage)?
        .commit_snapshot(writer)
        .map_err(|e| format!("committing snapshot {index}: {e}"))?;
    Ok(meta)
}

/// An open snapshot reader positioned for the next chunk to one peer, so a transfer of n
/// chunks reads the file once instead of n times from the start.
struct Cursor<R> {
    meta: SnapshotMeta,
    reader: R,
    position: u64,
    /// One byte read ahead to learn whether the previous chunk was the last.
    carry: Option<u8>,
}

/// Per-peer cursors into the current snapshot.
pub(crate) struct ChunkReader<S: Storage> {
    cursors: Mutex<HashMap<NodeId, Cursor<S::SnapshotReader>>>,
}

impl<S: Storage> Default for ChunkReader<S> {
    fn default() -> Self {
        ChunkReader {
            cursors: Mutex::new(HashMap::new()),
        }
    }
}

/// One chunk to send.
pub(crate) struct Chunk {
    pub(crate) data: Bytes,
    pub(crate) done: bool,
}

impl<S: Storage> ChunkReader<S> {
    /// Drops every open cursor (each may pin a replaced snapshot file on disk); called when
    /// the node stops leading, which ends its transfers.
    pub(crate) fn clear(&self) {
        if let Ok(mut cursors) = self.cursors.lock() {
            cursors.clear();
        }
    }

    /// Reads up to `max_bytes` of snapshot `meta` from `offset` for peer `to`. `Ok(None)`
    /// when the storage's current snapshot is not `meta` any more: send nothing, the core
    /// asks again for the newer one.
    pub(crate) fn read(
        &self,
        storage: &Arc<Mutex<S>>,
        to: NodeId,
        meta: &SnapshotMeta,
        offset: u64,
        max_bytes: u64,
    ) -> Result<Option<Chunk>, String> {
        let cached = self
            .cursors
            .lock()
            .map_err(|_| "snapshot cursor lock poisoned".to_string())?
            .remove(&to)
            .filter(|c| c.meta == *meta && c.position == offset);
        let mut cursor = match cached {
            Some(cursor) => cursor,
            None => match open_at(storage, meta, offset)? {
                Some(cursor) => cursor,
                None => return Ok(None),
            },
        };
        let chunk = next_chunk(&mut cursor, max_bytes)
            .map_err(|e| format!("reading snapshot {} at {offset}: {e}", meta.index))?;
        if !chunk.done
            && let Ok(mut cursors) = self.cursors.lock()
        {
            cursors.insert(to, cursor);
        }
        Ok(Some(chunk))
    }
}

fn open_at<S: Storage>(
    storage: &Mutex<S>,
    meta: &SnapshotMeta,
    offset: u64,
) -> Result<Option<Cursor<S::SnapshotReader>>, String> {
    let opened = lock_storage(storage)?
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

fn next_chunk<R: Read>(cursor: &mut Cursor<R>, max_bytes: u64) -> io::Result<Chunk> {
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
    Ok(Chunk {
        data: Bytes::from(data),
        done,
    })
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
                let chunk = next_chunk(&mut cursor, 8).unwrap();
                assert!(chunk.data.len() <= 8);
                out.extend_from_slice(&chunk.data);
                assert_eq!(cursor.position, out.len() as u64);
                if chunk.done {
                    break;
                }
            }
            assert_eq!(out, bytes, "length {length}");
        }
    }
}
