//! The failover benchmark behind `raft-kv bench --kill-leader-every SECS`: clients write
//! under their sessions while the leader process of a local cluster is SIGKILLed again and
//! again (and restarted); the report is the client-visible gap per kill, from the kill to
//! each client's first successful write invoked after it, and how many writes ended with
//! an unknown outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use crate::server::client::{ClientError, ClientOptions, ClusterClient, WriteCondition};
use crate::server::credentials::Credentials;
use crate::server::devcluster::DevCluster;

/// What to run.
#[derive(Clone, Debug)]
pub struct FailoverOptions {
    /// Concurrent clients, each with its own session and keep-alive connection.
    pub clients: usize,
    /// How long to run.
    pub duration: Duration,
    /// Time between two kills of the leader.
    pub kill_every: Duration,
    /// How long a killed node stays down before it is restarted.
    pub down_for: Duration,
    /// Bytes per value.
    pub value_size: usize,
    /// Distinct keys.
    pub keys: u64,
}

/// One kill and what the clients saw.
#[derive(Clone, Debug, Serialize)]
pub struct KillReport {
    /// The leader killed.
    pub node: u64,
    /// Milliseconds until a surviving node named a new leader (`None`: not seen).
    pub new_leader_ms: Option<f64>,
    /// Per client: milliseconds from the kill to its first successful write invoked after
    /// the kill (`None`: none before the next kill or the end).
    pub client_gaps_ms: Vec<Option<f64>>,
}

/// The result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverReport {
    /// Every kill.
    pub kills: Vec<KillReport>,
    /// Over every (kill, client): the median gap, ms.
    pub gap_p50_ms: f64,
    /// The 99th percentile gap, ms.
    pub gap_p99_ms: f64,
    /// The largest gap, ms.
    pub gap_max_ms: f64,
    /// Gaps that never closed (no success before the next kill or the end).
    pub gaps_open: usize,
    /// Successful writes.
    pub writes_ok: u64,
    /// Writes that failed with an unknown outcome (may have been applied).
    pub writes_unknown: u64,
    /// Writes that failed and certainly did not apply.
    pub writes_not_applied: u64,
    /// The first failure seen, if any.
    pub first_error: Option<String>,
}

/// What one client saw: (invoked, completed) of each successful write, and failures.
#[derive(Default)]
struct ClientLog {
    successes: Vec<(Instant, Instant)>,
    unknown: u64,
    not_applied: u64,
    first_error: Option<String>,
}

