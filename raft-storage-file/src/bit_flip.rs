//! Finds the one bit whose flip would make a CRC-32C match: the signature of a bit flipped
//! at rest, which recovery must not mistake for a write a crash interrupted.
//!
//! CRC-32C is affine: `crc(a ^ e) = crc(a) ^ raw(e)`, where `raw` runs the register from
//! zero with no final xor. A single bit `j` of byte `k` in an `n`-byte message gives
//! `raw(e) = Z^(n-1-k)(T[1 << j])`, `T` the byte table and `Z` one step over a zero byte.
//! `Z` is a bijection, so stepping the syndrome back one byte at a time finds `k` and `j` in
//! `O(8n)` without recomputing any checksum.

/// CRC-32C (Castagnoli), reflected.
const POLY: u32 = 0x82F6_3B78;

const fn byte_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

const TABLE: [u32; 256] = byte_table();

/// The table index of each top byte: the top bytes of a reflected CRC's table are all
/// different (checked by a test), which makes a zero-byte step invertible.
const fn top_byte_index() -> [u8; 256] {
    let mut inverse = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        inverse[(TABLE[i] >> 24) as usize] = i as u8;
        i += 1;
    }
    inverse
}

const TOP_BYTE_INDEX: [u8; 256] = top_byte_index();

/// Undoes one step of the register over a zero byte (`r' = T[r & 0xff] ^ (r >> 8)`).
fn step_back(register: u32) -> u32 {
    let low = TOP_BYTE_INDEX[(register >> 24) as usize];
    ((register ^ TABLE[low as usize]) << 8) | u32::from(low)
}

/// The byte of `data` in which one flipped bit would make `crc32c(data) == expected`, if
/// there is such a bit.
pub(crate) fn single_bit_error(data: &[u8], expected: u32) -> Option<usize> {
    let mut syndrome = crc32c::crc32c(data) ^ expected;
    if syndrome == 0 {
        return None;
    }
    for back in 0..data.len() {
        if (0..8).any(|bit| syndrome == TABLE[1 << bit]) {
            return Some(data.len() - 1 - back);
        }
        syndrome = step_back(syndrome);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_crc32c_and_its_top_bytes_are_all_different() {
        let mut seen = [false; 256];
        for entry in TABLE {
            assert!(!seen[(entry >> 24) as usize]);
            seen[(entry >> 24) as usize] = true;
        }
        // The standard check value.
        let mut crc = !0u32;
        for byte in b"123456789" {
            crc = TABLE[((crc ^ u32::from(*byte)) & 0xff) as usize] ^ (crc >> 8);
        }
        assert_eq!(!crc, crc32c::crc32c(b"123456789"));
    }

    #[test]
    fn every_single_bit_flip_is_located() {
        let data: Vec<u8> = (0..97u32).map(|i| (i * 37 + 11) as u8).collect();
        let crc = crc32c::crc32c(&data);
        assert_eq!(single_bit_error(&data, crc), None);
        for bit in 0..data.len() * 8 {
            let mut flipped = data.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(single_bit_error(&flipped, crc), Some(bit / 8), "bit {bit}");
        }
    }

    #[test]
    fn other_damage_is_not_taken_for_one_flipped_bit() {
        let data: Vec<u8> = (0..64u32).map(|i| (i * 13 + 5) as u8).collect();
        let crc = crc32c::crc32c(&data);
        for at in (0..data.len()).step_by(3) {
            let mut zeroed = data.clone();
            zeroed[at..].fill(0);
            if zeroed[at..] != data[at..] {
                let differing: u32 = data[at..].iter().map(|b| b.count_ones()).sum();
                if differing > 1 {
                    assert_eq!(single_bit_error(&zeroed, crc), None, "zeroed from {at}");
                }
            }
        }
    }
}
