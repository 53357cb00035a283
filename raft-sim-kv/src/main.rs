//! `raft-sim`: run one seed of the key-value store's simulation, or sweep a range of seeds
//! on all cores.
//!
//! ```text
//! raft-sim run --seed 42                    # exit 0 if every check holds, 1 otherwise
//! raft-sim run --seed 42 --trace t.log --html t.html
//! raft-sim run --seed 42 --bug stale-reads  # a deliberately broken variant
//! raft-sim sweep --seeds 0..1000            # parallel, progress bar, shrunk replay commands
//! raft-sim bugs                             # the catch table of the broken variants
//! ```
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // A command-line tool prints its results.

use std::io::Write as _;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use raft_sim::store::StorageKind;
use raft_sim::{Bug, RunReport, SimOptions, shrink};
use raft_sim_kv::{DEFAULT_KEYS, simulate};

#[derive(Parser)]
#[command(
    name = "raft-sim",
    about = "Deterministic whole-cluster simulator for raft-core"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed; exit 0 when every check holds, 1 on a violation.
    Run {
        /// The seed.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        options: RunArgs,
        /// Write a readable event log to this file.
        #[arg(long)]
        trace: Option<std::path::PathBuf>,
        /// Write a self-contained HTML timeline to this file.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
        /// Do not shrink a failing run.
        #[arg(long)]
        no_shrink: bool,
        /// Most simulations spent shrinking.
        #[arg(long, default_value_t = 60)]
        shrink_runs: usize,
    },
    /// Run a range of seeds in parallel; last line `passed=<n> failed=<m>`.
    Sweep {
        /// Seeds as `a..b` (b excluded).
        #[arg(long, value_parser = parse_range)]
        seeds: Range<u64>,
        #[command(flatten)]
        options: RunArgs,
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// No progress bar (for logs).
        #[arg(long)]
        quiet: bool,
        /// A failure whose first violation contains this text is an open, already reported
        /// finding: listed with its replay command but not counted as failed (repeatable).
        #[arg(long)]
        known_finding: Vec<String>,
        /// Shrink the first this many failures and print their shrunk replay commands
        /// (0: print the full schedules' replay commands only).
        #[arg(long, default_value_t = 5)]
        shrink_failures: usize,
        /// Most simulations spent shrinking one failure.
        #[arg(long, default_value_t = 60)]
        shrink_runs: usize,
    },
    /// Run every broken variant (or only `--bug`) over a range of seeds and print how many
    /// seeds catch it and the first that does (the checkers are not vacuous).
    Bugs {
        /// Seeds as `a..b` (b excluded).
        #[arg(long, value_parser = parse_range, default_value = "0..100")]
        seeds: Range<u64>,
        #[command(flatten)]
        options: RunArgs,
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Exit 1 if some variant is caught by fewer seeds than this.
        #[arg(long, default_value_t = 0)]
        require: u64,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Founding voters (1 to 7).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=7))]
    nodes: u64,
    /// Client operations in total.
    #[arg(long, default_value_t = 1000)]
    ops: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 5)]
    clients: u64,
    /// Number of keys.
    #[arg(long, default_value_t = DEFAULT_KEYS)]
    keys: u64,
    /// Turn on a deliberately broken variant (see the crate docs).
    #[arg(long)]
    bug: Option<Bug>,
    /// Keep only these fault-schedule entries (comma-separated indices), as printed by a
    /// shrunk failure.
    /// (`none` keeps no fault at all).
    #[arg(long, value_parser = parse_faults)]
    faults: Option<FaultList>,
    /// No faults at all.
    #[arg(long)]
    calm: bool,
    /// Stop with a liveness failure after this many events (default 3,000,000; healthy
    /// runs take under 200,000).
    #[arg(long)]
    max_events: Option<u64>,
    /// The store every node runs on: `memory` (MemStorage, fast) or `file` (the real
    /// FileStorage on a simulated disk). Default: memory, or file for a bug that lives in
    /// the file store (skip-corruption-check, lose-unsynced-segment).
    #[arg(long)]
    storage: Option<StorageKind>,
}

impl RunArgs {
    /// Runs these options (and `seed`).
    fn run(&self, options: SimOptions) -> RunReport {
        simulate(options, self.keys)
    }

    fn options(&self, seed: u64) -> SimOptions {
        SimOptions {
            seed,
            nodes: self.nodes,
            operations: self.ops,
            clients: self.clients,
            bug: self.bug,
            only_faults: self.faults.as_ref().map(|f| f.0.clone()),
            calm: self.calm,
            max_events: self
                .max_events
                .unwrap_or(SimOptions::standard(seed).max_events),
            storage: self.storage_for(self.bug),
            ..SimOptions::standard(seed)
        }
    }

    /// The store a run uses: the one asked for, else the one `bug` needs.
    fn storage_for(&self, bug: Option<Bug>) -> StorageKind {
        self.storage.unwrap_or(match bug {
            Some(bug) if bug.needs_file_storage() => StorageKind::File,
            _ => StorageKind::Memory,
        })
    }

