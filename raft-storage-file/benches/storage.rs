//! Benchmarks of `FileStorage` on the disk holding the system temp directory:
//!
//! 1. one 100-byte entry appended and synced, latency p50/p99, against a raw
//!    `write` + `fdatasync` loop of 100 bytes on the same disk, interleaved in one run;
//! 2. batches of 64 entries of 100 bytes, one sync per batch, entries per second;
//! 3. recovery (open + restore) of a log of 1 GiB (64 MiB with `--quick`) against a plain
//!    sequential read of the same files, with the page cache dropped (when allowed) and warm.
//!
//! Run: `cargo bench -p raft-storage-file --bench storage [-- --quick] [--recovery-only]
//! [--keep-log DIR] [--no-preallocate]` (`--keep-log` writes the log into DIR once and
//! reuses it; `--no-preallocate` turns `Options::preallocate` off, for A/B runs).
#![allow(clippy::print_stdout)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, Storage};
use raft_storage_file::{FileStorage, Options};

const PAYLOAD_BYTES: usize = 100;

/// The store's options: the defaults, without preallocation with `--no-preallocate`.
fn store_options() -> Options {
    Options {
        preallocate: !std::env::args().any(|a| a == "--no-preallocate"),
        ..Options::default()
    }
}

fn entry(index: u64) -> Entry {
    let payload = Bytes::from(vec![(index % 251) as u8 + 1; PAYLOAD_BYTES]);
    Entry {
        term: 1,
        index,
        payload: EntryPayload::Command(payload),
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Single-entry append + sync against raw write + fdatasync, interleaved in rounds so both
/// see the same disk weather.
fn latency(dir: &Path, rounds: usize, per_round: usize) {
    let mut store = FileStorage::open_with(dir.join("latency"), store_options()).unwrap();
    store.restore().unwrap();
    let mut raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("raw.log"))
        .unwrap();
    let record = [7u8; PAYLOAD_BYTES];
    let (mut store_samples, mut raw_samples) = (Vec::new(), Vec::new());
    let mut index = 1;
    for _ in 0..rounds {
        for _ in 0..per_round {
            let start = Instant::now();
            raw.write_all(&record).unwrap();
            raw.sync_data().unwrap();
            raw_samples.push(start.elapsed());
        }
        for _ in 0..per_round {
            let batch = [entry(index)];
            let start = Instant::now();
            store.append(&batch).unwrap();
            store.sync().unwrap();
            store_samples.push(start.elapsed());
            index += 1;
        }
    }
    raw_samples.sort();
    store_samples.sort();
    let (raw_p50, raw_p99) = (
        percentile(&raw_samples, 0.5),
        percentile(&raw_samples, 0.99),
    );
    let (store_p50, store_p99) = (
        percentile(&store_samples, 0.5),
        percentile(&store_samples, 0.99),
    );
    println!(
        "single 100 B entry + sync ({} samples each, interleaved):",
        store_samples.len()
    );
    println!(
        "  raw write+fdatasync  p50 {:7.1} us  p99 {:7.1} us",
        micros(raw_p50),
        micros(raw_p99)
    );
    println!(
        "  FileStorage          p50 {:7.1} us  p99 {:7.1} us",
        micros(store_p50),
        micros(store_p99)
    );
    println!(
        "  ratio                p50 {:.2}x      p99 {:.2}x",
        micros(store_p50) / micros(raw_p50),
        micros(store_p99) / micros(raw_p99)
    );
}

/// Batches of `batch` entries, one sync each, and the same bytes through a raw
/// write + fdatasync loop, alternating every half second so both see the same disk. Only
/// the append and sync calls are timed (building the entries is the caller's cost). Then
/// appends without syncs: what the store itself costs per entry.
fn throughput(dir: &Path, batch: u64, duration: Duration) {
    let mut store =
        FileStorage::open_with(dir.join(format!("batch-{batch}")), store_options()).unwrap();
    store.restore().unwrap();
    let mut raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("raw-{batch}.log")))
        .unwrap();
    // Our record for a 100-byte command is 118 bytes (frame header, kind, varints).
    let raw_batch = vec![7u8; 118 * batch as usize];
    let mut index = 1;
    let (mut store_batches, mut raw_batches) = (Vec::new(), Vec::new());
    let mut entries = Vec::with_capacity(batch as usize);
    let total = |samples: &[Duration]| samples.iter().sum::<Duration>();
    while total(&store_batches) + total(&raw_batches) < duration {
        let round = Instant::now();
        while round.elapsed() < Duration::from_millis(500) {
            entries.clear();
            entries.extend((index..index + batch).map(entry));
            let start = Instant::now();
            store.append(&entries).unwrap();
            store.sync().unwrap();
            store_batches.push(start.elapsed());
            index += batch;
        }
        let round = Instant::now();
        while round.elapsed() < Duration::from_millis(500) {
            let start = Instant::now();
            raw.write_all(&raw_batch).unwrap();
            raw.sync_data().unwrap();
            raw_batches.push(start.elapsed());
        }
    }
    let rate = (store_batches.len() as u64 * batch) as f64 / total(&store_batches).as_secs_f64();
    let raw_rate = (raw_batches.len() as u64 * batch) as f64 / total(&raw_batches).as_secs_f64();
    store_batches.sort();
    raw_batches.sort();
    let rate_at_p50 = |samples: &[Duration]| batch as f64 / percentile(samples, 0.5).as_secs_f64();
    println!(
        "batches of {batch} x 100 B, one sync per batch: {rate:.0} entries/s; raw write+fdatasync of the same bytes: {raw_rate:.0} entries/s; ratio {:.2}x",
        rate / raw_rate
    );
    println!(
        "  per batch: FileStorage p50 {:.0} us, p99 {:.0} us, mean {:.0} us ({:.0} entries/s at p50); raw p50 {:.0} us, p99 {:.0} us, mean {:.0} us ({:.0} entries/s at p50)",
        micros(percentile(&store_batches, 0.5)),
        micros(percentile(&store_batches, 0.99)),
        micros(total(&store_batches) / store_batches.len() as u32),
        rate_at_p50(&store_batches),
        micros(percentile(&raw_batches, 0.5)),
        micros(percentile(&raw_batches, 0.99)),
        micros(total(&raw_batches) / raw_batches.len() as u32),
        rate_at_p50(&raw_batches),
    );
    let unsynced = append_without_sync(dir, batch);
    println!(
        "  the same appends without sync (store CPU only): {unsynced:.0} entries/s, {:.1} us per batch",
        batch as f64 / unsynced * 1e6
    );
}

