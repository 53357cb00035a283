//! A simulated disk below the core's durability contract.
//!
//! Writes first land in a volatile cache (`pending`). A sync moves everything pending to the
//! platter and advances the *sync marker* (think of a superblock holding the synced length).
//! A crash keeps a random prefix of the pending writes (writes reach the platter in order)
//! and may tear the last one that made it; the rest is lost.
//!
//! Every record carries a checksum; here a record is simply flagged `damaged` when its
//! checksum would not match. On restore, a damaged record past the sync marker is a torn
//! tail and is dropped with everything after it (it was never promised durable). A damaged
//! record below the marker is corruption of durable data: restore fails and the host stops
//! the node for good, so it can neither serve nor vote with a log that lost acknowledged
//! entries.

use bytes::Bytes;
use raft_core::{Entry, HardState, Index, RestoredState, SnapshotMeta};
use thiserror::Error;

use crate::rng::SimRng;

/// One write to the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Entries appended after the current last entry.
    Entries(Vec<Entry>),
    /// Every entry with index >= this is removed.
    Truncate(Index),
    /// A new hard state.
    HardState(HardState),
    /// A snapshot made current (its data included).
    Snapshot {
        /// What it covers.
        meta: SnapshotMeta,
        /// The state machine's bytes.
        data: Bytes,
    },
    /// After installing a snapshot from the leader: keep the entries after it if the log
    /// matches it at its index, otherwise drop the whole log.
    InstallLog(SnapshotMeta),
    /// Entries with index <= this are dropped.
    Compact(Index),
}

#[derive(Clone, Debug)]
struct Stored {
    record: Record,
    /// The checksum would not match: torn or corrupted.
    damaged: bool,
}

/// Why a restore failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DiskError {
    /// A record below the sync marker fails its checksum.
    #[error("durable record {record} of {synced} fails its checksum: the disk is corrupt")]
    Corrupt {
        /// Position of the damaged record.
        record: usize,
        /// The sync marker.
        synced: usize,
    },
    /// Entries on disk are not contiguous (a host bug in the simulator).
    #[error("entry {found} on disk does not follow entry {last}")]
    Gap {
        /// The last index before the gap.
        last: Index,
        /// The index found.
        found: Index,
    },
}

/// What a restore yields: the core's state plus the current snapshot's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskImage {
    /// For `Node::new`.
    pub state: RestoredState,
    /// The current snapshot's bytes (empty for the initial pseudo-snapshot).
    pub snapshot_data: Bytes,
}

/// One node's disk.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    records: Vec<Stored>,
    synced_len: usize,
    pending: Vec<Record>,
    /// The latest synced snapshot, kept for fast access by the host.
    current_snapshot: Option<(SnapshotMeta, Bytes)>,
}

/// Above this many synced records, the synced prefix is collapsed into its image, so that
/// restores stay cheap in long runs.
const COLLAPSE_RECORDS: usize = 512;

impl Disk {
    /// A formatted disk holding the initial state (for a founding member: the bootstrap
    /// membership; for a joining node: nothing).
    pub fn new(initial: SnapshotMeta) -> Self {
        let mut disk = Disk::default();
        disk.write(Record::Snapshot {
            meta: initial,
            data: Bytes::new(),
        });
        disk.sync();
        disk
    }

    /// Writes a record to the volatile cache.
    pub fn write(&mut self, record: Record) {
        self.pending.push(record);
    }

    /// Makes every earlier write durable.
    pub fn sync(&mut self) {
        for record in self.pending.drain(..) {
            if let Record::Snapshot { meta, data } = &record {
                self.current_snapshot = Some((meta.clone(), data.clone()));
            }
            self.records.push(Stored {
                record,
                damaged: false,
            });
        }
        self.synced_len = self.records.len();
        if self.synced_len > COLLAPSE_RECORDS {
            self.collapse();
        }
    }

    /// Number of writes not yet durable.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The latest durable snapshot.
    pub fn current_snapshot(&self) -> Option<&(SnapshotMeta, Bytes)> {
        self.current_snapshot.as_ref()
    }

