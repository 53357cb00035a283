//! The store's map key: bytes ordered exactly as `[u8]` orders them.
//!
//! A put or get compares its key with about 17 others on the way down the tree. With the
//! keys as `Bytes`, each comparison followed a pointer to a separate allocation: a cache miss
//! per comparison on a map larger than the cache, which profiles showed as most of the map's
//! time. Keys of up to [`INLINE_KEY_BYTES`] bytes are now held inside the tree's nodes
//! (longer ones spill to the heap as before), and compared eight bytes at a time inline
//! instead of by a `memcmp` call, since keys in practice share long prefixes
//! (`bench/<run id>/…`, `app/users/…`).

use std::borrow::Borrow;
use std::cmp::Ordering;

use bytes::Bytes;
use equivalent::{Comparable, Equivalent};
use smallvec::SmallVec;

/// Keys up to this long live inside the map's nodes. 32 covers the bench's keys
/// (`bench/<8 hex>/<10 digits>`, 25 bytes) and keeps a key at 40 bytes, 8 more than `Bytes`.
pub(crate) const INLINE_KEY_BYTES: usize = 32;

/// A stored key. Orders, compares and hashes as its bytes do, so ranges may be looked up by
/// `[u8]` bounds (through `Borrow<[u8]>`) and agree with this order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StoreKey(SmallVec<[u8; INLINE_KEY_BYTES]>);

const _: () = assert!(std::mem::size_of::<StoreKey>() == 40);

impl StoreKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        Self(SmallVec::from_slice(key))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The key as `Bytes` (a copy: answers and snapshots hand keys out as `Bytes`).
    pub(crate) fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.0)
    }
}

impl Ord for StoreKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

impl PartialOrd for StoreKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Borrow<[u8]> for StoreKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// A borrowed key to look a [`StoreKey`] up by, with the same fast comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a>(pub(crate) &'a [u8]);

impl Equivalent<StoreKey> for KeyRef<'_> {
    fn equivalent(&self, key: &StoreKey) -> bool {
        self.0 == key.as_slice()
    }
}

impl Comparable<StoreKey> for KeyRef<'_> {
    fn compare(&self, key: &StoreKey) -> Ordering {
        compare(self.0, &key.0)
    }
}

/// Lexicographic byte order (as `<[u8] as Ord>::cmp`): big-endian words compare as their
/// bytes do, and the shorter key's last partial word is zero-padded on both sides, which
/// cannot reorder two keys whose bytes up to that length are equal (length decides then).
fn compare(left: &[u8], right: &[u8]) -> Ordering {
    let common = left.len().min(right.len());
    let (left_words, left_tail) = left[..common].as_chunks::<8>();
    let (right_words, right_tail) = right[..common].as_chunks::<8>();
    for (l, r) in left_words.iter().zip(right_words) {
        if l != r {
            return u64::from_be_bytes(*l).cmp(&u64::from_be_bytes(*r));
        }
    }
    padded(left_tail)
        .cmp(&padded(right_tail))
        .then(left.len().cmp(&right.len()))
}

/// Up to seven bytes as a big-endian word, zero-padded at the end. A loop rather than
/// `copy_from_slice`, which calls `memcpy` for a length not known at compile time.
fn padded(tail: &[u8]) -> u64 {
    tail.iter().enumerate().fold(0, |word, (at, byte)| {
        word | u64::from(*byte) << (56 - 8 * at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![255],
            vec![255, 0],
            b"bench/3f9a01c2/0000000001".to_vec(),
            b"bench/3f9a01c2/0000000010".to_vec(),
            b"bench/3f9a01c2/".to_vec(),
            b"bench/3f9a01c2".to_vec(),
            b"bench/3f9a01c3/0000000001".to_vec(),
            b"abcdefgh".to_vec(),
            b"abcdefgh\0".to_vec(),
            b"abcdefghi".to_vec(),
            b"abcdefg".to_vec(),
            // Longer than the inline capacity, and equal to it up to there.
            [b"bench/3f9a01c2/0000000001".as_slice(), &[b'x'; 40]].concat(),
            [b"bench/3f9a01c2/0000000001".as_slice(), &[b'y'; 40]].concat(),
            vec![b'k'; INLINE_KEY_BYTES],
            vec![b'k'; INLINE_KEY_BYTES + 1],
        ];
        // Every length up to 20 with bytes at both ends of the range.
        for len in 0..20u8 {
            keys.push((0..len).map(|i| i.wrapping_mul(37)).collect());
            keys.push(vec![0xff; len as usize]);
            keys.push(vec![0x00; len as usize]);
        }
        keys
    }

    #[test]
    fn orders_exactly_as_byte_slices_do() {
        let keys = keys();
        for left in &keys {
            for right in &keys {
                let expected = left.as_slice().cmp(right.as_slice());
                let (l, r) = (StoreKey::new(left), StoreKey::new(right));
                assert_eq!(l.cmp(&r), expected, "{left:?} vs {right:?}");
                assert_eq!(KeyRef(left).compare(&r), expected, "{left:?} vs {right:?}");
                assert_eq!(KeyRef(left).equivalent(&r), left == right);
                assert_eq!(l == r, left == right);
                assert_eq!(r.to_bytes(), &right[..]);
            }
        }
    }
}
