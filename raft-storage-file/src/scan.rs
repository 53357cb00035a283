//! Parses one segment file's bytes: header, records, and (in the last segment only) a torn
//! tail left by a crash. Pure: no IO.

use std::path::Path;

use raft_core::{Entry, HardState, Index, Term};

use crate::error::StorageError;
use crate::format::{
    self, FORMAT_VERSION, Frame, HeaderError, Record, SEGMENT_HEADER_BYTES, SegmentHeader,
};

/// A record found in a segment.
#[derive(Debug)]
pub(crate) enum ScannedRecord {
    Entry {
        entry: Entry,
        offset: u64,
        frame_bytes: u64,
    },
    HardState(HardState),
    /// An entry already taken by recovery.
    Moved,
}

/// What a crash left at the end of the last segment.
#[derive(Clone, Debug)]
pub(crate) struct Torn {
    pub(crate) offset: u64,
    pub(crate) reason: String,
}

#[derive(Debug)]
pub(crate) struct ScannedSegment {
    pub(crate) header: SegmentHeader,
    pub(crate) records: Vec<ScannedRecord>,
    /// `(index, term)` of the last entry in the file.
    pub(crate) last_entry: Option<(Index, Term)>,
    /// Bytes up to the end of the last valid record.
    pub(crate) valid_len: u64,
    pub(crate) torn: Option<Torn>,
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
pub(crate) fn scan_segment(path: &Path, bytes: &[u8], is_last: bool) -> Result<Scan, StorageError> {
    let file_len = bytes.len() as u64;
    if is_last && bytes.len() < SEGMENT_HEADER_BYTES {
        return Ok(Scan::TornHeader(format!(
            "header cut short at {file_len} bytes"
        )));
    }
    if is_last && bytes[..SEGMENT_HEADER_BYTES].iter().all(|b| *b == 0) {
        return Ok(Scan::TornHeader("header never written".to_string()));
    }
    let header = SegmentHeader::decode(bytes).map_err(|e| header_error(path, 0, e))?;
    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut torn = None;
    let mut last_entry = None;
    while pos < bytes.len() {
        let offset = pos as u64;
        let frame = format::read_frame(&bytes[pos..]);
        let Frame::Valid { body, frame_bytes } = frame else {
            match tear(&frame, &bytes[pos..], offset, file_len) {
                Some(reason) if is_last => {
                    torn = Some(Torn { offset, reason });
                    break;
                }
                _ => return Err(StorageError::corrupt(path, offset, describe(&frame))),
            }
        };
        let record = format::decode_record(body)
            .map_err(|reason| StorageError::corrupt(path, offset, reason))?;
        records.push(match record {
            Record::Entry(entry) => {
                last_entry = Some((entry.index, entry.term));
                ScannedRecord::Entry {
                    entry,
                    offset,
                    frame_bytes: frame_bytes as u64,
                }
            }
            Record::HardState(hard_state) => ScannedRecord::HardState(hard_state),
        });
        pos += frame_bytes;
    }
    let valid_len = torn.as_ref().map_or(file_len, |t| t.offset);
    Ok(Scan::Segment(ScannedSegment {
        header,
        records,
        last_entry,
        valid_len,
        torn,
    }))
}

/// If the bad frame at `offset` looks like an interrupted write, says why. A write cut
/// short ends the file early; a write that did not reach the disk leaves zeros (file
/// systems never expose stale bytes), whole sectors at a time. A bit flip does neither.
fn tear(frame: &Frame<'_>, rest: &[u8], offset: u64, file_len: u64) -> Option<String> {
    match frame {
        Frame::HeaderCut => Some("record header cut short by the end of the file".to_string()),
        Frame::ZeroHeader => Some("record header never written (zeros)".to_string()),
        Frame::BodyCut { frame_bytes } => Some(format!(
            "record of {frame_bytes} bytes cut short by the end of the file"
        )),
        Frame::BadBody { frame_bytes } => {
            format::has_unwritten_sector(&rest[..*frame_bytes], offset, file_len)
                .then(|| "record holds an unwritten (zero) sector".to_string())
        }
        Frame::BadHeader(_) => {
            let near = &rest[..rest
                .len()
                .min(format::FRAME_HEADER_BYTES + format::SECTOR_BYTES as usize)];
            format::has_unwritten_sector(near, offset, file_len)
                .then(|| "record header runs into an unwritten (zero) sector".to_string())
        }
        Frame::Valid { .. } => None,
    }
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