/// Entries per second appended in batches of `batch` with no sync (one at the end), into
/// a new store.
fn append_without_sync(dir: &Path, batch: u64) -> f64 {
    let mut store =
        FileStorage::open_with(dir.join(format!("unsynced-{batch}")), store_options()).unwrap();
    store.restore().unwrap();
    let batches: Vec<Vec<Entry>> = (0..2000u64)
        .map(|b| (1 + b * batch..1 + (b + 1) * batch).map(entry).collect())
        .collect();
    let start = Instant::now();
    for entries in &batches {
        store.append(entries).unwrap();
    }
    let elapsed = start.elapsed();
    store.sync().unwrap();
    (batches.len() as u64 * batch) as f64 / elapsed.as_secs_f64()
}

fn drop_page_cache() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Writes `target_bytes` of log (or reuses the log in `keep`), then times open + restore
/// with and without reader threads against a plain sequential read of the same files:
/// three rounds with the page cache dropped before each run, then two warm rounds.
fn recovery(dir: &Path, target_bytes: u64, keep: Option<&Path>) {
    let path = keep.map_or_else(|| dir.join("recovery"), Path::to_path_buf);
    let written_in = write_log(&path, target_bytes);
    let bytes = dir_bytes(&path);
    let mib = bytes as f64 / (1 << 20) as f64;
    let mut cold = true;
    let mut lines = Vec::new();
    let mut entries = 0;
    let configs = [
        ("reader threads (default)", None),
        ("no reader threads", Some(0)),
    ];
    for round in 1..=3 {
        cold &= drop_page_cache();
        let read_time = plain_read(&path);
        cold &= drop_page_cache();
        let kept_time = read_into_memory(&path);
        lines.push(format!(
            "  cold {round}: plain read {:.2} s ({:.0} MiB/s); read into memory kept {:.2} s",
            read_time.as_secs_f64(),
            mib / read_time.as_secs_f64(),
            kept_time.as_secs_f64(),
        ));
        for (name, threads) in configs {
            cold &= drop_page_cache();
            let timed = open_and_restore(&path, threads);
            entries = timed.entries;
            lines.push(describe(
                &format!("cold {round}"),
                name,
                &timed,
                mib,
                read_time,
            ));
        }
    }
    let read_time = plain_read(&path);
    let kept_time = read_into_memory(&path);
    lines.push(format!(
        "  warm: plain read {:.2} s ({:.0} MiB/s); read into memory kept {:.2} s",
        read_time.as_secs_f64(),
        mib / read_time.as_secs_f64(),
        kept_time.as_secs_f64(),
    ));
    for round in 1..=2 {
        for (name, threads) in configs {
            let timed = open_and_restore(&path, threads);
            lines.push(describe(
                &format!("warm {round}"),
                name,
                &timed,
                mib,
                read_time,
            ));
        }
    }
    println!(
        "recovery of {mib:.0} MiB ({entries} entries of 100 B{}), page cache {}:",
        written_in.map_or(String::new(), |t| format!(
            ", written in {:.1} s",
            t.as_secs_f64()
        )),
        if cold {
            "dropped for the cold runs"
        } else {
            "never dropped (not permitted): every run is warm"
        }
    );
    for line in lines {
        println!("{line}");
    }
    if keep.is_none() {
        std::fs::remove_dir_all(&path).unwrap();
    }
}

