//! The snapshot byte format: streamed, versioned and checksummed.
//!
//! ```text
//! preamble  "RKVSNAP\0" (8 bytes), format version (u32 little-endian, currently 2)
//! frames    length (u32 LE) | crc32c of payload (u32 LE) | payload (one postcard Record)
//!   Header  { applied_index, revision, clock_ms, key_count, session_count }
//!   Key     { key, value, key_revision }            key_count times, keys strictly ascending
//!   Session { client_id, last_sequence, last_active_ms, response }
//!                                                   session_count times, ids ascending
//!   History { compacted_revision, change_count }    version 2 only
//!   HistoryChange { revision, key, kind }           change_count times, revisions ascending
//!   End     { frame_count, stream_crc }
//! ```
//! Version 1 (no watch history) is still read: its store gets an empty history that starts
//! after the snapshot's revision, so watches from older revisions get `compacted`.
//! `frame_count` counts the frames before `End`; `stream_crc` is the crc32c of every byte
//! before the `End` frame (preamble included), so a dropped, repeated or reordered frame is
//! caught even when each frame is intact. Frames are written one at a time through a buffer
//! (memory stays at one record, never the whole snapshot) and read the same way; a frame
//! longer than 64 MiB is refused before anything is allocated for it. The reader checks every
//! frame, the counts, the order and the metadata's invariants, and builds the new state aside:
//! on any error the caller's state is untouched.

use std::io::{self, BufReader, BufWriter, Read, Write};

use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::command::{KeyRevision, Response};
use crate::config::SNAPSHOT_FRAME_BYTES_MAX;
use crate::history::{Change, History};
use crate::machine::State;
use crate::session::{Session, SessionTable};
use crate::store::{Store, Stored};
use crate::store_key::StoreKey;

/// The first bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"RKVSNAP\0";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// The format version before the watch history, still readable.
pub const FORMAT_VERSION_WITHOUT_HISTORY: u32 = 1;
const FRAME_HEADER_BYTES: usize = 8;
const IO_BUFFER_BYTES: usize = 64 * 1024;

/// The header fields of a snapshot.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    applied_index: u64,
    revision: u64,
    clock_ms: u64,
    key_count: u64,
    session_count: u64,
}

/// One frame's payload.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Header(Header),
    Key {
        key: Bytes,
        value: Bytes,
        key_revision: KeyRevision,
    },
    Session {
        client_id: u64,
        last_sequence: u64,
        last_active_ms: u64,
        response: Response,
    },
    End {
        frame_count: u64,
        stream_crc: u32,
    },
    // Version 2: new variants go last, so the tags of the others do not move.
    History {
        compacted_revision: u64,
        change_count: u64,
    },
    HistoryChange(Change),
}

