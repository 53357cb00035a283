//! The load generator behind `raft-kv bench`: N clients, each with its own keep-alive
//! connection, issue puts and gets back to back (closed loop) for a fixed time; latencies go
//! into per-client HDR histograms that are merged at the end.
//!
//! Every key lives under a per-run prefix (`bench/<run id>/`), removed after the run unless
//! [`BenchOptions::keep`] is set, so a bench leaves the store as it found it. The CPU time
//! the cluster's local processes used during the measured phase (from `/proc`) is reported
//! per operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use serde::Serialize;

use crate::server::bench_errors::{ErrorKind, ErrorTally, classify};
use crate::server::client::{
    ClientError, ClientOptions, ClusterClient, Connection, WriteCondition, random_u64,
};
use crate::server::wire::{self, HEADER_CLIENT_ID, HEADER_SEQUENCE, ReadConsistency};

/// Which nodes the clients talk to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Every client talks to the current leader (found through `/v1/status`, and followed
    /// when leadership moves during the run).
    #[default]
    Leader,
    /// Clients are spread round-robin over all endpoints (followers forward writes).
    All,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Nodes of the cluster.
    pub endpoints: Vec<String>,
    /// Concurrent clients (one connection each).
    pub clients: usize,
    /// How long to measure.
    pub duration: Duration,
    /// Load before measuring, not recorded.
    pub warmup: Duration,
    /// Bytes per value.
    pub value_size: usize,
    /// Distinct keys written and read, chosen uniformly.
    pub keys: u64,
    /// Fraction of operations that are reads.
    pub read_ratio: f64,
    /// Consistency of the reads.
    pub consistency: ReadConsistency,
    /// Where the clients send requests.
    pub target: Target,
    /// Whether writes carry a client session (exactly-once bookkeeping on the server).
    pub sessions: bool,
    /// TLS settings and token for a secured cluster.
    pub credentials: crate::server::credentials::Credentials,
    /// Every key starts with this; see [`run_prefix`].
    pub key_prefix: String,
    /// Keep the keys written instead of deleting everything under the prefix afterwards.
    pub keep: bool,
    /// Local processes of the cluster, whose CPU time is measured (none: not reported).
    pub server_pids: Vec<u32>,
}

/// A fresh prefix for one run's keys: `bench/<8 hex digits>/`.
pub fn run_prefix() -> String {
    format!("bench/{:08x}/", random_u64() & 0xffff_ffff)
}

/// Live numbers, reported about once a second.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Time since measuring started (negative phases are reported as warmup).
    pub elapsed: Duration,
    /// Whether this is still the warmup.
    pub warming_up: bool,
    /// Operations completed in the last interval, per second.
    pub ops_per_sec: f64,
    /// Operations completed so far (measured phase).
    pub ops: u64,
    /// Errors so far.
    pub errors: u64,
}

/// The result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Clients.
    pub clients: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Successful operations measured.
    pub ops: u64,
    /// Of which writes.
    pub writes: u64,
    /// Failed operations measured.
    pub errors: u64,
    /// Throughput.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// 99.9th percentile, microseconds.
    pub p999_us: u64,
    /// Largest latency, microseconds.
    pub max_us: u64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Every failed request (warm-up included) by kind, most frequent first.
    pub error_kinds: Vec<ErrorKind>,
    /// The prefix of every key written.
    pub key_prefix: String,
    /// Keys deleted after the run (`None` with `keep`).
    pub keys_removed: Option<u64>,
    /// Local cluster processes measured for CPU time.
    pub server_processes: usize,
    /// CPU time of those processes per successful operation, microseconds.
    pub server_cpu_us_per_op: Option<f64>,
    /// CPU time of the load generator itself per successful operation, microseconds.
    pub client_cpu_us_per_op: Option<f64>,
    /// Each local server process's share: CPU and context switches per operation.
    pub server_detail: Vec<ProcessCost>,
    /// Times the clients moved to a new leader during the run ([`Target::Leader`]): a run
    /// with a leader change measured an election, not the steady state.
    pub leader_changes: u64,
    /// When the clients were told of each change: seconds from the start of the measured
    /// phase (negative: during the warm-up), within the watcher's poll (250 ms) of the change.
    pub leader_changes_at_s: Vec<f64>,
}

