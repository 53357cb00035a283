//! Clients that try to hold a node's time, memory or file descriptors: slowloris, body
//! floods and connection floods (issue 14: 2,000 slowloris connections stayed open for
//! 45 s; 1,000 unfinished 1 MB bodies took a node to 2 GB; 21,000 idle connections
//! exhausted descriptors and the Raft listener failed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_kv::server::client::WriteCondition;
use raft_kv::server::wire::ReadConsistency;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Cluster, node_client};
use crate::{assert_serving, rss_kib, wait_for, write_some};

/// Writes and reads back `count` keys through `url`; every call must succeed.
async fn serve_clients(url: &str, prefix: &str, count: usize) {
    let mut client = node_client(url);
    for i in 0..count {
        let key = format!("{prefix}-{i}");
        client
            .put(key.as_bytes(), Bytes::from("v"), WriteCondition::Always)
            .await
            .unwrap_or_else(|e| panic!("{url}: put {key} during the attack: {e}"));
        let value = client
            .get(key.as_bytes(), ReadConsistency::Linearizable)
            .await
            .unwrap_or_else(|e| panic!("{url}: get {key} during the attack: {e}"));
        assert!(value.is_some(), "{key} missing");
    }
}

/// Sends a request head one byte at a time, forever; returns when the server closes the
/// connection (with how long it stayed open), or `None` if it was still open at `give_up`.
async fn slowloris(address: String, give_up: Instant) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(&address).await.ok()?;
    let head = b"PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let _ = stream.write_all(head).await;
    let mut buffer = [0u8; 1024];
    while Instant::now() < give_up {
        if stream.write_all(b"a").await.is_err() {
            return Some(started.elapsed());
        }
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer));
        if let Ok(Ok(0) | Err(_)) = read.await {
            return Some(started.elapsed());
        }
    }
    None
}

/// Goal: connections that never finish their request head are closed by the header
/// timeout, while real clients of the same node keep being served.
/// Method: 200 connections to the leader trickle a header byte every 100 ms, with a 1 s
/// header timeout; a real client writes and reads meanwhile. Every slow connection must be
/// closed long before the 20 s the test waits (hyper's own default would be 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_while_clients_are_served() {
    let cluster = Cluster::start(3, &["--http-header-timeout-ms", "1000"]);
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let acknowledged = write_some(&cluster, "before", 3).await;
    let node = cluster.nodes.iter().find(|n| n.id == leader).unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    let slow: Vec<_> = (0..200)
        .map(|_| tokio::spawn(slowloris(node.http_addr(), give_up)))
        .collect();
    serve_clients(&node.url(), "during", 10).await;
    for task in slow {
        let open_for = task.await.unwrap();
        assert!(
            open_for.is_some(),
            "a slowloris connection outlived the header timeout"
        );
    }
    assert_serving(&cluster, &acknowledged).await;
}

