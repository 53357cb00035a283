//! Opening a directory: find the files, verify the snapshot, scan the segments in order,
//! cut a torn tail off the last one, chain them into one log and line it up with the
//! snapshot.
//!
//! Reading is bounded by the disk rather than one core: reader threads read and check
//! segments ahead of the chaining (each segment into one buffer that its command payloads
//! will share), the calling thread chains and decodes them as they arrive (see
//! [`crate::chain`]), and the snapshot's data is verified on a thread of its own.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use bytes::Bytes;
use raft_core::{Entry, HardState, Index, SnapshotMeta, Term};

use crate::chain::{Built, Found, LogBuilder};
use crate::error::StorageError;
use crate::fault::PlantedBug;
use crate::fs::{Disk, FileSystem, FsFile};
use crate::scan::{self, Scan};
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
pub(crate) struct Recovered<F: FileSystem> {
    pub(crate) segments: VecDeque<Segment<F>>,
    pub(crate) retired: Vec<Segment<F>>,
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

/// By default at most this many threads read segments at once: enough to keep a disk busy
/// while the others parse, few enough not to crowd a small machine.
const READER_THREADS_MAX: usize = 4;
/// By default a log smaller than this is read on the calling thread: threads would cost
/// more than they save.
const THREADED_BYTES_MIN: u64 = 8 << 20;

pub(crate) fn recover<F: FileSystem>(
    dir: &Path,
    disk: &Disk<F>,
    threads: Option<usize>,
) -> Result<Recovered<F>, StorageError> {
    let mut report = RecoveryReport::default();
    let (seqs, segment_bytes) = list_dir(&disk.fs, dir, &mut report)?;
    let threads = threads.unwrap_or_else(|| {
        if segment_bytes < THREADED_BYTES_MIN {
            0
        } else {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, READER_THREADS_MAX)
        }
    });
    let snapshot = snapshot::Current::find(&disk.fs, dir)?;
    let snapshot_point = snapshot
        .as_ref()
        .map_or((0, 0), |s| (s.meta().index, s.meta().term));
    let mut log = LogBuilder::new(snapshot_point);
    let mut scan = |report: &mut RecoveryReport| {
        scan_all(dir, &seqs, threads, disk, report, |found| log.add(found))
    };
    match &snapshot {
        None => scan(&mut report)?,
        Some(current) if threads == 0 => {
            current.verify()?;
            scan(&mut report)?;
        }
        Some(current) => std::thread::scope(|scope| {
            let verifier = scope.spawn(|| current.verify());
            let scanned = scan(&mut report);
            verifier.join().unwrap_or_else(|_| {
                Err(StorageError::io(
                    "verify snapshot in",
                    dir,
                    io::Error::other("the verifying thread panicked"),
                ))
            })?;
            // A damaged snapshot is reported first, as when the two ran one after the other.
            scanned
        })?,
    }
    report.segments_scanned = log.segment_count();
    let Built {
        segments,
        retired,
        entries,
        hard_state,
        log_dropped,
    } = log.finish()?;
    report.entries_restored = entries.len() as u64;
    Ok(Recovered {
        segments,
        retired,
        next_seq: seqs.last().map_or(1, |s| s + 1),
        base: snapshot_point,
        log_dropped,
        hard_state,
        snapshot: snapshot.map(snapshot::Current::into_meta),
        entries,
        report,
    })
}

/// Segment sequence numbers in order and the segments' total size; removes abandoned
/// snapshot files.
fn list_dir<F: FileSystem>(
    fs: &F,
    dir: &Path,
    report: &mut RecoveryReport,
) -> Result<(Vec<u64>, u64), StorageError> {
    let mut listing = fs.list(dir).map_err(|e| StorageError::io("list", dir, e))?;
    // Sorted, so that what recovery does and reports never depends on listing order.
    listing.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seqs = Vec::new();
    let mut segment_bytes = 0u64;
    for item in listing {
        if let Some(seq) = segment::parse_file_name(&item.name) {
            seqs.push(seq);
            // Only a hint for choosing threads.
            segment_bytes += item.len;
        } else if item.name.starts_with(snapshot::TEMP_PREFIX) {
            let path = dir.join(&item.name);
            fs.remove_file(&path)
                .map_err(|e| StorageError::io("remove abandoned snapshot", &path, e))?;
            tracing::info!(path = %path.display(), "removed an abandoned snapshot file");
            report.removed_files.push(path);
        }
    }
    seqs.sort_unstable();
    Ok((seqs, segment_bytes))
}

/// A segment file read and parsed by a reader thread.
struct ReadSegment<F: FileSystem> {
    path: PathBuf,
    file: F::File,
    file_len: u64,
    scan: Scan,
}