    /// Power loss: a random prefix of the pending writes reaches the platter, the last of
    /// them possibly torn; the rest is gone.
    pub fn crash(&mut self, rng: &mut SimRng, torn_probability: f64) {
        let survivors = rng.range(0, self.pending.len() as u64 + 1) as usize;
        let torn = survivors > 0 && rng.chance(torn_probability);
        for (i, record) in self.pending.drain(..).take(survivors).enumerate() {
            self.records.push(Stored {
                record,
                damaged: torn && i + 1 == survivors,
            });
        }
    }

    /// Damages one durable record. Returns false when there is none to damage.
    pub fn corrupt(&mut self, pick: u64) -> bool {
        if self.synced_len == 0 {
            return false;
        }
        let at = (pick % self.synced_len as u64) as usize;
        self.records[at].damaged = true;
        true
    }

    /// Reads the disk back after a restart. With `verify` off (a deliberately broken
    /// variant), a corrupt durable record is treated like a torn tail: it and everything
    /// after it are silently dropped.
    pub fn restore(&mut self, verify: bool) -> Result<DiskImage, DiskError> {
        if let Some(bad) = self.records.iter().position(|s| s.damaged) {
            if bad < self.synced_len && verify {
                return Err(DiskError::Corrupt {
                    record: bad,
                    synced: self.synced_len,
                });
            }
            // A torn tail (or, unverified, lost durable data): cut it off for good.
            self.records.truncate(bad);
            self.synced_len = self.synced_len.min(bad);
        }
        // Records that survived the crash past the marker are on the platter now.
        self.synced_len = self.records.len();
        let image = replay(self.records.iter().map(|s| &s.record))?;
        self.current_snapshot = Some((image.state.snapshot.clone(), image.snapshot_data.clone()));
        Ok(image)
    }

    fn collapse(&mut self) {
        let Ok(image) = replay(self.records[..self.synced_len].iter().map(|s| &s.record)) else {
            // Keep the records as they are; restore will report the same error.
            return;
        };
        let mut collapsed = vec![
            Stored {
                record: Record::Snapshot {
                    meta: image.state.snapshot.clone(),
                    data: image.snapshot_data,
                },
                damaged: false,
            },
            Stored {
                record: Record::HardState(image.state.hard_state),
                damaged: false,
            },
        ];
        if !image.state.entries.is_empty() {
            collapsed.push(Stored {
                record: Record::Entries(image.state.entries),
                damaged: false,
            });
        }
        let base_len = collapsed.len();
        collapsed.extend(self.records.drain(self.synced_len..));
        self.synced_len = base_len;
        self.records = collapsed;
    }
}

