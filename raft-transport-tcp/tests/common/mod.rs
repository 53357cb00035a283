//! Helpers shared by the integration tests: quick-retrying endpoints on loopback, message
//! builders and bounded waits (a test fails with a message instead of hanging).
#![allow(dead_code, unreachable_pub)]

pub mod pki;

use std::net::SocketAddr;
use std::time::Duration;

use raft_core::{Message, MessageBody, NodeId};
use raft_transport_tcp::{TcpConfig, TcpTransport, Transport};
use tokio::sync::mpsc;

/// The cluster id every test endpoint uses unless a test says otherwise.
pub const CLUSTER_ID: u64 = 7;

/// Longest a test waits for something that should happen in milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Logs go to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=debug`).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

/// A configuration that retries fast, so restarts are noticed within a test's patience.
pub fn config(id: NodeId, listen_addr: SocketAddr) -> TcpConfig {
    let mut config = TcpConfig::new(id, CLUSTER_ID, listen_addr);
    config.backoff_min = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(100);
    config.connect_timeout = Duration::from_millis(500);
    config.handshake_timeout = Duration::from_millis(500);
    config.shutdown_timeout = Duration::from_millis(500);
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