/// Reads and checks every segment on `threads` reader threads (0: on this one) and hands
/// them to `accept` in sequence order; cuts a torn tail off the last one, and removes it if
/// its header was never written.
fn scan_all<F: FileSystem>(
    dir: &Path,
    seqs: &[u64],
    threads: usize,
    disk: &Disk<F>,
    report: &mut RecoveryReport,
    mut accept: impl FnMut(Found<F>) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let threads = threads.min(seqs.len());
    if threads == 0 {
        for (position, &seq) in seqs.iter().enumerate() {
            let path = dir.join(segment::file_name(seq));
            let read = read_segment(disk, path, position + 1 == seqs.len())?;
            if let Some(found) = settle(dir, read, disk, report)? {
                accept(found)?;
            }
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        // Thread t reads segments t, t + threads, ...; each hands over one segment at a
        // time, so at most two per thread are in memory ahead of the chaining.
        type Received<F> = Result<ReadSegment<F>, StorageError>;
        let receivers: Vec<mpsc::Receiver<Received<F>>> = (0..threads)
            .map(|first| {
                let (sender, receiver) = mpsc::sync_channel(1);
                scope.spawn(move || read_every_nth(disk, dir, seqs, first, threads, &sender));
                receiver
            })
            .collect();
        for position in 0..seqs.len() {
            // Dropping the receivers on an error stops the threads at their next send.
            let read = receivers[position % threads].recv().map_err(|_| {
                let path = dir.join(segment::file_name(seqs[position]));
                StorageError::io(
                    "read segment",
                    path,
                    io::Error::other("reader thread failed"),
                )
            })??;
            if let Some(found) = settle(dir, read, disk, report)? {
                accept(found)?;
            }
        }
        Ok(())
    })
}

/// The body of reader thread `first` of `step`.
fn read_every_nth<F: FileSystem>(
    disk: &Disk<F>,
    dir: &Path,
    seqs: &[u64],
    first: usize,
    step: usize,
    sender: &mpsc::SyncSender<Result<ReadSegment<F>, StorageError>>,
) {
    for position in (first..seqs.len()).step_by(step) {
        let path = dir.join(segment::file_name(seqs[position]));
        let read = read_segment(disk, path, position + 1 == seqs.len());
        let failed = read.is_err();
        if sender.send(read).is_err() || failed {
            return;
        }
    }
}

/// Reads a whole segment into one buffer and parses it.
fn read_segment<F: FileSystem>(
    disk: &Disk<F>,
    path: PathBuf,
    is_last: bool,
) -> Result<ReadSegment<F>, StorageError> {
    let file = disk
        .fs
        .open(&path)
        .map_err(|e| StorageError::io("open segment", &path, e))?;
    let file_len = file
        .len_bytes()
        .map_err(|e| StorageError::io("stat segment", &path, e))?;
    let len = usize::try_from(file_len).map_err(|_| {
        StorageError::corrupt(
            &path,
            0,
            format!("segment of {file_len} bytes is too large"),
        )
    })?;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| StorageError::io("read segment", &path, e))?;
    let skip_checks = disk.faults.has_bug(PlantedBug::SkipCorruptionCheck);
    let scan = scan::scan_segment_with(&path, Bytes::from(bytes), is_last, skip_checks)?;
    Ok(ReadSegment {
        path,
        file,
        file_len,
        scan,
    })
}

/// Acts on what a crash left in the last segment: removes it if its header was never
/// written, cuts a torn tail off it.
fn settle<F: FileSystem>(
    dir: &Path,
    read: ReadSegment<F>,
    disk: &Disk<F>,
    report: &mut RecoveryReport,
) -> Result<Option<Found<F>>, StorageError> {
    let ReadSegment {
        path,
        file,
        file_len,
        scan,
    } = read;
    match scan {
        Scan::TornHeader(reason) => {
            drop(file);
            disk.fs
                .remove_file(&path)
                .map_err(|e| StorageError::io("remove torn segment", &path, e))?;
            disk.sync_dir(dir)?;
            tracing::warn!(path = %path.display(), reason, "removed a last segment whose header was never written");
            report.removed_files.push(path);
            Ok(None)
        }
        Scan::Segment(scanned)
            if scanned.torn.is_some() && disk.faults.has_bug(PlantedBug::LoseUnsyncedSegment) =>
        {
            // Planted bug: the whole segment goes, synced records too, and nobody is told.
            drop(file);
            disk.fs
                .remove_file(&path)
                .map_err(|e| StorageError::io("remove torn segment", &path, e))?;
            disk.sync_dir(dir)?;
            Ok(None)
        }
        Scan::Segment(scanned) => {
            if let Some(torn) = &scanned.torn {
                cut_torn_tail(&file, &path, file_len, torn, disk, report)?;
            }
            Ok(Some(Found {
                path,
                file,
                scanned,
            }))
        }
    }
}

fn cut_torn_tail<F: FileSystem>(
    file: &F::File,
    path: &Path,
    file_len: u64,
    torn: &scan::Torn,
    disk: &Disk<F>,
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
    disk.sync_data(file)
        .map_err(|e| StorageError::io("fsync", path, e))?;
    report.torn_tail = Some(TornTail {
        path: path.to_path_buf(),
        offset: torn.offset,
        dropped_bytes,
        reason: torn.reason.clone(),
    });
    Ok(())
}
