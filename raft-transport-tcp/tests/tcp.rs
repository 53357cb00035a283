//! End-to-end behaviour of `TcpTransport` over real sockets on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{
    CLUSTER_ID, PATIENCE, RESEND_INTERVAL, any_port, config, connect_all, endpoint, heartbeat,
    heartbeat_gets_through, heartbeat_round, init_logs, receive, receive_matching, wait_connected,
    wait_until,
};
use raft_core::{Message, MessageBody};
use raft_transport_tcp::{ConnectionState, TcpConfig, TcpTransport, Transport};
use tokio::sync::Notify;

/// Goal: three endpoints, wired at runtime, all reach each other and the counters show it.
/// Method: for each ordered pair, the sender resends a heartbeat (as Raft would) until the
/// receiver has one, checked (`from`, `to`) by the transport; then every link is connected
/// and has carried traffic both ways.
#[tokio::test]
async fn three_endpoints_exchange_messages() {
    init_logs();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(endpoint(id).await);
    }
    let transports: Vec<TcpTransport> = nodes.iter().map(|(t, _)| t.clone()).collect();
    connect_all(&transports.iter().collect::<Vec<_>>());
    for sender in &transports {
        for (receiver, inbound) in &mut nodes {
            let (from, to) = (sender.node_id(), receiver.node_id());
            if from == to {
                continue;
            }
            let message = heartbeat_gets_through(sender, inbound, from, to).await;
            assert_eq!(message.to, to);
        }
    }
    for transport in &transports {
        let metrics = transport.metrics();
        assert_eq!(metrics.peers.len(), 2);
        for (peer, counters) in &metrics.peers {
            assert!(counters.messages_sent >= 1, "to peer {peer}: {counters:?}");
            assert!(
                counters.messages_received >= 1,
                "from peer {peer}: {counters:?}"
            );
        }
        for peer in transport.peers() {
            wait_connected(transport, peer).await;
        }
    }
    for transport in &transports {
        transport.shutdown().await;
    }
}

/// Goal: a peer that goes down is noticed, messages meanwhile are dropped and counted, and
/// when it comes back on the same address both lanes reconnect and deliver new messages.
/// Method: stop node 2, wait for node 1 to see the link down, restart node 2 on the same
/// port, and resend (as Raft would) until a heartbeat and a snapshot chunk arrive.
#[tokio::test]
async fn restarted_peer_is_reconnected() {
    init_logs();
    let (node1, _inbound1) = endpoint(1).await;
    let (node2, inbound2) = endpoint(2).await;
    let address2 = node2.local_addr();
    node1.add_peer(2, address2).expect("valid peer");
    node2.add_peer(1, node1.local_addr()).expect("valid peer");
    // Both lanes must have connected once for their next connection to be a reconnect.
    wait_connected(&node1, 2).await;

    node2.shutdown().await;
    drop(inbound2);
    wait_until("node 1 sees node 2 down", || {
        node1.metrics().peers[&2].state != ConnectionState::Connected
    })
    .await;
    wait_until("node 1 drops messages for the dead peer", || {
        node1.send(heartbeat(1, 2, 2));
        node1.metrics().peers[&2].dropped_unreachable > 0
    })
    .await;

    let (node2, mut inbound2) = TcpTransport::bind(config(2, address2))
        .await
        .expect("rebind");
    node2.add_peer(1, node1.local_addr()).expect("valid peer");
    let chunk = snapshot_chunk(0, Bytes::from_static(b"chunk"));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = (false, false);
    while seen != (true, true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 2 never heard from node 1 again"
        );
        node1.send(heartbeat(1, 2, 100));
        node1.send(chunk.clone());
        if let Ok(Some(message)) = tokio::time::timeout(RESEND_INTERVAL, inbound2.recv()).await {
            seen.0 |= matches!(message.body, MessageBody::Heartbeat { .. });
            seen.1 |= message == chunk;
        }
    }
    let metrics = node1.metrics().peers[&2].clone();
    assert!(metrics.reconnects >= 2, "both lanes reconnect: {metrics:?}");
    node1.shutdown().await;
    node2.shutdown().await;
}

