//! Snapshot files: streamed into a temporary file, fsynced, renamed over `snapshot`, the
//! directory fsynced; read back as a stream whose checksum is verified at its end.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use raft_core::SnapshotMeta;

use crate::error::StorageError;
use crate::format::{self, SNAPSHOT_HEADER_BYTES};
use crate::fs::{Disk, FileSystem, FsFile, StdFs};
use crate::scan::header_error;

/// The current snapshot's file name.
pub(crate) const FILE_NAME: &str = "snapshot";
/// Prefix of snapshots being written.
pub(crate) const TEMP_PREFIX: &str = "snapshot.tmp-";

/// Writer buffer: large enough that chunked writes cost few syscalls.
const WRITE_BUFFER_BYTES: usize = 256 << 10;
const READ_BUFFER_BYTES: usize = 256 << 10;
/// A snapshot being written is synced, and its pages released from the page cache, every
/// this many bytes. A snapshot rewrites the whole state (hundreds of MB with large values);
/// left dirty until the final fsync, those pages made the log's next fdatasync wait behind
/// all of them (followers stopped acknowledging for long enough that the leader stepped
/// down), and each fresh page-cache page cost the kernel more than the write itself.
const SYNC_EVERY_BYTES: u64 = 8 << 20;
/// Page size for releasing cached pages: only whole pages are dropped.
const CACHE_PAGE_BYTES: u64 = 4096;

/// Distinguishes temporary files of writers open at once.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Receives a snapshot's bytes for a [`crate::FileStorage`]. Nothing is visible until
/// [`raft_core::Storage::commit_snapshot`]; dropping the writer removes its temporary file.
#[derive(Debug)]
pub struct SnapshotWriter<F: FileSystem = StdFs> {
    pub(crate) dir: PathBuf,
    pub(crate) meta: SnapshotMeta,
    path: PathBuf,
    file: Option<F::File>,
    meta_bytes: Vec<u8>,
    buffer: Vec<u8>,
    /// Where the buffer goes in the file.
    flushed_offset: u64,
    /// Bytes of the file made durable (and released from the page cache) so far.
    synced_offset: u64,
    data_len: u64,
    data_crc: u32,
    disk: Disk<F>,
}

impl<F: FileSystem> SnapshotWriter<F> {
    pub(crate) fn create(
        dir: &Path,
        meta: &SnapshotMeta,
        disk: &Disk<F>,
    ) -> Result<Self, StorageError> {
        let name = format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let meta_bytes = postcard::to_stdvec(meta).map_err(|e| {
            StorageError::corrupt(&path, 0, format!("cannot encode snapshot metadata: {e}"))
        })?;
        let file = disk
            .fs
            .create_new(&path)
            .map_err(|e| StorageError::io("create snapshot", &path, e))?;
        // The header is written last, at commit, once the data's length and checksum are
        // known; until then the file starts with zeros and is never mistaken for a snapshot.
        let flushed_offset = (SNAPSHOT_HEADER_BYTES + meta_bytes.len()) as u64;
        Ok(SnapshotWriter {
            dir: dir.to_path_buf(),
            meta: meta.clone(),
            path,
            file: Some(file),
            meta_bytes,
            buffer: Vec::with_capacity(WRITE_BUFFER_BYTES),
            flushed_offset,
            synced_offset: 0,
            data_len: 0,
            data_crc: 0,
            disk: disk.clone(),
        })
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Err(io::Error::other("snapshot writer already used"));
        };
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.disk
            .write_all_at(file, &self.buffer, self.flushed_offset)?;
        self.flushed_offset += self.buffer.len() as u64;
        self.buffer.clear();
        self.sync_if_due()
    }

    /// Every [`SYNC_EVERY_BYTES`], syncs what was written and lets the kernel drop those
    /// pages: the snapshot is read back only to send it to a lagging peer or at start-up.
    /// The file is still a temporary one, so a failure here fails only this snapshot.
    fn sync_if_due(&mut self) -> io::Result<()> {
        if self.flushed_offset - self.synced_offset < SYNC_EVERY_BYTES {
            return Ok(());
        }
        let Some(file) = &self.file else {
            return Err(io::Error::other("snapshot writer already used"));
        };
        self.disk.sync_data(file)?;
        let start = self.synced_offset;
        self.synced_offset = self.flushed_offset - self.flushed_offset % CACHE_PAGE_BYTES;
        if let Err(error) = file.drop_cached(start, self.synced_offset - start) {
            tracing::debug!(path = %self.path.display(), %error, "cannot drop cached snapshot pages");
        }
        Ok(())
    }

    /// Writes the header, fsyncs, renames over the current snapshot and fsyncs the
    /// directory. Returns `Err((fatal, error))`; a failed fsync is fatal for the store.
    pub(crate) fn finish(mut self) -> Result<(), (bool, StorageError)> {
        self.flush_buffer()
            .map_err(|e| (false, StorageError::io("write snapshot", &self.path, e)))?;
        let header = format::encode_snapshot_header(&self.meta_bytes, self.data_len, self.data_crc);
        let Some(file) = self.file.take() else {
            return Err((
                false,
                StorageError::io(
                    "commit snapshot",
                    &self.path,
                    io::Error::other("writer already used"),
                ),
            ));
        };
        let result = self.disk.write_all_at(&file, &header, 0);
        result.map_err(|e| {
            (
                false,
                StorageError::io("write snapshot header to", &self.path, e),
            )
        })?;
        self.disk
            .sync_data(&file)
            .map_err(|e| (true, StorageError::io("fsync snapshot", &self.path, e)))?;
        if let Err(error) = file.drop_cached(0, self.flushed_offset) {
            tracing::debug!(path = %self.path.display(), %error, "cannot drop cached snapshot pages");
        }
        drop(file);
        let target = self.dir.join(FILE_NAME);
        self.disk.fs.rename(&self.path, &target).map_err(|e| {
            (
                false,
                StorageError::io("rename snapshot into place", &target, e),
            )
        })?;
        // The file is in place: nothing left for Drop to remove.
        self.path = PathBuf::new();
        self.disk.sync_dir(&self.dir).map_err(|e| (true, e))
    }
}

