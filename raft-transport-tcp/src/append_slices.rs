//! Decodes a large append frame with its big command payloads as slices of the frame.
//!
//! serde's `Bytes` decoding copies every payload out of the frame into a fresh allocation;
//! for 1 MB values that copy (and the fresh pages behind it) was a large part of a
//! follower's CPU. This reads the same postcard bytes field by field, with postcard's own
//! primitive decoders, and hands out `Bytes::slice`s of the frame for large payloads. The
//! wire format does not change.
//!
//! It only ever answers for frames it fully understands: anything else (another message
//! kind, a membership entry, a malformed field, bytes left over) returns `None` and the
//! caller decodes the frame the ordinary way, which gives the authoritative answer and
//! error. Small payloads are still copied, so that a 100-byte entry kept in the log does not
//! pin the whole frame's buffer.

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, Message, MessageBody};
use serde::de::DeserializeOwned;

/// Payloads at least this large become slices of the frame; smaller ones are copied. At
/// this size a slice pins at most the frame around it, which is then mostly payload.
pub(crate) const SLICE_MIN_PAYLOAD_BYTES: usize = 64 << 10;

/// Postcard's variant index of `MessageBody::Append` (declaration order in raft-core).
const APPEND_VARIANT: u32 = 2;
/// Postcard's variant index of `EntryPayload::Noop`.
const NOOP_VARIANT: u32 = 0;
/// Postcard's variant index of `EntryPayload::Command`.
const COMMAND_VARIANT: u32 = 1;
/// Postcard's variant index of `EntryPayload::Elided`.
const ELIDED_VARIANT: u32 = 3;
/// Fewest bytes an encoded entry takes (term, index, payload variant): bounds the
/// capacity reserved from an announced entry count.
const MIN_ENTRY_BYTES: usize = 3;

/// The message in `frame` if it is an append made only of no-op, command and elided
/// entries that decodes completely; `None` otherwise (decode it the ordinary way).
pub(crate) fn decode_append(frame: &Bytes) -> Option<Message> {
    let mut reader = Reader { frame, at: 0 };
    let from = reader.take::<u64>()?;
    let to = reader.take::<u64>()?;
    let term = reader.take::<u64>()?;
    if reader.take::<u32>()? != APPEND_VARIANT {
        return None;
    }
    let prev_log_index = reader.take::<u64>()?;
    let prev_log_term = reader.take::<u64>()?;
    let count = reader.take::<usize>()?;
    let mut entries = Vec::with_capacity(count.min(reader.remaining() / MIN_ENTRY_BYTES));
    for _ in 0..count {
        entries.push(reader.entry()?);
    }
    let leader_commit = reader.take::<u64>()?;
    if reader.remaining() != 0 {
        return None;
    }
    Some(Message {
        from,
        to,
        term,
        body: MessageBody::Append {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        },
    })
}

