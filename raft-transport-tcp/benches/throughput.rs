#![allow(clippy::print_stdout)] // A benchmark binary reports its figures on stdout.
//! Throughput of [`TcpTransport`] between two endpoints on loopback.
//!
//! Run with `cargo bench -p raft-transport-tcp --bench throughput`. For each payload size
//! the sender streams `Append` messages carrying one command of that size, keeping at most
//! `WINDOW_MESSAGES` unreceived (as raft-core's in-flight window would), so no message is
//! dropped and the figure is what the transport sustains, not what it discards. Prints
//! messages/s, payload MB/s and wire MB/s (frames included) as a markdown table.
//!
//! Set `BENCH_SECONDS` to change the measured time per size (default 3), and
//! `BENCH_COALESCE_BYTES` to try another `coalesce_max_bytes` (default: the config's).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, Message, MessageBody};
use raft_transport_tcp::{TcpConfig, TcpTransport, Transport};
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

async fn endpoint(id: u64) -> (TcpTransport, mpsc::Receiver<Message>) {
    let address = "127.0.0.1:0".parse().expect("literal address");
    let mut config = TcpConfig::new(id, CLUSTER_ID, address);
    config.max_frame_bytes = 1 << 20;
    if let Some(bytes) = env_number("BENCH_COALESCE_BYTES") {
        config.coalesce_max_bytes = bytes as usize;
    }
    TcpTransport::bind(config).await.expect("bind loopback")
}

struct Figures {
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
    let figures = Figures {
        messages: sent,
        elapsed,
        wire_bytes: after.bytes_sent - before.bytes_sent,
        writes: after.writes - before.writes,
        dropped: after.messages_dropped() - before.messages_dropped(),
    };
    (figures, inbound)
}

async fn run(duration: Duration) {
    let (sender, _sender_inbound) = endpoint(1).await;
    let (receiver, mut inbound) = endpoint(2).await;
    sender
        .add_peer(2, receiver.local_addr())
        .expect("valid peer");
    receiver
        .add_peer(1, sender.local_addr())
        .expect("valid peer");
    // Warm up: wait for the connection and let both sides settle.
    let (_, warm) = measure(&sender, inbound, 100, Duration::from_millis(300)).await;
    inbound = warm;
    println!("| payload | messages/s | payload MB/s | wire MB/s | messages/write | dropped |");
    println!("|---|---|---|---|---|---|");
    for payload_bytes in PAYLOAD_SIZES_BYTES {
        let (figures, rest) = measure(&sender, inbound, payload_bytes, duration).await;
        inbound = rest;
        let seconds = figures.elapsed.as_secs_f64();
        let rate = figures.messages as f64 / seconds;
        println!(
            "| {payload_bytes} B | {rate:.0} | {:.1} | {:.1} | {:.1} | {} |",
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
    runtime.block_on(run(Duration::from_secs_f64(seconds)));
}
