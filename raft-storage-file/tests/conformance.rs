//! Runs raft-core's storage conformance kit against `FileStorage`: with clean reopens, with
//! small segments (many roll-overs and removals), and with simulated power losses that cut
//! the unsynced tail of the log.

mod common;

use common::Files;
use raft_core::conformance;

#[test]
fn file_storage_conforms() {
    conformance::assert_conforms(&mut Files::default());
}

#[test]
fn file_storage_conforms_with_small_segments() {
    // Many segments, read by reader threads (a log this small is read inline by default).
    conformance::assert_conforms(&mut Files {
        segment_bytes_max: Some(700),
        recovery_threads: Some(3),
        ..Files::default()
    });
}

#[test]
fn file_storage_conforms_across_power_losses() {
    // Goal: whatever part of the unsynced tail survives, reopening yields a state the
    // model passed through since the last sync (never a mix, never less than synced).
    let mut files = Files {
        power_loss: Some(7),
        segment_bytes_max: Some(2000),
        recovery_threads: Some(2),
        ..Files::default()
    };
    for seed in 10..16 {
        let ops = conformance::random_ops(seed, 120);
        conformance::check_ops(&mut files, &ops).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    assert!(
        files.torn_tails_seen > 5,
        "only {} reopens found a torn tail",
        files.torn_tails_seen
    );
}