    /// The flags that reproduce these options (besides the seed).
    fn flags(&self, faults: Option<&[usize]>) -> String {
        let defaults = SimOptions::standard(0);
        let mut out = String::new();
        if self.nodes != defaults.nodes {
            out.push_str(&format!(" --nodes {}", self.nodes));
        }
        if self.ops != defaults.operations {
            out.push_str(&format!(" --ops {}", self.ops));
        }
        if self.clients != defaults.clients {
            out.push_str(&format!(" --clients {}", self.clients));
        }
        if self.keys != DEFAULT_KEYS {
            out.push_str(&format!(" --keys {}", self.keys));
        }
        if let Some(bug) = self.bug {
            out.push_str(&format!(" --bug {bug}"));
        }
        if self.calm {
            out.push_str(" --calm");
        }
        if let Some(max) = self.max_events {
            out.push_str(&format!(" --max-events {max}"));
        }
        if let Some(storage) = self.storage {
            out.push_str(&format!(" --storage {storage}"));
        }
        if let Some(faults) = faults.or(self.faults.as_ref().map(|f| f.0.as_slice())) {
            let list: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
            let list = if list.is_empty() {
                "none".to_string()
            } else {
                list.join(",")
            };
            out.push_str(&format!(" --faults={list}"));
        }
        out
    }
}

/// Indices of fault-schedule entries to keep.
#[derive(Clone, Debug)]
struct FaultList(Vec<usize>);