fn describe(when: &str, name: &str, timed: &Timed, mib: f64, read_time: Duration) -> String {
    format!(
        "  {when}: open + restore, {name}: {:.2} s ({:.0} MiB/s, {:.2} M entries/s, CPU {:.2} s), {:.2}x the plain read",
        timed.wall.as_secs_f64(),
        mib / timed.wall.as_secs_f64(),
        timed.entries as f64 / timed.wall.as_secs_f64() / 1e6,
        timed.cpu_s,
        timed.wall.as_secs_f64() / read_time.as_secs_f64(),
    )
}

/// The bytes one 100-byte entry takes in a segment (1 GiB of them held 8.98 M entries).
const RECORD_BYTES_APPROX: u64 = 120;

/// Appends entries of 100 B until the records fill `target_bytes`, unless the directory already
/// holds a log. Returns how long the writing took.
fn write_log(path: &Path, target_bytes: u64) -> Option<Duration> {
    if path.exists() && dir_bytes(path) >= target_bytes {
        return None;
    }
    let mut store = FileStorage::open_with(path, store_options()).unwrap();
    store.restore().unwrap();
    let mut index = store.last_index() + 1;
    let write_start = Instant::now();
    // Counted by records, not by the files' lengths: a preallocated segment is full size
    // from its first record on.
    let mut written = 0;
    while written < target_bytes {
        written += 64 * 1024 * RECORD_BYTES_APPROX;
        for _ in 0..64 {
            let entries: Vec<Entry> = (index..index + 1024).map(entry).collect();
            store.append(&entries).unwrap();
            index += 1024;
        }
        store.sync().unwrap();
    }
    Some(write_start.elapsed())
}

/// Times open + restore; returns the wall time, the CPU time of all threads and the
/// number of entries restored.
fn open_and_restore(path: &Path, recovery_threads: Option<usize>) -> Timed {
    let options = Options {
        recovery_threads,
        ..Options::default()
    };
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let mut store = FileStorage::open_with(path, options).unwrap();
    let restored = store.restore().unwrap();
    let wall = start.elapsed();
    let cpu_s = cpu_seconds() - cpu_start;
    assert_eq!(restored.entries.len() as u64, store.last_index());
    Timed {
        wall,
        cpu_s,
        entries: restored.entries.len(),
    }
}

struct Timed {
    wall: Duration,
    cpu_s: f64,
    entries: usize,
}

/// User + system CPU time of this process (all threads) so far, from /proc (10 ms ticks).
/// On a shared machine it shows what recovery costs even when the wall time shows how
/// busy the other tenants were.
fn cpu_seconds() -> f64 {
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |at: usize| {
        fields
            .get(at)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 (utime) and 15 (stime) of proc(5), counted from the state field (3).
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

/// Reads every file into a buffer of its own, all kept until the end: the least a
/// recovery that hands the whole log to the node in memory must do (fresh memory costs
/// page faults that a read into one reused buffer does not).
fn read_into_memory(path: &Path) -> Duration {
    let start = Instant::now();
    let kept: Vec<Vec<u8>> = std::fs::read_dir(path)
        .unwrap()
        .map(|item| std::fs::read(item.unwrap().path()).unwrap())
        .collect();
    let elapsed = start.elapsed();
    drop(kept);
    elapsed
}

fn plain_read(path: &Path) -> Duration {
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    for item in std::fs::read_dir(path).unwrap() {
        let mut file = File::open(item.unwrap().path()).unwrap();
        while file.read(&mut buf).unwrap() > 0 {}
    }
    start.elapsed()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = tempfile::tempdir().unwrap();
    println!(
        "raft-storage-file benchmarks ({}, preallocate {}), in {}",
        if quick { "quick" } else { "full" },
        store_options().preallocate,
        dir.path().display()
    );
    let args: Vec<String> = std::env::args().collect();
    let keep = args
        .iter()
        .position(|a| a == "--keep-log")
        .and_then(|at| args.get(at + 1))
        .map(Path::new);
    let log_bytes = if quick { 64 << 20 } else { 1 << 30 };
    if args.iter().any(|a| a == "--recovery-only") {
        recovery(dir.path(), log_bytes, keep);
        return;
    }
    let (rounds, per_round) = if quick { (2, 200) } else { (6, 500) };
    latency(dir.path(), rounds, per_round);
    let seconds = if quick { 2 } else { 6 };
    throughput(dir.path(), 64, Duration::from_secs(seconds));
    throughput(dir.path(), 1024, Duration::from_secs(seconds));
    recovery(dir.path(), log_bytes, keep);
}
