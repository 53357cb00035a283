//! [`SimFs`]: a simulated file system in memory that fails the way disks do, driven by a
//! seed, so a simulator runs the real [`crate::FileStorage`] under disk faults.
//!
//! Each file keeps two images: what readers see now, and what is durable (what a crash
//! leaves). [`FsFile::sync_data`] copies the first to the second; creations, renames and
//! removals become durable with [`FileSystem::sync_dir`]. [`SimFs::crash`] is a power loss:
//! names not synced vanish, and each file keeps its durable image plus a random prefix of
//! what was written since its last sync, whose last sector may be left as zeros (a torn
//! write). [`SimFaults`] adds bit flips on read, failing syncs and a full disk.
//!
//! Everything is deterministic: the same seed and the same calls give the same results.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{DirEntry, FileSystem, FsFile};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;
/// A torn write leaves whole sectors of zeros, as a disk that did not finish writing them.
const SECTOR_BYTES: usize = 512;

/// What goes wrong on a [`SimFs`], beyond losing unsynced writes on a crash. The default
/// injects nothing else.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimFaults {
    /// Probability that a crash leaves the last sector of a file's surviving unsynced
    /// bytes as zeros (a torn write).
    pub torn_write: f64,
    /// Probability that a read returns one bit flipped (the data at rest is intact; the
    /// next read may succeed).
    pub read_bit_flip: f64,
    /// Probability that a sync (of a file or a directory) fails with `EIO`; what it was
    /// to make durable stays volatile.
    pub sync_failure: f64,
    /// Total bytes the files may hold; a write past it writes what fits, then fails with
    /// `ENOSPC`. `None`: unlimited.
    pub capacity_bytes: Option<u64>,
}

/// What a [`SimFs`] has done, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimFsStats {
    /// Crashes.
    pub crashes: u64,
    /// Unsynced bytes that crashes dropped.
    pub bytes_lost: u64,
    /// Crashes that left a torn (zeroed) sector.
    pub torn_writes: u64,
    /// Reads that returned a flipped bit.
    pub read_bit_flips: u64,
    /// Syncs that failed.
    pub sync_failures: u64,
    /// Writes refused for lack of space.
    pub disk_full_errors: u64,
}

/// A simulated file system; clones share it. See the module docs.
#[derive(Clone, Debug)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

/// An open file of a [`SimFs`]. It stops working (every call fails) once the file system
/// crashes: it belonged to the process that died.
#[derive(Debug)]
pub struct SimFile {
    state: Arc<Mutex<State>>,
    id: u64,
    generation: u64,
}

/// The lock on a directory of a [`SimFs`], released when dropped (or by a crash).
#[derive(Debug)]
pub struct SimDirLock {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
    generation: u64,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Bytes from here on may differ from the durable image; `None`: in sync.
    dirty_from: Option<usize>,
    /// Where the bytes written (or allocated) since the last sync end: a crash keeps a
    /// prefix of `dirty_from..dirty_to`; zeros reserved past it are as durable as before.
    dirty_to: usize,
    /// Open handles; an inode no name reaches is dropped once none is left.
    handles: u32,
}

impl Inode {
    /// Marks `from..to` as written since the last sync.
    fn mark_dirty(&mut self, from: usize, to: usize) {
        if self.dirty_from.is_none() {
            self.dirty_to = 0;
        }
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
        self.dirty_to = self.dirty_to.max(to);
    }

    /// Copies only the bytes written since the last sync: outside `dirty_from..dirty_to`
    /// the data equals the durable image (or is reserved zeros past its end), and copying
    /// a preallocated segment's whole tail on every sync made the file sweep 6x slower.
    fn sync(&mut self) {
        if let Some(from) = self.dirty_from.take() {
            let from = from.min(self.durable.len()).min(self.data.len());
            let to = self.dirty_to.clamp(from, self.data.len());
            self.durable.resize(self.data.len(), 0);
            self.durable[from..to].copy_from_slice(&self.data[from..to]);
        }
    }
}

#[derive(Debug)]
struct State {
    rng: SplitMix64,
    faults: SimFaults,
    stats: SimFsStats,
    inodes: BTreeMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    next_inode: u64,
    /// Bumped by every crash; handles of an earlier generation are dead.
    generation: u64,
}