/// What one local server process spent per successful operation.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessCost {
    /// The process.
    pub pid: u32,
    /// Whether it served the leader's HTTP address when the run started.
    pub leader_at_start: bool,
    /// CPU time per operation, microseconds.
    pub cpu_us_per_op: f64,
    /// Context switches of all its threads per operation: the spread between runs of one
    /// build mostly follows how well batches formed, which these show.
    pub switches_per_op: Option<f64>,
}

/// Shared by the clients and the reporter.
struct Shared {
    stop: AtomicBool,
    completed: AtomicU64,
    errors: AtomicU64,
    measure_from: Instant,
    first_error: std::sync::Mutex<Option<String>>,
    /// Where the clients send requests, when they follow the leader.
    leader: Option<LeaderSlot>,
}

/// The current leader's URL, and a count that changes with it so that a client notices a
/// change with one atomic load per request.
struct LeaderSlot {
    changes: AtomicU64,
    url: std::sync::Mutex<String>,
    /// When each change was seen, from the start of the measured phase.
    changed_at_s: std::sync::Mutex<Vec<f64>>,
}

impl LeaderSlot {
    fn url(&self) -> String {
        self.url.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How often the watcher asks who leads: a change costs the clients at most this long on a
/// former leader (which forwards their writes, so they still succeed).
const LEADER_POLL: Duration = Duration::from_millis(250);

struct ClientTotals {
    histogram: Histogram<u64>,
    writes: u64,
    errors: u64,
    error_kinds: ErrorTally,
}

/// Runs the benchmark; `on_progress` is called about once a second.
pub async fn run(
    options: BenchOptions,
    on_progress: impl Fn(Progress) + Send + 'static,
) -> Result<BenchReport, ClientError> {
    run_until(options, on_progress, std::future::pending()).await
}

/// [`run`], measuring until `stop` completes if that comes before
/// [`BenchOptions::duration`] has passed.
pub async fn run_until(
    options: BenchOptions,
    on_progress: impl Fn(Progress) + Send + 'static,
    stop: impl std::future::Future<Output = ()>,
) -> Result<BenchReport, ClientError> {
    let targets = targets(&options).await?;
    let leader = (options.target == Target::Leader).then(|| LeaderSlot {
        changes: AtomicU64::new(0),
        url: std::sync::Mutex::new(targets[0].clone()),
        changed_at_s: std::sync::Mutex::new(Vec::new()),
    });
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        completed: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        measure_from: Instant::now() + options.warmup,
        first_error: std::sync::Mutex::new(None),
        leader,
    });
    let value = Bytes::from(vec![b'x'; options.value_size]);
    let mut tasks = Vec::with_capacity(options.clients);
    for client in 0..options.clients {
        let endpoint = targets[client % targets.len()].clone();
        let connection = Connection::with_credentials(&endpoint, &options.credentials)?;
        let job = ClientJob {
            connection,
            shared: Arc::clone(&shared),
            value: value.clone(),
            options: options.clone(),
            seed: random_u64() | 1,
            leader_changes_seen: 0,
        };
        tasks.push(tokio::spawn(job.run()));
    }
    let reporter = tokio::spawn(report_progress(Arc::clone(&shared), on_progress));
    let watcher = tokio::spawn(watch_leader(Arc::clone(&shared), options.clone()));
    tokio::time::sleep(options.warmup).await;
    let cpu_before = CpuSample::take(&options.server_pids);
    tokio::select! {
        () = tokio::time::sleep(options.duration) => {}
        () = stop => {}
    }
    let cpu_after = CpuSample::take(&options.server_pids);
    shared.stop.store(true, Ordering::Relaxed);
    let measured = shared.measure_from.elapsed();
    reporter.abort();
    watcher.abort();
    let mut report = summarize(tasks, &shared, options.clients, measured).await?;
    report.key_prefix = options.key_prefix.clone();
    report.server_processes = options.server_pids.len();
    let per_op = |us: Option<u64>| us.map(|us| us as f64 / report.ops.max(1) as f64);
    report.server_cpu_us_per_op = per_op(cpu_after.servers_since(&cpu_before));
    report.client_cpu_us_per_op = per_op(cpu_after.client_since(&cpu_before));
    let ops = report.ops.max(1) as f64;
    report.server_detail = cpu_after
        .processes
        .iter()
        .zip(&cpu_before.processes)
        .filter_map(|(after, before)| {
            Some(ProcessCost {
                pid: after.pid,
                leader_at_start: options.target == Target::Leader
                    && crate::server::cpu::serves(after.pid, &targets[0]),
                cpu_us_per_op: after.cpu_us?.saturating_sub(before.cpu_us?) as f64 / ops,
                switches_per_op: after
                    .switches
                    .zip(before.switches)
                    .map(|(a, b)| a.saturating_sub(b) as f64 / ops),
            })
        })
        .collect();
    report.leader_changes = shared
        .leader
        .as_ref()
        .map_or(0, |slot| slot.changes.load(Ordering::Relaxed));
    report.leader_changes_at_s = shared.leader.as_ref().map_or_else(Vec::new, |slot| {
        slot.changed_at_s
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    });
    if !options.keep {
        report.keys_removed = Some(remove_keys(&options).await?);
    }
    Ok(report)
}