/// Runs the load and the kills against `cluster`; `on_event` hears of each kill.
pub async fn run(
    cluster: &mut DevCluster,
    options: FailoverOptions,
    on_event: impl Fn(&str),
) -> Result<FailoverReport, ClientError> {
    let stop = Arc::new(AtomicBool::new(false));
    let endpoints = cluster.endpoints().to_vec();
    let credentials = cluster.credentials().clone();
    let value = Bytes::from(vec![b'x'; options.value_size]);
    let mut tasks = Vec::new();
    for client in 0..options.clients.max(1) {
        // Spread the clients: each starts on another node, so some write through followers.
        let mut mine = endpoints.clone();
        mine.rotate_left(client % endpoints.len().max(1));
        let job = write_loop(
            mine,
            client as u64,
            options.keys,
            value.clone(),
            stop.clone(),
            credentials.clone(),
        );
        tasks.push(tokio::spawn(job));
    }
    let started = Instant::now();
    let mut kills = Vec::new();
    while started.elapsed() + options.kill_every <= options.duration {
        tokio::time::sleep(options.kill_every.saturating_sub(options.down_for)).await;
        let Some(leader) = current_leader(&endpoints, &credentials).await else {
            on_event("no leader to kill; waiting");
            continue;
        };
        cluster
            .kill(leader)
            .await
            .map_err(|e| local_error(format!("kill node {leader}: {e}")))?;
        let killed_at = Instant::now();
        let new_leader = wait_new_leader(&endpoints, &credentials, leader, options.down_for).await;
        let new_leader_ms = new_leader.map(|at| ms(at.duration_since(killed_at)));
        tokio::time::sleep(options.down_for.saturating_sub(killed_at.elapsed())).await;
        cluster
            .restart(leader)
            .map_err(|e| local_error(format!("restart node {leader}: {e}")))?;
        on_event(&format!(
            "killed leader {leader}; new leader after {} ms; restarted",
            new_leader_ms.map_or("?".into(), |m| format!("{m:.0}"))
        ));
        kills.push((leader, killed_at, new_leader_ms));
    }
    tokio::time::sleep(options.duration.saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for task in tasks {
        logs.push(task.await.map_err(|e| local_error(e.to_string()))?);
    }
    Ok(summarize(&kills, &logs))
}

fn local_error(message: String) -> ClientError {
    ClientError::Decode { status: 0, message }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn write_loop(
    endpoints: Vec<String>,
    client: u64,
    keys: u64,
    value: Bytes,
    stop: Arc<AtomicBool>,
    credentials: Credentials,
) -> ClientLog {
    let mut log = ClientLog::default();
    let options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_for: Duration::from_secs(10),
        credentials,
    };
    let Ok(mut cluster) = ClusterClient::new(&endpoints, options) else {
        return log;
    };
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("failover-{:06}", (client * 7919 + n) % keys.max(1));
        let invoked = Instant::now();
        match cluster
            .put(key.as_bytes(), value.clone(), WriteCondition::Always)
            .await
        {
            Ok(_) => log.successes.push((invoked, Instant::now())),
            Err(error) => {
                if cluster.last_call_may_have_applied() {
                    log.unknown += 1;
                } else {
                    log.not_applied += 1;
                }
                log.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    log
}

/// The leader as the first answering node names it.
async fn current_leader(endpoints: &[String], credentials: &Credentials) -> Option<u64> {
    for endpoint in endpoints {
        if let Some(status) = status_of(endpoint, credentials).await
            && let Some(leader) = status.leader
        {
            return Some(leader.id);
        }
    }
    None
}

async fn status_of(
    endpoint: &str,
    credentials: &Credentials,
) -> Option<crate::server::wire::StatusBody> {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(200),
        retry_for: Duration::ZERO,
        credentials: credentials.clone(),
    };
    let mut client = ClusterClient::new(&[endpoint.to_string()], options).ok()?;
    client.status().await.ok()
}

/// Polls the survivors until one leads; returns when that was seen.
async fn wait_new_leader(
    endpoints: &[String],
    credentials: &Credentials,
    old: u64,
    within: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + within.max(Duration::from_secs(2));
    while Instant::now() < deadline {
        for endpoint in endpoints {
            if let Some(status) = status_of(endpoint, credentials).await
                && status.role == "leader"
                && status.id != old
            {
                return Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

fn summarize(kills: &[(u64, Instant, Option<f64>)], logs: &[ClientLog]) -> FailoverReport {
    let mut all_gaps = Vec::new();
    let mut reports = Vec::new();
    for (k, (node, killed_at, new_leader_ms)) in kills.iter().enumerate() {
        let until = kills.get(k + 1).map(|(_, at, _)| *at);
        let client_gaps_ms: Vec<Option<f64>> = logs
            .iter()
            .map(|log| {
                log.successes
                    .iter()
                    .find(|(invoked, _)| invoked >= killed_at)
                    .filter(|(_, done)| until.is_none_or(|u| *done < u))
                    .map(|(_, done)| ms(done.duration_since(*killed_at)))
            })
            .collect();
        all_gaps.extend(client_gaps_ms.iter().flatten().copied());
        reports.push(KillReport {
            node: *node,
            new_leader_ms: *new_leader_ms,
            client_gaps_ms,
        });
    }
    all_gaps.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        if all_gaps.is_empty() {
            return 0.0;
        }
        let rank = ((all_gaps.len() as f64 - 1.0) * q).round() as usize;
        all_gaps[rank.min(all_gaps.len() - 1)]
    };
    let gaps_open = reports
        .iter()
        .map(|r| r.client_gaps_ms.iter().filter(|g| g.is_none()).count())
        .sum();
    FailoverReport {
        gap_p50_ms: quantile(0.5),
        gap_p99_ms: quantile(0.99),
        gap_max_ms: all_gaps.last().copied().unwrap_or(0.0),
        gaps_open,
        kills: reports,
        writes_ok: logs.iter().map(|l| l.successes.len() as u64).sum(),
        writes_unknown: logs.iter().map(|l| l.unknown).sum(),
        writes_not_applied: logs.iter().map(|l| l.not_applied).sum(),
        first_error: logs.iter().find_map(|l| l.first_error.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a client's gap runs from the kill to its first success invoked after the kill
    /// (a write stuck across the kill does not count), and a client without one before the
    /// next kill is counted as never closed.
    #[test]
    fn gaps_run_to_the_first_write_invoked_after_the_kill() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let kills = [(1, at(100), Some(120.0)), (2, at(1_000), None)];
        let steady = ClientLog {
            // Invoked before the kill, done after: not the end of the gap.
            successes: vec![
                (at(90), at(180)),
                (at(180), at(250)),
                (at(1_050), at(1_100)),
            ],
            ..ClientLog::default()
        };
        let stalled = ClientLog {
            successes: vec![(at(50), at(60)), (at(900), at(1_200))],
            unknown: 1,
            ..ClientLog::default()
        };
        let report = summarize(&kills, &[steady, stalled]);
        assert_eq!(report.kills[0].client_gaps_ms[0], Some(150.0));
        assert_eq!(
            report.kills[0].client_gaps_ms[1], None,
            "closed only after the next kill"
        );
        assert_eq!(report.kills[1].client_gaps_ms[0], Some(100.0));
        assert_eq!(report.gaps_open, 2);
        assert_eq!(report.gap_max_ms, 150.0);
        assert_eq!(report.writes_unknown, 1);
    }
}
