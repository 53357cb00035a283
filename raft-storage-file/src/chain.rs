//! Chains scanned segments into one log as they arrive in sequence order, and lines the log
//! up with the snapshot.
//!
//! A segment's header says which entry it follows: entries of earlier segments at or after
//! its first index are superseded (a truncation), and if the entry before it has another
//! term, or is missing but covered by the snapshot, the log restarts there (a log dropped
//! for a snapshot). The live entries after the snapshot are decoded as soon as their
//! segment arrives (command payloads are slices of the segment's buffer), so decoding runs
//! while the reader threads read the next segments; a later truncation just drops some.

use std::collections::VecDeque;
use std::path::PathBuf;

use raft_core::{Entry, HardState, Index, Term};

use crate::error::StorageError;
use crate::fs::FileSystem;
use crate::scan::ScannedSegment;
use crate::segment::{LiveIndex, Segment};

/// A segment file being recovered.
pub(crate) struct Found<F: FileSystem> {
    pub(crate) path: PathBuf,
    pub(crate) file: F::File,
    pub(crate) scanned: ScannedSegment,
}

/// Live entries of one segment: positions `start..end` of its scan.
#[derive(Clone, Copy, Debug)]
struct Run {
    segment: usize,
    start: usize,
    end: usize,
}

/// The log as the segments describe it: the entry it follows and where its entries are.
struct Chain {
    base: (Index, Term),
    runs: Vec<Run>,
    len: u64,
}

impl Chain {
    fn after(base: (Index, Term)) -> Chain {
        Chain {
            base,
            runs: Vec::new(),
            len: 0,
        }
    }

    fn last_index(&self) -> Index {
        self.base.0 + self.len
    }

    fn push(&mut self, segment: usize, count: usize) {
        if count > 0 {
            self.runs.push(Run {
                segment,
                start: 0,
                end: count,
            });
            self.len += count as u64;
        }
    }

    /// Keeps the first `keep` entries.
    fn truncate(&mut self, keep: u64) {
        let mut left = keep;
        let mut runs_kept = 0;
        for run in &mut self.runs {
            if left == 0 {
                break;
            }
            let count = (run.end - run.start) as u64;
            if count > left {
                run.end = run.start + left as usize;
            }
            left -= count.min(left);
            runs_kept += 1;
        }
        self.runs.truncate(runs_kept);
        self.len = keep.min(self.len);
    }

    /// Drops the first `count` entries.
    fn drop_front(&mut self, count: u64) {
        let mut left = count;
        let mut runs_dropped = 0;
        for run in &mut self.runs {
            let len = (run.end - run.start) as u64;
            if len > left {
                run.start += left as usize;
                break;
            }
            left -= len;
            runs_dropped += 1;
        }
        self.runs.drain(..runs_dropped);
        self.len -= count.min(self.len);
    }

    /// The term of the entry at `position` (0 is the first after the base).
    fn term_at<F: FileSystem>(&self, found: &[Found<F>], position: u64) -> Option<Term> {
        let mut left = position;
        for run in &self.runs {
            let len = (run.end - run.start) as u64;
            if left < len {
                return found[run.segment]
                    .scanned
                    .term_at(run.start + left as usize);
            }
            left -= len;
        }
        None
    }

    fn last_term<F: FileSystem>(&self, found: &[Found<F>]) -> Term {
        self.len
            .checked_sub(1)
            .and_then(|position| self.term_at(found, position))
            .unwrap_or(self.base.1)
    }
}

/// Builds the log from segments handed over in sequence order.
pub(crate) struct LogBuilder<F: FileSystem> {
    snapshot: (Index, Term),
    found: Vec<Found<F>>,
    chain: Option<Chain>,
    /// The chain's entries after the snapshot's index, decoded.
    entries: Vec<Entry>,
    hard_state: HardState,
}

/// The recovered log.
pub(crate) struct Built<F: FileSystem> {
    pub(crate) segments: VecDeque<Segment<F>>,
    pub(crate) retired: Vec<Segment<F>>,
    /// The entries after the snapshot.
    pub(crate) entries: Vec<Entry>,
    pub(crate) hard_state: HardState,
    /// The log conflicted with the snapshot and was dropped.
    pub(crate) log_dropped: bool,
}

impl<F: FileSystem> LogBuilder<F> {
    /// A builder for a store whose snapshot is at `snapshot` ((0, 0) when none).
    pub(crate) fn new(snapshot: (Index, Term)) -> Self {
        LogBuilder {
            snapshot,
            found: Vec::new(),
            chain: None,
            entries: Vec::new(),
            hard_state: HardState::default(),
        }
    }

    pub(crate) fn segment_count(&self) -> usize {
        self.found.len()
    }