impl<F: FileSystem> Write for SnapshotWriter<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + buf.len() > WRITE_BUFFER_BYTES {
            self.flush_buffer()?;
        }
        if buf.len() >= WRITE_BUFFER_BYTES {
            let Some(file) = &self.file else {
                return Err(io::Error::other("snapshot writer already used"));
            };
            self.disk.write_all_at(file, buf, self.flushed_offset)?;
            self.flushed_offset += buf.len() as u64;
            self.sync_if_due()?;
        } else {
            self.buffer.extend_from_slice(buf);
        }
        self.data_crc = crc32c::crc32c_append(self.data_crc, buf);
        self.data_len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer()
    }
}

impl<F: FileSystem> Drop for SnapshotWriter<F> {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        if let Err(e) = self.disk.fs.remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove an abandoned snapshot");
        }
    }
}

/// Streams a snapshot's data and seeks within it (positions are offsets into the data, 0
/// being its first byte, not the file's).
///
/// A reader that reads every byte from 0 in order checks the data's checksum when it
/// reaches the end and returns an error instead of the final bytes if it does not match
/// (the error repeats on every later read). After a seek anywhere but the current position
/// or 0, the bytes before the new position were not seen, so the end check is off for that
/// pass; seeking back to 0 turns it on again. The whole snapshot is also verified when the
/// store opens.
#[derive(Debug)]
pub struct SnapshotReader<F: FileSystem = StdFs> {
    path: PathBuf,
    file: F::File,
    /// Bytes read ahead, starting at data position `buffer_start`.
    buffer: Vec<u8>,
    buffer_start: u64,
    /// File offset of the first data byte.
    data_offset: u64,
    data_len: u64,
    /// Current position in the data.
    position: u64,
    /// CRC32C of the data in `[0, position)` while every byte of it was read in order.
    crc: Option<u32>,
    expected_crc: u32,
    /// The checksum failed; every later read fails too.
    failed: bool,
}

impl<F: FileSystem> SnapshotReader<F> {
    fn checksum_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "snapshot data in {} fails its checksum",
                self.path.display()
            ),
        )
    }
}

impl<F: FileSystem> SnapshotReader<F> {
    /// Copies into `buf` what the read-ahead buffer holds at the current position,
    /// refilling it from the file first if it holds nothing there.
    fn read_buffered(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let buffer_end = self.buffer_start + self.buffer.len() as u64;
        if self.position < self.buffer_start || self.position >= buffer_end {
            let remaining_bytes = self.data_len - self.position;
            let fill = usize::try_from(remaining_bytes)
                .map_or(READ_BUFFER_BYTES, |left| left.min(READ_BUFFER_BYTES));
            self.buffer.resize(fill, 0);
            let got = self
                .file
                .read_at(&mut self.buffer, self.data_offset + self.position)?;
            self.buffer.truncate(got);
            self.buffer_start = self.position;
        }
        let skip = (self.position - self.buffer_start) as usize;
        let available = &self.buffer[skip.min(self.buffer.len())..];
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        Ok(count)
    }
}

impl<F: FileSystem> Read for SnapshotReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(self.checksum_error());
        }
        let remaining_bytes = self.data_len.saturating_sub(self.position);
        if remaining_bytes == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(remaining_bytes).unwrap_or(usize::MAX));
        let got = self.read_buffered(&mut buf[..want])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} ends early", self.path.display()),
            ));
        }
        self.position += got as u64;
        if let Some(crc) = self.crc.as_mut() {
            *crc = crc32c::crc32c_append(*crc, &buf[..got]);
            if self.position == self.data_len && *crc != self.expected_crc {
                self.failed = true;
                return Err(self.checksum_error());
            }
        }
        Ok(got)
    }
}

