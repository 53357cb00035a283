//! Golden trace digests: the key-value simulation replays recorded runs bit for bit.

use raft_sim::store::StorageKind;
use raft_sim::{Bug, SimOptions};
use raft_sim_kv::{DEFAULT_KEYS, simulate};

/// (seed, bug, storage, digest) of
/// `raft-sim run --seed <seed> --ops 200 [--bug <bug>] [--storage file]`.
///
/// Recorded with the simulator before the KV workload moved onto the public generic API
/// (sim-engine 548a7eb, the host-port milestone, KV built into raft-sim): the move changed no event. (Before the
/// engine-driven host, main 6c7f79a, the same held against that host's digests.) A change
/// to the host, the faults, the network or the workload changes the runs on purpose; then
/// re-record (the failure message prints the new table). Re-recorded when lease reads
/// began to be served beside the engine from its lease grant (perf-lease): the runs with
/// lease reads on (seeds 0, 2, 5, 6; seed 0 with no sessions) changed, the rest did not.
/// Re-recorded when the leader began telling a follower at once that the commit index
/// reached an entry it forwarded or a read index it was given (an empty append, instead of
/// the next heartbeat): every run changed.
/// Re-recorded when linearizable reads began to share one ReadIndex round per flush, one
/// round in flight at a time (perf-reads): every run with linearizable reads changed.
/// Re-recorded when the engine began judging silence (election timeout, check-quorum) after
/// the messages handed over with the ticks, not before them (perf-errors): seeds 0, 2, 3, 4
/// and 7 changed (runs where a message and an expiring timer met in one step), 1, 5, 6 and
/// the file-storage run did not.
const GOLDEN: &[(u64, Option<Bug>, StorageKind, &str)] = &[
    (0, None, StorageKind::Memory, "0e1cb59dc99f40e3"),
    (1, None, StorageKind::Memory, "c3213cd7ad8821b7"),
    (2, None, StorageKind::Memory, "cc61e0a41ca3eff3"),
    (3, None, StorageKind::Memory, "d1e1f66079122df8"),
    (4, None, StorageKind::Memory, "421f73335283e592"),
    (5, None, StorageKind::Memory, "cf50e3b34698bd39"),
    (6, None, StorageKind::Memory, "6f92f522bff28750"),
    (7, None, StorageKind::Memory, "6f4d3570677c9b33"),
    (1, None, StorageKind::File, "4b07206a6db82459"),
    (
        0,
        Some(Bug::NoSessions),
        StorageKind::Memory,
        "870522510c32b292",
    ),
    (
        1,
        Some(Bug::NoSessions),
        StorageKind::Memory,
        "7636288f85eedf87",
    ),
    (
        0,
        Some(Bug::StaleReads),
        StorageKind::Memory,
        "058555f43d6b26d9",
    ),
];

/// Goal: the same seed and options give the same run as recorded, event for event, so a
/// refactoring that should not change behaviour provably does not.
/// Method: run each recorded case and compare the trace digest.
#[test]
fn key_value_runs_replay_the_recorded_digests() {
    let actual: Vec<String> = GOLDEN
        .iter()
        .map(|&(seed, bug, storage, _)| {
            let options = SimOptions {
                operations: 200,
                bug,
                storage,
                ..SimOptions::standard(seed)
            };
            simulate(options, DEFAULT_KEYS).digest
        })
        .collect();
    let same = GOLDEN
        .iter()
        .zip(&actual)
        .all(|(golden, actual)| golden.3 == actual);
    let table: Vec<String> = GOLDEN
        .iter()
        .zip(&actual)
        .map(|((seed, bug, storage, _), digest)| {
            let bug = bug.map_or("None".to_string(), |b| format!("Some(Bug::{b:?})"));
            format!("    ({seed}, {bug}, StorageKind::{storage:?}, \"{digest}\"),")
        })
        .collect();
    assert!(
        same,
        "trace digests differ from the recorded ones; if the change is meant to alter runs, \
         re-record:\n{}",
        table.join("\n")
    );
}