/// CPU time used so far by the cluster's processes (all of them, or `None`) and by this one.
struct CpuSample {
    servers_us: Option<u64>,
    client_us: Option<u64>,
    processes: Vec<ProcessSample>,
}

/// One server process's counters at one moment.
struct ProcessSample {
    pid: u32,
    cpu_us: Option<u64>,
    switches: Option<u64>,
}

impl CpuSample {
    fn take(pids: &[u32]) -> Self {
        let processes: Vec<ProcessSample> = pids
            .iter()
            .map(|&pid| ProcessSample {
                pid,
                cpu_us: crate::server::cpu::cpu_us(pid),
                switches: crate::server::cpu::context_switches(pid),
            })
            .collect();
        let servers_us = if processes.is_empty() {
            None
        } else {
            processes.iter().map(|p| p.cpu_us).sum()
        };
        CpuSample {
            servers_us,
            client_us: crate::server::cpu::own_cpu_us(),
            processes,
        }
    }

    fn servers_since(&self, before: &CpuSample) -> Option<u64> {
        Some(self.servers_us?.saturating_sub(before.servers_us?))
    }

    fn client_since(&self, before: &CpuSample) -> Option<u64> {
        Some(self.client_us?.saturating_sub(before.client_us?))
    }
}

/// Value bytes the cleanup asks for in one page of the key listing.
const LIST_PAGE_BYTES: usize = 4 << 20;

/// Deletes every key under the run's prefix (found by listing, so writes whose outcome was
/// unknown are removed too), with up to 16 deletes in flight; returns how many.
pub(crate) async fn remove_keys(options: &BenchOptions) -> Result<u64, ClientError> {
    let client_options = ClientOptions {
        credentials: options.credentials.clone(),
        ..ClientOptions::default()
    };
    let mut lister = ClusterClient::new(&options.endpoints, client_options.clone())?;
    let prefix = options.key_prefix.as_str();
    if prefix.is_empty() {
        return Err(decode_error(
            "refusing to delete every key: empty prefix".into(),
        ));
    }
    // A page carries the values too: keep it to a few MiB (1,000 keys of 1 MB values would
    // be a 1 GB answer, held twice in memory on both ends and slower than the request timeout).
    let page = u32::try_from(LIST_PAGE_BYTES / options.value_size.max(1))
        .unwrap_or(u32::MAX)
        .clamp(1, 1000);
    let mut removed = 0u64;
    let mut start_after: Option<String> = None;
    loop {
        let listed = lister
            .list(
                prefix,
                start_after.as_deref(),
                page,
                ReadConsistency::Linearizable,
            )
            .await?;
        let keys: Vec<Vec<u8>> = listed
            .entries
            .iter()
            .filter_map(|e| e.key_bytes())
            .collect();
        start_after = keys.last().map(|k| String::from_utf8_lossy(k).into_owned());
        let mut deleters = tokio::task::JoinSet::new();
        for chunk in keys.chunks(keys.len().div_ceil(16).max(1)) {
            let (chunk, endpoints) = (chunk.to_vec(), options.endpoints.clone());
            let client_options = client_options.clone();
            deleters.spawn(async move {
                let mut client = ClusterClient::new(&endpoints, client_options)?;
                for key in &chunk {
                    client.delete(key, WriteCondition::Always).await?;
                }
                Ok::<u64, ClientError>(chunk.len() as u64)
            });
        }
        while let Some(done) = deleters.join_next().await {
            removed += done.map_err(|e| decode_error(e.to_string()))??;
        }
        if !listed.more || start_after.is_none() {
            return Ok(removed);
        }
    }
}