/// Why a snapshot could not be read. Converted to an [`io::Error`] at the trait boundary
/// (`UnexpectedEof` for truncation, the underlying kind for IO, `InvalidData` otherwise).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading failed.
    #[error("reading the snapshot failed: {0}")]
    Io(#[from] io::Error),
    /// The stream ended before the `End` record.
    #[error("the snapshot is truncated (ended inside or before frame {frame})")]
    Truncated {
        /// The frame being read.
        frame: u64,
    },
    /// Not a key-value snapshot.
    #[error("not a raft-kv snapshot (bad magic)")]
    BadMagic,
    /// Written by an incompatible version of this crate.
    #[error("unsupported snapshot format version {0} (this build reads 1 and {FORMAT_VERSION})")]
    UnsupportedVersion(u32),
    /// A frame's length field is implausible.
    #[error("frame {frame} claims {length_bytes} bytes, more than the 64 MiB limit")]
    FrameTooLarge {
        /// The frame.
        frame: u64,
        /// The claimed length.
        length_bytes: u64,
    },
    /// A frame's bytes do not match its checksum.
    #[error("frame {frame} is corrupt (checksum mismatch)")]
    FrameChecksum {
        /// The frame.
        frame: u64,
    },
    /// A frame's payload does not decode.
    #[error("frame {frame} does not decode: {source}")]
    Decode {
        /// The frame.
        frame: u64,
        /// The decoder's complaint.
        source: postcard::Error,
    },
    /// The frames are intact but do not form a valid snapshot.
    #[error("frame {frame} is invalid: {reason}")]
    Invalid {
        /// The frame.
        frame: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

impl From<SnapshotError> for io::Error {
    fn from(error: SnapshotError) -> Self {
        let kind = match &error {
            SnapshotError::Io(inner) => inner.kind(),
            SnapshotError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

/// Writes `state` in the format above.
pub(crate) fn write(state: &State, writer: &mut dyn Write) -> io::Result<()> {
    let mut output = FrameWriter::new(writer)?;
    let entries = &state.store.entries;
    let sessions = state.sessions.sessions();
    output.record(&Record::Header(Header {
        applied_index: state.applied_index,
        revision: state.store.revision,
        clock_ms: state.clock_ms,
        key_count: entries.len() as u64,
        session_count: sessions.len() as u64,
    }))?;
    for (key, stored) in entries {
        let (key, value) = (key.to_bytes(), stored.value.clone());
        output.record(&Record::Key {
            key,
            value,
            key_revision: stored.key_revision,
        })?;
    }
    for (client_id, session) in sessions {
        output.record(&Record::Session {
            client_id: *client_id,
            last_sequence: session.last_sequence,
            last_active_ms: session.last_active_ms,
            response: session.response.clone(),
        })?;
    }
    let history = &state.history;
    output.record(&Record::History {
        compacted_revision: history.compacted_revision(),
        change_count: history.len() as u64,
    })?;
    for change in history.changes() {
        output.record(&Record::HistoryChange(change.clone()))?;
    }
    let end = Record::End {
        frame_count: output.frame_count,
        stream_crc: output.stream_crc,
    };
    output.record(&end)?;
    output.writer.flush()
}

struct FrameWriter<'a> {
    writer: BufWriter<&'a mut dyn Write>,
    payload: Vec<u8>,
    frame_count: u64,
    stream_crc: u32,
}

impl<'a> FrameWriter<'a> {
    fn new(writer: &'a mut dyn Write) -> io::Result<Self> {
        Self::with_version(writer, FORMAT_VERSION)
    }

    fn with_version(writer: &'a mut dyn Write, version: u32) -> io::Result<Self> {
        let mut writer = BufWriter::with_capacity(IO_BUFFER_BYTES, writer);
        let mut preamble = [0u8; 12];
        preamble[..8].copy_from_slice(&MAGIC);
        preamble[8..].copy_from_slice(&version.to_le_bytes());
        writer.write_all(&preamble)?;
        let stream_crc = crc32c::crc32c(&preamble);
        Ok(Self {
            writer,
            payload: Vec::new(),
            frame_count: 0,
            stream_crc,
        })
    }

    fn record(&mut self, record: &Record) -> io::Result<()> {
        self.payload.clear();
        let payload = std::mem::take(&mut self.payload);
        self.payload = postcard::to_extend(record, payload)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        let length = u32::try_from(self.payload.len())
            .ok()
            .filter(|&length| u64::from(length) <= SNAPSHOT_FRAME_BYTES_MAX)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "snapshot record too large")
            })?;
        let mut frame_header = [0u8; FRAME_HEADER_BYTES];
        frame_header[..4].copy_from_slice(&length.to_le_bytes());
        frame_header[4..].copy_from_slice(&crc32c::crc32c(&self.payload).to_le_bytes());
        self.writer.write_all(&frame_header)?;
        self.writer.write_all(&self.payload)?;
        self.stream_crc = crc32c::crc32c_append(self.stream_crc, &frame_header);
        self.stream_crc = crc32c::crc32c_append(self.stream_crc, &self.payload);
        self.frame_count += 1;
        Ok(())
    }
}

/// Reads and verifies a snapshot, returning the state it holds.
pub(crate) fn read(reader: &mut dyn Read) -> Result<State, SnapshotError> {
    let mut input = FrameReader::new(reader)?;
    let Record::Header(header) = input.next()? else {
        return Err(input.invalid("the first frame is not the header"));
    };
    if header.revision > header.applied_index {
        return Err(input.invalid("revision is after the applied index"));
    }
    let store = read_store(&mut input, &header)?;
    let sessions = read_sessions(&mut input, &header)?;
    let history = if input.version == FORMAT_VERSION_WITHOUT_HISTORY {
        History::starting_after(header.revision)
    } else {
        read_history(&mut input, &header)?
    };
    let (frame_count, stream_crc) = (input.frame_count, input.stream_crc);
    let Record::End {
        frame_count: frames_written,
        stream_crc: crc_written,
    } = input.next()?
    else {
        return Err(input.invalid("expected the end frame"));
    };
    if frames_written != frame_count {
        return Err(input.invalid("frame count differs from the end frame's"));
    }
    if crc_written != stream_crc {
        return Err(input.invalid("stream checksum mismatch"));
    }
    let sessions = SessionTable::from_sessions(sessions);
    Ok(State {
        applied_index: header.applied_index,
        clock_ms: header.clock_ms,
        store,
        sessions,
        history,
    })
}

fn read_history(input: &mut FrameReader<'_>, header: &Header) -> Result<History, SnapshotError> {
    let Record::History {
        compacted_revision,
        change_count,
    } = input.next()?
    else {
        return Err(input.invalid("expected the history frame"));
    };
    if compacted_revision > header.revision {
        return Err(input.invalid("history compacted after the store's revision"));
    }
    let mut changes = imbl::Vector::new();
    let mut previous = compacted_revision;
    for _ in 0..change_count {
        let Record::HistoryChange(change) = input.next()? else {
            return Err(input.invalid("expected a history change frame"));
        };
        if change.revision <= previous || change.key.is_empty() {
            return Err(input.invalid("history changes are not in ascending revision order"));
        }
        previous = change.revision;
        changes.push_back(change);
    }
    // Every change is recorded, so the newest one made the store's revision.
    if previous != header.revision && !changes.is_empty() {
        return Err(input.invalid("the newest history change is not the store's revision"));
    }
    if changes.is_empty() && compacted_revision != header.revision {
        return Err(input.invalid("an empty history must start after the store's revision"));
    }
    Ok(History::from_parts(compacted_revision, changes))
}

fn read_store(input: &mut FrameReader<'_>, header: &Header) -> Result<Store, SnapshotError> {
    let mut entries = OrdMap::new();
    let mut previous_key: Option<Bytes> = None;
    for _ in 0..header.key_count {
        let Record::Key {
            key,
            value,
            key_revision,
        } = input.next()?
        else {
            return Err(input.invalid("expected a key frame"));
        };
        if key.is_empty()
            || previous_key
                .as_ref()
                .is_some_and(|previous| *previous >= key)
        {
            return Err(input.invalid("keys are empty or not strictly ascending"));
        }
        let KeyRevision {
            create_revision,
            mod_revision,
            version,
        } = key_revision;
        if create_revision == 0
            || create_revision > mod_revision
            || mod_revision > header.revision
            || version == 0
        {
            return Err(input.invalid("key revision metadata is inconsistent"));
        }
        previous_key = Some(key.clone());
        entries.insert(
            StoreKey::new(&key),
            Stored {
                value,
                key_revision,
            },
        );
    }
    Ok(Store {
        entries,
        revision: header.revision,
    })
}

fn read_sessions(
    input: &mut FrameReader<'_>,
    header: &Header,
) -> Result<OrdMap<u64, Session>, SnapshotError> {
    let mut sessions = OrdMap::new();
    let mut previous_id: Option<u64> = None;
    for _ in 0..header.session_count {
        let Record::Session {
            client_id,
            last_sequence,
            last_active_ms,
            response,
        } = input.next()?
        else {
            return Err(input.invalid("expected a session frame"));
        };
        if previous_id.is_some_and(|previous| previous >= client_id) {
            return Err(input.invalid("sessions are not in ascending client order"));
        }
        if last_sequence == 0 || last_active_ms > header.clock_ms {
            return Err(input.invalid("session metadata is inconsistent"));
        }
        previous_id = Some(client_id);
        sessions.insert(
            client_id,
            Session {
                last_sequence,
                response,
                last_active_ms,
            },
        );
    }
    Ok(sessions)
}

struct FrameReader<'a> {
    reader: BufReader<&'a mut dyn Read>,
    /// The format version in the preamble.
    version: u32,
    payload: Vec<u8>,
    /// Frames read so far.
    frame_count: u64,
    /// crc32c of every byte read so far.
    stream_crc: u32,
}