/// Starts a chunked PUT, sends `chunks` chunks of 64 KiB, then stops sending and waits for
/// the server's answer or close. Returns the answer's status line (empty if none).
async fn unfinished_body(address: String, key: usize, chunks: usize) -> String {
    let Ok(mut stream) = TcpStream::connect(&address).await else {
        return String::new();
    };
    let head =
        format!("PUT /v1/kv/flood-{key} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let mut chunk = b"10000\r\n".to_vec();
    chunk.extend(std::iter::repeat_n(b'f', 0x10000));
    chunk.extend_from_slice(b"\r\n");
    for _ in 0..chunks {
        let write = stream.write_all(&chunk);
        if !matches!(
            tokio::time::timeout(Duration::from_secs(2), write).await,
            Ok(Ok(()))
        ) {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(read @ 1..) = stream.read(&mut buffer).await {
            answer.extend_from_slice(&buffer[..read]);
        }
    })
    .await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Goal: many concurrent never-finished large bodies cannot grow a node's memory past its
/// body budget, and the cluster keeps serving.
/// Method: a 16 MiB body budget and a 3 s body timeout on every node; 400 chunked PUTs of
/// 960 KiB each that never finish (375 MiB if buffered) go to the leader while a sampler
/// reads its RSS from /proc and a real client writes through the cluster. The growth must
/// stay under 160 MiB; some floods must have been refused as over budget (503) and the
/// rest cut by the body timeout (408).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_flood_stays_within_the_memory_budget() {
    let budget = [
        "--http-body-budget-bytes",
        "16777216",
        "--http-body-timeout-ms",
        "3000",
    ];
    let cluster = Cluster::start(3, &budget);
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let acknowledged = write_some(&cluster, "before", 3).await;
    let node = cluster.nodes.iter().find(|n| n.id == leader).unwrap();
    let pid = node.pid().unwrap();
    let baseline_kib = rss_kib(pid);
    let peak_kib = Arc::new(AtomicU64::new(baseline_kib));
    let sampler = {
        let peak_kib = Arc::clone(&peak_kib);
        tokio::spawn(async move {
            loop {
                peak_kib.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let floods: Vec<_> = (0..400)
        .map(|i| tokio::spawn(unfinished_body(node.http_addr(), i, 15)))
        .collect();
    let mut client = cluster.client();
    for i in 0..5 {
        let key = format!("during-{i}");
        client
            .put(key.as_bytes(), Bytes::from("v"), WriteCondition::Always)
            .await
            .unwrap_or_else(|e| panic!("put during the flood: {e}\n{}", cluster.logs()));
    }
    let mut statuses = Vec::new();
    for flood in floods {
        statuses.push(flood.await.unwrap());
    }
    sampler.abort();
    let growth_mib = peak_kib
        .load(Ordering::Relaxed)
        .saturating_sub(baseline_kib)
        / 1024;
    assert!(
        growth_mib < 160,
        "RSS grew by {growth_mib} MiB under the body flood"
    );
    let count = |code: &str| statuses.iter().filter(|s| s.contains(code)).count();
    assert!(
        count(" 503 ") > 0,
        "no flood was refused as over budget: {statuses:?}"
    );
    assert!(
        count(" 408 ") > 0,
        "no flood was cut by the body timeout: {statuses:?}"
    );
    assert_serving(&cluster, &acknowledged).await;
}

/// Goal: a flood of idle HTTP connections cannot take the descriptors the Raft port
/// needs.
/// Method: node 3 runs under an open-files limit of 600, so its HTTP connection cap is
/// 300; 900 idle connections are opened to its HTTP port (without the cap, more than its
/// limit). Meanwhile node 3 is made leader, and node 1 is restarted, so node 3 must open
/// and accept new peer connections; node 1 must catch up through it, node 3 must never
/// log "Too many open files", and its API must answer again once the flood ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_leaves_descriptors_for_the_raft_port() {
    let mut cluster = Cluster::make(3, &["--http-header-timeout-ms", "3000"], |id| id != 3);
    cluster.by_id(3).start_with_open_files_limit(600);
    cluster.wait_leader(Duration::from_secs(30)).await;
    let acknowledged = write_some(&cluster, "before", 3).await;
    let address = cluster.by_id(3).http_addr();
    let mut flood = Vec::new();
    for _ in 0..900 {
        let connect = TcpStream::connect(&address);
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(500), connect).await {
            flood.push(stream);
        }
    }
    // Ask the current leader directly: a request to a follower would be forwarded to node
    // 3's flooded API if node 3 already leads.
    let status = crate::support::status_of(&cluster.by_id(1).url())
        .await
        .unwrap();
    let leader = status.leader.map(|l| l.id).unwrap();
    if leader != 3 {
        let mut admin = node_client(&cluster.by_id(leader).url());
        let moved = admin.transfer_leader(Some(3)).await;
        assert_eq!(
            moved.ok(),
            Some(3),
            "node 3 could not take over\n{}",
            cluster.logs()
        );
    }
    cluster.by_id(1).kill();
    let mut client = node_client(&cluster.by_id(2).url());
    client
        .put(b"during", Bytes::from("flood"), WriteCondition::Always)
        .await
        .unwrap_or_else(|e| panic!("write during the flood: {e}\n{}", cluster.logs()));
    cluster.by_id(1).start();
    let node1 = cluster.by_id(1).url();
    wait_for(
        Duration::from_secs(30),
        "node 1 to catch up through node 3",
        || {
            let url = node1.clone();
            async move {
                let mut client = crate::support::node_client(&url);
                let read = client.get(b"during", ReadConsistency::Stale).await;
                read.is_ok_and(|v| v.is_some_and(|v| v.value == "flood"))
            }
        },
    )
    .await;
    assert!(
        !cluster.by_id(3).log_text().contains("Too many open files"),
        "node 3 ran out of descriptors:\n{}",
        cluster.by_id(3).log_tail()
    );
    drop(flood);
    let url = cluster.by_id(3).url();
    wait_for(
        Duration::from_secs(20),
        "node 3's API after the flood",
        || {
            let url = url.clone();
            async move { crate::support::status_of(&url).await.is_ok() }
        },
    )
    .await;
    assert_serving(&cluster, &acknowledged).await;
}

/// Goal: connections that open TCP to the HTTPS port but never finish a TLS handshake are
/// dropped by the handshake timeout (5 s) and counted.
/// Method: 50 connections to a secure node send two bytes of a TLS record and stop; each
/// must be closed within 15 s, the node's `raft_kv_http_tls_handshakes_failed_total` must
/// count them, and the cluster keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_are_dropped() {
    let cluster = Cluster::start_secure(3, &[]);
    cluster.wait_leader(Duration::from_secs(30)).await;
    let acknowledged = write_some(&cluster, "before", 2).await;
    let node = &cluster.nodes[0];
    let give_up = Instant::now() + Duration::from_secs(15);
    let stalled: Vec<_> = (0..50)
        .map(|_| tokio::spawn(stalled_handshake(node.http_addr(), give_up)))
        .collect();
    for task in stalled {
        assert!(
            task.await.unwrap(),
            "a stalled handshake outlived the timeout"
        );
    }
    let reader = crate::with_token(&cluster, Some(crate::token_of(&cluster, "reader")));
    let metrics = crate::call(&node.url(), &reader, hyper::Method::GET, "/metrics", "").await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let failed = text
        .lines()
        .find_map(|l| l.strip_prefix("raft_kv_http_tls_handshakes_failed_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(failed >= 50.0, "handshake failures counted: {failed}");
    assert_serving(&cluster, &acknowledged).await;
}

/// Starts a TLS record and stops; true when the server closes the connection before
/// `give_up`.
async fn stalled_handshake(address: String, give_up: Instant) -> bool {
    let Ok(mut stream) = TcpStream::connect(&address).await else {
        return false;
    };
    if stream.write_all(&[0x16, 0x03]).await.is_err() {
        return true;
    }
    let mut buffer = [0u8; 64];
    let wait = give_up.saturating_duration_since(Instant::now());
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}