impl<F: FileSystem> Seek for SnapshotReader<F> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.data_len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "seek to a negative or overflowing position in {}",
                    self.path.display()
                ),
            ));
        };
        if target == self.position {
            return Ok(target);
        }
        if self.data_offset.checked_add(target).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek position too large",
            ));
        }
        // The read-ahead buffer is kept: a later read uses it if the target is inside it.
        self.position = target;
        self.crc = (target == 0).then_some(0);
        Ok(target)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.position)
    }
}

/// A snapshot file's header, checked.
struct Opened<F: FileSystem> {
    file: F::File,
    header: format::SnapshotHeader,
    data_offset: u64,
}

fn open_checked<F: FileSystem>(fs: &F, path: &Path) -> Result<Option<Opened<F>>, StorageError> {
    let file = match fs.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("open snapshot", path, e)),
    };
    let file_len = file
        .len_bytes()
        .map_err(|e| StorageError::io("stat snapshot", path, e))?;
    let mut fixed = [0u8; SNAPSHOT_HEADER_BYTES];
    if file_len < SNAPSHOT_HEADER_BYTES as u64 {
        return Err(StorageError::corrupt(
            path,
            0,
            format!("snapshot file is only {file_len} bytes"),
        ));
    }
    file.read_exact_at(&mut fixed, 0)
        .map_err(|e| StorageError::io("read snapshot", path, e))?;
    let meta_len = format::decode_snapshot_fixed(&fixed).map_err(|e| header_error(path, 0, e))?;
    if (SNAPSHOT_HEADER_BYTES + meta_len) as u64 > file_len {
        return Err(StorageError::corrupt(
            path,
            12,
            "snapshot metadata runs past the end of the file",
        ));
    }
    let mut meta_bytes = vec![0u8; meta_len];
    file.read_exact_at(&mut meta_bytes, SNAPSHOT_HEADER_BYTES as u64)
        .map_err(|e| StorageError::io("read snapshot", path, e))?;
    let header = format::decode_snapshot_header(&fixed, &meta_bytes)
        .map_err(|e| header_error(path, 0, e))?;
    let data_offset = (SNAPSHOT_HEADER_BYTES + meta_len) as u64;
    if file_len - data_offset != header.data_len {
        let reason = format!(
            "snapshot holds {} data bytes; its header says {}",
            file_len - data_offset,
            header.data_len
        );
        return Err(StorageError::corrupt(path, data_offset, reason));
    }
    Ok(Some(Opened {
        file,
        header,
        data_offset,
    }))
}

/// The current snapshot at startup, its header checked. [`Current::verify`] checks its
/// data, so a damaged snapshot stops the node before it serves or votes.
pub(crate) struct Current<F: FileSystem> {
    path: PathBuf,
    opened: Opened<F>,
}

impl<F: FileSystem> Current<F> {
    /// Opens the current snapshot, if there is one, and checks its header.
    pub(crate) fn find(fs: &F, dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(FILE_NAME);
        Ok(open_checked(fs, &path)?.map(|opened| Current { path, opened }))
    }

    pub(crate) fn meta(&self) -> &SnapshotMeta {
        &self.opened.header.meta
    }

    pub(crate) fn into_meta(self) -> SnapshotMeta {
        self.opened.header.meta
    }

    /// Reads the whole data once and checks its checksum.
    pub(crate) fn verify(&self) -> Result<(), StorageError> {
        let (path, opened) = (&self.path, &self.opened);
        let mut buf = vec![0u8; READ_BUFFER_BYTES];
        let mut crc = 0u32;
        let mut offset = opened.data_offset;
        let end = opened.data_offset + opened.header.data_len;
        while offset < end {
            let want = usize::try_from(end - offset).map_or(buf.len(), |left| left.min(buf.len()));
            opened
                .file
                .read_exact_at(&mut buf[..want], offset)
                .map_err(|e| StorageError::io("read snapshot", path, e))?;
            crc = crc32c::crc32c_append(crc, &buf[..want]);
            offset += want as u64;
        }
        if crc != opened.header.data_crc {
            return Err(StorageError::corrupt(
                path,
                opened.data_offset,
                "snapshot data checksum mismatch",
            ));
        }
        Ok(())
    }
}

/// Opens the current snapshot for streaming.
#[allow(clippy::type_complexity)]
pub(crate) fn open<F: FileSystem>(
    fs: &F,
    dir: &Path,
) -> Result<Option<(SnapshotMeta, SnapshotReader<F>)>, StorageError> {
    let path = dir.join(FILE_NAME);
    let Some(opened) = open_checked(fs, &path)? else {
        return Ok(None);
    };
    let reader = SnapshotReader {
        path,
        file: opened.file,
        buffer: Vec::new(),
        buffer_start: 0,
        data_offset: opened.data_offset,
        data_len: opened.header.data_len,
        position: 0,
        crc: Some(0),
        expected_crc: opened.header.data_crc,
        failed: false,
    };
    Ok(Some((opened.header.meta, reader)))
}