impl<'a> FrameReader<'a> {
    fn new(reader: &'a mut dyn Read) -> Result<Self, SnapshotError> {
        let mut reader = BufReader::with_capacity(IO_BUFFER_BYTES, reader);
        let mut preamble = [0u8; 12];
        read_exact(&mut reader, &mut preamble, 0)?;
        if preamble[..8] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&preamble[8..]);
        let version = u32::from_le_bytes(version);
        if version != FORMAT_VERSION && version != FORMAT_VERSION_WITHOUT_HISTORY {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let stream_crc = crc32c::crc32c(&preamble);
        Ok(Self {
            reader,
            version,
            payload: Vec::new(),
            frame_count: 0,
            stream_crc,
        })
    }

    /// Reads, checks and decodes the next frame.
    fn next(&mut self) -> Result<Record, SnapshotError> {
        let frame = self.frame_count;
        let mut frame_header = [0u8; FRAME_HEADER_BYTES];
        read_exact(&mut self.reader, &mut frame_header, frame)?;
        let [l0, l1, l2, l3, c0, c1, c2, c3] = frame_header;
        let length_bytes = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        if length_bytes > SNAPSHOT_FRAME_BYTES_MAX {
            return Err(SnapshotError::FrameTooLarge {
                frame,
                length_bytes,
            });
        }
        // `take` + `read_to_end` grows the buffer with the data actually present, so a
        // corrupt length cannot make us allocate more than the stream holds.
        self.payload.clear();
        (&mut self.reader)
            .take(length_bytes)
            .read_to_end(&mut self.payload)?;
        if self.payload.len() as u64 != length_bytes {
            return Err(SnapshotError::Truncated { frame });
        }
        if crc32c::crc32c(&self.payload) != crc {
            return Err(SnapshotError::FrameChecksum { frame });
        }
        let record = postcard::from_bytes(&self.payload)
            .map_err(|source| SnapshotError::Decode { frame, source })?;
        self.stream_crc = crc32c::crc32c_append(self.stream_crc, &frame_header);
        self.stream_crc = crc32c::crc32c_append(self.stream_crc, &self.payload);
        self.frame_count += 1;
        Ok(record)
    }