impl SimFs {
    /// An empty file system whose random choices come from `seed`.
    pub fn new(seed: u64) -> Self {
        SimFs {
            state: Arc::new(Mutex::new(State {
                rng: SplitMix64(seed),
                faults: SimFaults::default(),
                stats: SimFsStats::default(),
                inodes: BTreeMap::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                dirs: BTreeSet::new(),
                locks: BTreeSet::new(),
                next_inode: 1,
                generation: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock_state(&self.state)
    }

    /// Replaces the faults injected from now on.
    pub fn set_faults(&self, faults: SimFaults) {
        self.lock().faults = faults;
    }

    /// What the file system has done so far.
    pub fn stats(&self) -> SimFsStats {
        self.lock().stats
    }

    /// A power loss: every open file and lock dies; unsynced names vanish; each file keeps
    /// its durable image plus a random prefix of its unsynced bytes, possibly torn.
    pub fn crash(&self) {
        let mut state = self.lock();
        let state = &mut *state;
        state.generation += 1;
        state.stats.crashes += 1;
        state.locks.clear();
        state.names = state.durable_names.clone();
        let live: BTreeSet<u64> = state.names.values().copied().collect();
        state.inodes.retain(|id, _| live.contains(id));
        for inode in state.inodes.values_mut() {
            inode.handles = 0;
            let image = crash_image(inode, &mut state.rng, &state.faults, &mut state.stats);
            inode.data = image.clone();
            inode.durable = image;
            inode.dirty_from = None;
        }
    }

    /// Flips one bit, chosen by `pick`, in the durable bytes of the file at `path` (damage
    /// at rest, as a failing disk does). Returns false if there is no such file or it is
    /// empty.
    pub fn flip_durable_bit(&self, path: &Path, pick: u64) -> bool {
        let mut state = self.lock();
        let Some(id) = state.durable_names.get(path).copied() else {
            return false;
        };
        let Some(inode) = state.inodes.get_mut(&id) else {
            return false;
        };
        if inode.durable.is_empty() {
            return false;
        }
        let at = (pick % inode.durable.len() as u64) as usize;
        let mask = 1u8 << ((pick >> 32) % 8);
        inode.durable[at] ^= mask;
        // Readers see the flip too, except inside the bytes written since the last sync
        // (those the next sync makes durable over it).
        let unsynced = inode
            .dirty_from
            .is_some_and(|d| at >= d && at < inode.dirty_to);
        if at < inode.data.len() && !unsynced {
            inode.data[at] ^= mask;
        }
        true
    }

    /// Bytes written but not yet synced, over every file (named or not): what a real
    /// kernel would hold dirty and flush at the next sync.
    pub fn unsynced_bytes(&self) -> u64 {
        let state = self.lock();
        state
            .inodes
            .values()
            .filter_map(|inode| {
                let from = inode.dirty_from?;
                Some(inode.dirty_to.min(inode.data.len()).saturating_sub(from) as u64)
            })
            .sum()
    }

    /// The durable files in `dir` and their durable lengths, sorted by name.
    pub fn durable_files(&self, dir: &Path) -> Vec<(PathBuf, u64)> {
        self.durable_lengths(dir, |durable| durable.len())
    }

    /// As [`SimFs::durable_files`], each length cut to the end of the last non-zero
    /// durable byte: the bytes that hold data, without the zeros of space reserved for
    /// more (see [`FsFile::allocate`]).
    pub fn durable_written_files(&self, dir: &Path) -> Vec<(PathBuf, u64)> {
        self.durable_lengths(dir, |durable| {
            durable.iter().rposition(|b| *b != 0).map_or(0, |at| at + 1)
        })
    }

    /// The durable files in `dir`, sorted by name, each with `length` of its durable bytes.
    fn durable_lengths(&self, dir: &Path, length: impl Fn(&[u8]) -> usize) -> Vec<(PathBuf, u64)> {
        let state = self.lock();
        state
            .durable_names
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .map(|(path, id)| {
                let len = state
                    .inodes
                    .get(id)
                    .map_or(0, |i| length(&i.durable) as u64);
                (path.clone(), len)
            })
            .collect()
    }

    fn open_file(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        let mut state = self.lock();
        let parent = path.parent().unwrap_or(Path::new(""));
        if !state.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        let id = match (state.names.get(path).copied(), create) {
            (Some(_), true) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ));
            }
            (Some(id), false) => id,
            (None, false) => return Err(not_found(path)),
            (None, true) => {
                let id = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(id, Inode::default());
                state.names.insert(path.to_path_buf(), id);
                id
            }
        };
        if let Some(inode) = state.inodes.get_mut(&id) {
            inode.handles += 1;
        }
        Ok(SimFile {
            state: Arc::clone(&self.state),
            id,
            generation: state.generation,
        })
    }
}

impl State {
    /// Drops inodes that no name (current or durable) and no open handle reaches.
    fn collect_garbage(&mut self) {
        let named: BTreeSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        self.inodes
            .retain(|id, inode| inode.handles > 0 || named.contains(id));
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut state = lock_state(&self.state);
        if state.generation != self.generation {
            return;
        }
        if let Some(inode) = state.inodes.get_mut(&self.id) {
            inode.handles = inode.handles.saturating_sub(1);
        }
        state.collect_garbage();
    }
}

fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves plain data behind; nothing is half-updated in
    // a way a later call could not cope with, so the poison is ignored.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn dead_handle() -> io::Error {
    io::Error::other("file handle of a crashed process")
}

