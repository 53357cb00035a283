//! One segment file of the log: its handle, and the in-memory index of the live entries it
//! holds (their frame offsets and terms).

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raft_core::{Entry, HardState, Index, Term};

use crate::decode;
use crate::error::StorageError;
use crate::format::{self, FRAME_HEADER_BYTES, Frame, Record, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::fs::{Disk, FileSystem, FsFile};

/// Reads of entries go to the disk in spans of about this many bytes.
const READ_CHUNK_BYTES: u64 = 1 << 20;

/// Page size assumed when releasing cached pages: only whole pages are released, so a
/// larger real page just means some stay cached.
const CACHE_PAGE_BYTES: u64 = 4096;

/// How far ahead of the records reserved space is written as zeros (see
/// `Segment::zero_ahead`): small enough that the sync carrying them is not much slower,
/// large enough that few syncs carry any (BENCHMARKS.md, "Zeros written ahead").
const ZERO_AHEAD_BYTES: u64 = 64 * 1024;

/// The file name of the segment with sequence number `seq`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("log-{seq:016x}.seg")
}

/// The sequence number in a segment file name, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("log-")?.strip_suffix(".seg")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// A segment file and the live entries in it. Live entries are consecutive; entries
/// physically present but superseded by a later segment, or covered by the snapshot, are
/// not indexed.
#[derive(Debug)]
pub(crate) struct Segment<F: FileSystem> {
    pub(crate) path: PathBuf,
    file: F::File,
    /// Index of the first live entry (where the next live entry would go when none).
    first_index: Index,
    /// Frame offset of each live entry, in index order.
    offsets: Vec<u64>,
    /// `(first index, term)` of each run of live entries sharing a term.
    term_runs: Vec<(Index, Term)>,
    /// End of the last live entry's frame (later bytes hold hard states or dead entries).
    live_end: u64,
    /// Bytes of the file in use; new records go here.
    pub(crate) end_offset: u64,
    /// Bytes known to be durable.
    pub(crate) synced_offset: u64,
    /// The length space was reserved for (0: none); the file reads as zeros from
    /// `end_offset` to here, the segment's clean end (see FORMAT.md).
    allocated_len: u64,
    /// Where the bytes written through this handle end, records or zeros written ahead of
    /// them (see `zero_ahead`); 0 until the first sync.
    zeroed_to: u64,
    /// Offset up to which durable pages were released from the page cache.
    cache_dropped_offset: u64,
    /// `(index, term)` of the last entry physically in the file, or of the entry before the
    /// first when there is none. An append that does not follow it needs a new segment.
    pub(crate) physical_last: (Index, Term),
}

/// The live entries recovery found in a segment file.
pub(crate) struct LiveIndex {
    first_index: Index,
    offsets: Vec<u64>,
    term_runs: Vec<(Index, Term)>,
    live_end: u64,
}

impl LiveIndex {
    /// No live entries; the next would be `first_index`.
    pub(crate) fn empty(first_index: Index) -> LiveIndex {
        LiveIndex {
            first_index,
            offsets: Vec::new(),
            term_runs: Vec::new(),
            live_end: SEGMENT_HEADER_BYTES as u64,
        }
    }

    /// Entries `first_index`, + 1, ... whose frames start at `offsets`, with the terms
    /// `term_runs` (`(first index, term)` of each run sharing a term); the last frame ends
    /// at `live_end`.
    pub(crate) fn new(
        first_index: Index,
        offsets: Vec<u64>,
        term_runs: Vec<(Index, Term)>,
        live_end: u64,
    ) -> LiveIndex {
        LiveIndex {
            first_index,
            offsets,
            term_runs,
            live_end,
        }
    }
}

/// A write that failed; `rolled_back` tells whether the file was restored to its length
/// before the write.
pub(crate) struct WriteFailure {
    pub(crate) source: io::Error,
    pub(crate) rolled_back: bool,
}

impl<F: FileSystem> Segment<F> {
    /// Creates a new segment file holding its header and `hard_state`, with space reserved
    /// up to `allocate_len` bytes (0: none). On failure the partial file is removed (a
    /// leftover would be a damaged segment in the middle).
    pub(crate) fn create(
        dir: &Path,
        seq: u64,
        header: SegmentHeader,
        hard_state: &HardState,
        allocate_len: u64,
        disk: &Disk<F>,
    ) -> Result<Self, StorageError> {
        let path = dir.join(file_name(seq));
        let file = disk
            .fs
            .create_new(&path)
            .map_err(|e| StorageError::io("create segment", &path, e))?;
        let mut bytes = header.encode().to_vec();
        format::encode_hard_state(hard_state, &mut bytes).map_err(|e| {
            StorageError::corrupt(&path, 0, format!("cannot encode hard state: {e}"))
        })?;
        if let Err(source) = disk.write_all_at(&file, &bytes, 0) {
            drop(file);
            if let Err(remove) = disk.fs.remove_file(&path) {
                tracing::error!(path = %path.display(), error = %remove, "cannot remove a partial segment");
            }
            return Err(StorageError::io("write segment header to", &path, source));
        }
        let end_offset = bytes.len() as u64;
        let mut segment = Segment {
            path,
            file,
            first_index: header.first_index,
            offsets: Vec::new(),
            term_runs: Vec::new(),
            live_end: end_offset,
            end_offset,
            synced_offset: 0,
            allocated_len: 0,
            zeroed_to: 0,
            cache_dropped_offset: 0,
            physical_last: (header.first_index - 1, header.prev_term),
        };
        segment.allocate(allocate_len, disk);
        Ok(segment)
    }

