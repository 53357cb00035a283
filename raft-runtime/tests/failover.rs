//! Leader failure over real TCP and real files: failover, no acknowledged write lost, the
//! old leader rejoins and catches up; exactly-once writes across a failover.

mod common;

use std::time::Duration;

use common::*;
use raft_kv::{Command, Query, QueryResponse, Response};
use raft_runtime::{Consistency, SnapshotPolicy};

/// Goal: when the leader stops, the others elect a new one, every write acknowledged before
/// the stop is still readable (linearizably), writes continue, and the old leader catches
/// up after a restart.
/// Method: acknowledge 30 writes, stop the leader, write 30 more through the new leader,
/// check all 60, restart the old leader and wait until it has them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(&[1, 2, 3], SnapshotPolicy::disabled()).await;
    for i in 0..30 {
        cluster.put(&format!("before-{i}"), &i.to_string()).await;
    }
    let old_leader = cluster.leader().await;
    cluster.stop(old_leader).await;

    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);
    for i in 0..30 {
        cluster.put(&format!("after-{i}"), &i.to_string()).await;
    }
    for i in 0..30 {
        for prefix in ["before", "after"] {
            let value = read_with(
                cluster.node(new_leader),
                &format!("{prefix}-{i}"),
                Consistency::Linearizable,
            )
            .await
            .expect("read on the new leader");
            assert_eq!(value, Some(i.to_string()), "{prefix}-{i} lost");
        }
    }

    cluster.restart(old_leader).await;
    let commit = cluster.node(new_leader).status().raft.commit;
    cluster.wait_applied(old_leader, commit).await;
    wait_value(cluster.node(old_leader), "after-29", "29").await;
    assert_eq!(
        local_get(cluster.node(old_leader), "before-0")
            .await
            .as_deref(),
        Some("0")
    );
    cluster.shutdown().await;
}

/// Goal: a client retrying a write under its session after a failover gets the original
/// response and the write applies once.
/// Method: write (client 77, sequence 1) on the leader, stop the leader, send the identical
/// command to the new leader, compare responses and the key's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_retry_applies_once_across_failover() {
    let mut cluster = Cluster::start(&[1, 2, 3], SnapshotPolicy::disabled()).await;
    let leader = cluster.leader().await;
    let command = Command::put("counter", "1", now_ms()).with_session(77, 1);
    // Retried while the cluster is between leaders: the session makes retries safe.
    let first = propose_until_answered(cluster.node(leader), &command).await;
    assert!(
        matches!(first, Response::Put { previous: None, .. }),
        "{first:?}"
    );
    // Every node must hold the entry before the leader goes, or the retry is a first try.
    let commit = cluster.node(leader).status().raft.commit;
    for id in [1, 2, 3] {
        cluster.wait_applied(id, commit).await;
    }
    cluster.stop(leader).await;

    let new_leader = cluster.leader().await;
    let retry = propose_until_answered(cluster.node(new_leader), &command).await;
    assert_eq!(retry, first, "the retry must return the original response");
    let answer = cluster
        .node(new_leader)
        .read(
            Query::Get {
                key: "counter".into(),
            },
            Consistency::Linearizable,
        )
        .await
        .expect("read");
    let QueryResponse::Get(get) = answer else {
        panic!("unexpected answer {answer:?}");
    };
    let entry = get.entry.expect("key present");
    assert_eq!(
        entry.key_revision.version, 1,
        "the write applied more than once"
    );
    cluster.shutdown().await;
}

/// Proposes `command` until it gets an answer, retrying retryable errors for `PATIENCE`.
async fn propose_until_answered(node: &common::Kv, command: &Command) -> Response {
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        match node.propose(command.clone()).await {
            Ok(response) => return response,
            Err(error) if error.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(error) => panic!("write failed: {error}"),
        }
    }
}
