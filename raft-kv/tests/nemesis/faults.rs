//! The nemesis: a schedule of faults, each applied, proved and healed, with membership
//! changes and leadership transfers made while faults are active.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use raft_kv::server::client::{ClientOptions, ClusterClient};

use crate::cluster::{Cluster, status_of};
use crate::proxy::LinkCounters;

/// What the nemesis may do in one run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) seconds: u64,
    pub(crate) seed: u64,
    /// Add and remove nodes (keeps between 3 and 5 voters).
    pub(crate) membership: bool,
}

/// What happened, for the verdict and the printout.
#[derive(Debug, Default)]
pub(crate) struct NemesisReport {
    pub(crate) events: Vec<String>,
    pub(crate) counts: BTreeMap<&'static str, u64>,
    /// Problems with the faults themselves (a fault that did not take effect).
    pub(crate) problems: Vec<String>,
}

impl NemesisReport {
    fn event(&mut self, origin: Instant, text: String) {
        self.events
            .push(format!("{:>7.2}s {text}", origin.elapsed().as_secs_f64()));
    }

    fn bump(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }
}

struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// An active fault, healed by [`heal`].
#[derive(Debug)]
enum Fault {
    Killed(Vec<u64>),
    Paused(u64),
    Cut(Vec<(u64, u64)>, BTreeMap<(u64, u64), LinkCounters>),
}

fn admin_client(cluster: &Cluster) -> ClusterClient {
    let options = ClientOptions {
        credentials: Default::default(),
        request_timeout: Duration::from_secs(2),
        retry_for: Duration::from_secs(4),
    };
    ClusterClient::new(&cluster.urls(), options).expect("admin client")
}

