//! Mutual TLS between peers, over real sockets on 127.0.0.1 with certificates made in the
//! test: peers that hold certificates from the cluster CA naming their ids talk; anyone
//! else is refused before a frame is read, learns nothing, and is counted.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::pki::{TestCa, raw_client_config};
use common::{
    CLUSTER_ID, any_port, config, connect_all, heartbeat, init_logs, receive, tls_endpoint,
    wait_until,
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
    node1.send(heartbeat(1, 2, 1));
    assert_eq!(receive(&mut inbound2).await, heartbeat(1, 2, 1));
    node2.send(heartbeat(2, 1, 2));
    assert_eq!(receive(&mut inbound1).await, heartbeat(2, 1, 2));
    for index in 0..4u64 {
        let data = Bytes::from(vec![index as u8; 256 << 10]);
        node1.send(snapshot_chunk(1, 2, index * (256 << 10), data));
    }
    for index in 0..4u64 {
        let message = receive(&mut inbound2).await;
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
    node1.send(heartbeat(1, 2, 1));
    assert_eq!(receive(&mut inbound2).await, heartbeat(1, 2, 1));

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
    node1.send(heartbeat(1, 2, 2));
    assert_eq!(receive(&mut inbound2).await, heartbeat(1, 2, 2));
    node1.shutdown().await;
    node2.shutdown().await;
}
