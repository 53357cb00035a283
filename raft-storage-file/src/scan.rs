//! Parses one segment file's bytes: header, records, a clean end of zeros (space reserved
//! for records, in any segment) and, in the last segment only, a torn tail left by a
//! crash. Pure: no IO.

use std::path::Path;

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, HardState, Index, Term};

use crate::bit_flip;
use crate::decode::{self, Peeked};
use crate::error::StorageError;
use crate::format::{
    self, FORMAT_VERSION, Frame, HeaderError, Record, SEGMENT_HEADER_BYTES, SegmentHeader,
};

/// Command payloads at least this long are copied out of the segment's bytes when built.
const OWN_BUFFER_BYTES_MIN: usize = 64 * 1024;

/// What a crash left at the end of the last segment.
#[derive(Clone, Debug)]
pub(crate) struct Torn {
    pub(crate) offset: u64,
    pub(crate) reason: String,
}

/// One segment file, parsed. Its entries are indexed, not built: only the live ones are
/// decoded, once the log is chained (see [`ScannedSegment::entry`]).
#[derive(Debug)]
pub(crate) struct ScannedSegment {
    pub(crate) header: SegmentHeader,
    /// The file's bytes; decoded command payloads are slices of them.
    pub(crate) bytes: Bytes,
    /// The frame offset of each entry in the file; the entry at position `p` has index
    /// `header.first_index + p`.
    pub(crate) offsets: Vec<u64>,
    /// `(first index, term)` of each run of entries sharing a term.
    pub(crate) term_runs: Vec<(Index, Term)>,
    /// The last hard state record in the file.
    pub(crate) hard_state: Option<HardState>,
    /// Bytes up to the end of the last valid record: where writing goes on (zeros may
    /// follow, up to the file's length: its preallocated clean end).
    pub(crate) valid_len: u64,
    pub(crate) torn: Option<Torn>,
}

impl ScannedSegment {
    /// How many entries the file holds.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// The term of the entry at `position`.
    pub(crate) fn term_at(&self, position: usize) -> Option<Term> {
        let index = self.header.first_index + position as u64;
        if position >= self.len() {
            return None;
        }
        let runs_started = self.term_runs.partition_point(|run| run.0 <= index);
        self.term_runs
            .get(runs_started.checked_sub(1)?)
            .map(|run| run.1)
    }

    /// The term runs of the entries at positions `start..end`.
    pub(crate) fn term_runs_within(&self, start: usize, end: usize) -> Vec<(Index, Term)> {
        let low = self.header.first_index + start as u64;
        let high = self.header.first_index + end as u64;
        let first_run = self
            .term_runs
            .partition_point(|run| run.0 <= low)
            .saturating_sub(1);
        self.term_runs[first_run..]
            .iter()
            .take_while(|run| run.0 < high)
            .map(|&(index, term)| (index.max(low), term))
            .collect()
    }

    /// `(index, term)` of the last entry in the file, or of the one before the first.
    pub(crate) fn physical_last(&self) -> (Index, Term) {
        match self.len().checked_sub(1) {
            Some(last) => (
                self.header.first_index + last as u64,
                self.term_at(last).unwrap_or(self.header.prev_term),
            ),
            None => (self.header.first_index - 1, self.header.prev_term),
        }
    }

    /// Where the frame of the entry at `position` ends.
    pub(crate) fn frame_end(&self, position: usize) -> u64 {
        let offset = self.offsets[position];
        offset + format::frame_bytes_at(&self.bytes, offset as usize) as u64
    }

