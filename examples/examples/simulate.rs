//! Your own state machine under the deterministic simulator: named counters (add to a
//! counter, read a counter), run on a simulated 5-node cluster under the faults each seed
//! draws (crashes, partitions, lossy and slow links, disk faults, clock drift, membership
//! changes), with the client history checked for linearizability against a sequential
//! model and an invariant of its own checked after every event. Prints a line per seed.
//!
//! Run: `cargo run -p examples --example simulate -- 0..20`
//! A broken variant (its snapshot restore keeps the old counts) that the checks catch:
//! `cargo run -p examples --example simulate -- 0..20 --broken`
//! Keep the trace and the HTML timeline of one seed (with several, the last one's):
//! `cargo run -p examples --example simulate -- 3..4 --broken --trace t.log --html t.html`
#![forbid(unsafe_code)]
// An example reports what happens on stdout.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use raft_core::{Index, StateMachine};
use raft_sim::invariant::{Cluster, EveryEvent};
use raft_sim::{Call, Model, Request, SimOptions, SimRng, Simulation, Workload};

/// Counters by name. A command is (client, sequence, counter, amount); each client's
/// sequence applies once, so a command the client resent is answered, not applied again.
#[derive(Default)]
struct Counters {
    counts: BTreeMap<u8, u64>,
    /// Client -> (last sequence applied, its answer).
    sessions: BTreeMap<u64, (u64, u64)>,
    broken: bool,
}

type Snapshot = (BTreeMap<u8, u64>, BTreeMap<u64, (u64, u64)>);

impl StateMachine for Counters {
    type Command = (u64, u64, u8, u64);
    type Response = u64;
    type Query = u8;
    type QueryResponse = u64;
    type Snapshot = Snapshot;

    fn apply(&mut self, _: Index, (client, sequence, name, amount): Self::Command) -> u64 {
        if let Some(&(last, answer)) = self.sessions.get(&client)
            && sequence <= last
        {
            return answer;
        }
        let count = self.counts.entry(name).or_default();
        *count += amount;
        let answer = *count;
        self.sessions.insert(client, (sequence, answer));
        answer
    }

    fn query(&self, name: &u8) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> Snapshot {
        (self.counts.clone(), self.sessions.clone())
    }

    fn write_snapshot(snapshot: Snapshot, writer: &mut dyn Write) -> std::io::Result<()> {
        writer.write_all(&postcard::to_allocvec(&snapshot).map_err(std::io::Error::other)?)
    }

    fn restore(&mut self, reader: &mut dyn Read) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        let (counts, sessions): Snapshot =
            postcard::from_bytes(&bytes).map_err(std::io::Error::other)?;
        if !self.broken {
            self.counts = counts;
        }
        self.sessions = sessions;
        Ok(())
    }
}

/// One operation: add `Some(amount)` to a counter (answered with its new value), or read
/// it (`None`).
#[derive(Debug)]
struct Op {
    name: u8,
    add: Option<u64>,
}

/// The sequential specification of one counter. Counters are independent, so each is
/// checked on its own (`partition`).
struct CounterModel;

impl Model for CounterModel {
    type State = u64;
    type Input = Op;
    type Output = u64;

    fn init(&self) -> u64 {
        0
    }

    fn step(&self, count: &u64, op: &Op, told: Option<&u64>) -> Option<u64> {
        let next = count + op.add.unwrap_or(0);
        told.is_none_or(|told| *told == next).then_some(next)
    }

    fn partition(&self, op: &Op) -> u64 {
        u64::from(op.name)
    }

    fn is_read(&self, op: &Op) -> bool {
        op.add.is_none()
    }
}

/// Clients: reads and adds on three counters.
struct Clients {
    sequence: u64,
    broken: bool,
}

impl Workload for Clients {
    type Machine = Counters;
    type Model = CounterModel;

    fn machine(&self) -> Counters {
        Counters {
            broken: self.broken,
            ..Counters::default()
        }
    }

    fn model(&self) -> &CounterModel {
        &CounterModel
    }

    fn next_call(&mut self, client: usize, _: u64, rng: &mut SimRng) -> Option<Call<Counters, Op>> {
        let name = rng.range(0, 3) as u8;
        if rng.chance(0.3) {
            let input = Op { name, add: None };
            return Some(Call {
                input,
                request: Request::Query(name),
            });
        }
        self.sequence += 1;
        let amount = rng.range(1, 10);
        Some(Call {
            input: Op {
                name,
                add: Some(amount),
            },
            request: Request::Command((client as u64, self.sequence, name, amount)),
        })
    }

    fn command_output(&mut self, _: usize, _: &Op, count: &u64) -> Option<u64> {
        Some(*count)
    }

    fn query_output(&mut self, _: usize, _: &Op, count: &u64) -> Option<u64> {
        Some(*count)
    }
}

/// Replicas that applied through the same index hold the same counts.
fn replicas_agree(cluster: &Cluster<'_, Clients>) -> Result<(), String> {
    let mut seen: BTreeMap<Index, (u64, &BTreeMap<u8, u64>)> = BTreeMap::new();
    for node in cluster.nodes() {
        let Some(machine) = node.machine else {
            continue;
        };
        let (first, counts) = *seen
            .entry(node.applied_index)
            .or_insert((node.id, &machine.counts));
        if *counts != machine.counts {
            return Err(format!(
                "n{first} and n{} applied through {} but hold {counts:?} and {:?}",
                node.id, node.applied_index, machine.counts
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seeds = args
        .iter()
        .find_map(|a| a.split_once(".."))
        .and_then(|(a, b)| Some(a.parse::<u64>().ok()?..b.parse::<u64>().ok()?))
        .unwrap_or(0..10);
    let broken = args.iter().any(|a| a == "--broken");
    let path_after = |flag: &str| {
        let at = args.iter().position(|a| a == flag)?;
        args.get(at + 1).cloned()
    };
    let (trace, html) = (path_after("--trace"), path_after("--html"));
    // Seeds are independent: run them on every core, print them in order.
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let reports = raft_sim::sweep(seeds.clone(), jobs, |seed| {
        let options = SimOptions {
            operations: 300,
            trace: trace.is_some(),
            timeline: html.is_some(),
            ..SimOptions::standard(seed)
        };
        Simulation::new(
            options,
            Clients {
                sequence: 0,
                broken,
            },
        )
        .with_invariant(EveryEvent(replicas_agree))
        .run()
    });
    let mut failed = 0;
    for report in &reports {
        println!("{}", report.summary());
        if let Some(violation) = report.violations.first() {
            failed += 1;
            println!(
                "  {}",
                violation.to_string().lines().next().unwrap_or_default()
            );
        }
        if let Some(path) = &trace {
            write(path, &report.trace_text());
        }
        if let (Some(path), Some(timeline)) = (&html, &report.timeline) {
            let title = format!("counters, seed {}", report.seed);
            write(path, &timeline.render_html(&title));
        }
    }
    let total = seeds.end - seeds.start;
    println!("passed={} failed={failed}", total - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn write(path: &str, text: &str) {
    if let Err(error) = std::fs::write(path, text) {
        eprintln!("cannot write {path}: {error}");
    }
}