/// The bytes the disk still takes (`u64::MAX` without a capacity): `inode` is the file
/// being written, out of the inode map while `with_inode` runs.
fn room_bytes(state: &State, inode: &Inode) -> u64 {
    let used_bytes: u64 = state
        .inodes
        .values()
        .map(|i| i.data.len() as u64)
        .sum::<u64>()
        + inode.data.len() as u64;
    state
        .faults
        .capacity_bytes
        .map_or(u64::MAX, |cap| cap.saturating_sub(used_bytes))
}

/// What a crash leaves of a file: the durable image, overwritten by a random prefix of the
/// bytes written since the last sync, the last sector of that prefix possibly zeroed.
fn crash_image(
    inode: &Inode,
    rng: &mut SplitMix64,
    faults: &SimFaults,
    stats: &mut SimFsStats,
) -> Vec<u8> {
    let Some(dirty_from) = inode.dirty_from else {
        return inode.durable.clone();
    };
    let dirty_from = dirty_from.min(inode.data.len()).min(inode.durable.len());
    // Past `dirty_to` nothing was written since the sync (reserved zeros, as durable).
    let dirty_to = inode.dirty_to.clamp(dirty_from, inode.data.len());
    let unsynced = dirty_to - dirty_from;
    let kept = rng.below(unsynced as u64 + 1) as usize;
    let kept_end = dirty_from + kept;
    let mut image = inode.data[..kept_end].to_vec();
    if inode.durable.len() > kept_end {
        image.extend_from_slice(&inode.durable[kept_end..]);
    }
    stats.bytes_lost += (unsynced - kept) as u64;
    if kept > 0 && rng.chance(faults.torn_write) {
        // The last sector the kept bytes reach did not make it: zeros, from a sector
        // boundary at or after `dirty_from` (synced bytes are never torn).
        let sector_start = (kept_end - 1) / SECTOR_BYTES * SECTOR_BYTES;
        if sector_start >= dirty_from {
            let sector_end = (sector_start + SECTOR_BYTES).min(image.len());
            image[sector_start..sector_end].fill(0);
            stats.torn_writes += 1;
        }
    }
    image
}

impl SimFile {
    /// Runs `f` on this file's inode, failing if the handle died in a crash.
    fn with_inode<T>(
        &self,
        f: impl FnOnce(&mut Inode, &mut State) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = lock_state(&self.state);
        if state.generation != self.generation {
            return Err(dead_handle());
        }
        let mut inode = state.inodes.remove(&self.id).ok_or_else(dead_handle)?;
        let result = f(&mut inode, &mut state);
        state.inodes.insert(self.id, inode);
        result
    }
}

