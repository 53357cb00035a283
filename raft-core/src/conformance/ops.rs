//! The steps of a model-based run, and drawing them from a seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::types::NodeId;

/// One step of a model-based run. Indices and terms are chosen relative to the model's state
/// when the step runs, so any sequence of steps is meaningful.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Append `count` (at least 1) entries after the last index, in the last term plus
    /// `term_step`, each with `payload_bytes` of command bytes.
    Append {
        /// How many entries.
        count: u8,
        /// Added to the last entry's term.
        term_step: u8,
        /// Command size of each entry.
        payload_bytes: u16,
    },
    /// Misuse: append an entry one past the next index (a gap). Must fail.
    AppendGap,
    /// Misuse: append at the last index without truncating. Must fail.
    AppendOverlap,
    /// Remove the last `count` entries (as far as the first index).
    TruncateSuffix {
        /// How many entries to remove.
        count: u8,
    },
    /// Misuse: truncate from the index before the first. Must fail.
    TruncateBelowFirst,
    /// Save a hard state with the term raised by `term_step`.
    SaveHardState {
        /// Added to the current term.
        term_step: u8,
        /// The vote.
        vote: Option<NodeId>,
    },
    /// Make everything durable.
    Sync,
    /// Take and commit a snapshot of the local log `back` entries before its end (never
    /// before the current snapshot).
    LocalSnapshot {
        /// Distance from the last index.
        back: u8,
        /// Size of the snapshot's data.
        data_bytes: u16,
    },
    /// Receive a snapshot from a leader at `offset` from the last index (at least one past
    /// the current snapshot), commit it and call `install_snapshot_log`.
    LeaderSnapshot {
        /// Added to the last index.
        offset: i8,
        /// Use a term that differs from the local entry at that index.
        conflicting: bool,
        /// Size of the snapshot's data.
        data_bytes: u16,
    },
    /// Misuse: commit a snapshot older than the current one. Must fail (when there is one).
    StaleSnapshot,
    /// Write a snapshot and drop the writer without committing it.
    AbandonSnapshot {
        /// Size of the data written.
        data_bytes: u16,
    },
    /// Compact through `back` entries before the snapshot's index.
    Compact {
        /// Distance from the snapshot's index.
        back: u8,
    },
    /// Misuse: compact past the snapshot's index. Must fail.
    CompactBeyondSnapshot,
    /// Call `restore` on both and compare.
    Restore,
    /// Reopen the store through the harness; the model follows whatever the store kept, if
    /// that is allowed by the contract.
    Reopen,
}

/// Draws `count` operations from `seed`, weighted towards appends and syncs.
pub fn random_ops(seed: u64, count: usize) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| random_op(&mut rng)).collect()
}

fn random_op(rng: &mut ChaCha8Rng) -> Op {
    match rng.random_range(0..100u32) {
        0..=29 => Op::Append {
            count: rng.random_range(1..=8),
            term_step: u8::from(rng.random_bool(0.15)),
            payload_bytes: rng.random_range(0..=300),
        },
        30..=41 => Op::Sync,
        42..=49 => Op::SaveHardState {
            term_step: rng.random_range(0..=1),
            vote: rng.random_bool(0.7).then(|| rng.random_range(1..=5)),
        },
        50..=57 => Op::TruncateSuffix {
            count: rng.random_range(0..=6),
        },
        58..=63 => Op::LocalSnapshot {
            back: rng.random_range(0..=5),
            data_bytes: rng.random_range(0..=2000),
        },
        64..=68 => Op::Compact {
            back: rng.random_range(0..=4),
        },
        69..=73 => Op::LeaderSnapshot {
            offset: rng.random_range(-6..=4),
            conflicting: rng.random_bool(0.5),
            data_bytes: rng.random_range(0..=2000),
        },
        74..=83 => Op::Reopen,
        84..=86 => Op::Restore,
        87..=88 => Op::AppendGap,
        89..=90 => Op::AppendOverlap,
        91..=92 => Op::TruncateBelowFirst,
        93..=94 => Op::CompactBeyondSnapshot,
        95..=96 => Op::StaleSnapshot,
        _ => Op::AbandonSnapshot {
            data_bytes: rng.random_range(0..=500),
        },
    }
}
