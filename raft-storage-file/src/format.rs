//! Byte layouts of the on-disk format (see `FORMAT.md`): segment headers, record frames,
//! record bodies and the snapshot header. Pure functions over byte slices; no IO.

use raft_core::{Entry, HardState, Index, SnapshotMeta, Term};

/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RAFTLOG\0";
pub(crate) const SNAPSHOT_MAGIC: [u8; 8] = *b"RAFTSNP\0";

/// magic (8) + version (4) + flags (4) + first index (8) + previous term (8) + crc (4).
pub(crate) const SEGMENT_HEADER_BYTES: usize = 36;
/// length (4) + length check (4) + body crc (4).
pub(crate) const FRAME_HEADER_BYTES: usize = 12;
/// The length and its check, at the start of a frame header.
pub(crate) const LENGTH_FIELDS_BYTES: u64 = 8;
/// The largest record body accepted, so a corrupt length can never ask for more.
pub(crate) const RECORD_BODY_BYTES_MAX: usize = 128 << 20;
/// magic (8) + version (4) + meta length (4) + data length (8) + data crc (4) + crc (4).
pub(crate) const SNAPSHOT_HEADER_BYTES: usize = 32;
/// The largest snapshot metadata accepted (a membership of many thousand nodes fits).
pub(crate) const SNAPSHOT_META_BYTES_MAX: usize = 1 << 20;
/// Granularity at which a crash may leave unwritten (zero) bytes in a file.
pub(crate) const SECTOR_BYTES: u64 = 512;

pub(crate) const RECORD_KIND_ENTRY: u8 = 1;
pub(crate) const RECORD_KIND_HARD_STATE: u8 = 2;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Why a header failed to parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    BadMagic,
    BadChecksum,
    UnsupportedVersion(u32),
    Malformed(&'static str),
}

/// The fixed header at the start of every segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// Index of the first entry the segment holds. Entries of earlier segments at or after
    /// it are superseded (this is how a truncation is made durable).
    pub(crate) first_index: Index,
    /// Term of the entry at `first_index - 1`.
    pub(crate) prev_term: Term,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // bytes 12..16: flags, all zero in version 1.
        bytes[16..24].copy_from_slice(&self.first_index.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.prev_term.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..32]);
        bytes[32..36].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(HeaderError::Malformed("segment header cut short"));
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if crc32c::crc32c(&bytes[..32]) != u32_at(bytes, 32) {
            return Err(HeaderError::BadChecksum);
        }
        let version = u32_at(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        if u32_at(bytes, 12) != 0 {
            return Err(HeaderError::Malformed("unknown segment flags"));
        }
        let first_index = u64_at(bytes, 16);
        if first_index == 0 {
            return Err(HeaderError::Malformed("segment first index 0"));
        }
        Ok(SegmentHeader {
            first_index,
            prev_term: u64_at(bytes, 24),
        })
    }
}

/// What a record holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Entry(Entry),
    HardState(HardState),
}

/// Appends one framed record holding `entry` to `buf`; returns the body length.
pub(crate) fn encode_entry(entry: &Entry, buf: &mut Vec<u8>) -> Result<usize, postcard::Error> {
    encode_frame(buf, RECORD_KIND_ENTRY, |body| {
        postcard::to_extend(entry, body)
    })
}

/// Appends one framed record holding `hard_state` to `buf`.
pub(crate) fn encode_hard_state(
    hard_state: &HardState,
    buf: &mut Vec<u8>,
) -> Result<usize, postcard::Error> {
    encode_frame(buf, RECORD_KIND_HARD_STATE, |body| {
        postcard::to_extend(hard_state, body)
    })
}

fn encode_frame(
    buf: &mut Vec<u8>,
    kind: u8,
    write_body: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, postcard::Error>,
) -> Result<usize, postcard::Error> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    buf.push(kind);
    let mut owned = write_body(std::mem::take(buf))?;
    let body_len = owned.len() - start - FRAME_HEADER_BYTES;
    let body_crc = crc32c::crc32c(&owned[start + FRAME_HEADER_BYTES..]);
    let len_bytes = (body_len as u32).to_le_bytes();
    owned[start..start + 4].copy_from_slice(&len_bytes);
    owned[start + 4..start + 8].copy_from_slice(&crc32c::crc32c(&len_bytes).to_le_bytes());
    owned[start + 8..start + 12].copy_from_slice(&body_crc.to_le_bytes());
    *buf = owned;
    Ok(body_len)
}

