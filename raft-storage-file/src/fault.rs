//! Every write and sync of the store goes through here, so tests (of this crate and of its
//! hosts) can make the disk fill up or a sync fail deterministically.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::fs::{FileSystem, FsFile};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

/// Injects disk faults into a [`crate::FileStorage`]: a disk that fills up after a number of
/// bytes (`ENOSPC`, with the last write cut short as a real one would be) and syncs that
/// fail (`EIO`). Clones share one plan, so a test keeps a clone and changes the plan while
/// the store runs. A default injector injects nothing.
#[derive(Clone, Debug, Default)]
pub struct FaultInjector {
    plan: Arc<FaultPlan>,
}

#[derive(Debug)]
struct FaultPlan {
    /// Bytes that may still be written; `u64::MAX` means unlimited.
    write_budget_bytes: AtomicU64,
    fail_syncs: AtomicBool,
    /// Microseconds every sync waits before it runs (0: none).
    sync_stall_micros: AtomicU64,
    /// Planted bugs, one bit each (see [`PlantedBug`]).
    planted: AtomicU8,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            write_budget_bytes: AtomicU64::new(u64::MAX),
            fail_syncs: AtomicBool::new(false),
            sync_stall_micros: AtomicU64::new(0),
            planted: AtomicU8::new(0),
        }
    }
}

/// A deliberate bug in the store's recovery, to show that a simulator's checks catch it
/// (switched on with `FaultInjector::plant`, feature `planted-bugs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantedBug {
    /// A checksum failure anywhere in the last segment is taken for a torn tail and cut off
    /// silently, durable records with it.
    SkipCorruptionCheck,
    /// A last segment that ends in a torn tail is dropped whole, synced records with it,
    /// and nothing is reported.
    LoseUnsyncedSegment,
}

impl PlantedBug {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl FaultInjector {
    /// An injector that injects nothing until told to.
    pub fn new() -> Self {
        FaultInjector::default()
    }

    /// After `bytes` more bytes, every write fails with `ENOSPC` (a write that crosses the
    /// limit writes its first part, then fails).
    pub fn fill_disk_after(&self, bytes: u64) {
        self.plan.write_budget_bytes.store(bytes, Ordering::SeqCst);
    }

    /// Every sync fails with `EIO` until [`FaultInjector::heal`].
    pub fn fail_syncs(&self) {
        self.plan.fail_syncs.store(true, Ordering::SeqCst);
    }

    /// Every data sync (`fdatasync`, not a directory's) first waits `each` until
    /// [`FaultInjector::heal`]: a disk that stalls, as one shared by several nodes does
    /// under load.
    pub fn stall_syncs(&self, each: std::time::Duration) {
        let micros = u64::try_from(each.as_micros()).unwrap_or(u64::MAX);
        self.plan.sync_stall_micros.store(micros, Ordering::SeqCst);
    }

    /// Gives the store a deliberate bug (see [`PlantedBug`]). Never use outside tests
    /// that show a checker catches it.
    #[cfg(feature = "planted-bugs")]
    pub fn plant(&self, bug: PlantedBug) {
        self.plan.planted.fetch_or(bug.bit(), Ordering::SeqCst);
    }

    /// True if `bug` was planted (always false without the `planted-bugs` feature).
    #[inline]
    pub(crate) fn has_bug(&self, bug: PlantedBug) -> bool {
        cfg!(feature = "planted-bugs") && self.plan.planted.load(Ordering::Relaxed) & bug.bit() != 0
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        self.plan
            .write_budget_bytes
            .store(u64::MAX, Ordering::SeqCst);
        self.plan.fail_syncs.store(false, Ordering::SeqCst);
        self.plan.sync_stall_micros.store(0, Ordering::SeqCst);
    }

    /// Writes all of `buf` at `offset`, unless the plan says the disk is full.
    pub(crate) fn write_all_at(
        &self,
        file: &impl FsFile,
        buf: &[u8],
        offset: u64,
    ) -> io::Result<()> {
        let budget = self.plan.write_budget_bytes.load(Ordering::SeqCst);
        if budget == u64::MAX {
            return file.write_all_at(buf, offset);
        }
        let allowed = budget.min(buf.len() as u64);
        self.plan
            .write_budget_bytes
            .store(budget - allowed, Ordering::SeqCst);
        file.write_all_at(&buf[..allowed as usize], offset)?;
        if allowed < buf.len() as u64 {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }

    /// Reserves space (see [`FsFile::allocate`]), unless the plan limits the bytes the disk
    /// takes: then it fails with `ENOSPC`, as a nearly full disk would, and the file stays
    /// as it was (writes then grow it within the budget).
    pub(crate) fn allocate(&self, file: &impl FsFile, len: u64) -> io::Result<()> {
        if self.plan.write_budget_bytes.load(Ordering::SeqCst) != u64::MAX {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        file.allocate(len)
    }

    /// `fdatasync`, unless the plan says syncs fail.
    pub(crate) fn sync_data(&self, file: &impl FsFile) -> io::Result<()> {
        let stall_micros = self.plan.sync_stall_micros.load(Ordering::SeqCst);
        if stall_micros > 0 {
            std::thread::sleep(std::time::Duration::from_micros(stall_micros));
        }
        if self.plan.fail_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        file.sync_data()
    }

    /// `fsync` of a directory, unless the plan says syncs fail.
    pub(crate) fn sync_dir<F: FileSystem>(&self, fs: &F, dir: &Path) -> io::Result<()> {
        if self.plan.fail_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        fs.sync_dir(dir)
    }
}
