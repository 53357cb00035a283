//! Clients that record a history for the linearizability checker, and a ledger client whose
//! acknowledged writes must all survive.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_kv::server::client::{ClientError, ClientOptions, ClusterClient, WriteCondition};
use raft_kv::server::wire::ReadConsistency;
use raft_sim_kv::{KvInput, KvOp, KvOperation as Operation, KvOutput};

/// Retry budget of a workload client: long enough to ride out a failover, short enough
/// that a client stuck behind a partition records an unknown outcome and moves on.
fn options() -> ClientOptions {
    ClientOptions {
        credentials: Default::default(),
        request_timeout: Duration::from_millis(1_500),
        retry_for: Duration::from_secs(3),
    }
}

/// Outcome counts of one client.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) unknown: u64,
    /// Writes the cluster said certainly did not happen (left out of the history, so a
    /// false claim shows as a violation).
    pub(crate) not_applied: u64,
    pub(crate) failed_reads: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.unknown += other.unknown;
        self.not_applied += other.not_applied;
        self.failed_reads += other.failed_reads;
    }
}

/// A small deterministic generator (xorshift), one per client.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub(crate) fn key_name(key: u64) -> Vec<u8> {
    format!("nemesis-{key}").into_bytes()
}

fn micros_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// One register client: gets and puts (unique values) on `keys` keys until `stop`.
pub(crate) async fn register_client(
    client: u64,
    keys: u64,
    urls: Vec<String>,
    origin: Instant,
    stop: Arc<AtomicBool>,
) -> (Vec<Operation>, Tally) {
    let mut cluster = ClusterClient::new(&urls, options()).expect("client");
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (client + 1).wrapping_mul(0x2545_F491));
    let mut history = Vec::new();
    let mut tally = Tally::default();
    let mut sequence = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = dice.next() % keys;
        let name = key_name(key);
        let call_us = micros_since(origin);
        let (input, output) = if dice.next().is_multiple_of(2) {
            let read = cluster.get(&name, ReadConsistency::Linearizable).await;
            (
                KvInput::Get,
                read.ok().map(|v| KvOutput::Get(v.map(|v| parse(&v.value)))),
            )
        } else {
            sequence += 1;
            let value = (client << 40) | sequence;
            let put = cluster
                .put(
                    &name,
                    Bytes::from(value.to_string()),
                    WriteCondition::Always,
                )
                .await;
            (KvInput::Put(value), put.ok().map(|_| KvOutput::Put))
        };
        let return_us = output.map(|_| micros_since(origin));
        match (input, output) {
            (_, Some(_)) => tally.ok += 1,
            (KvInput::Get, None) => tally.failed_reads += 1,
            (_, None) if !cluster.last_call_may_have_applied() => {
                tally.not_applied += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            (_, None) => tally.unknown += 1,
        }
        history.push(Operation {
            client,
            input: KvOp { key, input },
            output,
            call_us,
            return_us,
        });
        if output.is_none() {
            // The cluster is unavailable from here; do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (history, tally)
}

/// A value the clients never write, so a garbled read cannot pass as a real one.
const GARBLED: u64 = u64::MAX;

fn parse(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(GARBLED)
}

/// The ledger: write-once keys; returns the numbers whose write was acknowledged.
pub(crate) async fn ledger_client(urls: Vec<String>, stop: Arc<AtomicBool>) -> BTreeSet<u64> {
    let mut cluster = ClusterClient::new(&urls, options()).expect("client");
    let mut acked = BTreeSet::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("ledger-{n:08}");
        match cluster
            .put(
                key.as_bytes(),
                Bytes::from(n.to_string()),
                WriteCondition::Always,
            )
            .await
        {
            Ok(_) => {
                acked.insert(n);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    acked
}

/// The ledger numbers present in the store (read linearizably after the faults healed).
pub(crate) async fn ledger_contents(urls: &[String]) -> Result<BTreeSet<u64>, ClientError> {
    let options = ClientOptions {
        credentials: Default::default(),
        request_timeout: Duration::from_secs(5),
        retry_for: Duration::from_secs(30),
    };
    let mut cluster = ClusterClient::new(urls, options)?;
    let mut present = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = cluster
            .list(
                "ledger-",
                after.as_deref(),
                1000,
                ReadConsistency::Linearizable,
            )
            .await?;
        let keys: Vec<String> = page.entries.iter().filter_map(|e| e.key.clone()).collect();
        for key in &keys {
            if let Some(n) = key.strip_prefix("ledger-").and_then(|n| n.parse().ok()) {
                present.insert(n);
            }
        }
        match keys.last() {
            Some(last) if page.more => after = Some(last.clone()),
            _ => return Ok(present),
        }
    }
}
