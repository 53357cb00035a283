//! Mutual TLS between peers, over real sockets on 127.0.0.1 with certificates made in the
//! test: peers that hold certificates from the cluster CA naming their ids talk; anyone
//! else is refused before a frame is read, learns nothing, and is counted.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::pki::{TestCa, raw_client_config};
use common::{
    CLUSTER_ID, any_port, config, connect_all, heartbeat, heartbeat_gets_through, init_logs,
    resend_until_received, tls_endpoint, wait_until,
};
use raft_core::{Message, MessageBody};
use raft_transport_tcp::handshake::{HELLO_BYTES, Hello};
use raft_transport_tcp::{
    Lane, StartError, TcpTransport, TlsError, Transport, node_certificate_name,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn snapshot_chunk(from: u64, to: u64, offset: u64, data: Bytes) -> Message {
    Message {
        from,
        to,
        term: 1,
        body: MessageBody::SnapshotChunk {
            meta: Box::default(),
            offset,
            data,
            done: false,
        },
    }
}

/// Goal: with TLS on, peers exchange ordinary messages both ways and snapshot chunks on
/// their own lane, as in plaintext.
#[tokio::test]
async fn tls_peers_exchange_messages_and_snapshot_chunks() {
    init_logs();
    let ca = TestCa::new("cluster CA");
    let (node1, mut inbound1) = tls_endpoint(1, &ca).await;
    let (node2, mut inbound2) = tls_endpoint(2, &ca).await;
    connect_all(&[&node1, &node2]);
    let from = |id: u64| move |message: &Message| message.from == id;
    resend_until_received(
        &node1,
        &mut inbound2,
        |round| heartbeat(1, 2, round),
        from(1),
    )
    .await;
    resend_until_received(
        &node2,
        &mut inbound1,
        |round| heartbeat(2, 1, round),
        from(2),
    )
    .await;
    // Chunks sent while the snapshot lane is still connecting wait in its queue.
    common::wait_connected(&node1, 2).await;
    for index in 0..4u64 {
        let data = Bytes::from(vec![index as u8; 256 << 10]);
        node1.send(snapshot_chunk(1, 2, index * (256 << 10), data));
    }
    for index in 0..4u64 {
        let is_chunk = |message: &Message| message.is_snapshot_data();
        let message = common::receive_matching(&mut inbound2, is_chunk).await;
        match message.body {
            MessageBody::SnapshotChunk { offset, data, .. } => {
                assert_eq!(offset, index * (256 << 10));
                assert!(data.iter().all(|&byte| byte == index as u8));
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    let metrics = node2.metrics();
    assert_eq!(metrics.handshakes_rejected, 0, "{metrics:?}");
    node1.shutdown().await;
    node2.shutdown().await;
}

/// Goal: a transport refuses to start with a certificate that does not name its node id,
/// and says which name is missing.
#[tokio::test]
async fn certificate_for_another_id_cannot_start_a_transport() {
    let ca = TestCa::new("cluster CA");
    let settings = config(1, any_port()).with_tls(ca.node_tls(3));
    match TcpTransport::bind(settings).await {
        Err(StartError::Tls(TlsError::NotForNode { node_id: 1, .. })) => {}
        other => panic!("expected NotForNode, got {other:?}"),
    }
}

/// Reads everything the server sends until it closes (or a generous deadline passes).
async fn read_until_closed<S: AsyncReadExt + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "the server kept a refused connection open");
    received
}

/// Goal: a member of the cluster (a valid certificate for node 3) cannot pass itself off
/// as node 1: the hello's id must be one its certificate names. It is refused before any
/// frame, gets no reply, and is counted; the real node 1 keeps talking.
#[tokio::test]
async fn peer_claiming_an_id_its_certificate_does_not_name_is_refused() {
    init_logs();
    let ca = TestCa::new("cluster CA");
    let (node1, _inbound1) = tls_endpoint(1, &ca).await;
    let (node2, mut inbound2) = tls_endpoint(2, &ca).await;
    connect_all(&[&node1, &node2]);
    heartbeat_gets_through(&node1, &mut inbound2, 1, 2).await;

    let impostor = ca.issue(&[node_certificate_name(3)]);
    let connector = tokio_rustls::TlsConnector::from(raw_client_config(&ca, &impostor));
    let tcp = TcpStream::connect(node2.local_addr())
        .await
        .expect("connect");
    let name = ServerName::try_from(node_certificate_name(2)).expect("valid name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let hello = Hello::new(Lane::Ordinary, CLUSTER_ID, 1);
    tls.write_all(&hello.encode()).await.expect("write hello");
    tls.flush().await.expect("flush hello");
    let mut frame = Vec::new();
    raft_transport_tcp::frame::encode_frame(&heartbeat(1, 2, 666), 1 << 20, &mut frame)
        .expect("encodes");
    let _ = tls.write_all(&frame).await;
    let _ = tls.flush().await;
    let reply = read_until_closed(&mut tls).await;
    assert!(
        reply.len() < HELLO_BYTES,
        "the impostor got a reply: {reply:?}"
    );
    wait_until("the impostor is counted", || {
        node2.metrics().identity_mismatches == 1
    })
    .await;
    heartbeat_gets_through(&node1, &mut inbound2, 1, 2).await;
    node1.shutdown().await;
    node2.shutdown().await;
}

/// Goal: a plaintext stranger that knows the cluster id and a node id gets nothing from a
/// TLS node: at most a TLS alert, never a reply, the cluster id or a node id.
/// Method: send a well-formed plaintext hello as node 1 and read everything the server
/// sends until it closes.
#[tokio::test]
async fn plaintext_stranger_is_refused_without_learning_anything() {
    init_logs();
    let ca = TestCa::new("cluster CA");
    let (node1, _inbound1) = tls_endpoint(1, &ca).await;
    let (node2, mut inbound2) = tls_endpoint(2, &ca).await;
    connect_all(&[&node1, &node2]);
    let mut stranger = TcpStream::connect(node2.local_addr())
        .await
        .expect("connect");
    let hello = Hello::new(Lane::Ordinary, CLUSTER_ID, 1);
    stranger
        .write_all(&hello.encode())
        .await
        .expect("write hello");
    let received = read_until_closed(&mut stranger).await;
    // A TLS record starts with its content type; 21 is an alert.
    assert!(
        received.is_empty() || received[0] == 21,
        "the stranger got something other than an alert: {received:?}"
    );
    assert!(received.len() < HELLO_BYTES, "{received:?}");
    let leaked = |needle: &[u8]| received.windows(needle.len()).any(|w| w == needle);
    assert!(!leaked(&CLUSTER_ID.to_be_bytes()), "cluster id leaked");
    assert!(!leaked(b"RAFT"), "a handshake reply leaked");
    wait_until("the stranger is counted", || {
        node2.metrics().tls_handshakes_failed == 1
    })
    .await;
    heartbeat_gets_through(&node1, &mut inbound2, 1, 2).await;
    node1.shutdown().await;
    node2.shutdown().await;
}

/// Goal: a client certificate issued by another CA is refused, even when it names a real
/// node id and the client trusts the cluster's CA; a whole transport built on a foreign CA
/// never connects either way.
#[tokio::test]
async fn certificate_from_a_foreign_ca_is_refused() {
    init_logs();
    let ca = TestCa::new("cluster CA");
    let foreign = TestCa::new("foreign CA");
    let (node1, _inbound1) = tls_endpoint(1, &ca).await;
    let (node2, mut inbound2) = tls_endpoint(2, &ca).await;
    connect_all(&[&node1, &node2]);

    let intruder = foreign.issue(&[node_certificate_name(1)]);
    let connector = tokio_rustls::TlsConnector::from(raw_client_config(&ca, &intruder));
    let tcp = TcpStream::connect(node2.local_addr())
        .await
        .expect("connect");
    let name = ServerName::try_from(node_certificate_name(2)).expect("valid name");
    // In TLS 1.3 the client may finish before the server has judged its certificate, so
    // the refusal shows either here or on the first read.
    if let Ok(mut tls) = connector.connect(name, tcp).await {
        let hello = Hello::new(Lane::Ordinary, CLUSTER_ID, 1);
        let _ = tls.write_all(&hello.encode()).await;
        let _ = tls.flush().await;
        let reply = read_until_closed(&mut tls).await;
        assert!(reply.is_empty(), "the intruder got a reply: {reply:?}");
    }
    wait_until("the intruder is counted", || {
        node2.metrics().tls_handshakes_failed == 1
    })
    .await;

    // A foreign node 3 that node 2 knows as a peer dials it: refused, never delivered.
    let (node3, _inbound3) = tls_endpoint(3, &foreign).await;
    node2.add_peer(3, node3.local_addr()).expect("valid peer");
    node3.add_peer(2, node2.local_addr()).expect("valid peer");
    wait_until("node 3 fails to connect", || {
        node3.send(heartbeat(3, 2, 1));
        node3.metrics().peers[&2].connect_failures >= 2
    })
    .await;
    assert_eq!(node3.metrics().peers[&2].messages_sent, 0);
    let message = heartbeat_gets_through(&node1, &mut inbound2, 1, 2).await;
    assert_eq!(message.from, 1);
    for node in [node1, node2, node3] {
        node.shutdown().await;
    }
}

/// Goal: a TLS connection that never starts its handshake is closed after the handshake
/// timeout and counted as timed out.
#[tokio::test]
async fn silent_connection_times_out_under_tls() {
    init_logs();
    let ca = TestCa::new("cluster CA");
    let mut settings = config(2, any_port()).with_tls(ca.node_tls(2));
    settings.handshake_timeout = Duration::from_millis(300);
    let (node2, _inbound2) = TcpTransport::bind(settings).await.expect("bind");
    let mut silent = TcpStream::connect(node2.local_addr())
        .await
        .expect("connect");
    let received = read_until_closed(&mut silent).await;
    assert!(received.is_empty(), "{received:?}");
    wait_until("the timeout is counted", || {
        node2.metrics().handshakes_timed_out == 1
    })
    .await;
    node2.shutdown().await;
}

/// Idle strangers opened against one node in the starvation test: many times the pending
/// handshake limit (64), the scale of the flood that once made a leader step down.
const IDLE_STRANGERS: usize = 300;

/// Goal: handshake slots cannot be starved by idle strangers: with 300 connections open
/// and silent, from 100 different loopback addresses, real peers still connect over TLS
/// and messages flow both ways.
/// Method: open the strangers first and keep them open; then start two TLS peers and wait
/// for messages. The target's handshake timeout is longer than the test's patience, so
/// only eviction can make room: each newcomer over the pending limit evicts the oldest
/// pending connection, so at least 300 - 64 strangers are evicted before the peers dial.
#[tokio::test]
async fn idle_strangers_cannot_starve_real_peers() {
    init_logs();
    let ca = TestCa::new("cluster CA");
    let mut settings = config(2, any_port()).with_tls(ca.node_tls(2));
    settings.handshake_timeout = common::PATIENCE * 4;
    let (node2, mut inbound2) = TcpTransport::bind(settings).await.expect("bind");
    let mut strangers = Vec::with_capacity(IDLE_STRANGERS);
    for index in 0..IDLE_STRANGERS {
        let source = std::net::SocketAddr::from(([127, 0, 1, (index % 100) as u8 + 1], 0));
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(source).expect("bind a loopback source address");
        strangers.push(socket.connect(node2.local_addr()).await.expect("connect"));
    }
    let at_least_evicted = (IDLE_STRANGERS - 64) as u64;
    wait_until("the oldest strangers are evicted", || {
        node2.metrics().handshakes_evicted >= at_least_evicted
    })
    .await;

    let (node1, mut inbound1) = tls_endpoint(1, &ca).await;
    connect_all(&[&node1, &node2]);
    let from = |id: u64| move |message: &Message| message.from == id;
    resend_until_received(
        &node1,
        &mut inbound2,
        |round| heartbeat(1, 2, round),
        from(1),
    )
    .await;
    resend_until_received(
        &node2,
        &mut inbound1,
        |round| heartbeat(2, 1, round),
        from(2),
    )
    .await;
    // The first stranger was the oldest: it has been closed.
    let received = read_until_closed(&mut strangers[0]).await;
    assert!(received.is_empty(), "{received:?}");
    drop(strangers);
    node1.shutdown().await;
    node2.shutdown().await;
}