    /// Reserves space so the file is `len` bytes long, zeros after what was written, so
    /// appends write inside the file and a sync need not commit a new length through the
    /// file system's journal (see BENCHMARKS.md, perf-prealloc). Only an optimisation: a
    /// failure (a full disk) is logged and the file grows as written.
    pub(crate) fn allocate(&mut self, len: u64, disk: &Disk<F>) {
        if len <= self.end_offset || len <= self.allocated_len {
            return;
        }
        match disk.allocate(&self.file, len) {
            Ok(()) => self.allocated_len = len,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, len, "cannot reserve space for a segment; it grows as written");
            }
        }
    }

    /// A segment found on disk by recovery, holding the live entries `live`.
    pub(crate) fn recovered(
        path: PathBuf,
        file: F::File,
        live: LiveIndex,
        end_offset: u64,
        physical_last: (Index, Term),
    ) -> Self {
        Segment {
            path,
            file,
            first_index: live.first_index,
            offsets: live.offsets,
            term_runs: live.term_runs,
            live_end: live.live_end,
            end_offset,
            synced_offset: end_offset,
            allocated_len: 0,
            zeroed_to: 0,
            cache_dropped_offset: 0,
            physical_last,
        }
    }

    pub(crate) fn first_index(&self) -> Index {
        self.first_index
    }

    /// One past the last live entry.
    pub(crate) fn next_live(&self) -> Index {
        self.first_index + self.offsets.len() as u64
    }

    pub(crate) fn has_live(&self) -> bool {
        !self.offsets.is_empty()
    }

    pub(crate) fn contains(&self, index: Index) -> bool {
        index >= self.first_index && index < self.next_live()
    }

    pub(crate) fn term(&self, index: Index) -> Option<Term> {
        if !self.contains(index) {
            return None;
        }
        let runs_started = self.term_runs.partition_point(|run| run.0 <= index);
        self.term_runs
            .get(runs_started.checked_sub(1)?)
            .map(|run| run.1)
    }

    fn offset_of(&self, index: Index) -> u64 {
        self.offsets[(index - self.first_index) as usize]
    }

    /// Records a live entry written at `offset`.
    pub(crate) fn index_entry(&mut self, index: Index, term: Term, offset: u64, frame_bytes: u64) {
        if self.offsets.is_empty() {
            self.first_index = index;
        }
        debug_assert_eq!(index, self.next_live(), "live entries must be consecutive");
        self.offsets.push(offset);
        if self.term_runs.last().is_none_or(|run| run.1 != term) {
            self.term_runs.push((index, term));
        }
        self.live_end = offset + frame_bytes;
    }

    /// Forgets the live entries at or after `from` (a later segment supersedes them).
    pub(crate) fn cut_live(&mut self, from: Index) {
        if from >= self.next_live() {
            return;
        }
        let keep = from.saturating_sub(self.first_index) as usize;
        if keep < self.offsets.len() {
            self.live_end = self.offsets[keep];
        }
        self.offsets.truncate(keep);
        let runs_kept = self.term_runs.partition_point(|run| run.0 < from);
        self.term_runs.truncate(runs_kept);
    }

    /// Writes `bytes` at the end of what was written. On failure, cuts the file back so no
    /// partial record is left behind (and reserves the space again, so that zeros, never
    /// bytes of the failed record, follow the last record).
    pub(crate) fn write(&mut self, bytes: &[u8], disk: &Disk<F>) -> Result<u64, WriteFailure> {
        let offset = self.end_offset;
        match disk.write_all_at(&self.file, bytes, offset) {
            Ok(()) => {
                self.end_offset += bytes.len() as u64;
                Ok(offset)
            }
            Err(source) => {
                let rolled_back = match self.file.set_len(offset) {
                    Ok(()) => {
                        self.zeroed_to = self.zeroed_to.min(offset);
                        let reserved = std::mem::take(&mut self.allocated_len);
                        self.allocate(reserved, disk);
                        true
                    }
                    Err(e) => {
                        tracing::error!(path = %self.path.display(), error = %e, "cannot undo a failed write");
                        false
                    }
                };
                Err(WriteFailure {
                    source,
                    rolled_back,
                })
            }
        }
    }

    /// Makes everything written durable. A failure is fatal for the store.
    pub(crate) fn sync(&mut self, disk: &Disk<F>) -> io::Result<()> {
        if self.synced_offset == self.end_offset {
            return Ok(());
        }
        self.force_sync(disk)
    }

    /// Syncs even if nothing was written through this handle (a file found at startup may
    /// still be only in the page cache, from a process that crashed before syncing).
    pub(crate) fn force_sync(&mut self, disk: &Disk<F>) -> io::Result<()> {
        disk.sync_data(&self.file)?;
        self.synced_offset = self.end_offset;
        self.drop_synced_pages();
        self.zero_ahead();
        Ok(())
    }

    /// Keeps [`ZERO_AHEAD_BYTES`] of the reserved space ahead of the records written as
    /// zeros, topped up right after a sync, when under half of it is left. `fallocate`
    /// reserves "unwritten" blocks, and a sync after a record entered a new one also had
    /// to commit that block's change of state through the journal: with the few KiB a
    /// sync carries under load, nearly every sync (BENCHMARKS.md, "Zeros written ahead").
    /// The zeros reach the disk with the next sync, one block state change per 64 KiB.
    /// Only an optimisation: a failure is logged and the segment stops zeroing.
    fn zero_ahead(&mut self) {
        let start = self.zeroed_to.max(self.end_offset);
        if self.allocated_len <= start || start - self.end_offset >= ZERO_AHEAD_BYTES / 2 {
            return;
        }
        let end = (start + ZERO_AHEAD_BYTES).min(self.allocated_len);
        match self.file.write_zeros_ahead(start, end - start) {
            Ok(()) => self.zeroed_to = end,
            Err(error) => {
                tracing::debug!(path = %self.path.display(), %error, "cannot write zeros ahead of the records");
                self.zeroed_to = self.allocated_len;
            }
        }
    }

    /// Lets the kernel drop the whole pages just made durable from its cache. The node
    /// keeps its log in memory and reads the file back only when it restarts, so the
    /// cache only grew: every append wrote into fresh page cache (with 1 MB values that
    /// was the follower's largest cost on a VM, see BENCHMARKS.md, perf-bytes), where
    /// dropped pages are reused at once. The partly written last page stays cached, so
    /// the next append never has to read it back. Only a hint: a failure is logged.
    fn drop_synced_pages(&mut self) {
        let end = self.synced_offset - self.synced_offset % CACHE_PAGE_BYTES;
        if end <= self.cache_dropped_offset {
            // Equal, or the file was cut back below what was dropped.
            self.cache_dropped_offset = end;
            return;
        }
        let start = self.cache_dropped_offset;
        self.cache_dropped_offset = end;
        if let Err(error) = self.file.drop_cached(start, end - start) {
            tracing::debug!(path = %self.path.display(), %error, "cannot drop cached log pages");
        }
    }

    /// Appends the live entries in `[low, high)` to `out`, verifying each record's checksum,
    /// index and term, and stops once `max_bytes` would be exceeded. Returns true if it
    /// stopped for `max_bytes`.
    pub(crate) fn read_entries(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
        total_bytes: &mut u64,
        out: &mut Vec<Entry>,
    ) -> Result<bool, StorageError> {
        let high = high.min(self.next_live());
        let mut index = low;
        while index < high {
            let start = self.offset_of(index);
            let mut chunk_end = index + 1;
            while chunk_end < high && self.offset_of(chunk_end) - start < READ_CHUNK_BYTES {
                chunk_end += 1;
            }
            let end = if chunk_end < self.next_live() {
                self.offset_of(chunk_end)
            } else {
                self.live_end
            };
            let mut buf = vec![0u8; (end - start) as usize];
            self.file
                .read_exact_at(&mut buf, start)
                .map_err(|e| StorageError::io("read entries from", &self.path, e))?;
            // Command payloads become slices of this buffer instead of copies.
            let buf = Bytes::from(buf);
            let mut pos = 0usize;
            while index < chunk_end {
                let at = start + pos as u64;
                let Frame::Valid { frame_bytes, .. } = format::read_frame(&buf[pos..]) else {
                    return Err(StorageError::corrupt(
                        &self.path,
                        at,
                        "record fails its checksum on read",
                    ));
                };
                let body = pos + FRAME_HEADER_BYTES..pos + frame_bytes;
                pos += frame_bytes;
                let record = decode::decode_record(&buf, body)
                    .map_err(|reason| StorageError::corrupt(&self.path, at, reason))?;
                let Record::Entry(entry) = record else {
                    continue;
                };
                if entry.index != index || Some(entry.term) != self.term(index) {
                    let reason = format!(
                        "found entry ({}, {}) where index {index} was expected",
                        entry.index, entry.term
                    );
                    return Err(StorageError::corrupt(&self.path, at, reason));
                }
                let size = entry.size_bytes();
                if !out.is_empty() && *total_bytes + size > max_bytes {
                    return Ok(true);
                }
                *total_bytes += size;
                out.push(entry);
                index += 1;
            }
        }
        Ok(false)
    }
}
