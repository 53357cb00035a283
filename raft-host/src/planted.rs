//! Deliberately broken variants of the engine, for showing that a simulator's checks are
//! not vacuous (raft-sim's `--bug`). Each is a plausible host bug planted in the real code
//! path, switched on per engine with `Engine::plant` (feature `planted-bugs`; without the
//! feature no bug can be switched on and every check below is the constant `false`).

/// A host-layer bug the engine can be told to have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantedBug {
    /// A persist batch's token is reported to the core the moment the core hands the batch
    /// out, before it is written, let alone synced.
    AckBeforeDurable,
    /// The disk lane reports a work durable when its writes are done and runs the sync at
    /// the start of the next work instead (a pipelined fsync that acknowledges too early).
    DurableBeforeSync,
    /// A work holding one small persist batch skips its sync although the batch needs one
    /// ("a lone write is cheap to lose").
    SkipSync,
    /// Entries are applied as soon as they are appended, before they are committed.
    ApplyBeforeCommit,
    /// A read is answered as soon as its read index is known, before the entries up to it
    /// are applied.
    ReplyBeforeApply,
    /// Linearizable and lease reads are answered from the local state at once, without
    /// asking the core to confirm leadership.
    StaleReads,
}

impl PlantedBug {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The bugs one engine has; empty unless the feature is on and a bug was planted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Planted {
    #[cfg(feature = "planted-bugs")]
    bits: u8,
}

impl Planted {
    /// True if `bug` is planted. Without the feature: always false, so the compiler drops
    /// every planted branch.
    #[inline(always)]
    pub(crate) fn has(self, bug: PlantedBug) -> bool {
        #[cfg(feature = "planted-bugs")]
        {
            self.bits & bug.bit() != 0
        }
        #[cfg(not(feature = "planted-bugs"))]
        {
            let _ = bug.bit();
            false
        }
    }

    #[cfg(feature = "planted-bugs")]
    pub(crate) fn add(&mut self, bug: PlantedBug) {
        self.bits |= bug.bit();
    }
}
