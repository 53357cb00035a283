//! Strangers on the Raft port: a plaintext client and a member impersonating another on a
//! TLS cluster, and spoofed frames on an `--insecure` cluster (issue 14: one
//! HeartbeatResponse with term 2^64-1 stopped a cluster for good; an Append with an index
//! gap panicked a node).

use std::time::Duration;

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, Message, MessageBody};
use raft_kv::server::credentials::files;
use raft_transport_tcp::handshake::{HELLO_BYTES, Hello};
use raft_transport_tcp::{Lane, node_certificate_name};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Cluster, status_with};
use crate::{assert_serving, write_some};

/// The default cluster id of `raft-kv serve`.
const CLUSTER_ID: u64 = 1;

/// A term no honest node of these short tests reaches.
const SPOOFED_TERM: u64 = 1_000_000;

/// Sends a hello claiming `claimed_id`, then `messages`, and reads whatever comes back
/// until the node closes the connection or 3 s pass.
async fn speak_as<S>(mut stream: S, claimed_id: u64, messages: &[Message]) -> Vec<u8>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = Hello::new(Lane::Ordinary, CLUSTER_ID, claimed_id);
    let _ = stream.write_all(&hello.encode()).await;
    for message in messages {
        let mut frame = Vec::new();
        raft_transport_tcp::frame::encode_frame(message, 1 << 20, &mut frame).expect("encodes");
        let _ = stream.write_all(&frame).await;
    }
    let _ = stream.flush().await;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while let Ok(read @ 1..) = stream.read(&mut buffer).await {
            received.extend_from_slice(&buffer[..read]);
        }
    })
    .await;
    received
}

/// The highest term any running node reports.
async fn highest_term(cluster: &Cluster) -> u64 {
    let mut highest = 0;
    for node in &cluster.nodes {
        let status = status_with(&node.url(), &cluster.credentials).await;
        highest = highest.max(status.map_or(0, |s| s.term));
    }
    highest
}

/// Goal: on a TLS cluster, a plaintext stranger learns nothing from the Raft port, and a
/// member holding node 3's certificate cannot speak as node 1: its frames (a TimeoutNow
/// and a heartbeat in a far-future term) change nothing.
/// Method: a plaintext hello to node 2's Raft port must get at most a TLS alert, never the
/// cluster's handshake; then a TLS connection with node 3's certificate claims id 1 and
/// sends the frames. No node may reach the spoofed term, and the cluster keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_on_the_raft_port_change_nothing() {
    let cluster = Cluster::start_secure(3, &[]);
    cluster.wait_leader(Duration::from_secs(30)).await;
    let acknowledged = write_some(&cluster, "before", 3).await;
    let target = cluster.nodes.iter().find(|n| n.id == 2).unwrap();
    let address = format!("127.0.0.1:{}", target.raft_port);
    let message = |body| Message {
        from: 1,
        to: 2,
        term: SPOOFED_TERM,
        body,
    };
    let frames = [
        message(MessageBody::TimeoutNow),
        message(MessageBody::Heartbeat {
            commit: 0,
            round: 1,
        }),
    ];
    let plain = TcpStream::connect(&address).await.unwrap();
    let received = speak_as(plain, 1, &frames).await;
    assert!(
        received.is_empty() || received[0] == 21,
        "not an alert: {received:?}"
    );
    assert!(
        received.len() < HELLO_BYTES,
        "the stranger got a reply: {received:?}"
    );

    let dir = cluster.credentials_dir();
    let impostor = raft_kv::server::tls::client_config(
        &dir.join(files::CA_CERT),
        Some((
            &dir.join(files::node_cert(3)),
            &dir.join(files::node_key(3)),
        )),
    )
    .unwrap();
    let tcp = TcpStream::connect(&address).await.unwrap();
    let name = ServerName::try_from(node_certificate_name(2)).unwrap();
    let tls = tokio_rustls::TlsConnector::from(impostor)
        .connect(name, tcp)
        .await;
    if let Ok(tls) = tls {
        let received = speak_as(tls, 1, &frames).await;
        assert!(
            received.len() < HELLO_BYTES,
            "the impostor got a reply: {received:?}"
        );
    }
    assert!(
        highest_term(&cluster).await < SPOOFED_TERM,
        "a spoofed term was adopted"
    );
    assert_serving(&cluster, &acknowledged).await;
    assert!(
        highest_term(&cluster).await < SPOOFED_TERM,
        "a spoofed term was adopted"
    );
}

/// Goal: on an `--insecure` cluster, where anyone may claim any node id, a heartbeat
/// response with term 2^64-1 and an append with an index gap still cannot stop the cluster,
/// push it to an unusable term, or panic a node.
/// Method: claim a follower's id towards the leader and send the huge-term response; claim
/// the leader's id towards a follower and send an append of one entry at index 1,000,000.
/// Every node must stay healthy, no node's term may come near the spoofed one, and the
/// cluster keeps serving with its acknowledged data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_frames_leave_an_insecure_cluster_serving() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let acknowledged = write_some(&cluster, "before", 3).await;
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    let leader_node = cluster.nodes.iter().find(|n| n.id == leader).unwrap();
    let term = status_with(&leader_node.url(), &cluster.credentials)
        .await
        .unwrap()
        .term;
    let huge = Message {
        from: follower.id,
        to: leader,
        term: u64::MAX,
        body: MessageBody::HeartbeatResponse { round: 1 },
    };
    let stream = TcpStream::connect(format!("127.0.0.1:{}", leader_node.raft_port))
        .await
        .unwrap();
    speak_as(stream, follower.id, &[huge]).await;
    let gap = Message {
        from: leader,
        to: follower.id,
        term,
        body: MessageBody::Append {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![Entry {
                term,
                index: 1_000_000,
                payload: EntryPayload::Command(Bytes::from_static(b"forged")),
            }],
            leader_commit: 1_000_000,
        },
    };
    let stream = TcpStream::connect(format!("127.0.0.1:{}", follower.raft_port))
        .await
        .unwrap();
    speak_as(stream, leader, &[gap]).await;
    assert_serving(&cluster, &acknowledged).await;
    for node in &cluster.nodes {
        let status = status_with(&node.url(), &cluster.credentials)
            .await
            .unwrap();
        assert_eq!(
            status.lifecycle, "running",
            "node {} is {}",
            node.id, status.lifecycle
        );
        assert!(
            status.term < u64::MAX / 2,
            "node {} was pushed to term {}",
            node.id,
            status.term
        );
    }
}