    /// Builds the entry at `position`, its command payload a slice of the file's bytes
    /// unless it is large: a large payload gets its own buffer, so a state machine that
    /// keeps it (raft-kv shares large values with the entry) never keeps the whole
    /// segment alive after the log has moved on. Small ones live as long as the log does.
    pub(crate) fn entry(&self, path: &Path, position: usize) -> Result<Entry, StorageError> {
        let offset = self.offsets[position];
        let start = offset as usize + format::FRAME_HEADER_BYTES;
        let end = self.frame_end(position) as usize;
        match decode::decode_record(&self.bytes, start..end) {
            Ok(Record::Entry(mut entry)) => {
                if let EntryPayload::Command(payload) = &mut entry.payload
                    && payload.len() >= OWN_BUFFER_BYTES_MIN
                {
                    *payload = Bytes::copy_from_slice(payload);
                }
                Ok(entry)
            }
            Ok(Record::HardState(_)) => Err(StorageError::corrupt(
                path,
                offset,
                "a hard state where the scan found an entry",
            )),
            Err(reason) => Err(StorageError::corrupt(path, offset, reason)),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Scan {
    Segment(ScannedSegment),
    /// The last segment's header was never completely written: the file holds nothing.
    TornHeader(String),
}

pub(crate) fn header_error(path: &Path, offset: u64, error: HeaderError) -> StorageError {
    match error {
        HeaderError::UnsupportedVersion(found) => StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        },
        HeaderError::BadMagic => StorageError::corrupt(path, offset, "bad magic number"),
        HeaderError::BadChecksum => StorageError::corrupt(path, offset, "header checksum mismatch"),
        HeaderError::Malformed(what) => StorageError::corrupt(path, offset, what),
    }
}

/// Scans a segment. Damage is an error, except in the last segment (`is_last`) where a
/// record that a crash could have left half-written ends the log there: it was never
/// synced, because a sync covers every earlier write and the segment before this one was
/// synced before this one was created.
///
/// `skip_checks` is the planted `SkipCorruptionCheck` bug (always false in production): any
/// bad record of the last segment is taken for a torn tail.
pub(crate) fn scan_segment_with(
    path: &Path,
    bytes: Bytes,
    is_last: bool,
    skip_checks: bool,
) -> Result<Scan, StorageError> {
    let file_len = bytes.len() as u64;
    if is_last && bytes.len() < SEGMENT_HEADER_BYTES {
        return Ok(Scan::TornHeader(format!(
            "header cut short at {file_len} bytes"
        )));
    }
    if is_last && bytes[..SEGMENT_HEADER_BYTES].iter().all(|b| *b == 0) {
        return Ok(Scan::TornHeader("header never written".to_string()));
    }
    let header = SegmentHeader::decode(&bytes).map_err(|e| header_error(path, 0, e))?;
    let mut offsets: Vec<u64> = Vec::new();
    let mut term_runs: Vec<(Index, Term)> = Vec::new();
    let mut hard_state = None;
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut torn = None;
    while pos < bytes.len() {
        let offset = pos as u64;
        let frame = format::read_frame(&bytes[pos..]);
        let Frame::Valid { body, frame_bytes } = frame else {
            if is_clean_end(&frame, &bytes[pos..]) {
                break;
            }
            match tear(&frame, &bytes[pos..], offset) {
                Some(reason) if is_last => {
                    torn = Some(Torn { offset, reason });
                    break;
                }
                None if is_last && skip_checks => {
                    torn = Some(Torn {
                        offset,
                        reason: describe(&frame),
                    });
                    break;
                }
                _ => return Err(StorageError::corrupt(path, offset, describe(&frame))),
            }
        };
        let peeked = decode::peek_record(body)
            .map_err(|reason| StorageError::corrupt(path, offset, reason))?;
        match peeked {
            Peeked::Entry { index, term } => {
                let expected = header.first_index + offsets.len() as u64;
                if index != expected {
                    let reason = format!("entry index {index} where {expected} was expected");
                    return Err(StorageError::corrupt(path, offset, reason));
                }
                offsets.push(offset);
                if term_runs.last().is_none_or(|run| run.1 != term) {
                    term_runs.push((index, term));
                }
            }
            Peeked::HardState(saved) => hard_state = Some(saved),
        }
        pos += frame_bytes;
    }
    let valid_len = torn.as_ref().map_or(pos as u64, |t| t.offset);
    // Command payloads will be slices of `bytes`: a segment that is mostly reserved zeros
    // (the last one, preallocated) keeps only its records, not a buffer of its full size.
    let bytes = if valid_len < file_len / 2 {
        Bytes::copy_from_slice(&bytes[..valid_len as usize])
    } else {
        bytes
    };
    Ok(Scan::Segment(ScannedSegment {
        header,
        bytes,
        offsets,
        term_runs,
        hard_state,
        valid_len,
        torn,
    }))
}

/// True if the file holds only zeros from this frame boundary on: space reserved for
/// records not yet written (see `Segment::allocate`), the segment's clean end, in any
/// segment. A record with any byte written is not a clean end.
fn is_clean_end(frame: &Frame<'_>, rest: &[u8]) -> bool {
    matches!(frame, Frame::ZeroHeader | Frame::HeaderCut) && all_zeros(rest)
}

/// True if every byte is 0; compares 16 bytes at a time, as a preallocated tail runs to
/// tens of MiB.
fn all_zeros(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(16);
    chunks
        .by_ref()
        .all(|chunk| chunk.iter().fold(0u8, |acc, b| acc | b) == 0)
        && chunks.remainder().iter().all(|b| *b == 0)
}

/// If the bad frame at `offset` looks like an interrupted write, says why. A write cut
/// short ends the file early, or, in a preallocated segment, runs into the zeros after it;
/// a write that did not reach the disk leaves zeros (file systems never expose stale
/// bytes), whole sectors at a time, or from a sector boundary to the end of the file (its
/// length was written, its last sector not). A bit flip does neither.
fn tear(frame: &Frame<'_>, rest: &[u8], offset: u64) -> Option<String> {
    match frame {
        Frame::HeaderCut => Some("record header cut short by the end of the file".to_string()),
        Frame::ZeroHeader => Some("record header never written (zeros)".to_string()),
        Frame::BodyCut { frame_bytes } => Some(format!(
            "record of {frame_bytes} bytes cut short by the end of the file"
        )),
        Frame::BadBody { frame_bytes } => {
            // A sector that starts inside the record is looked at whole, even where it
            // runs past the record's end: a crash zeroes whole sectors, not records, so
            // a short record may hold only the first bytes of an unwritten sector.
            let frame_end = offset + *frame_bytes as u64;
            let window_end = frame_end.div_ceil(format::SECTOR_BYTES) * format::SECTOR_BYTES;
            let window = rest.len().min((window_end - offset) as usize);
            if format::has_unwritten_sector(&rest[..window], offset) {
                return Some("record holds an unwritten (zero) sector".to_string());
            }
            let zeros_from = format::zero_tail_start(rest, offset)?;
            (zeros_from < frame_end && !flipped_before(rest, *frame_bytes, offset, zeros_from))
                .then(|| {
                    "record cut short by zeros to the end of the file (never written)".to_string()
                })
        }
        Frame::BadHeader(_) => {
            let near = &rest[..rest
                .len()
                .min(format::FRAME_HEADER_BYTES + format::SECTOR_BYTES as usize)];
            // Zeros that reach into the length or its check explain the bad header; a
            // whole record's body would follow, starting with a kind byte that is never 0.
            let zeroed = format::zero_tail_start(rest, offset)
                .is_some_and(|from| from < offset + format::LENGTH_FIELDS_BYTES);
            (format::has_unwritten_sector(near, offset) || zeroed)
                .then(|| "record header runs into an unwritten (zero) sector".to_string())
        }
        Frame::Valid { .. } => None,
    }
}

/// True if one flipped bit before file offset `zeros_from` (in the body or in its stored
/// checksum) would make the record at `offset` whole: a record written in full and damaged
/// at rest, whose last bytes happen to be zeros, not a write that never reached the disk.
fn flipped_before(rest: &[u8], frame_bytes: usize, offset: u64, zeros_from: u64) -> bool {
    let header_bytes = format::FRAME_HEADER_BYTES;
    let body = &rest[header_bytes..frame_bytes];
    let stored = format::stored_body_crc(rest);
    let body_at = offset + header_bytes as u64;
    let in_stored_crc = zeros_from >= body_at && (crc32c::crc32c(body) ^ stored).count_ones() == 1;
    let in_body = bit_flip::single_bit_error(body, stored)
        .is_some_and(|at| body_at + (at as u64) < zeros_from);
    in_stored_crc || in_body
}

fn describe(frame: &Frame<'_>) -> String {
    match frame {
        Frame::HeaderCut => "record header cut short".to_string(),
        Frame::ZeroHeader => "zeroed record header".to_string(),
        Frame::BadHeader(reason) => reason.clone(),
        Frame::BodyCut { frame_bytes } => {
            format!("record of {frame_bytes} bytes runs past the end of the file")
        }
        Frame::BadBody { .. } => "record checksum mismatch".to_string(),
        Frame::Valid { .. } => "valid record".to_string(),
    }
}