fn parse_faults(text: &str) -> Result<FaultList, String> {
    if text.is_empty() || text == "none" {
        return Ok(FaultList(Vec::new()));
    }
    text.split(',')
        .map(|part| {
            part.trim()
                .parse::<usize>()
                .map_err(|e| format!("bad fault index `{part}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(FaultList)
}

fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (a, b) = text.split_once("..").ok_or("expected a..b")?;
    let a: u64 = a.trim().parse().map_err(|e| format!("bad start: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("bad end: {e}"))?;
    if b < a {
        return Err("the end is before the start".into());
    }
    Ok(a..b)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            seed,
            options,
            trace,
            html,
            no_shrink,
            shrink_runs,
        } => run(seed, &options, trace, html, !no_shrink, shrink_runs),
        Command::Sweep {
            seeds,
            options,
            jobs,
            quiet,
            known_finding,
            shrink_failures,
            shrink_runs,
        } => {
            let shrinking = Shrinking {
                failures: shrink_failures,
                runs: shrink_runs,
            };
            sweep(seeds, &options, jobs, quiet, &known_finding, shrinking)
        }
        Command::Bugs {
            seeds,
            options,
            jobs,
            require,
        } => bugs(seeds, &options, jobs, require),
    }
}

fn run(
    seed: u64,
    args: &RunArgs,
    trace: Option<std::path::PathBuf>,
    html: Option<std::path::PathBuf>,
    shrink_on_failure: bool,
    shrink_runs: usize,
) -> ExitCode {
    let mut options = args.options(seed);
    options.trace = trace.is_some();
    options.timeline = html.is_some();
    let started = Instant::now();
    let report = args.run(options.clone());
    let elapsed = started.elapsed();
    println!("profile: {}", report.profile);
    println!(
        "faults: {} scheduled, {} in force; {:.0} events/s",
        report.schedule.len(),
        report.kept_faults.len(),
        report.events as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if let Some(path) = trace {
        write_file(&path, &report.trace_text());
    }
    if let (Some(path), Some(timeline)) = (html, report.timeline.as_ref()) {
        let title = format!("raft-sim seed {seed}{}", args.flags(None));
        write_file(&path, &timeline.render_html(&title));
    }
    for v in &report.violations {
        println!("VIOLATION {v}");
    }
    let last_line = report.summary();
    let passed = report.passed();
    if !passed && shrink_on_failure {
        let full = report.kept_faults.len();
        if let Some(shrunk) = shrink(&options, report, shrink_runs, |o| args.run(o)) {
            println!(
                "shrunk: {} -> {} faults in {} runs; first violation now: {}",
                full,
                shrunk.kept_faults.len(),
                shrunk.runs,
                shrunk
                    .report
                    .violations
                    .first()
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            );
            println!(
                "replay: raft-sim run --seed {seed}{}",
                args.flags(Some(&shrunk.kept_faults))
            );
        }
    }
    println!("{last_line}");
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn write_file(path: &std::path::Path, text: &str) {
    if let Err(error) = std::fs::write(path, text) {
        eprintln!("cannot write {}: {error}", path.display());
    }
}

/// Runs every seed of `seeds` on `jobs` threads; returns the failures (seed, first
/// violation) and the events simulated.
fn run_seeds(
    seeds: Range<u64>,
    args: &RunArgs,
    jobs: usize,
    bar: &indicatif::ProgressBar,
) -> (Vec<(u64, String)>, u64) {
    let next = AtomicU64::new(seeds.start);
    let (sender, receiver) = mpsc::channel::<(u64, bool, u64, String)>();
    let mut failures = Vec::new();
    let mut events = 0u64;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let sender = sender.clone();
            let next = &next;
            let end = seeds.end;
            scope.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let report = args.run(args.options(seed));
                    let first = report.violations.first().map(|v| v.to_string());
                    let outcome = (
                        seed,
                        report.passed(),
                        report.events,
                        first.unwrap_or_default(),
                    );
                    if sender.send(outcome).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for (seed, passed, seed_events, first) in receiver {
            events += seed_events;
            if !passed {
                failures.push((seed, first));
                bar.set_message(format!("{} failed", failures.len()));
            }
            bar.inc(1);
        }
    });
    failures.sort();
    (failures, events)
}

fn progress_bar(total: u64, quiet: bool) -> indicatif::ProgressBar {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds, {per_sec}, eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// How many failures of a sweep to shrink, and how hard.
#[derive(Clone, Copy)]
struct Shrinking {
    failures: usize,
    runs: usize,
}

/// The fault schedule entries a shrunk failure of `seed` keeps, if shrinking helped.
fn shrunk_faults(args: &RunArgs, seed: u64, runs: usize) -> Option<Vec<usize>> {
    let options = args.options(seed);
    let report = args.run(options.clone());
    shrink(&options, report, runs, |o| args.run(o)).map(|shrunk| shrunk.kept_faults)
}

fn worker_count(jobs: Option<usize>) -> usize {
    jobs.or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
}

/// The catch table: each broken variant over `seeds`, one line per variant.
fn bugs(seeds: Range<u64>, args: &RunArgs, jobs: Option<usize>, require: u64) -> ExitCode {
    let jobs = worker_count(jobs);
    let total = seeds.end - seeds.start;
    println!(
        "{:<24} {:>12} {:>12} {:>10}",
        "bug", "caught", "first seed", "seeds/min"
    );
    let mut short = Vec::new();
    // `--bug <name>` narrows the table to one variant.
    let chosen: Vec<Bug> = match args.bug {
        Some(bug) => vec![bug],
        None => raft_sim::bugs::ALL_BUGS.to_vec(),
    };
    for bug in chosen {
        let mut variant = args.clone();
        variant.bug = Some(bug);
        let bar = indicatif::ProgressBar::hidden();
        let started = Instant::now();
        let (failures, _) = run_seeds(seeds.clone(), &variant, jobs, &bar);
        let per_minute = total as f64 * 60.0 / started.elapsed().as_secs_f64().max(1e-9);
        let caught = failures.len() as u64;
        let first = failures
            .first()
            .map_or_else(|| "-".to_string(), |(seed, _)| seed.to_string());
        println!(
            "{:<24} {:>12} {:>12} {:>10.0}",
            bug.name(),
            format!("{caught} of {total}"),
            first,
            per_minute
        );
        let _ = std::io::stdout().flush();
        if caught < require {
            short.push(bug.name());
        }
    }
    if short.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("caught by fewer than {require} seeds: {}", short.join(", "));
        ExitCode::from(1)
    }
}

fn sweep(
    seeds: Range<u64>,
    args: &RunArgs,
    jobs: Option<usize>,
    quiet: bool,
    known: &[String],
    shrinking: Shrinking,
) -> ExitCode {
    let jobs = worker_count(jobs);
    let total = seeds.end - seeds.start;
    let bar = progress_bar(total, quiet);
    let started = Instant::now();
    let (failures, events) = run_seeds(seeds, args, jobs, &bar);
    bar.finish_and_clear();
    let (known_failures, failures): (Vec<_>, Vec<_>) = failures
        .into_iter()
        .partition(|(_, first)| known.iter().any(|k| first.contains(k.as_str())));
    let mut shrunk_count = 0;
    for (label, list) in [("KNOWN", &known_failures), ("FAIL", &failures)] {
        for (seed, first) in list {
            println!(
                "{label} seed={seed}: {}",
                first.lines().next().unwrap_or_default()
            );
            let kept = if shrunk_count < shrinking.failures {
                shrunk_count += 1;
                shrunk_faults(args, *seed, shrinking.runs)
            } else {
                None
            };
            println!(
                "  replay: raft-sim run --seed {seed}{}",
                args.flags(kept.as_deref())
            );
        }
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{} seeds in {:.1}s on {} threads: {:.0} seeds/minute, {:.0} events/s",
        total,
        secs,
        jobs,
        total as f64 * 60.0 / secs,
        events as f64 / secs
    );
    let passed = total as usize - failures.len() - known_failures.len();
    if known.is_empty() {
        println!("passed={passed} failed={}", failures.len());
    } else {
        println!(
            "passed={passed} failed={} known={}",
            failures.len(),
            known_failures.len()
        );
    }
    let _ = std::io::stdout().flush();
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
