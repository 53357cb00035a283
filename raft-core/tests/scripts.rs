//! Transcript tests: each file in `tests/scripts/` is a scenario written as commands and
//! their expected output (the `goldenscript` format: command lines, `---`, output), run
//! against real nodes through the public API. Regenerate the expected output with
//! `UPDATE_GOLDENFILES=1 cargo test -p raft-core --test scripts` and review the diff: every
//! expected output is a claim about Raft behaviour, checked by a reader.

#[path = "scripts/harness/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts")
}

fn run(name: &str) {
    let path = scripts_dir().join(name);
    let mut runner = harness::Runner::new();
    if let Err(error) = goldenscript::run(&mut runner, &path) {
        panic!("script {name}: {error}");
    }
}

/// One test per script, so each runs (and fails) on its own.
macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*

        /// Every script file has a test, and every test a file.
        #[test]
        fn every_script_is_listed() {
            let listed: std::collections::BTreeSet<&str> = [$(stringify!($name)),*].into();
            let mut files = std::collections::BTreeSet::new();
            for entry in std::fs::read_dir(scripts_dir()).expect("scripts dir") {
                let entry = entry.expect("dir entry");
                if entry.file_type().expect("file type").is_file() {
                    files.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
            let files: std::collections::BTreeSet<&str> = files.iter().map(String::as_str).collect();
            let files: std::collections::BTreeSet<&str> =
                files.into_iter().filter(|f| *f != "README.md").collect();
            assert_eq!(listed, files, "tests/scripts.rs must list exactly the script files");
        }
    };
}

scripts! {
    checkquorum_joint,
    checkquorum_leader_steps_down,
    checkquorum_one_follower_enough,
    checkquorum_same_term_sticky,
    checkquorum_vote_stickiness,
    commit_stale_append,
    commit_figure8,
    commit_figure8_overwrite,
    commit_follower_last_new_entry,
    commit_large_cluster,
    durability_append_ack_waits,
    durability_candidate_own_vote,
    durability_leader_counts_itself_when_durable,
    durability_restart_term_from_log,
    durability_stale_notice_overwritten,
    durability_vote_waits_for_write,
    election_basic,
    election_candidate_steps_down,
    election_higher_term,
    election_log_up_to_date,
    election_single_node,
    election_split_vote,
    election_vote_once_per_term,
    joint_add_voter,
    joint_catch_up_timeout,
    joint_change_in_progress,
    joint_leader_removed_steps_down,
    joint_new_leader_leaves_joint,
    joint_replace_voters,
    learner_auto_promote,
    learner_replication,
    log_conflict_hints,
    log_figure7,
    log_follower_lost_entries,
    log_truncate_uncommitted,
    malformed_forged_append,
    malformed_index_gap,
    malformed_overwrite_committed,
    malformed_response_newer_term,
    malformed_term_max,
    malformed_timeout_now,
    prevote_behind_by_one_term,
    prevote_partitioned_node,
    prevote_rejected_keeps_term,
    prevote_then_vote,
    proposal_forwarding,
    proposal_limits,
    proposal_not_forwarded,
    read_fails_on_step_down,
    read_follower,
    read_forwarded_leader_reelected,
    read_forwarded_same_leader_not_resent,
    read_index_basic,
    read_index_new_leader_waits,
    read_lease,
    read_lease_disabled,
    read_timeout,
    replication_flow_control,
    replication_probe_one_at_a_time,
    replication_reject_backoff,
    replication_window_refill,
    snapshot_catch_up_chunks,
    snapshot_chunk_lost_resume,
    snapshot_chunk_new_leader_restarts,
    snapshot_install_keeps_suffix,
    snapshot_install_no_campaign,
    snapshot_overlap_append,
    snapshot_restart,
    snapshot_transfer_ends_when_follower_caught_up,
    snapshot_transfer_goes_on_after_a_short_ack,
    timers_sleeping_leader,
    transfer_basic,
    transfer_catch_up_first,
    transfer_invalid_targets,
    transfer_target_removed,
    transfer_timeout,
    witness_replication,
    witness_snapshot_without_data,
}
