//! Nemesis tests: real `raft-kv serve` processes on loopback, every Raft link through a
//! fault proxy, clients recording a history that the simulator's linearizability checker
//! judges, and a ledger of write-once keys whose acknowledged writes must all survive.
//!
//! Faults: SIGKILL and restart (one node, a majority, or all at once), SIGSTOP/SIGCONT, one-way
//! and two-way link cuts, partitions; membership changes (a node removed, a new one
//! joining) and leadership transfers while faults are active.
//!
//! Short mode (default) runs in CI. Long mode on demand:
//! `NEMESIS_SECONDS=300 cargo nextest run -p raft-kv --test nemesis --no-capture`
//! prints every fault, the outcome counts and the verdict; `NEMESIS_HISTORY=DIR` also writes
//! every operation (client, key, op, result, invoke and return times) to
//! `DIR/nemesis-N-nodes.history`. `NEMESIS_PLANT_BUG=1` starts
//! every node with the test-only `--unsafe-ack-before-fsync` (acknowledge before fsync, lose
//! the unsynced tail on restart): the run must then fail.

mod cluster;
mod faults;
#[path = "../shared/ports.rs"]
mod ports;
mod proxy;
mod workload;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use raft_kv::server::client::ClientError;
use raft_sim::linearizability::{CheckLimits, Verdict, check_history};
use raft_sim_kv::{KvModel, KvOperation as Operation};

use crate::cluster::Cluster;
use crate::faults::Plan;
use crate::workload::Tally;

const CLIENTS: u64 = 8;
const KEYS: u64 = 8;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs one nemesis test and panics with the evidence if anything a user would notice went
/// wrong.
async fn nemesis(nodes: u64, membership: bool, default_seconds: u64, seed: u64) {
    let seconds = env_u64("NEMESIS_SECONDS").unwrap_or(default_seconds);
    let seed = env_u64("NEMESIS_SEED").unwrap_or(seed);
    let verbose = std::env::var_os("NEMESIS_SECONDS").is_some();
    let mut extra = Vec::new();
    if std::env::var_os("NEMESIS_PLANT_BUG").is_some() {
        extra.push("--unsafe-ack-before-fsync".to_string());
    }
    let mut cluster = Cluster::start(nodes, &extra).await;
    if cluster.wait_leader(Duration::from_secs(30)).await.is_none() {
        panic!("no leader at start\n{}", cluster.logs(30));
    }
    let origin = Instant::now();
    let workload = Workload::start(cluster.urls(), origin);

    let plan = Plan {
        seconds,
        seed,
        membership,
    };
    let report = faults::run(&mut cluster, plan, origin).await;
    let recovered = cluster.wait_leader(Duration::from_secs(60)).await;
    // Let the clients show that the cluster serves again, then stop them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (history, tally, acked) = workload.finish().await;
    let present = workload::ledger_contents(&cluster.urls()).await;

    let mut failures = report.problems.clone();
    if recovered.is_none() {
        failures.push("no agreed leader 60 s after the faults healed".into());
    }
    failures.extend(cluster_failures(&mut cluster, &acked, present).await);
    write_history(&history, nodes);
    let started = Instant::now();
    let check = check_history(&KvModel, &history, CheckLimits::default());
    let verdict = match &check.verdict {
        Verdict::Linearizable => "linearizable".to_string(),
        Verdict::Inconclusive { partition: key } => {
            format!("inconclusive (key {key} exhausted the search)")
        }
        Verdict::Violation {
            partition: key,
            detail,
        } => {
            failures.push(violation(*key, detail));
            format!("VIOLATION on key {key}")
        }
    };

    let summary = format!(
        "nemesis: {nodes} nodes, {seconds} s, seed {seed}\n\
         faults: {:?}\n\
         operations: {} ({} ok, {} writes unknown, {} writes not applied, {} reads failed)\n\
         ledger: {} acknowledged writes\n\
         history check: {verdict} ({} keys, {} steps, {:?})",
        report.counts,
        history.len() as u64 + tally.not_applied,
        tally.ok,
        tally.unknown,
        tally.not_applied,
        tally.failed_reads,
        acked.len(),
        check.partitions,
        check.steps,
        started.elapsed(),
    );
    if verbose || !failures.is_empty() {
        eprintln!("{}\n{summary}", report.events.join("\n"));
    }
    assert!(
        failures.is_empty(),
        "{summary}\nFAILURES:\n{}\n{}",
        failures.join("\n"),
        cluster.logs(20)
    );
    assert!(tally.ok > 0, "no operation succeeded\n{summary}");
}