/// Builds the image a sequence of records describes.
fn replay<'a>(records: impl Iterator<Item = &'a Record>) -> Result<DiskImage, DiskError> {
    let mut hard_state = HardState::default();
    let mut snapshot = SnapshotMeta::default();
    let mut snapshot_data = Bytes::new();
    let mut entries: Vec<Entry> = Vec::new();
    for record in records {
        match record {
            Record::Entries(new) => {
                for entry in new {
                    let last = entries.last().map_or(snapshot.index, |e| e.index);
                    if entry.index != last + 1 {
                        return Err(DiskError::Gap {
                            last,
                            found: entry.index,
                        });
                    }
                    entries.push(entry.clone());
                }
            }
            Record::Truncate(from) => entries.retain(|e| e.index < *from),
            Record::HardState(state) => hard_state = *state,
            Record::Snapshot { meta, data } => {
                snapshot = meta.clone();
                snapshot_data = data.clone();
            }
            Record::InstallLog(meta) => {
                let matches = entries
                    .iter()
                    .any(|e| e.index == meta.index && e.term == meta.term);
                if matches {
                    entries.retain(|e| e.index > meta.index);
                } else {
                    entries.clear();
                }
            }
            Record::Compact(through) => entries.retain(|e| e.index > *through),
        }
    }
    // Entries covered by the snapshot are not part of the log.
    entries.retain(|e| e.index > snapshot.index);
    if let Some(first) = entries.first()
        && first.index != snapshot.index + 1
    {
        // The log does not continue the snapshot: the snapshot supersedes it.
        entries.clear();
    }
    Ok(DiskImage {
        state: RestoredState {
            hard_state,
            snapshot,
            entries,
        },
        snapshot_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use raft_core::{EntryPayload, Membership};

    fn entry(index: Index, term: u64) -> Entry {
        Entry {
            term,
            index,
            payload: EntryPayload::Noop,
        }
    }

    fn founded() -> Disk {
        Disk::new(SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters([1, 2, 3]),
        })
    }

    #[test]
    fn synced_writes_survive_a_crash_and_unsynced_may_not() {
        let mut disk = founded();
        disk.write(Record::Entries(vec![entry(1, 1), entry(2, 1)]));
        disk.sync();
        disk.write(Record::Entries(vec![entry(3, 1)]));
        disk.write(Record::HardState(HardState {
            term: 2,
            vote: Some(1),
            commit: 2,
        }));
        let mut rng = SimRng::new(1, Stream::Disk);
        let mut seen_lost = false;
        for _ in 0..20 {
            let mut copy = disk.clone();
            copy.crash(&mut rng, 0.5);
            let image = copy.restore(true).expect("torn tails are not errors");
            assert!(image.state.entries.len() >= 2, "synced entries lost");
            seen_lost |= image.state.entries.len() == 2;
        }
        assert!(seen_lost, "a crash never lost an unsynced write");
    }

    #[test]
    fn corrupt_durable_record_is_detected_unless_verification_is_off() {
        let mut disk = founded();
        disk.write(Record::Entries(vec![entry(1, 1)]));
        disk.write(Record::HardState(HardState {
            term: 1,
            vote: Some(1),
            commit: 1,
        }));
        disk.sync();
        let mut bad = disk.clone();
        assert!(bad.corrupt(1));
        assert!(matches!(
            bad.restore(true),
            Err(DiskError::Corrupt { record: 1, .. })
        ));
        let mut unverified = disk.clone();
        unverified.corrupt(1);
        let image = unverified.restore(false).expect("unverified restore");
        assert!(
            image.state.entries.is_empty(),
            "data after the bad record is dropped"
        );
    }

    #[test]
    fn truncate_snapshot_and_install_replay_like_the_storage_contract() {
        let mut disk = founded();
        disk.write(Record::Entries((1..=5).map(|i| entry(i, 1)).collect()));
        disk.write(Record::Truncate(4));
        disk.write(Record::Entries(vec![entry(4, 2)]));
        disk.sync();
        let image = disk.clone().restore(true).expect("restore");
        let terms: Vec<u64> = image.state.entries.iter().map(|e| e.term).collect();
        assert_eq!(terms, vec![1, 1, 1, 2]);
        let meta = SnapshotMeta {
            index: 3,
            term: 1,
            membership: Membership::with_voters([1]),
        };
        disk.write(Record::Snapshot {
            meta: meta.clone(),
            data: Bytes::from_static(b"sm"),
        });
        disk.write(Record::InstallLog(meta.clone()));
        disk.sync();
        let image = disk.clone().restore(true).expect("restore");
        assert_eq!(image.state.snapshot, meta);
        assert_eq!(image.snapshot_data, Bytes::from_static(b"sm"));
        assert_eq!(image.state.entries, vec![entry(4, 2)]);
        // A snapshot whose last entry does not match the log replaces the whole log.
        let other = SnapshotMeta {
            index: 4,
            term: 7,
            membership: Membership::with_voters([1]),
        };
        disk.write(Record::Snapshot {
            meta: other.clone(),
            data: Bytes::new(),
        });
        disk.write(Record::InstallLog(other));
        disk.sync();
        assert!(
            disk.restore(true)
                .expect("restore")
                .state
                .entries
                .is_empty()
        );
    }

    #[test]
    fn collapsing_keeps_the_same_image() {
        let mut disk = founded();
        for i in 1..=(COLLAPSE_RECORDS as u64 + 10) {
            disk.write(Record::Entries(vec![entry(i, 1)]));
            disk.write(Record::HardState(HardState {
                term: 1,
                vote: None,
                commit: i,
            }));
            disk.sync();
        }
        assert!(disk.records.len() < COLLAPSE_RECORDS);
        let image = disk.restore(true).expect("restore");
        assert_eq!(image.state.entries.len(), COLLAPSE_RECORDS + 10);
        assert_eq!(image.state.hard_state.commit, COLLAPSE_RECORDS as u64 + 10);
    }
}