/// Runs faults until `plan.seconds` have passed, then heals everything.
pub(crate) async fn run(cluster: &mut Cluster, plan: Plan, origin: Instant) -> NemesisReport {
    let mut report = NemesisReport::default();
    let mut dice = Dice(plan.seed | 1);
    let deadline = Instant::now() + Duration::from_secs(plan.seconds);
    let mut next_id = cluster.nodes.len() as u64 + 1;
    // Let the cluster settle and traffic start through every proxy.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut step = 0u64;
    while Instant::now() < deadline {
        step += 1;
        let fault = inject(cluster, &mut dice, &mut report, origin).await;
        let hold = Duration::from_millis(600 + dice.next() % 1400);
        let held = Instant::now();
        // While the fault is active: every third step changes the membership (when the
        // plan allows), every other step transfers leadership.
        if step.is_multiple_of(3) && plan.membership {
            change_membership(cluster, &mut next_id, &mut report, origin).await;
        } else if step.is_multiple_of(2) {
            transfer(cluster, &mut dice, &mut report, origin).await;
        }
        if let Some(rest) = hold.checked_sub(held.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        heal(cluster, fault, &mut report, origin).await;
        tokio::time::sleep(Duration::from_millis(500 + dice.next() % 1000)).await;
    }
    report.event(origin, "nemesis done".into());
    report
}

async fn inject(
    cluster: &mut Cluster,
    dice: &mut Dice,
    report: &mut NemesisReport,
    origin: Instant,
) -> Fault {
    let live: Vec<u64> = cluster
        .nodes
        .iter()
        .filter(|n| n.is_running() && !n.retired)
        .map(|n| n.id())
        .collect();
    let leader = cluster.any_leader().await;
    let victim = leader
        .filter(|_| dice.next().is_multiple_of(2))
        .unwrap_or_else(|| dice.pick(&live));
    match dice.next() % 7 {
        0 => {
            cluster.node(victim).kill();
            report.bump("kill");
            report.event(origin, format!("SIGKILL node {victim} (leader {leader:?})"));
            Fault::Killed(vec![victim])
        }
        1 => {
            let victims = kill_set(dice, &live, victim);
            for id in &victims {
                cluster.node(*id).kill();
            }
            report.bump("kill majority");
            report.event(origin, format!("SIGKILL majority {victims:?}"));
            Fault::Killed(victims)
        }
        2 => {
            let paused = cluster.node(victim).pause();
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Proof: a stopped process cannot answer.
            if paused && status_of(&cluster.node(victim).spec.url()).await.is_some() {
                report
                    .problems
                    .push(format!("node {victim} answered while SIGSTOPped"));
            }
            report.bump("pause");
            report.event(origin, format!("SIGSTOP node {victim}"));
            Fault::Paused(victim)
        }
        3 => {
            let other = other_than(dice, &live, victim);
            report.bump("cut one way");
            report.event(origin, format!("cut {victim} -> {other}"));
            cut(cluster, vec![(victim, other)])
        }
        4 => {
            let other = other_than(dice, &live, victim);
            report.bump("cut two ways");
            report.event(origin, format!("cut {victim} <-> {other}"));
            cut(cluster, vec![(victim, other), (other, victim)])
        }
        _ => {
            let (minority, links) = partition(dice, &cluster.member_ids(), victim);
            report.bump("partition");
            report.event(origin, format!("partition {minority:?} from the rest"));
            cut(cluster, links)
        }
    }
}

/// Another node than `victim` (the cluster always has at least three).
fn other_than(dice: &mut Dice, ids: &[u64], victim: u64) -> u64 {
    let others: Vec<u64> = ids.iter().copied().filter(|i| *i != victim).collect();
    dice.pick(&others)
}

/// A majority at once (or every node: a power cut), `victim` among them: the acknowledged
/// writes they held must survive their restart.
fn kill_set(dice: &mut Dice, live: &[u64], victim: u64) -> Vec<u64> {
    let size = if dice.next().is_multiple_of(2) {
        live.len()
    } else {
        live.len() / 2 + 1
    };
    let mut victims = vec![victim];
    for id in live {
        if victims.len() < size && !victims.contains(id) {
            victims.push(*id);
        }
    }
    victims
}

/// A minority side (`victim`, plus maybe one more of five) and the links to cut both ways.
fn partition(dice: &mut Dice, members: &[u64], victim: u64) -> (Vec<u64>, Vec<(u64, u64)>) {
    let mut minority = vec![victim];
    if members.len() >= 5 && dice.next().is_multiple_of(2) {
        minority.push(other_than(dice, members, victim));
    }
    let mut links = Vec::new();
    for a in &minority {
        for b in members.iter().filter(|b| !minority.contains(b)) {
            links.push((*a, *b));
            links.push((*b, *a));
        }
    }
    (minority, links)
}

fn cut(cluster: &Cluster, links: Vec<(u64, u64)>) -> Fault {
    for (from, to) in &links {
        cluster.proxies.cut(*from, *to);
    }
    Fault::Cut(links, cluster.proxies.counters())
}

async fn heal(cluster: &mut Cluster, fault: Fault, report: &mut NemesisReport, origin: Instant) {
    match fault {
        Fault::Killed(ids) => {
            for id in ids {
                let node = cluster.node(id);
                if !node.retired && !node.is_running() {
                    node.start();
                }
            }
            report.event(origin, "restarted".into());
        }
        Fault::Paused(id) => {
            cluster.node(id).resume();
            report.event(origin, format!("SIGCONT node {id}"));
        }
        Fault::Cut(links, before) => {
            // Proof: nothing crossed a cut link while it was cut.
            let after = cluster.proxies.counters();
            for link in &links {
                let bytes =
                    |c: &BTreeMap<(u64, u64), LinkCounters>| c.get(link).map_or(0, |c| c.bytes);
                if bytes(&after) != bytes(&before) {
                    report
                        .problems
                        .push(format!("link {link:?} carried bytes while cut"));
                }
            }
            let refused: u64 = links
                .iter()
                .map(|l| {
                    after.get(l).map_or(0, |c| c.refused) - before.get(l).map_or(0, |c| c.refused)
                })
                .sum();
            cluster.proxies.heal_all();
            report.event(
                origin,
                format!("healed ({refused} connections refused while cut)"),
            );
        }
    }
}

async fn transfer(
    cluster: &mut Cluster,
    dice: &mut Dice,
    report: &mut NemesisReport,
    origin: Instant,
) {
    let voters = cluster.member_ids();
    let target = dice.pick(&voters);
    let mut admin = admin_client(cluster);
    let result = admin.transfer_leader(Some(target)).await;
    report.bump(if result.is_ok() {
        "transfer ok"
    } else {
        "transfer failed"
    });
    report.event(
        origin,
        format!("transfer leadership to {target}: {result:?}"),
    );
}

async fn change_membership(
    cluster: &mut Cluster,
    next_id: &mut u64,
    report: &mut NemesisReport,
    origin: Instant,
) {
    let members = cluster.member_ids();
    let mut admin = admin_client(cluster);
    if members.len() >= 5 {
        let leader = cluster.any_leader().await;
        // Remove a non-leader when one is known, so the change exercises a follower's exit.
        let Some(victim) = members.iter().rev().copied().find(|id| Some(*id) != leader) else {
            return;
        };
        let result = admin.remove_member(victim).await;
        report.event(
            origin,
            format!("remove node {victim}: {}", outcome(&result)),
        );
        if result.is_ok() {
            report.bump("remove ok");
            let node = cluster.node(victim);
            node.retired = true;
            node.kill();
        } else {
            report.bump("remove failed");
        }
    } else {
        let id = *next_id;
        *next_id += 1;
        let Some(via) = cluster
            .nodes
            .iter()
            .find(|n| n.is_running() && !n.retired && !n.is_paused())
            .map(|n| n.spec.url())
        else {
            return;
        };
        // The node asks to be added as a learner, catches up, then asks for promotion.
        cluster.join(id, &via).await;
        report.bump("join started");
        report.event(origin, format!("start node {id} joining through {via}"));
    }
}

fn outcome<T, E: std::fmt::Display>(result: &Result<T, E>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => format!("failed ({e})"),
    }
}
