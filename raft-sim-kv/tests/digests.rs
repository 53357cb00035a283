//! Golden trace digests: the key-value simulation replays recorded runs bit for bit.

use raft_sim::{Bug, SimOptions};
use raft_sim_kv::{DEFAULT_KEYS, simulate};

/// (seed, bug, digest) of `raft-sim run --seed <seed> --ops 200 [--bug <bug>]`.
///
/// Recorded with the simulator before it became generic (raft-sim 6c7f79a, where the KV
/// workload was built in): moving the KV workload onto the public API changed no event.
/// A change to the host, the faults, the network or the workload changes the runs on
/// purpose; then re-record (the failure message prints the new table).
const GOLDEN: &[(u64, Option<Bug>, &str)] = &[
    (0, None, "d1c2c6e9bfcb67bb"),
    (1, None, "67193cfadb56191e"),
    (2, None, "ec4382e5b968d80d"),
    (3, None, "2873912e5cb37c81"),
    (4, None, "f98d8875b801dc7c"),
    (5, None, "bf9e23b42ef34939"),
    (6, None, "f1faf99a605f4fde"),
    (7, None, "74bdf9f8b037c201"),
    (0, Some(Bug::NoSessions), "83e0b7c8643d6f25"),
    (1, Some(Bug::NoSessions), "9a9d6ff57e358a76"),
    (0, Some(Bug::StaleReads), "c0fbe63df9763a5e"),
    (1, Some(Bug::StaleReads), "b00aab36a481318f"),
];

/// Goal: the same seed and options give the same run as recorded, event for event, so a
/// refactoring that should not change behaviour provably does not.
/// Method: run each recorded case and compare the trace digest.
#[test]
fn key_value_runs_replay_the_recorded_digests() {
    let actual: Vec<(u64, Option<Bug>, String)> = GOLDEN
        .iter()
        .map(|&(seed, bug, _)| {
            let options = SimOptions {
                operations: 200,
                bug,
                ..SimOptions::standard(seed)
            };
            (seed, bug, simulate(options, DEFAULT_KEYS).digest)
        })
        .collect();
    let same = GOLDEN
        .iter()
        .zip(&actual)
        .all(|(golden, actual)| golden.2 == actual.2);
    let table: Vec<String> = actual
        .iter()
        .map(|(seed, bug, digest)| {
            let bug = bug.map_or("None".to_string(), |b| format!("Some(Bug::{b:?})"));
            format!("    ({seed}, {bug}, \"{digest}\"),")
        })
        .collect();
    assert!(
        same,
        "trace digests differ from the recorded ones; if the change is meant to alter runs, \
         re-record:\n{}",
        table.join("\n")
    );
}
