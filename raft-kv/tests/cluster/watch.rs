//! Watches against real processes: a watcher on a follower keeps every acknowledged write,
//! exactly once and in revision order, through a leader kill in the middle of the stream
//! and through the loss of the very node it watches (it reconnects elsewhere).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use raft_kv::server::client::{ClientOptions, ClusterClient, WriteCondition};
use raft_kv::server::watch_client::Watcher;
use raft_kv::server::wire::WatchEventKind;
use tokio::sync::{mpsc, watch};

use crate::support::{Cluster, eventually, status_of};

/// What the writer task learned: `(revision, key)` of each acknowledged write.
type Acknowledged = Vec<(u64, String)>;

/// Writes `w/0`, `w/1`, ... until told to stop; reports each acknowledged write.
async fn write_until_stopped(
    urls: Vec<String>,
    acknowledged: mpsc::UnboundedSender<(u64, String)>,
    mut stop: watch::Receiver<bool>,
) {
    let options = ClientOptions {
        credentials: Default::default(),
        request_timeout: Duration::from_secs(6),
        retry_for: Duration::from_secs(30),
    };
    let mut client = ClusterClient::new(&urls, options).expect("client");
    for i in 0u64.. {
        if *stop.borrow_and_update() {
            return;
        }
        let key = format!("w/{i}");
        let value = Bytes::from(format!("v{i}"));
        // A failed write may or may not have happened: the watcher may see it or not, and
        // it is not counted as acknowledged.
        if let Ok(revision) = client
            .put(key.as_bytes(), value, WriteCondition::Always)
            .await
        {
            let _ = acknowledged.send((revision, key));
        }
    }
}

/// Goal: the exactly-once promise of watches, end to end. Method: 3 real nodes; a watcher
/// whose first endpoint is a follower; a writer that writes continuously through a
/// failover-following client. Kill the leader after some writes; later restart it, and
/// kill the follower the watcher streams from, so it must reconnect to another node with
/// its last revision + 1. Then check that the watcher saw every acknowledged write once,
/// with strictly increasing revisions and no key twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_leader_kill_and_reconnects_without_skip_or_repeat() {
    // Frequent snapshots, so history also travels through snapshot and restart.
    let mut cluster = Cluster::start(3, &["--snapshot-entries", "40"]);
    let leader = cluster.wait_leader(Duration::from_secs(60)).await;
    let urls = cluster.urls();
    let follower = cluster
        .nodes
        .iter()
        .find(|n| n.id != leader)
        .expect("a follower")
        .id;
    let follower_url = cluster.by_id(follower).url();
    let mut watch_urls = vec![follower_url.clone()];
    watch_urls.extend(urls.iter().filter(|u| **u != follower_url).cloned());

    let watch_options = ClientOptions {
        credentials: Default::default(),
        request_timeout: Duration::from_secs(6),
        retry_for: Duration::from_secs(60),
    };
    let mut watcher = Watcher::new(&watch_urls, "w/", Some(1), watch_options).expect("watcher");
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let watching = Arc::new(AtomicBool::new(true));
    let still_watching = Arc::clone(&watching);
    let watch_task = tokio::spawn(async move {
        while still_watching.load(Ordering::SeqCst) {
            match watcher.next().await {
                Ok(event) => {
                    let _ = events_tx.send(Ok(event));
                }
                Err(error) => {
                    let _ = events_tx.send(Err(error.to_string()));
                    return;
                }
            }
        }
    });

    let (acknowledged_tx, mut acknowledged_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let writer = tokio::spawn(write_until_stopped(urls.clone(), acknowledged_tx, stop_rx));
    let mut acknowledged: Acknowledged = Vec::new();
    let mut wait_for_writes = async |acknowledged: &mut Acknowledged, more: usize| {
        let target = acknowledged.len() + more;
        while acknowledged.len() < target {
            let next = tokio::time::timeout(Duration::from_secs(60), acknowledged_rx.recv());
            match next.await {
                Ok(Some(write)) => acknowledged.push(write),
                _ => panic!("the writer stalled after {} writes", acknowledged.len()),
            }
        }
    };

    wait_for_writes(&mut acknowledged, 60).await;
    cluster.by_id(leader).kill();
    wait_for_writes(&mut acknowledged, 60).await;
    cluster.by_id(leader).start();
    let old_leader_url = cluster.by_id(leader).url();
    let target = acknowledged.last().map_or(0, |w| w.0);
    eventually(Duration::from_secs(60), "the old leader catches up", || {
        let url = old_leader_url.clone();
        async move { status_of(&url).await.is_ok_and(|s| s.applied >= target) }
    })
    .await;
    cluster.by_id(follower).kill();
    wait_for_writes(&mut acknowledged, 60).await;
    let _ = stop_tx.send(true);
    writer.await.expect("the writer task");
    while let Ok(write) = acknowledged_rx.try_recv() {
        acknowledged.push(write);
    }

    let last = acknowledged.last().map_or(0, |w| w.0);
    let mut seen = Vec::new();
    while seen.last().is_none_or(|&(revision, _)| revision < last) {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .unwrap_or_else(|_| panic!("no watch event for 60 s\n{}", cluster.logs()))
            .expect("the watch task is alive");
        let event = event.unwrap_or_else(|e| panic!("the watch failed: {e}\n{}", cluster.logs()));
        assert_eq!(event.kind, WatchEventKind::Put, "only puts are written");
        let key = String::from_utf8(event.key_bytes().expect("a key")).expect("UTF-8 key");
        seen.push((event.revision, key));
    }
    watching.store(false, Ordering::SeqCst);
    watch_task.abort();

    for pair in seen.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "revisions go backwards or repeat: {pair:?}"
        );
    }
    let mut keys: Vec<&String> = seen.iter().map(|(_, key)| key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), seen.len(), "a key was delivered twice");
    for write in &acknowledged {
        assert!(
            seen.contains(write),
            "acknowledged write {write:?} never seen"
        );
    }
}