impl FsFile for SimFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.with_inode(|inode, _| Ok(inode.data.len() as u64))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with_inode(|inode, state| {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            if start >= inode.data.len() {
                return Ok(0);
            }
            let count = buf.len().min(inode.data.len() - start);
            buf[..count].copy_from_slice(&inode.data[start..start + count]);
            if count > 0 && state.rng.chance(state.faults.read_bit_flip) {
                let bit = state.rng.below(count as u64 * 8);
                buf[(bit / 8) as usize] ^= 1 << (bit % 8);
                state.stats.read_bit_flips += 1;
            }
            Ok(count)
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with_inode(|inode, state| {
            let start =
                usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
            let end = start + buf.len();
            let grows_bytes = end.saturating_sub(inode.data.len()) as u64;
            let room = room_bytes(state, inode);
            let allowed = if grows_bytes > room {
                // Write what fits (up to the current end plus the room left), then fail.
                (inode.data.len() as u64 + room).saturating_sub(offset) as usize
            } else {
                buf.len()
            };
            let allowed = allowed.min(buf.len());
            if start + allowed > inode.data.len() {
                inode.mark_dirty(inode.data.len(), start + allowed);
                inode.data.resize(start + allowed, 0);
            }
            inode.data[start..start + allowed].copy_from_slice(&buf[..allowed]);
            inode.mark_dirty(start.min(inode.data.len()), start + allowed);
            if allowed < buf.len() {
                state.stats.disk_full_errors += 1;
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_inode(|inode, _| {
            let len = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
            inode.mark_dirty(len.min(inode.data.len()), len);
            inode.data.resize(len, 0);
            Ok(())
        })
    }

    /// Grows the file with zeros to `len` bytes, as unsynced bytes (a crash before the
    /// file's next sync may lose them, as with a write), or fails with `ENOSPC` and changes
    /// nothing if the files would then hold more than the capacity.
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.with_inode(|inode, state| {
            let len = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
            if len <= inode.data.len() {
                return Ok(());
            }
            let grows_bytes = (len - inode.data.len()) as u64;
            if grows_bytes > room_bytes(state, inode) {
                state.stats.disk_full_errors += 1;
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            inode.mark_dirty(inode.data.len(), len);
            inode.data.resize(len, 0);
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_inode(|inode, state| {
            if state.rng.chance(state.faults.sync_failure) {
                state.stats.sync_failures += 1;
                return Err(io::Error::from_raw_os_error(EIO));
            }
            inode.sync();
            Ok(())
        })
    }
}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        let mut state = lock_state(&self.state);
        if state.generation == self.generation {
            state.locks.remove(&self.dir);
        }
    }
}

impl FileSystem for SimFs {
    type File = SimFile;
    type DirLock = SimDirLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // Directories themselves are durable at once: the store creates its own once.
        let mut state = self.lock();
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<SimDirLock>> {
        let mut state = self.lock();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        if !state.locks.insert(dir.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(SimDirLock {
            state: Arc::clone(&self.state),
            dir: dir.to_path_buf(),
            generation: state.generation,
        }))
    }

    fn create_new(&self, path: &Path) -> io::Result<SimFile> {
        self.open_file(path, true)
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        self.open_file(path, false)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.names.remove(path).ok_or_else(|| not_found(path))?;
        state.collect_garbage();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let id = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let state = self.lock();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .filter_map(|(path, id)| {
                let name = path.file_name()?.to_str()?.to_string();
                let len = state.inodes.get(id).map_or(0, |i| i.data.len() as u64);
                Some(DirEntry { name, len })
            })
            .collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let state = &mut *state;
        if state.rng.chance(state.faults.sync_failure) {
            state.stats.sync_failures += 1;
            return Err(io::Error::from_raw_os_error(EIO));
        }
        state
            .durable_names
            .retain(|path, _| path.parent() != Some(dir));
        for (path, id) in &state.names {
            if path.parent() == Some(dir) {
                state.durable_names.insert(path.clone(), *id);
            }
        }
        state.collect_garbage();
        Ok(())
    }
}

/// A small deterministic generator (SplitMix64): enough for fault choices, no dependency.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound)`; 0 when `bound` is 0.
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }

    fn chance(&mut self, probability: f64) -> bool {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        probability > 0.0 && unit < probability
    }
}
