//! The file-system calls the store makes, as two small traits, so the same store runs on
//! the real disk ([`StdFs`]) and on a simulated one (`SimFs`, feature `simulated-fs`) that
//! loses unsynced writes, tears them, flips bits and fills up, driven by a seed.
//!
//! The traits hold only what [`crate::FileStorage`] needs: positional reads and writes
//! (segments are appended to and snapshot headers are written last, at offset 0), setting
//! a file's length (undoing a failed write, cutting a torn tail), reserving space for a
//! segment (`fallocate`), `fdatasync`, and the
//! directory calls (create, rename, remove, list, fsync, lock).

use std::fmt::Debug;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The file's name within the directory.
    pub name: String,
    /// Its length in bytes (only a hint: the store reads the length again when it opens
    /// the file).
    pub len: u64,
}

/// An open file: read and write at offsets, change the length, make the data durable.
///
/// Calls take `&self` so reader threads can share a file, as with
/// [`std::os::unix::fs::FileExt`].
pub trait FsFile: Debug + Send + Sync + 'static {
    /// The file's length now (written bytes, synced or not).
    fn len_bytes(&self) -> io::Result<u64>;

    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at or past the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`, growing the file (with zeros) if needed. A failure
    /// may leave part of `buf` written.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Cuts or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Makes every write to this file durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// Reserves disk space so the file is at least `len` bytes long, the new bytes reading
    /// as zeros (`fallocate`, mode 0), so that later writes inside it do not grow the file
    /// and a sync need not commit a new size. A file system that cannot reserve space
    /// leaves the file as it is and returns `Ok`: the file then grows as written.
    fn allocate(&self, len: u64) -> io::Result<()>;

    /// Writes zeros over `[offset, offset + len)`, bytes that already read as zeros: space
    /// reserved by [`FsFile::allocate`] past the last record. A file system that reserves
    /// space as "unwritten" extents (ext4, XFS) records those blocks as written once they
    /// reach the disk (with the next sync), so the records later written there, and their
    /// syncs, change no extent through the journal. Changes no content; the default does
    /// nothing.
    fn write_zeros_ahead(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// A hint that the durable bytes in `[offset, offset + len)` will not be read soon, so
    /// their cached pages can go. Changes no content; the default does nothing.
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Fills `buf` from `offset`, or fails with [`io::ErrorKind::UnexpectedEof`].
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ends early",
                    ));
                }
                Ok(read) => {
                    buf = &mut buf[read..];
                    offset += read as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The directory-level calls of a file system, and the type of its open files.
///
/// Durability follows POSIX: [`FsFile::sync_data`] makes a file's bytes durable, and
/// creating, renaming or removing a file is durable once the directory is synced
/// ([`FileSystem::sync_dir`]).
pub trait FileSystem: Clone + Debug + Send + Sync + 'static {
    /// An open file.
    type File: FsFile;
    /// An exclusive lock on a directory, held until dropped.
    type DirLock: Debug + Send + Sync + 'static;

    /// Whether the store removes retired segment files on a thread of its own (see
    /// `reaper.rs`); false keeps every removal on the caller's thread, in order, as a
    /// deterministic simulation needs.
    const REMOVES_IN_BACKGROUND: bool = false;

    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Takes the exclusive lock on `dir` (through a lock file in it), or returns `None`
    /// at once if someone else holds it.
    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<Self::DirLock>>;

    /// Creates a new, empty file for reading and writing; fails if `path` exists.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;

    /// Opens an existing file for reading and writing ([`io::ErrorKind::NotFound`] if
    /// there is none).
    fn open(&self, path: &Path) -> io::Result<Self::File>;

    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Renames `from` to `to`, replacing `to` if it exists (atomically, as `rename(2)`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// The files in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;

    /// Makes the creations, renames and removals in `dir` durable (`fsync` of the
    /// directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system, through `std::fs`: what [`crate::FileStorage::open`] uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

/// A file of [`StdFs`].
#[derive(Debug)]
pub struct StdFile(File);

impl FsFile for StdFile {
    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.0, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mode = rustix::fs::FallocateFlags::empty();
        match rustix::fs::fallocate(&self.0, mode, 0, len) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
                tracing::debug!(error = %e, "the file system cannot preallocate; the file grows as written");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn write_zeros_ahead(&self, mut offset: u64, len: u64) -> io::Result<()> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let end = offset + len;
        while offset < end {
            let piece = (end - offset).min(ZEROS.len() as u64) as usize;
            FileExt::write_all_at(&self.0, &ZEROS[..piece], offset)?;
            offset += piece as u64;
        }
        Ok(())
    }

    /// `posix_fadvise(DONTNEED)`: clean pages are dropped from the page cache.
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        let advice = rustix::fs::Advice::DontNeed;
        rustix::fs::fadvise(&self.0, offset, std::num::NonZeroU64::new(len), advice)?;
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.0, buf, offset)
    }
}

impl FileSystem for StdFs {
    const REMOVES_IN_BACKGROUND: bool = true;
    type File = StdFile;
    type DirLock = File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    /// An advisory lock (`flock` on Linux) on `dir/LOCK`: the kernel releases it when the
    /// process dies, so a crash never leaves a directory locked.
    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<File>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(crate::lock::FILE_NAME))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn create_new(&self, path: &Path) -> io::Result<StdFile> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map(StdFile)
    }

    fn open(&self, path: &Path) -> io::Result<StdFile> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(StdFile)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for item in std::fs::read_dir(dir)? {
            let item = item?;
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            // Only a hint (see `DirEntry::len`): an unreadable size reads as 0.
            let len = item.metadata().map_or(0, |m| m.len());
            out.push(DirEntry { name, len });
        }
        Ok(out)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// The file system a store runs on and the faults injected into it: what every module
/// that touches files is handed.
#[derive(Clone, Debug)]
pub(crate) struct Disk<F> {
    pub(crate) fs: F,
    pub(crate) faults: crate::fault::FaultInjector,
}

impl<F: FileSystem> Disk<F> {
    /// Writes all of `buf` at `offset`, unless the injected plan says the disk is full.
    pub(crate) fn write_all_at(&self, file: &F::File, buf: &[u8], offset: u64) -> io::Result<()> {
        self.faults.write_all_at(file, buf, offset)
    }

    /// Reserves space up to `len` bytes (see [`FsFile::allocate`]), unless the injected
    /// plan limits the bytes the disk takes: then it fails as a full disk would.
    pub(crate) fn allocate(&self, file: &F::File, len: u64) -> io::Result<()> {
        self.faults.allocate(file, len)
    }

    /// `fdatasync`, unless the injected plan says syncs fail.
    pub(crate) fn sync_data(&self, file: &F::File) -> io::Result<()> {
        self.faults.sync_data(file)
    }

    /// fsyncs a directory so that file creations, renames and removals in it are durable.
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<(), crate::StorageError> {
        self.faults
            .sync_dir(&self.fs, dir)
            .map_err(|e| crate::StorageError::io("fsync directory", dir, e))
    }
}
