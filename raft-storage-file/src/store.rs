//! [`FileStorage`]: the [`Storage`] implementation over a directory of segment files and a
//! snapshot file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use raft_core::storage::StorageMisuse;
use raft_core::{Entry, HardState, Index, RestoredState, SnapshotMeta, Storage, Term};

use crate::error::StorageError;
use crate::fault::FaultInjector;
use crate::format::{self, RECORD_BODY_BYTES_MAX, SegmentHeader};
use crate::fs::{Disk, FileSystem, StdFs};
use crate::lock;
use crate::reaper::Reaper;
use crate::recovery::{self, RecoveryReport};
use crate::segment::Segment;
use crate::snapshot::{self, SnapshotReader, SnapshotWriter};

/// Settings of a [`FileStorage`].
#[derive(Clone, Debug)]
pub struct Options {
    /// A segment is closed and a new one started once the next append would take it past
    /// this size. Larger segments mean fewer files and fsyncs at roll-over; smaller ones let
    /// compaction free space sooner. Default 64 MiB. (One append larger than this still
    /// goes into a single segment.)
    pub segment_bytes_max: u64,
    /// Disk faults to inject, for tests; the default injects none.
    pub faults: FaultInjector,
    /// Threads that read and parse segments while opening, so recovery runs at the disk's
    /// speed rather than one core's. `None` (the default): none for a log under 8 MiB
    /// (threads would cost more than they save), else one per core, at most 4.
    /// `Some(0)` reads on the calling thread.
    pub recovery_threads: Option<usize>,
    /// Reserve each segment's full size (`fallocate`) when it is created, and the last
    /// one's when the store opens, so that appends write inside the file: a sync then need
    /// not commit a new file length through the file system's journal, which made each
    /// sync cheaper on ext4 (see BENCHMARKS.md, perf-prealloc). Default true; turn it off
    /// where space is tight or the file system gains nothing.
    pub preallocate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes_max: 64 << 20,
            faults: FaultInjector::default(),
            recovery_threads: None,
            preallocate: true,
        }
    }
}

/// The bytes of the log's last segment that a power loss could still take away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsyncedTail {
    /// The last segment.
    pub path: PathBuf,
    /// Its length at the last sync (0 if it was created since).
    pub synced_bytes: u64,
    /// Its length now.
    pub written_bytes: u64,
}

/// A durable Raft store in one directory: the log in segment files, the hard state as
/// records in the log, the snapshot in its own file. See the crate docs and `FORMAT.md`.
///
/// Opening recovers: it verifies every checksum, cuts a torn tail off the last segment
/// (see [`FileStorage::recovery_report`]) and refuses to open on any other damage.
///
/// The type parameter is the file system: [`StdFs`] (the default, what
/// [`FileStorage::open`] uses) or any [`FileSystem`], e.g. a simulated one
/// ([`FileStorage::open_on`]).
#[derive(Debug)]
pub struct FileStorage<F: FileSystem = StdFs> {
    dir: PathBuf,
    options: Options,
    disk: Disk<F>,
    /// Segments in sequence order; the last one is written to.
    segments: VecDeque<Segment<F>>,
    /// Segments with nothing live, removed after the next successful sync.
    retired: Vec<Segment<F>>,
    next_seq: u64,
    /// The entry before the first stored one: `(index, term)`.
    base: (Index, Term),
    last_index: Index,
    hard_state: HardState,
    snapshot: SnapshotMeta,
    has_snapshot: bool,
    /// A file was created or removed since the directory was last fsynced.
    dir_dirty: bool,
    /// Why the store stopped accepting writes, after a fatal error.
    stopped: Option<String>,
    report: RecoveryReport,
    /// What `open` recovered, handed out by the first `restore`.
    restored: Option<RestoredState>,
    encode_buf: Vec<u8>,
    /// Removes retired segments off the disk lane (real disks only); started at the first
    /// removal. Dropped before the lock, so queued removals finish while it is held.
    reaper: Option<Reaper>,
    /// Held while the store is open; declared last so it is released last.
    _lock: F::DirLock,
}

