//! Record bodies to values without copying command payloads: a command's bytes become a
//! slice of the buffer the segment was read into (one reference count, no allocation), so
//! recovery costs about what reading the files costs. [`peek_record`] checks a record and
//! reads only its index and term, for scanning; [`decode_record`] builds the value.
//!
//! The body of an entry record is postcard's encoding of [`raft_core::Entry`]: varint term,
//! varint index, varint variant tag of the payload, then for a command a varint length and
//! the bytes. Commands (nearly every entry) are decoded here by hand; every other payload
//! (no-op, membership, elided) goes through postcard. The command's variant tag is learned
//! from postcard itself, so reordering `EntryPayload` cannot make this decoder disagree
//! with the encoder.

use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, HardState, Index, Term};

use crate::format::{self, Record};

/// What a record holds, without building the entry: enough to chain and index the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peeked {
    Entry { index: Index, term: Term },
    HardState(HardState),
}

/// Checks that the record body `body` decodes and returns what recovery needs of it. An
/// error means a bug or a foreign writer: the checksum matched but the content is not a
/// record of this format.
pub(crate) fn peek_record(body: &[u8]) -> Result<Peeked, String> {
    let (kind, value) = body.split_first().ok_or("empty record body")?;
    match *kind {
        format::RECORD_KIND_ENTRY => match split_entry(value)? {
            Split::Command { term, index, .. } => Ok(Peeked::Entry { index, term }),
            Split::Other => {
                let entry = format::decode_exact::<Entry>(value)?;
                Ok(Peeked::Entry {
                    index: entry.index,
                    term: entry.term,
                })
            }
        },
        format::RECORD_KIND_HARD_STATE => {
            format::decode_exact::<HardState>(value).map(Peeked::HardState)
        }
        other => Err(format!("unknown record kind {other}")),
    }
}

/// Decodes the record body at `buf[body]`; a command's payload is a slice of `buf`.
pub(crate) fn decode_record(buf: &Bytes, body: Range<usize>) -> Result<Record, String> {
    let (kind, value) = buf[body.clone()].split_first().ok_or("empty record body")?;
    match *kind {
        format::RECORD_KIND_ENTRY => match split_entry(value)? {
            Split::Command {
                term,
                index,
                payload_at,
            } => Ok(Record::Entry(Entry {
                term,
                index,
                payload: EntryPayload::Command(buf.slice(body.start + 1 + payload_at..body.end)),
            })),
            Split::Other => format::decode_exact::<Entry>(value).map(Record::Entry),
        },
        format::RECORD_KIND_HARD_STATE => {
            format::decode_exact::<HardState>(value).map(Record::HardState)
        }
        other => Err(format!("unknown record kind {other}")),
    }
}

/// An entry's value, split by hand when it holds a command.
enum Split {
    /// A command whose bytes start at `payload_at` and fill the rest of the value.
    Command {
        term: Term,
        index: Index,
        payload_at: usize,
    },
    /// Another payload: decode the value with postcard.
    Other,
}

fn split_entry(value: &[u8]) -> Result<Split, String> {
    let mut pos = 0usize;
    let term = varint(value, &mut pos)?;
    let index = varint(value, &mut pos)?;
    let tag = varint(value, &mut pos)?;
    if Some(tag) != command_tag() {
        return Ok(Split::Other);
    }
    let len = usize::try_from(varint(value, &mut pos)?)
        .map_err(|_| "command length out of range".to_string())?;
    let rest = value.len() - pos;
    if len != rest {
        return Err(format!(
            "command of {len} bytes where the record holds {rest} more bytes"
        ));
    }
    Ok(Split::Command {
        term,
        index,
        payload_at: pos,
    })
}

/// The variant tag postcard writes for [`EntryPayload::Command`]; `None` (never expected)
/// sends every entry through postcard.
fn command_tag() -> Option<u64> {
    static TAG: OnceLock<Option<u64>> = OnceLock::new();
    *TAG.get_or_init(|| {
        let encoded = postcard::to_stdvec(&EntryPayload::Command(Bytes::new())).ok()?;
        let mut pos = 0;
        varint(&encoded, &mut pos).ok()
    })
}