/// Merges the clients' histograms and counts into the report.
async fn summarize(
    tasks: Vec<tokio::task::JoinHandle<ClientTotals>>,
    shared: &Shared,
    clients: usize,
    measured: Duration,
) -> Result<BenchReport, ClientError> {
    let mut histogram = Histogram::<u64>::new(3).map_err(|e| decode_error(e.to_string()))?;
    let (mut writes, mut errors) = (0, 0);
    let mut error_kinds = ErrorTally::default();
    for task in tasks {
        let totals = task.await.map_err(|e| decode_error(e.to_string()))?;
        histogram
            .add(&totals.histogram)
            .map_err(|e| decode_error(e.to_string()))?;
        writes += totals.writes;
        errors += totals.errors;
        error_kinds.merge(totals.error_kinds);
    }
    let seconds = measured.as_secs_f64().max(1e-9);
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(BenchReport {
        clients,
        seconds,
        ops: histogram.len(),
        writes,
        errors,
        ops_per_sec: histogram.len() as f64 / seconds,
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        p999_us: histogram.value_at_quantile(0.999),
        max_us: histogram.max(),
        mean_us: histogram.mean(),
        first_error,
        error_kinds: error_kinds.into_kinds(),
        key_prefix: String::new(),
        keys_removed: None,
        server_processes: 0,
        server_cpu_us_per_op: None,
        client_cpu_us_per_op: None,
        server_detail: Vec::new(),
        leader_changes: 0,
        leader_changes_at_s: Vec::new(),
    })
}

/// Seconds from `origin` to `at`, negative when `at` comes first.
fn seconds_since(origin: Instant, at: Instant) -> f64 {
    match at.checked_duration_since(origin) {
        Some(after) => after.as_secs_f64(),
        None => -origin.duration_since(at).as_secs_f64(),
    }
}

fn decode_error(message: String) -> ClientError {
    ClientError::Decode { status: 0, message }
}

/// The endpoints the clients use: the leader alone, or all of them.
async fn targets(options: &BenchOptions) -> Result<Vec<String>, ClientError> {
    if options.target == Target::All {
        return Ok(options.endpoints.clone());
    }
    let client_options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_for: Duration::from_secs(10),
        credentials: options.credentials.clone(),
    };
    let mut client = ClusterClient::new(&options.endpoints, client_options)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client.status().await?;
        if let Some(url) = status.leader.and_then(|l| l.url) {
            return Ok(vec![url]);
        }
        if Instant::now() > deadline {
            return Err(decode_error("no leader with a registered URL".into()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Keeps [`Shared::leader`] on the node that leads now, asking every [`LEADER_POLL`]; a
/// failed question keeps the last answer (the clients' own errors show an outage).
async fn watch_leader(shared: Arc<Shared>, options: BenchOptions) {
    let Some(slot) = shared.leader.as_ref() else {
        return;
    };
    let client_options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        // Long enough to move past a node that went down to one that answers.
        retry_for: Duration::from_secs(1),
        credentials: options.credentials.clone(),
    };
    let mut client = match ClusterClient::new(&options.endpoints, client_options) {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "bench cannot follow the leader");
            return;
        }
    };
    let mut interval = tokio::time::interval(LEADER_POLL);
    loop {
        interval.tick().await;
        let Ok(status) = client.status().await else {
            continue;
        };
        let Some(url) = status.leader.and_then(|l| l.url) else {
            continue;
        };
        let mut current = slot.url.lock().unwrap_or_else(|p| p.into_inner());
        if *current != url {
            tracing::info!(from = %*current, to = %url, "bench follows the new leader");
            *current = url;
            slot.changed_at_s
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(seconds_since(shared.measure_from, Instant::now()));
            slot.changes.fetch_add(1, Ordering::Release);
        }
    }
}