fn snapshot_chunk(offset: u64, data: Bytes) -> Message {
    Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::SnapshotChunk {
            meta: Box::default(),
            offset,
            data,
            done: false,
        },
    }
}

const CHUNK_BYTES: usize = 1 << 20;
/// Chunks the stream carries at least.
const CHUNK_COUNT: u64 = 64;
/// Chunks after which a stream that never showed heartbeats overtaking gives up (1 GiB).
const CHUNK_COUNT_MAX: u64 = 1024;
/// Chunks queued ahead of the receiver; equal to the snapshot queue's capacity, so the
/// snapshot lane stays full and nothing is dropped.
const CHUNK_WINDOW: u64 = 8;

/// Goal: a snapshot streams while heartbeats keep flowing, and heartbeats overtake chunks
/// that were queued before them (which a shared FIFO lane could never do).
/// Method: once both lanes are connected, keep the snapshot lane's queue full with 1 MiB
/// chunks while a second task sends a heartbeat every millisecond carrying how many chunks
/// had been queued at that moment; the receiver counts heartbeats that arrive before all of
/// those chunks did. The stream runs until it has carried 64 chunks and shown both effects
/// (on a busy machine that may take longer; the test waits for it rather than for a time).
/// Heartbeats may be dropped (Raft allows it) and are not counted; chunks on a connected
/// lane with room in its queue are not dropped, and arrive in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_streams_while_heartbeats_flow() {
    init_logs();
    let (node1, _inbound1) = endpoint(1).await;
    let (node2, mut inbound2) = endpoint(2).await;
    connect_all(&[&node1, &node2]);
    wait_connected(&node1, 2).await;

    let stream = Arc::new(StreamState::default());
    let chunks = tokio::spawn(send_chunks(node1.clone(), Arc::clone(&stream)));
    let heartbeats = tokio::spawn(send_heartbeats(node1.clone(), Arc::clone(&stream)));

    let (mut during_stream, mut overtaking) = (0, 0);
    loop {
        let chunks_so_far = stream.received.load(Ordering::Relaxed);
        let shown = chunks_so_far >= CHUNK_COUNT && during_stream >= 3 && overtaking >= 1;
        if shown || chunks_so_far >= CHUNK_COUNT_MAX {
            break;
        }
        let message = receive(&mut inbound2).await;
        match message.body {
            MessageBody::SnapshotChunk { offset, data, .. } => {
                assert_eq!(
                    offset,
                    chunks_so_far * CHUNK_BYTES as u64,
                    "chunks in order"
                );
                assert_eq!(data.len(), CHUNK_BYTES);
                assert!(data.iter().all(|&byte| byte == chunks_so_far as u8));
                stream.received.fetch_add(1, Ordering::Relaxed);
                stream.progress.notify_one();
            }
            MessageBody::Heartbeat {
                commit: queued_then,
                ..
            } => {
                if chunks_so_far > 0 {
                    during_stream += 1;
                }
                if chunks_so_far < queued_then {
                    overtaking += 1;
                }
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    stream.done.store(true, Ordering::Relaxed);
    stream.progress.notify_one();
    chunks.await.expect("chunk sender");
    heartbeats.await.expect("heartbeat sender");
    assert!(
        during_stream >= 3,
        "only {during_stream} heartbeats during the stream"
    );
    assert!(overtaking >= 1, "no heartbeat overtook a queued chunk");
    node1.shutdown().await;
    node2.shutdown().await;
}

/// What the chunk sender, the heartbeat sender and the receiver share.
#[derive(Default)]
struct StreamState {
    queued: AtomicU64,
    received: AtomicU64,
    progress: Notify,
    done: AtomicBool,
}

/// Queues chunks until told to stop, keeping at most `CHUNK_WINDOW` unreceived.
async fn send_chunks(node: TcpTransport, stream: Arc<StreamState>) {
    for index in 0.. {
        while index - stream.received.load(Ordering::Relaxed) >= CHUNK_WINDOW {
            if stream.done.load(Ordering::Relaxed) {
                return;
            }
            stream.progress.notified().await;
        }
        if stream.done.load(Ordering::Relaxed) {
            return;
        }
        let data = Bytes::from(vec![index as u8; CHUNK_BYTES]);
        node.send(snapshot_chunk(index * CHUNK_BYTES as u64, data));
        stream.queued.store(index + 1, Ordering::Relaxed);
    }
}

/// Sends a heartbeat every millisecond; `commit` carries the chunks queued so far.
async fn send_heartbeats(node: TcpTransport, stream: Arc<StreamState>) {
    let mut round = 0;
    while !stream.done.load(Ordering::Relaxed) {
        let mut message = heartbeat(1, 2, round);
        message.body = MessageBody::Heartbeat {
            commit: stream.queued.load(Ordering::Relaxed),
            round,
        };
        node.send(message);
        round += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Goal: `send` never blocks on a peer that does not drain its queue; the overflow is
/// dropped and counted exactly.
/// Method: the peer's address accepts TCP connections but never answers the handshake, so
/// the lane stays in `Connecting` with its queue filling up.
#[tokio::test]
async fn full_queue_drops_without_blocking() {
    init_logs();
    let silent = tokio::net::TcpListener::bind(any_port())
        .await
        .expect("bind");
    let mut settings = config(1, any_port());
    settings.queue_capacity_messages = 4;
    settings.handshake_timeout = Duration::from_secs(5);
    let (node1, _inbound1) = TcpTransport::bind(settings).await.expect("bind");
    node1
        .add_peer(2, silent.local_addr().expect("bound"))
        .expect("valid peer");
    for round in 0..100 {
        node1.send(heartbeat(1, 2, round));
    }
    let metrics = node1.metrics().peers[&2].clone();
    assert_eq!(metrics.dropped_queue_full, 96, "{metrics:?}");
    assert_eq!(metrics.state, ConnectionState::Connecting);
    node1.shutdown().await;
}

/// Goal: a node refuses to talk to a peer of another cluster; the dialler sees the link as
/// down (counted, not delivered) rather than sending into the void.
#[tokio::test]
async fn wrong_cluster_peer_is_never_connected() {
    init_logs();
    let (node1, _inbound1) = endpoint(1).await;
    let mut foreign = TcpConfig::new(2, CLUSTER_ID + 1, any_port());
    foreign.backoff_min = Duration::from_millis(10);
    let (node2, mut inbound2) = TcpTransport::bind(foreign).await.expect("bind");
    node2.add_peer(1, node1.local_addr()).expect("valid peer");
    node1.add_peer(2, node2.local_addr()).expect("valid peer");
    wait_until("node 1 fails to connect", || {
        node1.send(heartbeat(1, 2, 1));
        node1.metrics().peers[&2].connect_failures >= 2
    })
    .await;
    assert!(inbound2.try_recv().is_err());
    wait_until("node 2 counts the refusals", || {
        node2.metrics().handshakes_rejected >= 2
    })
    .await;
    assert_eq!(node1.metrics().peers[&2].messages_sent, 0);
    node1.shutdown().await;
    node2.shutdown().await;
}

/// Goal: removing a peer stops traffic both ways: sends to it are dropped as unknown, and
/// its connections are refused; adding it back restores both.
#[tokio::test]
async fn removed_peer_is_cut_off_and_can_return() {
    init_logs();
    let (node1, mut inbound1) = endpoint(1).await;
    let (node2, _inbound2) = endpoint(2).await;
    connect_all(&[&node1, &node2]);
    heartbeat_gets_through(&node2, &mut inbound1, 2, 1).await;

    assert!(node1.remove_peer(2));
    assert!(!node1.remove_peer(2));
    node1.send(heartbeat(1, 2, 1));
    assert_eq!(node1.metrics().dropped_unknown_peer, 1);
    wait_until("node 2 is refused by node 1", || {
        node2.send(heartbeat(2, 1, 2));
        node1.metrics().handshakes_rejected > 0
    })
    .await;

    node1.add_peer(2, node2.local_addr()).expect("valid peer");
    heartbeat_gets_through(&node2, &mut inbound1, 2, 1).await;
    node1.shutdown().await;
    node2.shutdown().await;
}

/// Goal: shutdown writes what is already queued, ends the inbound receiver, and refuses
/// new peers.
#[tokio::test]
async fn shutdown_flushes_queued_messages() {
    init_logs();
    let (node1, mut inbound1) = endpoint(1).await;
    let (node2, mut inbound2) = endpoint(2).await;
    connect_all(&[&node1, &node2]);
    heartbeat_gets_through(&node1, &mut inbound2, 1, 2).await;
    const FIRST_QUEUED: u64 = 1_000_000;
    for round in FIRST_QUEUED..FIRST_QUEUED + 50 {
        node1.send(heartbeat(1, 2, round));
    }
    node1.shutdown().await;
    // Late copies of the resent heartbeats may come first; the queued ones all follow,
    // in order.
    let queued = |message: &Message| heartbeat_round(message) >= Some(FIRST_QUEUED);
    for round in FIRST_QUEUED..FIRST_QUEUED + 50 {
        let message = receive_matching(&mut inbound2, queued).await;
        assert_eq!(message, heartbeat(1, 2, round));
    }
    assert_eq!(inbound1.recv().await, None);
    assert!(node1.add_peer(3, any_port()).is_err());
    node2.shutdown().await;
}

/// Goal: a node that stops reading holds a bounded number of bytes, whatever its peers
/// send, and loses nothing once it reads again.
/// Method: with a 3 MiB inbound budget, a peer sends eight 1 MiB snapshot chunks while the
/// node does not read; exactly three are let into the queue, the rest wait in TCP.
#[tokio::test]
async fn slow_node_holds_bounded_bytes() {
    init_logs();
    let (node1, _inbound1) = endpoint(1).await;
    let mut settings = config(2, any_port());
    settings.inbound_queue_max_bytes = 3 * CHUNK_BYTES as u64 + 3 * 1024;
    let (node2, mut inbound2) = TcpTransport::bind(settings).await.expect("bind");
    connect_all(&[&node1, &node2]);
    // Chunks sent while a first attempt is refused would be dropped.
    wait_connected(&node1, 2).await;
    for index in 0..CHUNK_WINDOW {
        let data = Bytes::from(vec![index as u8; CHUNK_BYTES]);
        node1.send(snapshot_chunk(index * CHUNK_BYTES as u64, data));
    }
    wait_until("three chunks are queued", || inbound2.len() == 3).await;
    // Gives a broken budget the chance to let a fourth in. Cannot fail spuriously: nobody
    // reads, so the count cannot drop below three, and a correct budget never passes it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(inbound2.len(), 3, "the byte budget admits three chunks");
    for index in 0..CHUNK_WINDOW {
        match receive(&mut inbound2).await.body {
            MessageBody::SnapshotChunk { offset, .. } => {
                assert_eq!(offset, index * CHUNK_BYTES as u64);
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    node1.shutdown().await;
    node2.shutdown().await;
}

/// Goal: messages queued while the writer is busy go out in few socket writes.
/// Method: queue 200 heartbeats before the lane has connected (the test's single-threaded
/// runtime does not run the writer until the test awaits), then count writes once all
/// have arrived.
#[tokio::test]
async fn queued_messages_are_coalesced() {
    init_logs();
    let (node1, _inbound1) = endpoint(1).await;
    let (node2, mut inbound2) = endpoint(2).await;
    node2.add_peer(1, node1.local_addr()).expect("valid peer");
    node1.add_peer(2, node2.local_addr()).expect("valid peer");
    for round in 0..200 {
        node1.send(heartbeat(1, 2, round));
    }
    for round in 0..200 {
        assert_eq!(receive(&mut inbound2).await, heartbeat(1, 2, round));
    }
    let metrics = node1.metrics().peers[&2].clone();
    assert_eq!(metrics.messages_sent, 200);
    assert!(
        metrics.writes <= 5,
        "200 queued messages took {} writes",
        metrics.writes
    );
    node1.shutdown().await;
    node2.shutdown().await;
}
