//! The named scenario checks listed by [`checks`], grouped by topic.

mod durability;
mod log;
mod snapshots;

use super::harness::{Check, Harness};

/// Every scenario check, in a fixed order.
pub fn checks<H: Harness>() -> Vec<Check<H>> {
    vec![
        Check {
            name: "fresh_store_is_empty",
            run: log::fresh_store_is_empty::<H>,
        },
        Check {
            name: "append_then_read_back",
            run: log::append_then_read_back::<H>,
        },
        Check {
            name: "append_rejects_gaps_and_overlaps",
            run: log::append_rejects_gaps_and_overlaps::<H>,
        },
        Check {
            name: "truncate_suffix_then_append",
            run: log::truncate_suffix_then_append::<H>,
        },
        Check {
            name: "compact_prefix",
            run: log::compact_prefix::<H>,
        },
        Check {
            name: "misuse_after_compaction_is_an_error",
            run: log::misuse_after_compaction::<H>,
        },
        Check {
            name: "hard_state_survives_reopen",
            run: durability::hard_state_survives_reopen::<H>,
        },
        Check {
            name: "synced_writes_survive_reopen",
            run: durability::synced_writes_survive_reopen::<H>,
        },
        Check {
            name: "unsynced_writes_reopen_to_a_prefix",
            run: durability::unsynced_writes_reopen_to_a_prefix::<H>,
        },
        Check {
            name: "snapshot_round_trip",
            run: snapshots::snapshot_round_trip::<H>,
        },
        Check {
            name: "snapshot_reader_seeks_within_the_data",
            run: snapshots::snapshot_reader_seeks::<H>,
        },
        Check {
            name: "abandoned_snapshot_is_invisible",
            run: snapshots::abandoned_snapshot_is_invisible::<H>,
        },
        Check {
            name: "stale_snapshot_is_rejected",
            run: snapshots::stale_snapshot_is_rejected::<H>,
        },
        Check {
            name: "install_snapshot_log_keeps_matching_suffix",
            run: snapshots::install_keeps_matching_suffix::<H>,
        },
        Check {
            name: "install_snapshot_log_drops_conflicting_log",
            run: snapshots::install_drops_conflicting_log::<H>,
        },
        Check {
            name: "restore_drops_log_conflicting_with_snapshot",
            run: durability::restore_drops_conflicting_log::<H>,
        },
        Check {
            name: "random_ops_agree_with_model",
            run: durability::random_ops_agree_with_model::<H>,
        },
    ]
}
