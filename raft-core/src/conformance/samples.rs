//! Sample data for the checks: entries of every payload kind, bytes, snapshot metadata.

use bytes::Bytes;

use crate::membership::Membership;
use crate::types::{Entry, EntryPayload, Index, SnapshotMeta, Term};

/// Builds a sample entry: a command of `payload_bytes` bytes (never all zero), a no-op when
/// `payload_bytes` is 0, and a membership entry at every index that is 3 modulo 11, so every
/// payload kind reaches the store.
pub fn sample_entry(index: Index, term: Term, payload_bytes: usize) -> Entry {
    let payload = if index % 11 == 3 {
        EntryPayload::Membership(Box::new(Membership::with_voters([1, 2, index % 5 + 3])))
    } else if payload_bytes == 0 {
        EntryPayload::Noop
    } else {
        EntryPayload::Command(Bytes::from(sample_bytes(index, payload_bytes)))
    };
    Entry {
        term,
        index,
        payload,
    }
}

/// Deterministic, non-zero bytes derived from `seed`.
pub fn sample_bytes(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((seed.wrapping_mul(31).wrapping_add(i as u64 * 7)) % 251) as u8 + 1)
        .collect()
}

/// Entries `low..=high` in `term`, with payloads of varied sizes (and kinds).
pub(super) fn run_of(low: Index, high: Index, term: Term) -> Vec<Entry> {
    (low..=high)
        .map(|i| sample_entry(i, term, 40 + (i % 9) as usize * 10))
        .collect()
}

/// Snapshot metadata at `(index, term)` with a three-voter membership.
pub(super) fn meta(index: Index, term: Term) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership::with_voters([1, 2, 3]),
    }
}
