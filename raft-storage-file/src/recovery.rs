//! Opening a directory: find the files, verify the snapshot, scan the segments in order,
//! cut a torn tail off the last one, chain them into one log and line it up with the
//! snapshot.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use raft_core::{Entry, HardState, Index, SnapshotMeta, Term};

use crate::error::StorageError;
use crate::fault::FaultInjector;
use crate::format::SegmentHeader;
use crate::scan::{self, Scan, ScannedRecord, ScannedSegment};
use crate::segment::{self, Segment};
use crate::snapshot;

/// What [`crate::FileStorage::open`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments_scanned: usize,
    /// Log entries after the snapshot, handed to the node.
    pub entries_restored: u64,
    /// The torn tail cut off the last segment, if a crash left one.
    pub torn_tail: Option<TornTail>,
    /// Leftover files removed: abandoned snapshot files and a last segment whose header
    /// was never written.
    pub removed_files: Vec<PathBuf>,
}

/// Bytes at the end of the last segment that a crash left half-written, and that were
/// removed. They were never synced, so no acknowledged write was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub path: PathBuf,
    /// Where the torn record started; the file was cut back to this length.
    pub offset: u64,
    /// How many bytes were removed.
    pub dropped_bytes: u64,
    /// What the bytes looked like.
    pub reason: String,
}

/// The recovered state, ready to become a [`crate::FileStorage`].
pub(crate) struct Recovered {
    pub(crate) segments: VecDeque<Segment>,
    pub(crate) retired: Vec<Segment>,
    pub(crate) next_seq: u64,
    pub(crate) base: (Index, Term),
    /// The log conflicted with the snapshot and was dropped; the store must make that
    /// durable before it removes any segment.
    pub(crate) log_dropped: bool,
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: Option<SnapshotMeta>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) report: RecoveryReport,
}

/// A segment file being recovered.
struct Found {
    path: PathBuf,
    file: File,
    scanned: ScannedSegment,
}

/// A live entry and where it is.
struct Located {
    entry: Entry,
    segment: usize,
    offset: u64,
    frame_bytes: u64,
}

pub(crate) fn recover(dir: &Path, faults: &FaultInjector) -> Result<Recovered, StorageError> {
    let mut report = RecoveryReport::default();
    let seqs = list_dir(dir, &mut report)?;
    let snapshot = snapshot::load(dir)?;
    let mut found = scan_all(dir, &seqs, faults, &mut report)?;
    report.segments_scanned = found.len();
    let snapshot_point = snapshot.as_ref().map_or((0, 0), |s| (s.index, s.term));
    let Chained {
        base,
        mut entries,
        hard_state,
    } = chain(&mut found, snapshot_point)?;
    let log_dropped = line_up(base, &mut entries, snapshot_point);
    let next_seq = seqs.last().map_or(1, |s| s + 1);
    let (segments, retired) = index_segments(found, &entries);
    report.entries_restored = entries.len() as u64;
    Ok(Recovered {
        segments,
        retired,
        next_seq,
        base: snapshot_point,
        log_dropped,
        hard_state,
        snapshot,
        entries: entries.into_iter().map(|l| l.entry).collect(),
        report,
    })
}

