//! Disk faults and shutdown: a failed fsync stops the node with a clear error; shutdown
//! answers every waiting client.

mod common;

use std::time::Duration;

use common::*;
use raft_core::{Index, StateMachine};
use raft_kv::{Command, KvConfig, KvStateMachine, Op};
use raft_runtime::{AddressBook, Error, Init, Lifecycle, PeerInfo, RaftNode, SnapshotPolicy};
use raft_storage_file::{FaultInjector, FileStorage, Options};
use raft_transport_tcp::TcpTransport;

async fn single_node(faults: FaultInjector) -> (tempfile::TempDir, Kv) {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let transport = bind(1, "127.0.0.1:0".parse().unwrap()).await;
    let mut members = AddressBook::new();
    members.insert(1, PeerInfo::new(transport.0.local_addr()));
    let options = Options {
        faults,
        ..Options::default()
    };
    let storage = FileStorage::open_with(dir.path(), options).expect("open storage");
    let node = RaftNode::start(
        runtime_config(1, SnapshotPolicy::disabled()),
        Init::Bootstrap { members },
        storage,
        transport,
        KvStateMachine::new(KvConfig::default()).unwrap(),
    )
    .await
    .expect("start");
    node.wait_for(PATIENCE, |s| s.is_leader())
        .await
        .expect("single node elects itself");
    (dir, node)
}

/// The node stopped for good: the error names `cause`, the status says `Failed`, and a
/// later write fails the same way.
async fn assert_stopped_for_good<M>(node: &RaftNode<M, TcpTransport>, error: &Error, cause: &str)
where
    M: StateMachine<Command = Command>,
{
    match error {
        Error::Stopped { reason } => assert!(reason.contains(cause), "{reason}"),
        other => panic!("expected Stopped, got {other:?}"),
    }
    let status = node
        .wait_for(PATIENCE, |s| s.lifecycle != Lifecycle::Running)
        .await
        .expect("status reports the stop");
    assert!(
        matches!(status.lifecycle, Lifecycle::Failed { .. }),
        "{status:?}"
    );
    assert!(matches!(
        node.propose(Command::put("c", "3", now_ms())).await,
        Err(Error::Stopped { .. })
    ));
}

/// Goal: a failed fsync is fatal: the waiting client gets `Stopped` naming the fsync, the
/// status says `Failed`, later calls fail the same way, and nothing is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fsync_stops_the_node() {
    let faults = FaultInjector::new();
    let (_dir, node) = single_node(faults.clone()).await;
    node.propose(Command::put("a", "1", now_ms()))
        .await
        .expect("healthy write");

    faults.fail_syncs();
    let error = node
        .propose(Command::put("b", "2", now_ms()))
        .await
        .expect_err("a write whose fsync failed must not be acknowledged");
    assert_stopped_for_good(&node, &error, "fsync").await;
    assert!(matches!(node.shutdown().await, Err(Error::Stopped { .. })));
}

/// Goal: shutting down answers requests that are still waiting (here: writes that cannot
/// commit because the only other voter is gone) with `Shutdown`, and later calls too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_waiting_requests() {
    let mut cluster = Cluster::start(&[1, 2], SnapshotPolicy::disabled()).await;
    let leader = cluster.leader().await;
    let follower = if leader == 1 { 2 } else { 1 };
    cluster.stop(follower).await;
    let node = cluster.node(leader).clone();
    let waiting = tokio::spawn({
        let node = node.clone();
        async move { node.propose(Command::put("stuck", "x", now_ms())).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    node.shutdown().await.expect("clean shutdown");
    let answer = waiting.await.expect("task");
    assert!(
        matches!(answer, Err(Error::Shutdown) | Err(Error::NotLeader { .. })),
        "{answer:?}"
    );
    assert_eq!(
        node.propose(Command::put("late", "x", now_ms())).await,
        Err(Error::Shutdown)
    );
    assert_eq!(node.status().lifecycle, Lifecycle::Stopped);
}

/// Goal: a commit-index-only hard state change costs no fsync of its own (only term, vote
/// and log need durability), so a lone client's write costs one fsync, not two.
/// Method: 20 sequential writes on a single node; count fsyncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_only_changes_cost_no_fsync() {
    let (_dir, node) = single_node(FaultInjector::new()).await;
    let before = node.metrics().fsyncs;
    for i in 0..20 {
        node.propose(Command::put(format!("k{i}"), "v", now_ms()))
            .await
            .expect("write");
    }
    let fsyncs = node.metrics().fsyncs - before;
    assert!(fsyncs <= 21, "{fsyncs} fsyncs for 20 writes");
    assert!(fsyncs >= 1);
    node.shutdown().await.expect("shutdown");
}

/// The KV state machine, except that a put of the key `boom` panics in `apply`.
struct Exploding(KvStateMachine);

impl StateMachine for Exploding {
    type Command = Command;
    type Response = <KvStateMachine as StateMachine>::Response;
    type Query = <KvStateMachine as StateMachine>::Query;
    type QueryResponse = <KvStateMachine as StateMachine>::QueryResponse;
    type Snapshot = <KvStateMachine as StateMachine>::Snapshot;

    fn apply(&mut self, index: Index, command: Command) -> Self::Response {
        if matches!(&command.op, Op::Put { key, .. } if key.as_ref() == b"boom") {
            panic!("planted state machine bug");
        }
        self.0.apply(index, command)
    }
    fn query(&self, query: &Self::Query) -> Self::QueryResponse {
        self.0.query(query)
    }
    fn snapshot(&self) -> Self::Snapshot {
        self.0.snapshot()
    }
    fn write_snapshot(
        snapshot: Self::Snapshot,
        writer: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        KvStateMachine::write_snapshot(snapshot, writer)
    }
    fn restore(&mut self, reader: &mut dyn std::io::Read) -> std::io::Result<()> {
        self.0.restore(reader)
    }
}

/// Goal: a state machine that panics while applying (small batches run on the driver's
/// own thread) stops the node cleanly: the waiting write gets `Stopped` naming the panic,
/// the status says `Failed`, and later calls fail the same way instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_machine_panic_stops_the_node() {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let transport = bind(1, "127.0.0.1:0".parse().unwrap()).await;
    let mut members = AddressBook::new();
    members.insert(1, PeerInfo::new(transport.0.local_addr()));
    let storage = FileStorage::open(dir.path()).expect("open storage");
    let node: RaftNode<Exploding, TcpTransport> = RaftNode::start(
        runtime_config(1, SnapshotPolicy::disabled()),
        Init::Bootstrap { members },
        storage,
        transport,
        Exploding(KvStateMachine::new(KvConfig::default()).unwrap()),
    )
    .await
    .expect("start");
    node.wait_for(PATIENCE, |s| s.is_leader())
        .await
        .expect("single node elects itself");
    node.propose(Command::put("a", "1", now_ms()))
        .await
        .expect("healthy write");

    let error = node
        .propose(Command::put("boom", "1", now_ms()))
        .await
        .expect_err("a write whose apply panicked has no response");
    assert_stopped_for_good(&node, &error, "panicked").await;
}
