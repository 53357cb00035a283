//! Throughput of the key-value state machine: applying puts of 100-byte values (with and
//! without client sessions), and writing and restoring snapshots of 100,000 keys.
//! Run with `cargo bench -p raft-kv --bench kv_state_machine`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use raft_core::StateMachine;
use raft_kv::{Command, KvStateMachine};

const VALUE_BYTES: usize = 100;
const PUTS_PER_ITERATION: u64 = 10_000;
const SNAPSHOT_KEYS: u64 = 100_000;

fn key(number: u64) -> Bytes {
    Bytes::from(format!("key/{number:016}"))
}

/// Write `number` (from 1) of `clients` clients writing in turn, each numbering from 1.
fn session_of(number: u64, clients: u64) -> (u64, u64) {
    ((number - 1) % clients, (number - 1) / clients + 1)
}

/// A machine holding `keys` keys with 100-byte values and 1,000 client sessions.
fn filled(keys: u64) -> KvStateMachine {
    let mut machine = KvStateMachine::default();
    let value = Bytes::from(vec![7u8; VALUE_BYTES]);
    for index in 1..=keys {
        let (client_id, sequence) = session_of(index, 1000);
        let command = Command::put(key(index), value.clone(), index);
        black_box(machine.apply(index, command.with_session(client_id, sequence)));
    }
    assert_eq!(
        machine.len() as u64,
        keys,
        "every put must have been applied"
    );
    machine
}

/// Puts over a 10,000-key working set visited in a scattered order, like random writes.
fn put_commands(value: &Bytes, with_session: bool) -> Vec<Command> {
    (1..=PUTS_PER_ITERATION)
        .map(|number| {
            let command = Command::put(key(number * 7919 % 10_000), value.clone(), number);
            let (client_id, sequence) = session_of(number, 64);
            if with_session {
                command.with_session(client_id, sequence)
            } else {
                command
            }
        })
        .collect()
}

fn apply_puts(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("apply");
    group.throughput(Throughput::Elements(PUTS_PER_ITERATION));
    let value = Bytes::from(vec![7u8; VALUE_BYTES]);
    for (name, with_session) in [("put_100B", false), ("put_100B_session", true)] {
        group.bench_function(name, |bencher| {
            bencher.iter_batched(
                || {
                    (
                        KvStateMachine::default(),
                        put_commands(&value, with_session),
                    )
                },
                |(mut machine, commands)| {
                    for (index, command) in (1..).zip(commands) {
                        black_box(machine.apply(index, command));
                    }
                    // 7919 is prime to 10,000, so every key was written once.
                    assert_eq!(machine.len(), 10_000, "every put must have been applied");
                    machine
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

/// The cluster bench's key shape: a shared per-run prefix and a 10-digit number.
fn bench_key(number: u64) -> Bytes {
    Bytes::from(format!("bench/3f9a01c2/{number:010}"))
}

/// Overwrites of 100-byte values over 100,000 keys shaped like `raft-kv bench`'s, each with a
/// client session (64 clients), into a machine already holding every key: the cluster's
/// steady state, where each put searches a full map.
fn apply_bench_shape(criterion: &mut Criterion) {
    const KEYS: u64 = 100_000;
    let value = Bytes::from(vec![7u8; VALUE_BYTES]);
    let mut machine = KvStateMachine::default();
    for index in 1..=KEYS {
        black_box(machine.apply(index, Command::put(bench_key(index), value.clone(), index)));
    }
    let keys: Vec<Bytes> = (1..=PUTS_PER_ITERATION)
        .map(|number| bench_key(number * 7919 % KEYS))
        .collect();
    let mut group = criterion.benchmark_group("apply");
    group.throughput(Throughput::Elements(PUTS_PER_ITERATION));
    // One machine across iterations: no other handle shares its nodes, as on a node between
    // snapshots. Each put carries the next sequence of one of 64 clients in turn.
    let mut index = KEYS;
    let mut put_batch = |live: &mut KvStateMachine| {
        for key in &keys {
            index += 1;
            let (client_id, sequence) = session_of(index - KEYS, 64);
            let command =
                Command::put(key.clone(), value.clone(), index).with_session(client_id, sequence);
            black_box(live.apply(index, command));
        }
    };
    group.bench_function("put_100B_bench_keys_100k", |bencher| {
        bencher.iter(|| put_batch(&mut machine));
    });
    // A snapshot view taken before each batch: every first write to a node copies it.
    group.bench_function("put_100B_bench_keys_100k_view_held", |bencher| {
        bencher.iter(|| {
            let view = machine.snapshot();
            put_batch(&mut machine);
            view
        });
    });
    group.finish();
}

fn snapshots(criterion: &mut Criterion) {
    let machine = filled(SNAPSHOT_KEYS);
    let mut bytes = Vec::new();
    KvStateMachine::write_snapshot(machine.snapshot(), &mut bytes).expect("Vec write");
    let mut group = criterion.benchmark_group("snapshot");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("write_100k_keys", |bencher| {
        let mut output = Vec::with_capacity(bytes.len());
        bencher.iter(|| {
            output.clear();
            KvStateMachine::write_snapshot(machine.snapshot(), &mut output).expect("Vec write");
            black_box(output.len())
        });
    });
    group.bench_function("restore_100k_keys", |bencher| {
        let mut target = KvStateMachine::default();
        bencher.iter(|| {
            target
                .restore(&mut bytes.as_slice())
                .expect("a freshly written snapshot restores");
            black_box(target.len())
        });
    });
    group.bench_function("take_view", |bencher| {
        bencher.iter(|| black_box(machine.snapshot()))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

// criterion_group! generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group! { name = benches; config = config(); targets = apply_puts, apply_bench_shape, snapshots }
}
use group::benches;
criterion_main!(benches);