impl FileStorage {
    /// Opens (creating if needed) the store in `dir` with default options and recovers it.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStorage, StorageError> {
        FileStorage::open_with(dir, Options::default())
    }

    /// Opens (creating if needed) the store in `dir` and recovers it. Fails, naming the
    /// file and offset, if any data is damaged beyond a torn tail, and with
    /// [`StorageError::Locked`] if another open store (in this process or another) has the
    /// directory: the store holds an exclusive lock on `dir/LOCK` until it is dropped. (A
    /// held lock is retried for up to 250 ms first: a child process forked by another
    /// thread holds a copy of the lock until it execs.)
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<FileStorage, StorageError> {
        FileStorage::open_on(StdFs, dir, options)
    }
}

impl<F: FileSystem> FileStorage<F> {
    /// Opens (creating if needed) the store in `dir` on the file system `fs` and recovers
    /// it, as [`FileStorage::open_with`] does on the real one.
    pub fn open_on(fs: F, dir: impl AsRef<Path>, options: Options) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir)
            .map_err(|e| StorageError::io("create directory", &dir, e))?;
        // Before recovery touches anything: it may cut a tail or remove files.
        let lock = lock::take(&fs, &dir)?;
        let disk = Disk {
            fs,
            faults: options.faults.clone(),
        };
        let recovered = recovery::recover(&dir, &disk, options.recovery_threads)?;
        let log_dropped = recovered.log_dropped;
        let snapshot = recovered.snapshot.clone().unwrap_or_default();
        let last_index = recovered.base.0 + recovered.entries.len() as u64;
        let restored = RestoredState {
            hard_state: recovered.hard_state,
            snapshot: snapshot.clone(),
            entries: recovered.entries,
        };
        let mut store = FileStorage {
            dir,
            options,
            disk,
            segments: recovered.segments,
            retired: recovered.retired,
            next_seq: recovered.next_seq,
            base: recovered.base,
            last_index,
            hard_state: recovered.hard_state,
            has_snapshot: recovered.snapshot.is_some(),
            snapshot,
            dir_dirty: true,
            stopped: None,
            report: recovered.report,
            restored: Some(restored),
            encode_buf: Vec::new(),
            reaper: None,
            _lock: lock,
        };
        if store.segments.is_empty() || log_dropped {
            // A new segment that starts after the snapshot records a dropped log durably
            // (retired segments are removed only once it is synced).
            store.roll(store.snapshot.index + 1, store.snapshot.term)?;
        }
        // The last segment must hold the latest hard state before any older segment is
        // removed (a torn tail may have cut its copy), and what a crashed process wrote may
        // still be only in the page cache: write it again and sync.
        // Recovery may have cut a torn tail, or found a segment written before space was
        // reserved: reserve the last one's space again (zeros after its last record).
        let allocate_len = store.allocate_len();
        let disk = store.disk.clone();
        store.active()?.allocate(allocate_len, &disk);
        let hard_state = store.hard_state;
        store.encode_buf.clear();
        format::encode_hard_state(&hard_state, &mut store.encode_buf).map_err(|e| {
            StorageError::io(
                "encode hard state for",
                store.dir.clone(),
                std::io::Error::other(e),
            )
        })?;
        store.write_buffer("save hard state to")?;
        let active = store.active()?;
        if let Err(e) = active.force_sync(&disk) {
            return Err(StorageError::io("fsync", active.path.clone(), e));
        }
        tracing::info!(
            dir = %store.dir.display(),
            segments = store.segments.len(),
            snapshot_index = store.snapshot.index,
            first_index = store.base.0 + 1,
            last_index = store.last_index,
            torn_tail = store.report.torn_tail.is_some(),
            "opened file storage"
        );
        Ok(store)
    }

    /// What opening the store found: segments read, entries restored, a torn tail cut off
    /// the last segment, leftover files removed.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The part of the last segment written since the last sync, which a power loss could
    /// still take away (crash tests cut it to simulate one).
    pub fn unsynced_tail(&self) -> Option<UnsyncedTail> {
        self.segments.back().map(|s| UnsyncedTail {
            path: s.path.clone(),
            synced_bytes: s.synced_offset,
            written_bytes: s.end_offset,
        })
    }

    /// True once a fatal error stopped the store; every write fails from then on.
    pub fn is_stopped(&self) -> bool {
        self.stopped.is_some()
    }

    fn check_running(&self) -> Result<(), StorageError> {
        match &self.stopped {
            Some(reason) => Err(StorageError::Stopped {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records a fatal error: the state on disk is unknown, so no further write is safe.
    fn stop(&mut self, error: StorageError) -> StorageError {
        tracing::error!(dir = %self.dir.display(), %error, "file storage stopped after a fatal error");
        self.stopped = Some(error.to_string());
        error
    }

    /// The log's own term at `index`: the base's or a stored entry's.
    fn log_term(&self, index: Index) -> Option<Term> {
        if index == self.base.0 {
            return Some(self.base.1);
        }
        if index < self.base.0 || index > self.last_index {
            return None;
        }
        self.segment_for(index).and_then(|s| s.term(index))
    }

    fn segment_for(&self, index: Index) -> Option<&Segment<F>> {
        let after = self.segments.partition_point(|s| s.first_index() <= index);
        let segment = self.segments.get(after.checked_sub(1)?)?;
        segment.contains(index).then_some(segment)
    }

    fn active(&mut self) -> Result<&mut Segment<F>, StorageError> {
        // `open` creates a segment when there is none, and nothing removes the last one.
        self.segments
            .back_mut()
            .ok_or_else(|| StorageError::corrupt(self.dir.clone(), 0, "no segment to write to"))
    }

    /// Starts a new segment whose first entry will be `first_index`, following an entry of
    /// term `prev_term`. Earlier live entries at or after `first_index` are superseded.
    fn roll(&mut self, first_index: Index, prev_term: Term) -> Result<(), StorageError> {
        let disk = self.disk.clone();
        if let Some(active) = self.segments.back_mut() {
            // Sync the old segment first, so that only the last segment can ever hold a
            // torn tail.
            if let Err(e) = active.sync(&disk) {
                let error = StorageError::io("fsync", active.path.clone(), e);
                return Err(self.stop(error));
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let header = SegmentHeader {
            first_index,
            prev_term,
        };
        let allocate_len = self.allocate_len();
        let segment = Segment::create(
            &self.dir,
            seq,
            header,
            &self.hard_state,
            allocate_len,
            &disk,
        )?;
        self.dir_dirty = true;
        for old in &mut self.segments {
            old.cut_live(first_index);
        }
        let (live, dead): (VecDeque<Segment<F>>, VecDeque<Segment<F>>) =
            std::mem::take(&mut self.segments)
                .into_iter()
                .partition(|s| s.has_live());
        self.segments = live;
        self.retired.extend(dead);
        self.segments.push_back(segment);
        Ok(())
    }

    /// The length a segment's space is reserved to (0: none).
    fn allocate_len(&self) -> u64 {
        if self.options.preallocate {
            self.options.segment_bytes_max
        } else {
            0
        }
    }

    /// Writes the encode buffer to the active segment; returns its offset there.
    fn write_buffer(&mut self, op: &'static str) -> Result<u64, StorageError> {
        let disk = self.disk.clone();
        let buf = std::mem::take(&mut self.encode_buf);
        let active = self.active()?;
        let path = active.path.clone();
        let result = active.write(&buf, &disk);
        self.encode_buf = buf;
        match result {
            Ok(offset) => Ok(offset),
            Err(failure) if failure.rolled_back => Err(StorageError::io(op, path, failure.source)),
            Err(failure) => Err(self.stop(StorageError::io(op, path, failure.source))),
        }
    }

    /// Encodes `entries` into the encode buffer; returns `(index, term, offset, bytes)` of
    /// each frame relative to the buffer.
    fn encode_entries(
        &mut self,
        entries: &[Entry],
    ) -> Result<Vec<(Index, Term, u64, u64)>, StorageError> {
        self.encode_buf.clear();
        let mut frames = Vec::with_capacity(entries.len());
        for entry in entries {
            let start = self.encode_buf.len();
            let body_bytes = format::encode_entry(entry, &mut self.encode_buf).map_err(|e| {
                StorageError::io(
                    "encode entry for",
                    self.dir.clone(),
                    std::io::Error::other(e),
                )
            })?;
            if body_bytes > RECORD_BODY_BYTES_MAX {
                return Err(StorageError::EntryTooLarge {
                    index: entry.index,
                    bytes: body_bytes,
                    max_bytes: RECORD_BODY_BYTES_MAX,
                });
            }
            frames.push((
                entry.index,
                entry.term,
                start as u64,
                (self.encode_buf.len() - start) as u64,
            ));
        }
        Ok(frames)
    }

    fn check_append(&self, entries: &[Entry]) -> Result<(), StorageError> {
        if let Some(head) = entries.first() {
            let expected = self.last_index + 1;
            if head.index != expected {
                return Err(StorageMisuse::NotContiguous {
                    expected,
                    got: head.index,
                }
                .into());
            }
        }
        if let Some(pair) = entries
            .windows(2)
            .find(|pair| pair[1].index != pair[0].index + 1)
        {
            return Err(StorageMisuse::BatchNotContiguous { at: pair[1].index }.into());
        }
        Ok(())
    }

    /// Whether the next append must start a new segment: when it would not follow the
    /// active segment's last entry (the log was emptied or dropped), or would overfill it.
    fn needs_roll(&self, follows: (Index, Term), bytes: u64) -> bool {
        let Some(active) = self.segments.back() else {
            return true;
        };
        active.physical_last != follows
            || (active.has_live() && active.end_offset + bytes > self.options.segment_bytes_max)
    }

    /// Removes retired segments; called once everything that supersedes them is durable.
    fn remove_retired(&mut self) {
        if self.retired.is_empty() {
            return;
        }
        if F::REMOVES_IN_BACKGROUND && self.reaper.is_none() {
            self.reaper = Reaper::start(self.disk.fs.clone());
        }
        for segment in self.retired.drain(..) {
            let mut path = segment.path.clone();
            drop(segment);
            if let Some(reaper) = &self.reaper {
                match reaper.remove(path) {
                    Ok(()) => continue,
                    Err(back) => path = back,
                }
            }
            if let Err(e) = self.disk.fs.remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a retired segment");
            }
        }
        self.dir_dirty = true;
    }

    /// What `restore` does after the first call: line the log up with the snapshot as
    /// recovery would. Dropping a conflicting log is made durable by a new segment that
    /// starts after the snapshot.
    fn line_up_with_snapshot(&mut self) -> Result<(), StorageError> {
        let (index, term) = (self.snapshot.index, self.snapshot.term);
        if self.log_term(index) == Some(term) {
            if index > self.base.0 {
                self.base = (index, term);
            }
            return Ok(());
        }
        self.check_running()?;
        self.roll(index + 1, term)?;
        self.base = (index, term);
        self.last_index = index;
        Ok(())
    }
}

impl<F: FileSystem> Storage for FileStorage<F> {
    type Error = StorageError;
    type SnapshotReader = SnapshotReader<F>;
    type SnapshotWriter = SnapshotWriter<F>;

    fn restore(&mut self) -> Result<RestoredState, StorageError> {
        if let Some(restored) = self.restored.take() {
            return Ok(restored);
        }
        self.line_up_with_snapshot()?;
        let entries = if self.base.0 < self.last_index {
            self.entries(self.base.0 + 1, self.last_index + 1, u64::MAX)?
        } else {
            Vec::new()
        };
        Ok(RestoredState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries,
        })
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_running()?;
        self.check_append(entries)?;
        let (Some(head), Some(tail)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let frames = self.encode_entries(entries)?;
        let follows = (
            head.index - 1,
            self.log_term(head.index - 1).unwrap_or(self.base.1),
        );
        if self.needs_roll(follows, self.encode_buf.len() as u64) {
            self.roll(head.index, follows.1)?;
        }
        let offset = self.write_buffer("append to")?;
        let active = self.active()?;
        for (index, term, relative, frame_bytes) in frames {
            active.index_entry(index, term, offset + relative, frame_bytes);
        }
        active.physical_last = (tail.index, tail.term);
        self.last_index = tail.index;
        self.restored = None;
        Ok(())
    }

    fn truncate_suffix(&mut self, from_index: Index) -> Result<(), StorageError> {
        self.check_running()?;
        let first = self.base.0 + 1;
        if from_index < first {
            return Err(StorageMisuse::TruncateBelowFirst {
                from: from_index,
                first,
            }
            .into());
        }
        if from_index > self.last_index {
            return Ok(());
        }
        self.restored = None;
        if from_index == first {
            // The log becomes empty and will continue after the snapshot.
            let (index, term) = (self.snapshot.index, self.snapshot.term);
            self.roll(index + 1, term)?;
            self.base = (index, term);
            self.last_index = index;
        } else {
            let prev_term = self.log_term(from_index - 1).unwrap_or(self.base.1);
            self.roll(from_index, prev_term)?;
            self.last_index = from_index - 1;
        }
        Ok(())
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.check_running()?;
        self.encode_buf.clear();
        format::encode_hard_state(hard_state, &mut self.encode_buf).map_err(|e| {
            StorageError::io(
                "encode hard state for",
                self.dir.clone(),
                std::io::Error::other(e),
            )
        })?;
        self.write_buffer("save hard state to")?;
        self.hard_state = *hard_state;
        self.restored = None;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_running()?;
        let disk = self.disk.clone();
        let active = self.active()?;
        if let Err(e) = active.sync(&disk) {
            let error = StorageError::io("fsync", active.path.clone(), e);
            return Err(self.stop(error));
        }
        if self.dir_dirty {
            if let Err(error) = disk.sync_dir(&self.dir) {
                return Err(self.stop(error));
            }
            self.dir_dirty = false;
        }
        self.remove_retired();
        Ok(())
    }

    fn compact(&mut self, through_index: Index) -> Result<(), StorageError> {
        self.check_running()?;
        if through_index > self.snapshot.index {
            return Err(StorageMisuse::CompactBeyondSnapshot {
                through: through_index,
                snapshot_index: self.snapshot.index,
            }
            .into());
        }
        if through_index <= self.base.0 {
            return Ok(());
        }
        self.restored = None;
        if through_index >= self.last_index {
            self.base = (self.snapshot.index, self.snapshot.term);
            self.last_index = self.snapshot.index;
        } else {
            let term = self.log_term(through_index).unwrap_or(self.base.1);
            self.base = (through_index, term);
        }
        // Segments (but the last) whose live entries are all compacted go; removal waits for
        // the next sync, after the last segment (holding the latest hard state) is durable.
        while self.segments.len() > 1 && self.segments[0].next_live() <= self.base.0 + 1 {
            if let Some(segment) = self.segments.pop_front() {
                self.retired.push(segment);
            }
        }
        Ok(())
    }

    fn first_index(&self) -> Index {
        self.base.0 + 1
    }

    fn last_index(&self) -> Index {
        self.last_index
    }

    fn term(&self, index: Index) -> Result<Option<Term>, StorageError> {
        let snapshot_term = (index == self.snapshot.index).then_some(self.snapshot.term);
        Ok(self.log_term(index).or(snapshot_term))
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        let (first, last) = (self.base.0 + 1, self.last_index);
        if low > high || low < first || high > last + 1 {
            return Err(StorageMisuse::OutOfRange {
                low,
                high,
                first,
                last,
            }
            .into());
        }
        let mut out = Vec::new();
        let mut total_bytes = 0u64;
        while low + (out.len() as u64) < high {
            let index = low + out.len() as u64;
            let Some(segment) = self.segment_for(index) else {
                return Err(StorageError::corrupt(
                    self.dir.clone(),
                    0,
                    format!("no segment holds entry {index}"),
                ));
            };
            if segment.read_entries(index, high, max_bytes, &mut total_bytes, &mut out)? {
                break;
            }
        }
        Ok(out)
    }

    fn begin_snapshot(&mut self, meta: &SnapshotMeta) -> Result<SnapshotWriter<F>, StorageError> {
        self.check_running()?;
        SnapshotWriter::create(&self.dir, meta, &self.disk)
    }

    fn commit_snapshot(&mut self, writer: SnapshotWriter<F>) -> Result<(), StorageError> {
        self.check_running()?;
        if writer.dir != self.dir {
            return Err(StorageError::ForeignSnapshotWriter {
                writer_dir: writer.dir.clone(),
            });
        }
        if writer.meta.index < self.snapshot.index {
            return Err(StorageMisuse::StaleSnapshot {
                index: writer.meta.index,
                current: self.snapshot.index,
            }
            .into());
        }
        // Writes become durable in order: everything before the snapshot first.
        self.sync()?;
        let meta = writer.meta.clone();
        if let Err((fatal, error)) = writer.finish() {
            return Err(if fatal { self.stop(error) } else { error });
        }
        self.restored = None;
        if self.last_index == self.base.0 {
            self.base = (meta.index, meta.term);
            self.last_index = meta.index;
        }
        self.snapshot = meta;
        self.has_snapshot = true;
        Ok(())
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot.clone()
    }

    fn open_snapshot(&self) -> Result<Option<(SnapshotMeta, SnapshotReader<F>)>, StorageError> {
        if !self.has_snapshot {
            return Ok(None);
        }
        snapshot::open(&self.disk.fs, &self.dir)
    }
}