/// Reads postcard's varint (LEB128, at most 10 bytes for a u64) at `bytes[*pos..]`.
fn varint(bytes: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos).ok_or("record value cut short")?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err("varint overflows 64 bits".to_string());
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::Membership;
    use raft_core::conformance::sample_entry;

    fn encoded(entry: &Entry) -> Bytes {
        let mut buf = b"prefix".to_vec();
        format::encode_entry(entry, &mut buf).unwrap();
        Bytes::from(buf)
    }

    fn body(buf: &Bytes) -> Range<usize> {
        6 + format::FRAME_HEADER_BYTES..buf.len()
    }

    #[test]
    fn every_payload_kind_decodes_as_postcard_does() {
        // Goal: the hand decoder and postcard agree on every payload kind and on varints of
        // every width (terms and indices up to u64::MAX).
        let mut entries: Vec<Entry> = (1..=40u64)
            .map(|i| sample_entry(i, i * 3, (i as usize * 37) % 300))
            .collect();
        for (term, index) in [(0, 1), (127, 128), (16_383, 16_384), (u64::MAX, u64::MAX)] {
            entries.push(sample_entry(index, term, 5));
        }
        entries.push(Entry {
            term: 2,
            index: 9,
            payload: EntryPayload::Membership(Box::new(Membership::with_voters([4, 5]))),
        });
        entries.push(Entry {
            term: 2,
            index: 10,
            payload: EntryPayload::Elided,
        });
        entries.push(Entry {
            term: 2,
            index: 11,
            payload: EntryPayload::Command(Bytes::new()),
        });
        for entry in entries {
            let buf = encoded(&entry);
            let peeked = peek_record(&buf[body(&buf)]).unwrap();
            let (index, term) = (entry.index, entry.term);
            assert_eq!(peeked, Peeked::Entry { index, term });
            let decoded = decode_record(&buf, body(&buf)).unwrap();
            assert_eq!(decoded, Record::Entry(entry));
        }
    }

    #[test]
    fn command_payloads_share_the_buffer() {
        let entry = sample_entry(7, 2, 100);
        let buf = encoded(&entry);
        let Record::Entry(Entry {
            payload: EntryPayload::Command(payload),
            ..
        }) = decode_record(&buf, body(&buf)).unwrap()
        else {
            panic!("not a command");
        };
        let inside = buf.as_ptr_range();
        assert!(inside.contains(&payload.as_ptr()), "the payload was copied");
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        // Goal: every cut and every byte value in the value's first bytes gives an error or
        // some entry, never a panic; a cut or a stray byte is always an error.
        let entry = sample_entry(300, 70_000, 20);
        let buf = encoded(&entry);
        let range = body(&buf);
        for end in range.start..range.end {
            assert!(
                decode_record(&buf, range.start..end).is_err(),
                "cut at {end}"
            );
            assert!(peek_record(&buf[range.start..end]).is_err(), "cut at {end}");
        }
        let mut longer = buf.to_vec();
        longer.push(9);
        let longer = Bytes::from(longer);
        assert!(decode_record(&longer, range.start..longer.len()).is_err());
        assert!(peek_record(&longer[range.start..]).is_err());
        for at in range.start..range.start + 8 {
            for value in 0..=255u8 {
                let mut damaged = buf.to_vec();
                damaged[at] = value;
                let damaged = Bytes::from(damaged);
                let decoded = decode_record(&damaged, range.clone());
                let peeked = peek_record(&damaged[range.clone()]);
                assert_eq!(decoded.is_ok(), peeked.is_ok(), "byte {at} = {value}");
            }
        }
        assert!(varint(&[0xff; 11], &mut 0).is_err());
        assert!(
            varint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                &mut 0
            )
            .is_err()
        );
        assert_eq!(
            varint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                &mut 0
            ),
            Ok(u64::MAX)
        );
    }
}
