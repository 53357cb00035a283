//! Hostile and broken input on real sockets: each bad connection is closed on its own,
//! counted, and the endpoint goes on serving a good peer.
//!
//! Setup for every test: node 2 (the target) knows node 1 (a real, well-behaved
//! `TcpTransport`) and node 3 (an identity the raw test sockets borrow; node 2's own link
//! to it just retries in the background). After each attack, node 1 must still get a
//! message through.

mod common;

use std::time::Duration;

use common::{
    CLUSTER_ID, PATIENCE, any_port, config, endpoint, heartbeat, heartbeat_round, init_logs,
    receive_matching, resend_until_received, wait_until,
};
use raft_core::Message;
use raft_transport_tcp::frame::encode_frame;
use raft_transport_tcp::handshake::{HELLO_BYTES, Hello, PROTOCOL_VERSION, Reply};
use raft_transport_tcp::{Lane, TcpConfig, TcpTransport, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The id the raw sockets claim; a known peer of the target.
const BORROWED_ID: u64 = 3;

struct Scene {
    good: TcpTransport,
    target: TcpTransport,
    target_inbound: mpsc::Receiver<Message>,
    round: u64,
}

impl Scene {
    async fn new() -> Scene {
        Scene::with_target(config(2, any_port())).await
    }

    /// A scene whose target runs with `target_config`.
    async fn with_target(target_config: TcpConfig) -> Scene {
        init_logs();
        let (good, _good_inbound) = endpoint(1).await;
        let (target, target_inbound) = TcpTransport::bind(target_config)
            .await
            .expect("bind loopback");
        good.add_peer(2, target.local_addr()).expect("valid peer");
        target.add_peer(1, good.local_addr()).expect("valid peer");
        // Node 3 never listens; the address is one nobody answers on.
        target
            .add_peer(BORROWED_ID, "127.0.0.1:9".parse().expect("literal"))
            .expect("valid peer");
        let mut scene = Scene {
            good,
            target,
            target_inbound,
            round: 0,
        };
        scene.good_peer_gets_through().await;
        scene
    }

    /// A raw connection to the target.
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.target.local_addr())
            .await
            .expect("connect")
    }

    /// A raw connection that has passed the handshake as node 3.
    async fn connect_as_peer(&self) -> TcpStream {
        self.connect_as(BORROWED_ID).await
    }

    /// A raw connection that has passed the handshake claiming node `id`.
    async fn connect_as(&self, id: u64) -> TcpStream {
        let mut stream = self.connect().await;
        let hello = Hello::new(Lane::Ordinary, CLUSTER_ID, id);
        stream
            .write_all(&hello.encode())
            .await
            .expect("write hello");
        let mut reply = [0; HELLO_BYTES];
        stream.read_exact(&mut reply).await.expect("read reply");
        assert_eq!(Reply::decode_accepted(&reply, 2), Ok(()));
        stream
    }

    /// Node 1 still gets a heartbeat through (resending, as Raft would, in case its
    /// connection had to be re-established).
    async fn good_peer_gets_through(&mut self) {
        // Rounds only grow, so a late copy from an earlier call is not taken for this one.
        let first = self.round + 1;
        let round = &mut self.round;
        resend_until_received(
            &self.good,
            &mut self.target_inbound,
            |_| {
                *round += 1;
                heartbeat(1, 2, *round)
            },
            |message| message.from == 1 && heartbeat_round(message) >= Some(first),
        )
        .await;
    }

    /// Waits until a counter of the target reaches exactly `expected` (refusals are
    /// counted by the target's connection task, which may run just after the close).
    async fn wait_for_metric(
        &self,
        name: &str,
        expected: u64,
        read: impl Fn(&raft_transport_tcp::TransportMetrics) -> u64,
    ) {
        wait_until(&format!("{name} reaches {expected}"), || {
            let value = read(&self.target.metrics());
            assert!(value <= expected, "{name} is {value}, above {expected}");
            value == expected
        })
        .await;
    }

    async fn finish(self) {
        self.good.shutdown().await;
        self.target.shutdown().await;
    }
}