/// The outcome of reading one frame at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A whole frame whose checksums match.
    Valid { body: &'a [u8], frame_bytes: usize },
    /// The slice ends inside the frame header.
    HeaderCut,
    /// The frame header is all zero bytes (never written).
    ZeroHeader,
    /// The length field fails its check (or is out of bounds): the header is damaged.
    BadHeader(String),
    /// The header is sound but the body runs past the end of the slice.
    BodyCut { frame_bytes: usize },
    /// Header and body are present but the body checksum fails.
    BadBody { frame_bytes: usize },
}

/// The body checksum stored in the frame header at the start of `frame`.
pub(crate) fn stored_body_crc(frame: &[u8]) -> u32 {
    u32_at(frame, 8)
}

/// The length of the frame at `bytes[offset..]`, whose header was checked before.
pub(crate) fn frame_bytes_at(bytes: &[u8], offset: usize) -> usize {
    FRAME_HEADER_BYTES + u32_at(bytes, offset) as usize
}

pub(crate) fn read_frame(bytes: &[u8]) -> Frame<'_> {
    if bytes.len() < FRAME_HEADER_BYTES {
        return Frame::HeaderCut;
    }
    let header = &bytes[..FRAME_HEADER_BYTES];
    if header.iter().all(|b| *b == 0) {
        return Frame::ZeroHeader;
    }
    let body_len = u32_at(header, 0);
    if crc32c::crc32c(&header[0..4]) != u32_at(header, 4) {
        return Frame::BadHeader("record length fails its check".to_string());
    }
    let body_len = body_len as usize;
    if body_len == 0 || body_len > RECORD_BODY_BYTES_MAX {
        return Frame::BadHeader(format!("record length {body_len} out of bounds"));
    }
    let frame_bytes = FRAME_HEADER_BYTES + body_len;
    if bytes.len() < frame_bytes {
        return Frame::BodyCut { frame_bytes };
    }
    let body = &bytes[FRAME_HEADER_BYTES..frame_bytes];
    if crc32c::crc32c(body) != u32_at(header, 8) {
        return Frame::BadBody { frame_bytes };
    }
    Frame::Valid { body, frame_bytes }
}

/// Decodes exactly one postcard value filling `bytes`.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| format!("undecodable record: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} stray bytes after the record", rest.len()));
    }
    Ok(value)
}

/// True if `bytes`, which start at file offset `offset`, contain a whole 512-byte sector
/// of zeros: the trace of a write that never reached the disk.
pub(crate) fn has_unwritten_sector(bytes: &[u8], offset: u64) -> bool {
    let end = offset + bytes.len() as u64;
    let mut sector = offset.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    while sector + SECTOR_BYTES <= end {
        let from = (sector - offset) as usize;
        if bytes[from..from + SECTOR_BYTES as usize]
            .iter()
            .all(|b| *b == 0)
        {
            return true;
        }
        sector += SECTOR_BYTES;
    }
    false
}

/// If `rest`, which starts at file offset `offset` and runs to the end of the file, ends
/// in zeros (at least one byte of them), where they start: bytes never written, though the
/// file's length was. A power loss leaves them from a sector boundary on (the last sector
/// never landed); in a preallocated segment, a process that died inside `write(2)` leaves
/// them right after the bytes it wrote.
pub(crate) fn zero_tail_start(rest: &[u8], offset: u64) -> Option<u64> {
    let file_len = offset + rest.len() as u64;
    let zeros_from = offset
        + rest
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |at| at as u64 + 1);
    (zeros_from < file_len).then_some(zeros_from)
}

/// The header of a snapshot file, followed by `meta_len` bytes of metadata and the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotHeader {
    pub(crate) meta: SnapshotMeta,
    pub(crate) meta_len: usize,
    pub(crate) data_len: u64,
    pub(crate) data_crc: u32,
}

/// Encodes the header and metadata; `data_len` and `data_crc` describe the data after it.
pub(crate) fn encode_snapshot_header(meta_bytes: &[u8], data_len: u64, data_crc: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + meta_bytes.len());
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&data_len.to_le_bytes());
    bytes.extend_from_slice(&data_crc.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes), meta_bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(meta_bytes);
    bytes
}

