//! Model-based property test: random operations on `FileStorage` and on the in-memory
//! reference model (raft-core's `MemStorage`), with reopens at random points, must agree
//! on every call's outcome and on everything observable after it.

mod common;

use common::Files;
use proptest::prelude::*;
use raft_core::conformance::{self, Op};

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (1..=8u8, prop::bool::weighted(0.15), 0..=300u16).prop_map(|(count, step, payload_bytes)| {
            Op::Append { count, term_step: u8::from(step), payload_bytes }
        }),
        12 => Just(Op::Sync),
        8 => (0..=1u8, prop::option::of(1..=5u64)).prop_map(|(term_step, vote)| Op::SaveHardState { term_step, vote }),
        8 => (0..=6u8).prop_map(|count| Op::TruncateSuffix { count }),
        6 => (0..=5u8, 0..=2000u16).prop_map(|(back, data_bytes)| Op::LocalSnapshot { back, data_bytes }),
        5 => (0..=4u8).prop_map(|back| Op::Compact { back }),
        5 => (-6..=4i8, any::<bool>(), 0..=2000u16)
            .prop_map(|(offset, conflicting, data_bytes)| Op::LeaderSnapshot { offset, conflicting, data_bytes }),
        10 => Just(Op::Reopen),
        3 => Just(Op::Restore),
        2 => Just(Op::AppendGap),
        2 => Just(Op::AppendOverlap),
        2 => Just(Op::TruncateBelowFirst),
        2 => Just(Op::CompactBeyondSnapshot),
        2 => Just(Op::StaleSnapshot),
        2 => (0..=500u16).prop_map(|data_bytes| Op::AbandonSnapshot { data_bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn file_storage_agrees_with_the_model(
        ops in prop::collection::vec(op(), 1..70),
        segment_bytes_max in prop_oneof![Just(600u64), Just(4000u64), Just(64u64 << 20)],
        power_loss in prop::option::of(any::<u64>()),
        recovery_threads in prop_oneof![Just(None), Just(Some(1)), Just(Some(3))],
    ) {
        let mut files = Files {
            segment_bytes_max: Some(segment_bytes_max),
            power_loss,
            recovery_threads,
            ..Files::default()
        };
        let outcome = conformance::check_ops(&mut files, &ops);
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