/// The register clients and the ledger client, running.
struct Workload {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<(Vec<Operation>, Tally)>>,
    ledger: tokio::task::JoinHandle<BTreeSet<u64>>,
}

impl Workload {
    fn start(urls: Vec<String>, origin: Instant) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..CLIENTS)
            .map(|c| {
                let client = workload::register_client(c, KEYS, urls.clone(), origin, stop.clone());
                tokio::spawn(client)
            })
            .collect();
        let ledger = tokio::spawn(workload::ledger_client(urls, stop.clone()));
        Workload {
            stop,
            clients,
            ledger,
        }
    }

    /// Stops the clients; returns the history, the outcome counts and the acknowledged
    /// ledger numbers.
    async fn finish(self) -> (Vec<Operation>, Tally, BTreeSet<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut history = Vec::new();
        let mut tally = Tally::default();
        for client in self.clients {
            let (ops, counts) = client.await.expect("client task");
            history.extend(ops);
            tally.add(counts);
        }
        let acked = self.ledger.await.expect("ledger task");
        (history, tally, acked)
    }
}

/// What the healed cluster shows: members that are not voters, lost acknowledged writes,
/// links that bypassed their proxy, nodes that exited or panicked.
async fn cluster_failures(
    cluster: &mut Cluster,
    acked: &BTreeSet<u64>,
    present: Result<BTreeSet<u64>, ClientError>,
) -> Vec<String> {
    let mut failures = Vec::new();
    if let Err(voters) = cluster.wait_voters(Duration::from_secs(60)).await {
        failures.push(format!(
            "voters {voters:?} are not the members {:?} 60 s after the faults healed",
            cluster.member_ids()
        ));
    }
    match present {
        Ok(present) => {
            let lost: Vec<u64> = acked.difference(&present).copied().collect();
            if !lost.is_empty() {
                failures.push(format!(
                    "{} acknowledged ledger writes lost: {:?}",
                    lost.len(),
                    &lost[..lost.len().min(20)]
                ));
            }
        }
        Err(error) => failures.push(format!("cannot read the ledger back: {error}")),
    }
    failures.extend(link_proofs(cluster));
    for node in &mut cluster.nodes {
        if let Some(status) = node.exited() {
            failures.push(format!("node {} exited by itself: {status}", node.id()));
        }
        let id = node.id();
        failures.extend(node.panics().into_iter().map(|l| format!("node {id}: {l}")));
    }
    failures
}

/// The violation, with the end of the longest linearizable prefix the checker found.
fn violation(key: u64, detail: &str) -> String {
    let lines: Vec<&str> = detail.lines().collect();
    let head = lines.first().copied().unwrap_or_default();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
    format!("not linearizable on key {key}: {head}\n...\n{tail}")
}

/// With `NEMESIS_HISTORY=DIR`: every operation, in invocation order, to a file.
fn write_history(history: &[Operation], nodes: u64) {
    let Some(dir) = std::env::var_os("NEMESIS_HISTORY") else {
        return;
    };
    let mut ops = history.to_vec();
    ops.sort_by_key(|op| op.call_us);
    let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
    let path = std::path::PathBuf::from(dir).join(format!("nemesis-{nodes}-nodes.history"));
    match std::fs::write(&path, text.join("\n")) {
        Ok(()) => eprintln!("history written to {}", path.display()),
        Err(error) => eprintln!("cannot write {}: {error}", path.display()),
    }
}

/// Proof that the proxies carried the Raft traffic (the address book did not bypass them):
/// every directed link between two founders that stayed members carried bytes.
fn link_proofs(cluster: &Cluster) -> Vec<String> {
    let counters = cluster.proxies.counters();
    let founders: Vec<u64> = cluster
        .nodes
        .iter()
        .filter(|n| !n.retired && n.spec.membership.first().is_some_and(|f| f == "--peers"))
        .map(|n| n.id())
        .collect();
    let mut problems = Vec::new();
    for from in &founders {
        for to in founders.iter().filter(|to| *to != from) {
            if counters.get(&(*from, *to)).is_none_or(|c| c.bytes == 0) {
                problems.push(format!(
                    "no traffic through the proxy of link {from} -> {to}"
                ));
            }
        }
    }
    problems
}

/// Goal (issue 18): three nodes stay linearizable and lose no acknowledged write under
/// kills, pauses, one- and two-way cuts, partitions and leadership transfers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_stay_linearizable_under_faults() {
    nemesis(3, false, 25, 0x5EED_0003).await;
}

/// Goal (issue 18): five nodes, with members removed and added and leadership transferred
/// while faults are active, stay linearizable and lose no acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_stay_linearizable_through_membership_changes_under_faults() {
    nemesis(5, true, 25, 0x5EED_0005).await;
}
