//! Decoding a logged [`Command`] whose large values share the log entry's bytes.
//!
//! serde's `Bytes` decoder copies. A 1 MB put was copied once more when applied, into
//! fresh heap the store then kept (page faults on every put; see BENCHMARKS.md,
//! perf-bytes2). Here postcard decodes a borrowed mirror of [`Command`] (the same wire
//! format: `&[u8]` and `Bytes` are both postcard byte strings) and large values become
//! slices of the entry. Small ones are still copied, so a 100-byte value never keeps a
//! whole append frame or log read alive.

use bytes::Bytes;
use serde::Deserialize;

use crate::command::{Command, Condition, Op, SessionRequest};

/// Values at least this long are shared with the entry instead of copied (the transport
/// slices payloads from this size on too, see raft-transport-tcp's append_slices).
pub(crate) const SHARE_BYTES_MIN: usize = 64 * 1024;

#[derive(Deserialize)]
struct CommandRef<'a> {
    now_ms: u64,
    session: Option<SessionRequest>,
    #[serde(borrow)]
    op: OpRef<'a>,
}

#[derive(Deserialize)]
enum OpRef<'a> {
    Put {
        key: &'a [u8],
        value: &'a [u8],
        #[serde(borrow)]
        condition: ConditionRef<'a>,
    },
    Delete {
        key: &'a [u8],
        #[serde(borrow)]
        condition: ConditionRef<'a>,
    },
}

#[derive(Deserialize)]
enum ConditionRef<'a> {
    Always,
    Absent,
    ModRevision(u64),
    Value(&'a [u8]),
}

/// Decodes `bytes` as postcard would decode a [`Command`] (trailing bytes ignored, as
/// `postcard::from_bytes` does), sharing values of [`SHARE_BYTES_MIN`] bytes and more with
/// `bytes`. `None` when postcard refuses the bytes.
pub(crate) fn decode(bytes: &Bytes) -> Option<Command> {
    let command: CommandRef<'_> = postcard::from_bytes(bytes).ok()?;
    let share = |part: &[u8]| share(bytes, part);
    let condition = |c: ConditionRef<'_>| match c {
        ConditionRef::Always => Condition::Always,
        ConditionRef::Absent => Condition::Absent,
        ConditionRef::ModRevision(revision) => Condition::ModRevision(revision),
        ConditionRef::Value(value) => Condition::Value(share(value)),
    };
    let op = match command.op {
        OpRef::Put {
            key,
            value,
            condition: c,
        } => Op::Put {
            key: Bytes::copy_from_slice(key),
            value: share(value),
            condition: condition(c),
        },
        OpRef::Delete { key, condition: c } => Op::Delete {
            key: Bytes::copy_from_slice(key),
            condition: condition(c),
        },
    };
    Some(Command {
        now_ms: command.now_ms,
        session: command.session,
        op,
    })
}

/// `part` as a slice of `source` when it is large and lies within it (postcard's borrowed
/// byte strings always do), otherwise as a copy.
fn share(source: &Bytes, part: &[u8]) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(source.as_ptr() as usize);
    let within = start <= source.len() && part.len() <= source.len() - start;
    if part.len() >= SHARE_BYTES_MIN && within {
        source.slice(start..start + part.len())
    } else {
        Bytes::copy_from_slice(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes_of(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    fn condition_strategy() -> impl Strategy<Value = Condition> {
        prop_oneof![
            Just(Condition::Always),
            Just(Condition::Absent),
            any::<u64>().prop_map(Condition::ModRevision),
            (0usize..3).prop_map(|size| Condition::Value(bytes_of(size * 40_000, 7))),
        ]
    }

    fn command_strategy() -> impl Strategy<Value = Command> {
        let session = proptest::option::of((any::<u64>(), any::<u64>()).prop_map(
            |(client_id, sequence)| SessionRequest {
                client_id,
                sequence,
            },
        ));
        let op = prop_oneof![
            (
                proptest::collection::vec(any::<u8>(), 0..8),
                prop_oneof![
                    0usize..200,
                    Just(SHARE_BYTES_MIN - 1),
                    Just(SHARE_BYTES_MIN),
                    Just(300_000)
                ],
                condition_strategy()
            )
                .prop_map(|(key, size, condition)| Op::Put {
                    key: key.into(),
                    value: bytes_of(size, 3),
                    condition,
                }),
            (
                proptest::collection::vec(any::<u8>(), 0..8),
                condition_strategy()
            )
                .prop_map(|(key, condition)| Op::Delete {
                    key: key.into(),
                    condition,
                }),
        ];
        (any::<u64>(), session, op).prop_map(|(now_ms, session, op)| Command {
            now_ms,
            session,
            op,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Goal: the shared decoder reads back every command exactly as postcard does, and
        /// a large value is a slice of the entry, not a copy.
        #[test]
        fn agrees_with_postcard_and_shares_large_values(command in command_strategy()) {
            let bytes = Bytes::from(postcard::to_stdvec(&command).unwrap());
            let decoded = decode(&bytes).unwrap();
            prop_assert_eq!(&decoded, &command);
            prop_assert_eq!(&decoded, &postcard::from_bytes::<Command>(&bytes).unwrap());
            if let Op::Put { value, .. } = &decoded.op {
                let inside = bytes.as_ptr_range().contains(&value.as_ptr());
                prop_assert_eq!(inside, value.len() >= SHARE_BYTES_MIN);
            }
        }

        /// Goal: on damaged or arbitrary bytes the shared decoder answers what postcard
        /// answers (or nothing where postcard refuses), and never panics.
        #[test]
        fn damaged_bytes_decode_as_postcard_decodes(
            command in command_strategy(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            xor in 1u8..,
        ) {
            let mut raw = postcard::to_stdvec(&command).unwrap();
            let at = flip.index(raw.len());
            raw[at] ^= xor;
            raw.truncate(cut.index(raw.len() + 1));
            let bytes = Bytes::from(raw);
            prop_assert_eq!(decode(&bytes), postcard::from_bytes::<Command>(&bytes).ok());
        }
    }

    /// Goal: bytes that are not a command at all decode to nothing, as in postcard.
    #[test]
    fn garbage_is_refused() {
        for garbage in [&[][..], &[0], &[1, 2, 3], &[0xff; 12]] {
            let bytes = Bytes::copy_from_slice(garbage);
            assert_eq!(decode(&bytes), postcard::from_bytes::<Command>(&bytes).ok());
        }
    }
}