async fn report_progress(shared: Arc<Shared>, on_progress: impl Fn(Progress)) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.tick().await;
    let mut last = (Instant::now(), 0u64);
    loop {
        interval.tick().await;
        let now = Instant::now();
        let completed = shared.completed.load(Ordering::Relaxed);
        let rate = (completed - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, completed);
        let warming_up = now < shared.measure_from;
        on_progress(Progress {
            elapsed: now.saturating_duration_since(shared.measure_from),
            warming_up,
            ops_per_sec: rate,
            ops: completed,
            errors: shared.errors.load(Ordering::Relaxed),
        });
    }
}

struct ClientJob {
    connection: Connection,
    shared: Arc<Shared>,
    value: Bytes,
    options: BenchOptions,
    seed: u64,
    /// [`LeaderSlot::changes`] when this client last connected.
    leader_changes_seen: u64,
}

impl ClientJob {
    async fn run(mut self) -> ClientTotals {
        let mut totals = ClientTotals {
            // Invariant: 1 us to 60 s at 3 significant figures are valid constant bounds.
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("constant histogram bounds are valid"),
            writes: 0,
            errors: 0,
            error_kinds: ErrorTally::default(),
        };
        let client_id = random_u64().max(1);
        let mut sequence = 0u64;
        let read_threshold = (self.options.read_ratio.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        while !self.shared.stop.load(Ordering::Relaxed) {
            self.reconnect_if_leader_moved();
            let index = self.next_random() % self.options.keys.max(1);
            let key = format!("{}{index:010}", self.options.key_prefix);
            let is_read = self.next_random() < read_threshold;
            let started = Instant::now();
            let result = if is_read {
                let path = format!(
                    "/v1/kv/{}?consistency={}",
                    wire::encode_key(key.as_bytes()),
                    self.options.consistency.as_str()
                );
                self.connection
                    .send(Method::GET, &path, &[], Bytes::new())
                    .await
            } else {
                let path = format!("/v1/kv/{}", wire::encode_key(key.as_bytes()));
                let mut headers = Vec::new();
                if self.options.sessions {
                    sequence += 1;
                    headers.push((HEADER_CLIENT_ID, client_id.to_string()));
                    headers.push((HEADER_SEQUENCE, sequence.to_string()));
                }
                self.write(&path, &headers).await
            };
            let ok = match &result {
                Ok(answer) => {
                    answer.status.is_success()
                        || (is_read && answer.status == hyper::StatusCode::NOT_FOUND)
                }
                Err(_) => false,
            };
            let measuring = started >= self.shared.measure_from;
            if !ok {
                let (kind, message) = classify(&result);
                self.note_error(format!("{kind}: {message}"));
                totals.error_kinds.add(
                    kind,
                    message,
                    seconds_since(self.shared.measure_from, started),
                );
            }
            if ok {
                self.shared.completed.fetch_add(1, Ordering::Relaxed);
                if measuring {
                    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    totals.histogram.saturating_record(us.max(1));
                    totals.writes += u64::from(!is_read);
                }
            } else {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
                totals.errors += u64::from(measuring);
                // Do not spin on a node that is down.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        totals
    }

    /// One put. A put under a client session is sent again (same client id and sequence,
    /// so it applies at most once) while the answer is retryable, as a client would: the
    /// user sees the success, and its latency includes the wait.
    async fn write(
        &mut self,
        path: &str,
        headers: &[(&'static str, String)],
    ) -> Result<crate::server::client::Answer, ClientError> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let result = self
                .connection
                .send(Method::PUT, path, headers, self.value.clone())
                .await;
            let retryable = match &result {
                Ok(answer) => matches!(answer.status.as_u16(), 503 | 504),
                Err(error) => error.is_retryable(),
            };
            if headers.is_empty() || !retryable || self.shared.stop.load(Ordering::Relaxed) {
                return result;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// Moves to the leader the watcher last saw, when it changed since this client connected.
    fn reconnect_if_leader_moved(&mut self) {
        let Some(slot) = self.shared.leader.as_ref() else {
            return;
        };
        let changes = slot.changes.load(Ordering::Acquire);
        if changes == self.leader_changes_seen {
            return;
        }
        self.leader_changes_seen = changes;
        match Connection::with_credentials(&slot.url(), &self.options.credentials) {
            Ok(connection) => self.connection = connection,
            Err(error) => self.note_error(error.to_string()),
        }
    }

    /// xorshift64: cheap, and good enough to spread keys and choose reads.
    fn next_random(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    fn note_error(&self, message: String) {
        let mut first = self
            .shared
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(message);
        }
    }
}