    /// Adds the next segment in sequence order.
    pub(crate) fn add(&mut self, segment: Found<F>) -> Result<(), StorageError> {
        let position = self.found.len();
        let header = segment.scanned.header;
        let follows = (header.first_index - 1, header.prev_term);
        let mut chain = match self.chain.take() {
            None => Chain::after(follows),
            Some(chain) => self.follow(chain, &segment, follows)?,
        };
        chain.push(position, segment.scanned.len());
        if let Some(saved) = segment.scanned.hard_state {
            self.hard_state = saved;
        }
        // Decode what lies after the snapshot (and after a base past it).
        let decoded_from = self.snapshot.0.max(chain.base.0) + 1;
        let skipped = decoded_from.saturating_sub(header.first_index);
        let start = usize::try_from(skipped).unwrap_or(usize::MAX);
        self.entries
            .reserve(segment.scanned.len().saturating_sub(start));
        for at in start..segment.scanned.len() {
            self.entries.push(segment.scanned.entry(&segment.path, at)?);
        }
        self.chain = Some(chain);
        self.found.push(segment);
        Ok(())
    }

    /// Where `chain` stands once `segment`, which follows `follows`, is added: cut back to
    /// it, or restarted after it.
    fn follow(
        &mut self,
        mut chain: Chain,
        segment: &Found<F>,
        follows: (Index, Term),
    ) -> Result<Chain, StorageError> {
        let last = chain.last_index();
        if follows.0 > last && follows.0 > self.snapshot.0 {
            return Err(StorageError::MissingEntries {
                path: segment.path.clone(),
                expected: last + 1,
                found: follows.0 + 1,
            });
        }
        if follows.0 <= last && follows.0 >= chain.base.0 {
            chain.truncate(follows.0 - chain.base.0);
            let decoded_after = self.snapshot.0.max(chain.base.0);
            let keep = follows.0.saturating_sub(decoded_after);
            self.entries
                .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
            if chain.last_term(&self.found) == follows.1 {
                return Ok(chain);
            }
        }
        self.entries.clear();
        Ok(Chain::after(follows))
    }

    /// Lines the log up with the snapshot and indexes each segment's live entries.
    pub(crate) fn finish(self) -> Result<Built<F>, StorageError> {
        let LogBuilder {
            snapshot,
            found,
            chain,
            mut entries,
            hard_state,
        } = self;
        let mut chain = chain.unwrap_or_else(|| Chain::after(snapshot));
        if chain.base.0 > snapshot.0 {
            return Err(StorageError::MissingEntries {
                path: found.first().map_or_else(PathBuf::new, |f| f.path.clone()),
                expected: snapshot.0 + 1,
                found: chain.base.0 + 1,
            });
        }
        let log_dropped = line_up(&found, &mut chain, snapshot);
        if log_dropped {
            entries.clear();
        }
        debug_assert_eq!(entries.len() as u64, chain.len, "decoded entries vs chain");
        let (segments, retired) = index_segments(found, &chain);
        Ok(Built {
            segments,
            retired,
            entries,
            hard_state,
            log_dropped,
        })
    }
}

/// Keeps the entries after the snapshot if the log agrees with it at the snapshot's index,
/// otherwise drops the log (it conflicts with a snapshot installed from a leader). The
/// snapshot becomes the base. Returns whether a log was dropped: that conclusion rests on
/// entries that may be removed later, so the caller must record it durably.
fn line_up<F: FileSystem>(found: &[Found<F>], chain: &mut Chain, snapshot: (Index, Term)) -> bool {
    let (snapshot_index, snapshot_term) = snapshot;
    let base = chain.base;
    let log_term = if snapshot_index == base.0 {
        Some(base.1)
    } else if snapshot_index > base.0 && snapshot_index <= chain.last_index() {
        chain.term_at(found, snapshot_index - base.0 - 1)
    } else {
        None
    };
    if log_term == Some(snapshot_term) {
        chain.drop_front(snapshot_index - base.0);
        chain.base = snapshot;
        return false;
    }
    tracing::info!(
        snapshot_index,
        snapshot_term,
        "the stored log conflicts with the snapshot; dropped it"
    );
    *chain = Chain::after(snapshot);
    true
}

/// Builds each segment's index of live entries. Segments with none, except the last, are
/// retired: removed after the next sync.
#[allow(clippy::type_complexity)]
fn index_segments<F: FileSystem>(
    found: Vec<Found<F>>,
    chain: &Chain,
) -> (VecDeque<Segment<F>>, Vec<Segment<F>>) {
    let count = found.len();
    let mut segments = VecDeque::with_capacity(count);
    let mut retired = Vec::new();
    let mut runs = chain.runs.iter().peekable();
    for (position, f) in found.into_iter().enumerate() {
        let Found {
            path,
            file,
            mut scanned,
        } = f;
        let physical_last = scanned.physical_last();
        let live = match runs.next_if(|run| run.segment == position) {
            Some(run) => {
                let live_end = scanned.frame_end(run.end - 1);
                let term_runs = scanned.term_runs_within(run.start, run.end);
                let mut offsets = std::mem::take(&mut scanned.offsets);
                offsets.truncate(run.end);
                offsets.drain(..run.start);
                LiveIndex::new(
                    scanned.header.first_index + run.start as u64,
                    offsets,
                    term_runs,
                    live_end,
                )
            }
            None => LiveIndex::empty(scanned.header.first_index),
        };
        let segment = Segment::recovered(path, file, live, scanned.valid_len, physical_last);
        if segment.has_live() || position + 1 == count {
            segments.push_back(segment);
        } else {
            retired.push(segment);
        }
    }
    (segments, retired)
}