/// Reads until the target closes the connection; fails the test if it stays open.
async fn assert_closed(stream: &mut TcpStream) {
    let mut sink = vec![0; 4096];
    let outcome = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "the target kept a bad connection open");
}

/// Expects the target to close the connection without sending a single byte: a refusal
/// tells nothing (no cluster id, no node id, no reason).
async fn assert_refused_silently(stream: &mut TcpStream) {
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0; 256];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "the target kept a refused connection open");
    assert_eq!(received, Vec::<u8>::new(), "a refusal must say nothing");
}

/// Deterministic noise (splitmix64), so a failure replays.
fn noise(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed;
    (0..length)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

/// Goal: random bytes instead of a handshake, and random bytes after a good handshake, are
/// each closed and counted; the good peer is unaffected.
#[tokio::test]
async fn random_bytes_close_only_that_connection() {
    let mut scene = Scene::new().await;
    for seed in 0..3 {
        let mut stranger = scene.connect().await;
        let _ = stranger.write_all(&noise(seed, 4096)).await;
        assert_closed(&mut stranger).await;
        scene.good_peer_gets_through().await;
    }
    scene
        .wait_for_metric("handshakes_rejected", 3, |m| m.handshakes_rejected)
        .await;

    for seed in 10..13 {
        let mut peer = scene.connect_as_peer().await;
        let _ = peer.write_all(&noise(seed, 4096)).await;
        assert_closed(&mut peer).await;
        scene.good_peer_gets_through().await;
    }
    // A plausible length with a body that is not a message.
    let mut peer = scene.connect_as_peer().await;
    let mut garbled = 64u32.to_be_bytes().to_vec();
    garbled.extend_from_slice(&[0xff; 64]);
    peer.write_all(&garbled).await.expect("write frame");
    assert_closed(&mut peer).await;
    scene.good_peer_gets_through().await;
    scene
        .wait_for_metric("frames_rejected", 4, |m| m.frames_rejected)
        .await;
    scene.finish().await;
}

/// Goal: a frame cut short by the peer closing its side is detected as truncated, not
/// waited on forever, and counted.
#[tokio::test]
async fn truncated_frame_closes_connection() {
    let mut scene = Scene::new().await;
    let mut frame = Vec::new();
    encode_frame(&heartbeat(BORROWED_ID, 2, 1), 1 << 20, &mut frame).expect("encodes");
    for cut in [2, frame.len() - 1] {
        let mut peer = scene.connect_as_peer().await;
        peer.write_all(&frame[..cut]).await.expect("write part");
        peer.shutdown().await.expect("half-close");
        assert_closed(&mut peer).await;
        scene.good_peer_gets_through().await;
    }
    scene
        .wait_for_metric("frames_rejected", 2, |m| m.frames_rejected)
        .await;
    while let Ok(message) = scene.target_inbound.try_recv() {
        assert_eq!(message.from, 1, "a truncated frame was delivered");
    }
    scene.finish().await;
}

/// Goal: a 4 GiB length prefix is refused from the prefix alone: the connection closes
/// while the peer is still connected and has sent nothing else (no buffer sized to the
/// claim, no waiting for the body).
#[tokio::test]
async fn huge_length_prefix_closes_connection_at_once() {
    let mut scene = Scene::new().await;
    let mut peer = scene.connect_as_peer().await;
    peer.write_all(&u32::MAX.to_be_bytes())
        .await
        .expect("write prefix");
    assert_closed(&mut peer).await;
    scene
        .wait_for_metric("frames_rejected", 1, |m| m.frames_rejected)
        .await;
    scene.good_peer_gets_through().await;
    scene.finish().await;
}

/// Goal: a well-formed message claiming another sender (node 1 over node 3's connection)
/// is refused, so a peer cannot speak for others.
#[tokio::test]
async fn spoofed_sender_closes_connection() {
    let mut scene = Scene::new().await;
    let mut peer = scene.connect_as_peer().await;
    let mut frame = Vec::new();
    encode_frame(&heartbeat(1, 2, 999), 1 << 20, &mut frame).expect("encodes");
    peer.write_all(&frame).await.expect("write frame");
    assert_closed(&mut peer).await;
    scene
        .wait_for_metric("frames_rejected", 1, |m| m.frames_rejected)
        .await;
    scene.good_peer_gets_through().await;
    scene.finish().await;
}

/// Goal: wrong cluster id, unsupported version, unknown node id, unknown lane and bad
/// magic are each refused at the handshake, counted, and answered with silence: in
/// particular a wrong-cluster hello does not get the real cluster id echoed back. The good
/// peer is unaffected.
#[tokio::test]
async fn bad_handshakes_are_refused_silently() {
    let mut scene = Scene::new().await;
    let mut bad_magic = Hello::new(Lane::Ordinary, CLUSTER_ID, BORROWED_ID).encode();
    bad_magic[..4].copy_from_slice(b"HTTP");
    let hellos = [
        Hello::new(Lane::Ordinary, CLUSTER_ID + 1, BORROWED_ID).encode(),
        Hello {
            version: PROTOCOL_VERSION + 1,
            ..Hello::new(Lane::Ordinary, CLUSTER_ID, BORROWED_ID)
        }
        .encode(),
        Hello::new(Lane::Snapshot, CLUSTER_ID, 99).encode(),
        Hello {
            lane_byte: 7,
            ..Hello::new(Lane::Ordinary, CLUSTER_ID, BORROWED_ID)
        }
        .encode(),
        bad_magic,
    ];
    for hello in &hellos {
        let mut stream = scene.connect().await;
        stream.write_all(hello).await.expect("write hello");
        assert_refused_silently(&mut stream).await;
        scene.good_peer_gets_through().await;
    }
    let expected = hellos.len() as u64;
    scene
        .wait_for_metric("handshakes_rejected", expected, |m| m.handshakes_rejected)
        .await;
    scene.finish().await;
}

/// Goal: in plaintext mode, a stranger who says hello as node 1 does not cut node 1's
/// real connection (a newer connection never closes an older one).
/// Method: while node 1 is connected, a raw socket passes the handshake as node 1 and
/// delivers a frame (so it is surely registered); node 1's link must not have had to
/// reconnect, and its next message still arrives.
#[tokio::test]
async fn spoofed_hello_does_not_cut_the_real_connection() {
    let mut scene = Scene::new().await;
    let mut spoof = scene.connect_as(1).await;
    let mut frame = Vec::new();
    encode_frame(&heartbeat(1, 2, 777), 1 << 20, &mut frame).expect("encodes");
    spoof.write_all(&frame).await.expect("write frame");
    let spoofed = heartbeat(1, 2, 777);
    receive_matching(&mut scene.target_inbound, |message| *message == spoofed).await;
    scene.good_peer_gets_through().await;
    let link = scene.good.metrics().peers[&2].clone();
    assert_eq!(link.reconnects, 0, "node 1's connection was cut: {link:?}");
    scene.finish().await;
}

/// Goal: a connection that never completes its handshake is closed after the handshake
/// timeout instead of holding a slot forever, and counted as timed out.
#[tokio::test]
async fn silent_connection_times_out() {
    let mut target_config = config(2, any_port());
    target_config.handshake_timeout = Duration::from_millis(300);
    let mut scene = Scene::with_target(target_config).await;
    let mut stream = scene.connect().await;
    stream.write_all(b"RA").await.expect("write part");
    assert_closed(&mut stream).await;
    scene
        .wait_for_metric("handshakes_timed_out", 1, |m| m.handshakes_timed_out)
        .await;
    scene.good_peer_gets_through().await;
    scene.finish().await;
}