/// Reads the fixed part; returns the metadata length to read next.
pub(crate) fn decode_snapshot_fixed(bytes: &[u8]) -> Result<usize, HeaderError> {
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(HeaderError::Malformed("snapshot header cut short"));
    }
    if bytes[0..8] != SNAPSHOT_MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let meta_len = u32_at(bytes, 12) as usize;
    if meta_len > SNAPSHOT_META_BYTES_MAX {
        return Err(HeaderError::Malformed(
            "snapshot metadata length out of bounds",
        ));
    }
    Ok(meta_len)
}

/// Checks the header checksum over the fixed part and `meta_bytes` and decodes both.
pub(crate) fn decode_snapshot_header(
    fixed: &[u8],
    meta_bytes: &[u8],
) -> Result<SnapshotHeader, HeaderError> {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&fixed[..28]), meta_bytes);
    if crc != u32_at(fixed, 28) {
        return Err(HeaderError::BadChecksum);
    }
    let version = u32_at(fixed, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    let meta = decode_exact::<SnapshotMeta>(meta_bytes)
        .map_err(|_| HeaderError::Malformed("undecodable snapshot metadata"))?;
    Ok(SnapshotHeader {
        meta,
        meta_len: meta_bytes.len(),
        data_len: u64_at(fixed, 16),
        data_crc: u32_at(fixed, 24),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::conformance::sample_entry;

    #[test]
    fn frames_round_trip_and_every_cut_is_classified() {
        // Goal: a frame decodes back; every shorter prefix reads as cut, never as valid.
        let entry = sample_entry(7, 3, 100);
        let mut buf = Vec::new();
        encode_entry(&entry, &mut buf).unwrap();
        match read_frame(&buf) {
            Frame::Valid { body, frame_bytes } => {
                assert_eq!(frame_bytes, buf.len());
                assert_eq!(body.len(), frame_bytes - FRAME_HEADER_BYTES);
                let shared = bytes::Bytes::from(buf.clone());
                let record = crate::decode::decode_record(&shared, FRAME_HEADER_BYTES..buf.len());
                assert_eq!(record.unwrap(), Record::Entry(entry));
            }
            other => panic!("not valid: {other:?}"),
        }
        for cut in 0..buf.len() {
            let frame = read_frame(&buf[..cut]);
            let expected_cut = if cut < FRAME_HEADER_BYTES {
                Frame::HeaderCut
            } else {
                Frame::BodyCut {
                    frame_bytes: buf.len(),
                }
            };
            assert_eq!(frame, expected_cut, "cut at {cut}");
        }
    }

    #[test]
    fn segment_header_detects_every_bit_flip() {
        let header = SegmentHeader {
            first_index: 42,
            prev_term: 7,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                SegmentHeader::decode(&flipped).is_err(),
                "flip of bit {bit} undetected"
            );
        }
    }

    #[test]
    fn unwritten_sectors_are_found_only_when_whole() {
        let mut bytes = vec![1u8; 2048];
        assert!(!has_unwritten_sector(&bytes, 100));
        bytes[412..924].fill(0); // file offsets 512..1024: one whole sector
        assert!(has_unwritten_sector(&bytes, 100));
        let mut bytes = vec![1u8; 2048];
        bytes[413..924].fill(0); // one byte short of a whole sector
        assert!(!has_unwritten_sector(&bytes, 100));
    }

    #[test]
    fn zeros_to_the_end_are_found_however_few() {
        let mut bytes = vec![1u8; 600];
        bytes[412..600].fill(0); // file offsets 512..700
        assert_eq!(zero_tail_start(&bytes, 100), Some(512));
        let mut bytes = vec![1u8; 414];
        bytes[412..].fill(0); // two zeros from offset 512 to the end
        assert_eq!(zero_tail_start(&bytes, 100), Some(512));
        bytes[410..].fill(0); // zeros from before the boundary: from where they start
        assert_eq!(zero_tail_start(&bytes, 100), Some(510));
        bytes[413] = 7; // the last byte is data
        assert_eq!(zero_tail_start(&bytes, 100), None);
        assert_eq!(zero_tail_start(&[0u8; 12], 1024), Some(1024));
    }
}
