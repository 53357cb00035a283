//! Helpers shared by the integration tests: quick-retrying endpoints on loopback, message
//! builders and bounded waits (a test fails with a message instead of hanging).
//!
//! The tests must pass on a loaded 2-core machine, so they wait for conditions under a
//! generous deadline ([`PATIENCE`]) and never assume that one message gets through: a
//! first connection attempt may legitimately fail (the other side has not added its peer
//! yet, or a timeout passed while the machine was busy), and the transport drops what is
//! sent while a lane backs off. Like Raft, a test that needs a message to arrive resends.
#![allow(dead_code, unreachable_pub)]

pub mod pki;

use std::net::SocketAddr;
use std::time::Duration;

use raft_core::{Message, MessageBody, NodeId};
use raft_transport_tcp::{TcpConfig, TcpTransport, Transport};
use tokio::sync::mpsc;

/// The cluster id every test endpoint uses unless a test says otherwise.
pub const CLUSTER_ID: u64 = 7;

/// Longest a test waits for something that should happen in milliseconds. Only a
/// failing test ever waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How long to wait for one copy of a resent message before sending another.
pub const RESEND_INTERVAL: Duration = Duration::from_millis(50);

/// Logs go to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=debug`).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

/// A configuration that retries fast, so restarts are noticed quickly, with timeouts
/// generous enough for a busy machine.
pub fn config(id: NodeId, listen_addr: SocketAddr) -> TcpConfig {
    let mut config = TcpConfig::new(id, CLUSTER_ID, listen_addr);
    config.backoff_min = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(100);
    config.connect_timeout = Duration::from_secs(5);
    config.handshake_timeout = Duration::from_secs(5);
    config.shutdown_timeout = Duration::from_secs(5);
    config
}

/// An endpoint on an ephemeral loopback port, with TLS material issued by `ca`.
pub async fn tls_endpoint(id: NodeId, ca: &pki::TestCa) -> (TcpTransport, mpsc::Receiver<Message>) {
    TcpTransport::bind(config(id, any_port()).with_tls(ca.node_tls(id)))
        .await
        .expect("bind loopback")
}

/// Connects `nodes` to each other.
pub fn connect_all(nodes: &[&TcpTransport]) {
    for node in nodes {
        for other in nodes {
            if node.node_id() != other.node_id() {
                node.add_peer(other.node_id(), other.local_addr())
                    .expect("valid peer");
            }
        }
    }
}

/// The loopback address with a port picked by the system.
pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("literal address")
}

/// An endpoint on an ephemeral loopback port.
pub async fn endpoint(id: NodeId) -> (TcpTransport, mpsc::Receiver<Message>) {
    TcpTransport::bind(config(id, any_port()))
        .await
        .expect("bind loopback")
}

/// A heartbeat from `from` to `to`.
pub fn heartbeat(from: NodeId, to: NodeId, round: u64) -> Message {
    Message {
        from,
        to,
        term: 1,
        body: MessageBody::Heartbeat { commit: 0, round },
    }
}

/// The next inbound message, or a test failure after [`PATIENCE`].
pub async fn receive(inbound: &mut mpsc::Receiver<Message>) -> Message {
    tokio::time::timeout(PATIENCE, inbound.recv())
        .await
        .expect("a message should arrive in time")
        .expect("the transport should still be running")
}

/// Polls `condition` every few milliseconds until it holds, or fails the test.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `make(round)` for rounds 0, 1, 2... until a message that `is_answer` accepts
/// arrives at `inbound` (others are skipped), as Raft resends what was lost. Returns it.
pub async fn resend_until_received(
    sender: &TcpTransport,
    inbound: &mut mpsc::Receiver<Message>,
    mut make: impl FnMut(u64) -> Message,
    is_answer: impl Fn(&Message) -> bool,
) -> Message {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut round = 0;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message got through after {round} tries"
        );
        sender.send(make(round));
        round += 1;
        let resend_at = tokio::time::Instant::now() + RESEND_INTERVAL;
        while let Ok(received) = tokio::time::timeout_at(resend_at, inbound.recv()).await {
            let message = received.expect("the transport should still be running");
            if is_answer(&message) {
                return message;
            }
        }
    }
}

/// Sends heartbeats from `from` to `to` until one arrives at `inbound` (the receiver of
/// node `to`); returns it.
pub async fn heartbeat_gets_through(
    sender: &TcpTransport,
    inbound: &mut mpsc::Receiver<Message>,
    from: NodeId,
    to: NodeId,
) -> Message {
    resend_until_received(
        sender,
        inbound,
        |round| heartbeat(from, to, round),
        |message| message.from == from,
    )
    .await
}

/// Waits until both lanes from `node` to `peer` are connected.
pub async fn wait_connected(node: &TcpTransport, peer: NodeId) {
    wait_until("both lanes connect", || {
        node.metrics().peers.get(&peer).is_some_and(|metrics| {
            metrics.state == raft_transport_tcp::ConnectionState::Connected
                && metrics.snapshot_state == raft_transport_tcp::ConnectionState::Connected
        })
    })
    .await;
}

/// The next inbound message that `wanted` accepts, skipping others (such as late copies
/// of resent messages), or a test failure after [`PATIENCE`].
pub async fn receive_matching(
    inbound: &mut mpsc::Receiver<Message>,
    wanted: impl Fn(&Message) -> bool,
) -> Message {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let message = tokio::time::timeout_at(deadline, inbound.recv())
            .await
            .expect("a message should arrive in time")
            .expect("the transport should still be running");
        if wanted(&message) {
            return message;
        }
    }
}

/// The round of a heartbeat, if the message is one.
pub fn heartbeat_round(message: &Message) -> Option<u64> {
    match message.body {
        MessageBody::Heartbeat { round, .. } => Some(round),
        _ => None,
    }
}
