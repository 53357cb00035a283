#![allow(clippy::print_stdout)] // A benchmark binary reports its figures on stdout.
//! Throughput of [`TcpTransport`] between two endpoints on loopback.
//!
//! Run with `cargo bench -p raft-transport-tcp --bench throughput`. For each payload size
//! the sender streams `Append` messages carrying one command of that size, keeping at most
//! `WINDOW_MESSAGES` unreceived (as raft-core's in-flight window would), so no message is
//! dropped and the figure is what the transport sustains, not what it discards. Prints
//! messages/s, CPU time per message (both endpoints, user + system; steadier than the
//! rate on a shared machine), payload MB/s and wire MB/s (frames included) as a markdown
//! table.
//!
//! Each size runs twice: plaintext, then mutual TLS (certificates made at start with
//! rcgen), so the cost of TLS reads off the table.
//!
//! Set `BENCH_SECONDS` to change the measured time per size (default 3),
//! `BENCH_COALESCE_BYTES` to try another `coalesce_max_bytes` (default: the config's), and
//! `BENCH_MODES` to `plaintext` or `tls` to run only one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, Message, MessageBody};
use raft_transport_tcp::{
    ConnectionState, TcpConfig, TcpTransport, TlsConfig, Transport, node_certificate_name,
};
use tokio::sync::{Notify, mpsc};

/// Messages sent but not yet received that the sender allows; below the queue capacity so
/// nothing is dropped.
const WINDOW_MESSAGES: u64 = 512;
const CLUSTER_ID: u64 = 42;
const PAYLOAD_SIZES_BYTES: [usize; 2] = [100, 64 << 10];

fn append(payload: &Bytes, index: u64) -> Message {
    Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Append {
            prev_log_index: index,
            prev_log_term: 1,
            entries: vec![Entry {
                term: 1,
                index: index + 1,
                payload: EntryPayload::Command(payload.clone()),
            }],
            leader_commit: index,
        },
    }
}

async fn endpoint(id: u64, tls: Option<TlsConfig>) -> (TcpTransport, mpsc::Receiver<Message>) {
    let address = "127.0.0.1:0".parse().expect("literal address");
    let mut config = TcpConfig::new(id, CLUSTER_ID, address);
    config.max_frame_bytes = 1 << 20;
    if let Some(bytes) = env_number("BENCH_COALESCE_BYTES") {
        config.coalesce_max_bytes = bytes as usize;
    }
    if let Some(tls) = tls {
        config = config.with_tls(tls);
    }
    TcpTransport::bind(config).await.expect("bind loopback")
}

/// TLS material for nodes 1 and 2 from a throwaway CA.
fn tls_pair() -> [TlsConfig; 2] {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    [1, 2].map(|id| {
        let key = KeyPair::generate().expect("node key");
        let mut params = CertificateParams::new(vec![node_certificate_name(id)]).expect("params");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let certificate = params
            .signed_by(&key, &ca, &ca_key)
            .expect("node certificate");
        let (ca_pem, cert_pem, key_pem) = (ca.pem(), certificate.pem(), key.serialize_pem());
        TlsConfig::from_pem(ca_pem.as_bytes(), cert_pem.as_bytes(), key_pem.as_bytes())
            .expect("valid TLS material")
    })
}

/// CPU time this process has used (user + system), from `/proc/self/stat`; `None` where
/// that file does not exist. CPU per message is far less disturbed by other load on the
/// machine than messages per second.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

struct Figures {
    cpu: Option<Duration>,
    messages: u64,
    elapsed: Duration,
    wire_bytes: u64,
    writes: u64,
    dropped: u64,
}