/// A position in the frame.
struct Reader<'a> {
    frame: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.frame.len() - self.at
    }

    /// One value decoded by postcard (varints and their checks are postcard's own).
    fn take<T: DeserializeOwned>(&mut self) -> Option<T> {
        let rest = self.frame.get(self.at..)?;
        let (value, after) = postcard::take_from_bytes::<T>(rest).ok()?;
        self.at = self.frame.len() - after.len();
        Some(value)
    }

    fn entry(&mut self) -> Option<Entry> {
        let term = self.take::<u64>()?;
        let index = self.take::<u64>()?;
        let payload = match self.take::<u32>()? {
            NOOP_VARIANT => EntryPayload::Noop,
            COMMAND_VARIANT => EntryPayload::Command(self.bytes()?),
            ELIDED_VARIANT => EntryPayload::Elided,
            // Membership entries are rare: the ordinary decoder handles their frames.
            _ => return None,
        };
        Some(Entry {
            term,
            index,
            payload,
        })
    }

    /// A postcard byte string: a varint length, then the bytes.
    fn bytes(&mut self) -> Option<Bytes> {
        let length = self.take::<usize>()?;
        let end = self.at.checked_add(length)?;
        let data = self.frame.get(self.at..end)?;
        let bytes = if length >= SLICE_MIN_PAYLOAD_BYTES {
            self.frame.slice(self.at..end)
        } else {
            Bytes::copy_from_slice(data)
        };
        self.at = end;
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use raft_core::{Membership, Message};

    use super::*;

    fn ordinary(bytes: &[u8]) -> Option<Message> {
        match postcard::take_from_bytes::<Message>(bytes) {
            Ok((message, [])) => Some(message),
            _ => None,
        }
    }

    fn append(entries: Vec<Entry>) -> Message {
        Message {
            from: 1,
            to: 2,
            term: 7,
            body: MessageBody::Append {
                prev_log_index: 10,
                prev_log_term: 6,
                entries,
                leader_commit: 9,
            },
        }
    }

    fn command(index: u64, bytes: usize) -> Entry {
        Entry {
            term: 7,
            index,
            payload: EntryPayload::Command(Bytes::from(vec![index as u8; bytes])),
        }
    }

    /// Goal: a large payload comes back as a slice of the frame (no copy), a small one as
    /// its own buffer, and the message equals what the ordinary decoder gives.
    #[test]
    fn large_payloads_are_slices_of_the_frame() {
        let message = append(vec![command(11, SLICE_MIN_PAYLOAD_BYTES), command(12, 100)]);
        let frame = Bytes::from(postcard::to_stdvec(&message).expect("encodes"));
        let decoded = decode_append(&frame).expect("an append");
        assert_eq!(Some(&decoded), ordinary(&frame).as_ref());
        let MessageBody::Append { entries, .. } = &decoded.body else {
            panic!("decoded {decoded:?}");
        };
        let payload = |entry: &Entry| match &entry.payload {
            EntryPayload::Command(data) => data.as_ptr_range(),
            other => panic!("payload {other:?}"),
        };
        let inside = |range: std::ops::Range<*const u8>| {
            frame.as_ptr_range().start <= range.start && range.end <= frame.as_ptr_range().end
        };
        assert!(inside(payload(&entries[0])));
        assert!(!inside(payload(&entries[1])));
    }

    /// Goal: frames this path does not handle are left to the ordinary decoder.
    #[test]
    fn other_frames_are_left_to_the_ordinary_decoder() {
        let heartbeat = Message {
            from: 1,
            to: 2,
            term: 7,
            body: MessageBody::Heartbeat {
                commit: 3,
                round: 4,
            },
        };
        let membership = append(vec![Entry {
            term: 7,
            index: 11,
            payload: EntryPayload::Membership(Box::new(Membership::with_voters([1, 2, 3]))),
        }]);
        for message in [heartbeat, membership] {
            let frame = Bytes::from(postcard::to_stdvec(&message).expect("encodes"));
            assert_eq!(decode_append(&frame), None);
        }
        let mut trailing = postcard::to_stdvec(&append(vec![command(11, 5)])).expect("encodes");
        trailing.push(0);
        assert_eq!(decode_append(&Bytes::from(trailing)), None);
    }

    fn entry_strategy() -> impl Strategy<Value = Entry> {
        let payload = prop_oneof![
            Just(EntryPayload::Noop),
            Just(EntryPayload::Elided),
            (0usize..3, any::<u8>()).prop_map(|(size, byte)| {
                let bytes = [0, 100, SLICE_MIN_PAYLOAD_BYTES + 1][size];
                EntryPayload::Command(Bytes::from(vec![byte; bytes]))
            }),
        ];
        (any::<u64>(), any::<u64>(), payload).prop_map(|(term, index, payload)| Entry {
            term,
            index,
            payload,
        })
    }

    proptest! {
        /// Invariant: on an append of any entries, this decoder gives exactly what the
        /// ordinary one gives.
        #[test]
        fn agrees_with_the_ordinary_decoder(
            entries in proptest::collection::vec(entry_strategy(), 0..4),
            fields in any::<(u64, u64, u64, u64, u64, u64)>(),
        ) {
            let (from, to, term, prev_log_index, prev_log_term, leader_commit) = fields;
            let message = Message {
                from,
                to,
                term,
                body: MessageBody::Append { prev_log_index, prev_log_term, entries, leader_commit },
            };
            let frame = Bytes::from(postcard::to_stdvec(&message).expect("encodes"));
            prop_assert_eq!(decode_append(&frame), Some(message));
        }

        /// Invariant: on damaged bytes it never panics and never accepts a frame the
        /// ordinary decoder refuses (nor decodes one differently).
        #[test]
        fn never_more_lenient_than_the_ordinary_decoder(
            entries in proptest::collection::vec(entry_strategy(), 0..3),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = postcard::to_stdvec(&append(entries)).expect("encodes");
            for (at, value) in flips {
                let position = at.index(bytes.len());
                bytes[position] = value;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            if let Some(message) = decode_append(&Bytes::from(bytes.clone())) {
                prop_assert_eq!(Some(message), ordinary(&bytes));
            }
        }

        /// Invariant: arbitrary bytes never panic it, and whatever it accepts the ordinary
        /// decoder decodes the same.
        #[test]
        fn arbitrary_bytes_are_never_accepted_alone(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            if let Some(message) = decode_append(&Bytes::from(bytes.clone())) {
                prop_assert_eq!(Some(message), ordinary(&bytes));
            }
        }
    }
}