/// Segment sequence numbers in order; removes abandoned snapshot files.
fn list_dir(dir: &Path, report: &mut RecoveryReport) -> Result<Vec<u64>, StorageError> {
    let listing = std::fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))?;
    let mut seqs = Vec::new();
    for item in listing {
        let item = item.map_err(|e| StorageError::io("list", dir, e))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = segment::parse_file_name(name) {
            seqs.push(seq);
        } else if name.starts_with(snapshot::TEMP_PREFIX) {
            let path = item.path();
            std::fs::remove_file(&path)
                .map_err(|e| StorageError::io("remove abandoned snapshot", &path, e))?;
            tracing::info!(path = %path.display(), "removed an abandoned snapshot file");
            report.removed_files.push(path);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn scan_all(
    dir: &Path,
    seqs: &[u64],
    faults: &FaultInjector,
    report: &mut RecoveryReport,
) -> Result<Vec<Found>, StorageError> {
    let mut found = Vec::with_capacity(seqs.len());
    let mut bytes = Vec::new();
    for (position, &seq) in seqs.iter().enumerate() {
        let path = dir.join(segment::file_name(seq));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io("open segment", &path, e))?;
        bytes.clear();
        file.read_to_end(&mut bytes)
            .map_err(|e| StorageError::io("read segment", &path, e))?;
        let is_last = position + 1 == seqs.len();
        match scan::scan_segment(&path, &bytes, is_last)? {
            Scan::TornHeader(reason) => {
                drop(file);
                std::fs::remove_file(&path)
                    .map_err(|e| StorageError::io("remove torn segment", &path, e))?;
                snapshot::sync_dir(dir, faults)?;
                tracing::warn!(path = %path.display(), reason, "removed a last segment whose header was never written");
                report.removed_files.push(path);
            }
            Scan::Segment(scanned) => {
                if let Some(torn) = &scanned.torn {
                    cut_torn_tail(&file, &path, bytes.len() as u64, torn, faults, report)?;
                }
                found.push(Found {
                    path,
                    file,
                    scanned,
                });
            }
        }
    }
    Ok(found)
}

fn cut_torn_tail(
    file: &File,
    path: &Path,
    file_len: u64,
    torn: &scan::Torn,
    faults: &FaultInjector,
    report: &mut RecoveryReport,
) -> Result<(), StorageError> {
    let dropped_bytes = file_len - torn.offset;
    tracing::warn!(
        path = %path.display(),
        offset = torn.offset,
        dropped_bytes,
        reason = %torn.reason,
        "cut a torn tail (a write interrupted by a crash, never synced) off the last segment"
    );
    file.set_len(torn.offset)
        .map_err(|e| StorageError::io("cut torn tail of", path, e))?;
    faults
        .sync_data(file)
        .map_err(|e| StorageError::io("fsync", path, e))?;
    report.torn_tail = Some(TornTail {
        path: path.to_path_buf(),
        offset: torn.offset,
        dropped_bytes,
        reason: torn.reason.clone(),
    });
    Ok(())
}

/// The log as the segments describe it, before lining it up with the snapshot.
struct Chained {
    base: (Index, Term),
    entries: Vec<Located>,
    hard_state: HardState,
}

/// Chains the segments into one log. A segment's header says which entry it follows:
/// entries of earlier segments at or after its first index are superseded (a truncation),
/// and if the entry before it has another term, or is missing but covered by the snapshot,
/// the log restarts there (a log dropped for a snapshot). Returns the base, the live
/// entries and the last hard state.
fn chain(found: &mut [Found], snapshot: (Index, Term)) -> Result<Chained, StorageError> {
    let mut base: Option<(Index, Term)> = None;
    let mut entries: Vec<Located> = Vec::new();
    let mut hard_state = HardState::default();
    for (position, segment) in found.iter_mut().enumerate() {
        let SegmentHeader {
            first_index,
            prev_term,
        } = segment.scanned.header;
        let follows = (first_index - 1, prev_term);
        base = Some(match base {
            None => follows,
            Some((base_index, base_term)) => {
                let last = base_index + entries.len() as u64;
                if first_index - 1 > last && first_index - 1 > snapshot.0 {
                    return Err(StorageError::MissingEntries {
                        path: segment.path.clone(),
                        expected: last + 1,
                        found: first_index,
                    });
                }
                if first_index - 1 > last || first_index - 1 < base_index {
                    entries.clear();
                    follows
                } else {
                    entries.truncate((first_index - 1 - base_index) as usize);
                    let term_before = entries.last().map_or(base_term, |l| l.entry.term);
                    if term_before == prev_term {
                        (base_index, base_term)
                    } else {
                        entries.clear();
                        follows
                    }
                }
            }
        });
        let (base_index, _) = base.unwrap_or(follows);
        // Entries move into the chain (no copies); the records keep only their positions.
        for record in &mut segment.scanned.records {
            match std::mem::replace(record, ScannedRecord::Moved) {
                ScannedRecord::HardState(saved) => hard_state = saved,
                ScannedRecord::Moved => {}
                ScannedRecord::Entry {
                    entry,
                    offset,
                    frame_bytes,
                } => {
                    let expected = base_index + entries.len() as u64 + 1;
                    if entry.index != expected {
                        let reason =
                            format!("entry index {} where {expected} was expected", entry.index);
                        return Err(StorageError::corrupt(&segment.path, offset, reason));
                    }
                    entries.push(Located {
                        entry,
                        segment: position,
                        offset,
                        frame_bytes,
                    });
                }
            }
        }
    }
    let base = base.unwrap_or(snapshot);
    if base.0 > snapshot.0 {
        return Err(StorageError::MissingEntries {
            path: found.first().map_or_else(PathBuf::new, |f| f.path.clone()),
            expected: snapshot.0 + 1,
            found: base.0 + 1,
        });
    }
    Ok(Chained {
        base,
        entries,
        hard_state,
    })
}

/// Keeps the entries after the snapshot if the log agrees with it at the snapshot's index,
/// otherwise drops the log (it conflicts with a snapshot installed from a leader). The
/// snapshot becomes the base. Returns whether a log was dropped: that conclusion rests on
/// entries that may be removed later, so the caller must record it durably.
fn line_up(base: (Index, Term), entries: &mut Vec<Located>, snapshot: (Index, Term)) -> bool {
    let (snapshot_index, snapshot_term) = snapshot;
    let log_term = if snapshot_index == base.0 {
        Some(base.1)
    } else if snapshot_index > base.0 && snapshot_index <= base.0 + entries.len() as u64 {
        Some(entries[(snapshot_index - base.0 - 1) as usize].entry.term)
    } else {
        None
    };
    if log_term == Some(snapshot_term) {
        entries.drain(..(snapshot_index - base.0) as usize);
        return false;
    }
    tracing::info!(
        snapshot_index,
        snapshot_term,
        "the stored log conflicts with the snapshot; dropped it"
    );
    entries.clear();
    true
}

/// Builds each segment's index of live entries. Segments with none, except the last, are
/// retired: removed after the next sync.
fn index_segments(found: Vec<Found>, entries: &[Located]) -> (VecDeque<Segment>, Vec<Segment>) {
    let count = found.len();
    let mut segments = VecDeque::with_capacity(count);
    let mut retired = Vec::new();
    let mut cursor = 0usize;
    for (position, f) in found.into_iter().enumerate() {
        let start = cursor;
        while cursor < entries.len() && entries[cursor].segment == position {
            cursor += 1;
        }
        let live: Vec<(Index, Term, u64, u64)> = entries[start..cursor]
            .iter()
            .map(|l| (l.entry.index, l.entry.term, l.offset, l.frame_bytes))
            .collect();
        let header = f.scanned.header;
        let physical_last = f
            .scanned
            .last_entry
            .unwrap_or((header.first_index - 1, header.prev_term));
        let segment = Segment::recovered(
            f.path,
            f.file,
            header,
            &live,
            f.scanned.valid_len,
            physical_last,
        );
        if segment.has_live() || position + 1 == count {
            segments.push_back(segment);
        } else {
            retired.push(segment);
        }
    }
    (segments, retired)
}