/// Streams messages of `payload_bytes` for `duration` and counts what arrived.
async fn measure(
    sender: &TcpTransport,
    inbound: mpsc::Receiver<Message>,
    payload_bytes: usize,
    duration: Duration,
) -> (Figures, mpsc::Receiver<Message>) {
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    // The receiver counts appends until the sender's closing `TimeoutNow`.
    let receiver = {
        let (received, progress) = (received.clone(), progress.clone());
        let mut inbound = inbound;
        tokio::spawn(async move {
            while let Some(message) = inbound.recv().await {
                if message.body == MessageBody::TimeoutNow {
                    break;
                }
                received.fetch_add(1, Ordering::Relaxed);
                progress.notify_one();
            }
            inbound
        })
    };
    let payload = Bytes::from(vec![0xA5; payload_bytes]);
    let before = sender.metrics().peers[&2].clone();
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration {
        while sent - received.load(Ordering::Relaxed) >= WINDOW_MESSAGES {
            progress.notified().await;
        }
        sender.send(append(&payload, sent));
        sent += 1;
        if sent.is_multiple_of(64) {
            // Let the writer task run on a busy runtime.
            tokio::task::yield_now().await;
        }
    }
    sender.send(Message {
        body: MessageBody::TimeoutNow,
        ..append(&payload, sent)
    });
    let inbound = receiver.await.expect("receiver task");
    let elapsed = started.elapsed();
    assert_eq!(received.load(Ordering::Relaxed), sent, "a message was lost");
    let after = sender.metrics().peers[&2].clone();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let figures = Figures {
        cpu,
        messages: sent,
        elapsed,
        wire_bytes: after.bytes_sent - before.bytes_sent,
        writes: after.writes - before.writes,
        dropped: after.messages_dropped() - before.messages_dropped(),
    };
    (figures, inbound)
}

async fn run(duration: Duration, tls: Option<[TlsConfig; 2]>) {
    let mode = if tls.is_some() { "TLS" } else { "plaintext" };
    let [tls1, tls2] = match tls {
        Some([first, second]) => [Some(first), Some(second)],
        None => [None, None],
    };
    let (sender, _sender_inbound) = endpoint(1, tls1).await;
    let (receiver, mut inbound) = endpoint(2, tls2).await;
    sender
        .add_peer(2, receiver.local_addr())
        .expect("valid peer");
    receiver
        .add_peer(1, sender.local_addr())
        .expect("valid peer");
    // The sender's first dial may reach the receiver before it knows the sender; what is
    // sent during the retry's backoff is dropped, which the measurement does not allow.
    while sender.metrics().peers[&2].state != ConnectionState::Connected {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Warm up: let both sides settle.
    let (_, warm) = measure(&sender, inbound, 100, Duration::from_millis(300)).await;
    inbound = warm;
    for payload_bytes in PAYLOAD_SIZES_BYTES {
        let (figures, rest) = measure(&sender, inbound, payload_bytes, duration).await;
        inbound = rest;
        let seconds = figures.elapsed.as_secs_f64();
        let rate = figures.messages as f64 / seconds;
        let cpu_per_message = figures.cpu.map_or("?".to_string(), |cpu| {
            format!("{:.2}", cpu.as_secs_f64() * 1e6 / figures.messages as f64)
        });
        println!(
            "| {mode} | {payload_bytes} B | {rate:.0} | {cpu_per_message} | {:.1} | {:.1} | {:.1} | {} |",
            rate * payload_bytes as f64 / 1e6,
            figures.wire_bytes as f64 / seconds / 1e6,
            figures.messages as f64 / figures.writes.max(1) as f64,
            figures.dropped
        );
    }
    sender.shutdown().await;
    receiver.shutdown().await;
}

fn env_number(name: &str) -> Option<f64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

fn main() {
    let seconds = env_number("BENCH_SECONDS").unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let modes = std::env::var("BENCH_MODES").unwrap_or_else(|_| "plaintext,tls".into());
    let duration = Duration::from_secs_f64(seconds);
    println!(
        "| mode | payload | messages/s | payload MB/s | wire MB/s | messages/write | dropped |"
    );
    println!("|---|---|---|---|---|---|---|");
    if modes.contains("plaintext") {
        runtime.block_on(run(duration, None));
    }
    if modes.contains("tls") {
        runtime.block_on(run(duration, Some(tls_pair())));
    }
}
