//! Failover without a client-visible stall (issue 18): when a follower learns of a new
//! leader or term, what it forwarded to the old leader is settled at once instead of
//! waiting out the request timeout.

mod common;

use bytes::Bytes;
use common::{Cluster, config};
use raft_core::{
    Action, Config, NodeId, ProposalError, ProposalId, ReadConsistency, ReadError, ReadId,
    RetrySafe,
};

/// Commands starting with `safe` carry a session in this harness.
fn retry_safe(command: &[u8]) -> bool {
    command.starts_with(b"safe")
}

/// A request timeout far beyond the failover, so an outcome proves the settling path.
fn patient(id: NodeId) -> Config {
    Config {
        request_timeout_ticks: 10_000,
        retry_safe: RetrySafe(retry_safe),
        ..config(id)
    }
}

fn proposal_outcomes(
    cluster: &Cluster,
    node: NodeId,
    id: ProposalId,
) -> Vec<Result<u64, ProposalError>> {
    cluster
        .events
        .iter()
        .filter_map(|(n, a)| match a {
            Action::ProposalOutcome { id: got, result } if *n == node && *got == id => {
                Some(result.clone())
            }
            _ => None,
        })
        .collect()
}

fn read_outcomes(cluster: &Cluster, node: NodeId, id: ReadId) -> Vec<Result<u64, ReadError>> {
    cluster
        .events
        .iter()
        .filter_map(|(n, a)| match a {
            Action::ReadOutcome { id: got, result } if *n == node && *got == id => {
                Some(result.clone())
            }
            _ => None,
        })
        .collect()
}

/// Three nodes led by 1; node 1 is then cut off, so what node 3 forwards to it is lost.
fn cluster_with_lost_leader() -> Cluster {
    let mut cluster = Cluster::with_config(&[1, 2, 3], patient);
    cluster.elect(1);
    cluster.settle();
    cluster.isolate(1);
    cluster
}

/// Ticks nodes 2 and 3 until one of them leads; returns it and the ticks it took.
fn fail_over(cluster: &mut Cluster) -> (NodeId, u32) {
    for ticks in 1..=1_000 {
        cluster.tick(2);
        cluster.tick(3);
        cluster.settle();
        let leaders: Vec<NodeId> = [2, 3]
            .into_iter()
            .filter(|id| cluster.node(*id).role() == raft_core::Role::Leader)
            .collect();
        if let [leader] = leaders[..] {
            // One more round so every follower hears of it.
            cluster.tick(leader);
            cluster.settle();
            return (leader, ticks);
        }
    }
    panic!("no new leader among 2 and 3");
}

/// Goal: a retry-safe proposal forwarded to a leader that died is re-sent to the new
/// leader and commits, long before the request timeout.
#[test]
fn retry_safe_forwarded_proposal_commits_on_the_new_leader() {
    let mut cluster = cluster_with_lost_leader();
    let id = cluster.propose(3, b"safe put x=1");
    cluster.settle();
    assert!(
        proposal_outcomes(&cluster, 3, id).is_empty(),
        "the old leader never answered"
    );
    let (leader, ticks) = fail_over(&mut cluster);
    for _ in 0..5 {
        cluster.tick(leader);
        cluster.settle();
    }
    let outcomes = proposal_outcomes(&cluster, 3, id);
    assert!(matches!(outcomes[..], [Ok(_)]), "outcomes {outcomes:?}");
    assert!(ticks < 1_000, "settled by the failover, not by the timeout");
    let applied_on_leader = cluster.applied[&leader]
        .entries
        .iter()
        .filter(|(_, data)| data == &Bytes::from_static(b"safe put x=1"))
        .count();
    assert_eq!(
        applied_on_leader, 1,
        "the old leader never had it: applied once"
    );
}

/// Goal: a proposal without a session forwarded to a leader that died is answered
/// "may have been applied" as soon as a new leader is known, not after the timeout.
#[test]
fn plain_forwarded_proposal_is_unknown_as_soon_as_the_leader_changes() {
    let mut cluster = cluster_with_lost_leader();
    let id = cluster.propose(3, b"put x=1");
    cluster.settle();
    fail_over(&mut cluster);
    let outcomes = proposal_outcomes(&cluster, 3, id);
    assert!(
        matches!(outcomes[..], [Err(ProposalError::Unknown { .. })]),
        "outcomes {outcomes:?}"
    );
}

/// Goal: when the forwarding follower itself wins the election, its retry-safe proposal is
/// appended locally and commits.
#[test]
fn retry_safe_proposal_commits_when_the_forwarder_becomes_leader() {
    // Node 2 is slow to campaign, so node 3 wins once node 2 stops deferring to node 1.
    let mut cluster = Cluster::with_config(&[1, 2, 3], |id| match id {
        2 => Config {
            election_ticks: 100,
            ..patient(id)
        },
        _ => patient(id),
    });
    cluster.elect(1);
    cluster.settle();
    cluster.isolate(1);
    let id = cluster.propose(3, b"safe put y=2");
    cluster.settle();
    let (leader, _) = fail_over(&mut cluster);
    assert_eq!(leader, 3, "the forwarding node leads");
    for _ in 0..5 {
        cluster.tick(3);
        cluster.settle();
    }
    let outcomes = proposal_outcomes(&cluster, 3, id);
    assert!(matches!(outcomes[..], [Ok(_)]), "outcomes {outcomes:?}");
}

/// Goal: a read forwarded to a leader that died is registered with the new leader and
/// confirmed there.
#[test]
fn forwarded_read_is_confirmed_by_the_new_leader() {
    let mut cluster = cluster_with_lost_leader();
    let id = cluster.node_mut(3).read(ReadConsistency::Linearizable);
    cluster.process(3);
    cluster.settle();
    let (leader, _) = fail_over(&mut cluster);
    for _ in 0..5 {
        cluster.tick(leader);
        cluster.settle();
    }
    let outcomes = read_outcomes(&cluster, 3, id);
    assert!(matches!(outcomes[..], [Ok(_)]), "outcomes {outcomes:?}");
}

/// Goal: a late answer from the old leader to a proposal re-sent elsewhere is ignored, so
/// the proposal has exactly one outcome.
#[test]
fn late_answer_from_the_old_leader_is_ignored() {
    let mut cluster = Cluster::with_config(&[1, 2, 3], patient);
    cluster.elect(1);
    cluster.settle();
    // The forward reaches node 1, but its answer back to node 3 is held.
    cluster.cut.insert((1, 3));
    let id = cluster.propose(3, b"safe put z=3");
    cluster.settle();
    cluster.isolate(1);
    let (leader, _) = fail_over(&mut cluster);
    cluster.heal();
    for _ in 0..20 {
        cluster.tick_all();
        cluster.settle();
    }
    let outcomes = proposal_outcomes(&cluster, 3, id);
    assert_eq!(outcomes.len(), 1, "exactly one outcome: {outcomes:?}");
    assert!(
        outcomes[0].is_ok(),
        "outcomes {outcomes:?} (leader {leader})"
    );
    cluster.assert_state_machine_safety();
}