    /// An `Invalid` error about the frame just read.
    fn invalid(&self, reason: &'static str) -> SnapshotError {
        SnapshotError::Invalid {
            frame: self.frame_count.saturating_sub(1),
            reason,
        }
    }
}

fn read_exact(reader: &mut impl Read, buffer: &mut [u8], frame: u64) -> Result<(), SnapshotError> {
    reader
        .read_exact(buffer)
        .map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotError::Truncated { frame },
            _ => SnapshotError::Io(error),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, KvConfig, KvStateMachine};
    use raft_core::StateMachine;

    /// Goal: a version-1 snapshot (written before the watch history existed) still
    /// restores, with an empty history that starts after its revision, so a watch from an
    /// older revision is told `compacted` rather than shown nothing.
    #[test]
    fn version_one_snapshots_still_restore() {
        let mut kv = KvStateMachine::new(KvConfig::default()).expect("valid");
        kv.apply(1, Command::put("a", "1", 10));
        kv.apply(2, Command::put("b", "2", 10));
        let mut bytes = Vec::new();
        {
            let mut output = FrameWriter::with_version(&mut bytes, 1).expect("Vec write");
            output
                .record(&Record::Header(Header {
                    applied_index: 2,
                    revision: 2,
                    clock_ms: 10,
                    key_count: 1,
                    session_count: 0,
                }))
                .expect("Vec write");
            output
                .record(&Record::Key {
                    key: Bytes::from_static(b"a"),
                    value: Bytes::from_static(b"1"),
                    key_revision: KeyRevision {
                        create_revision: 1,
                        mod_revision: 1,
                        version: 1,
                    },
                })
                .expect("Vec write");
            let end = Record::End {
                frame_count: output.frame_count,
                stream_crc: output.stream_crc,
            };
            output.record(&end).expect("Vec write");
            output.writer.flush().expect("Vec write");
        }
        let state = read(&mut bytes.as_slice()).expect("a version-1 snapshot reads");
        assert_eq!(state.store.entries.len(), 1);
        assert_eq!(state.history.len(), 0);
        assert_eq!(state.history.compacted_revision(), 2);
    }

    /// Goal: a history whose changes are out of order is refused, not restored.
    #[test]
    fn a_disordered_history_is_refused() {
        let mut kv = KvStateMachine::new(KvConfig::default()).expect("valid");
        kv.apply(1, Command::put("a", "1", 10));
        kv.apply(2, Command::put("b", "2", 10));
        let mut state = kv.snapshot().state;
        let mut changes: Vec<Change> = state.history.changes().iter().cloned().collect();
        changes.swap(0, 1);
        state.history = History::from_parts(0, changes.into_iter().collect());
        let mut bytes = Vec::new();
        write(&state, &mut bytes).expect("Vec write");
        assert!(matches!(
            read(&mut bytes.as_slice()),
            Err(SnapshotError::Invalid { .. })
        ));
    }
}
