//! Leadership transfer.

use super::*;

#[test]
fn transfer_succeeds_with_pre_vote_and_check_quorum_on() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    assert!(cluster.configs[&1].pre_vote && cluster.configs[&1].check_quorum);
    cluster.elect(1);
    let _ = cluster.propose(1, b"w");
    cluster.settle();
    let transfer = cluster.node_mut(1).transfer_leadership(Some(2));
    cluster.process(1);
    cluster.settle();
    assert_eq!(cluster.node(2).role(), Role::Leader);
    assert_eq!(cluster.node(1).role(), Role::Follower);
    assert_eq!(
        transfer_outcomes_with_ids(&cluster),
        vec![(transfer, 2, Ok(()))]
    );
}

#[test]
fn transfer_refuses_proposals_and_aborts_on_timeout() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    cluster.settle();
    cluster.isolate(2);
    let _ = cluster.propose(1, b"behind");
    cluster.settle();
    let _transfer = cluster.node_mut(1).transfer_leadership(Some(2));
    cluster.process(1);
    let refused = cluster.propose(1, b"during");
    let refusal = cluster.events.iter().any(|(_, a)| {
        matches!(a, Action::ProposalOutcome { id, result: Err(raft_core::ProposalError::TransferInProgress) } if *id == refused)
    });
    assert!(refusal, "proposals are refused while transferring");
    for _ in 0..config(1).election_ticks {
        cluster.tick(1);
        cluster.settle();
    }
    assert_eq!(
        transfer_outcomes(&cluster),
        vec![(2, Err(TransferError::Timeout))]
    );
    assert_eq!(cluster.node(1).role(), Role::Leader);
}

#[test]
fn transfer_aborts_when_the_target_is_removed() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    cluster.settle();
    cluster.isolate(3);
    let _ = cluster.propose(1, b"behind");
    cluster.settle();
    let _transfer = cluster.node_mut(1).transfer_leadership(Some(3));
    change(&mut cluster, 1, vec![MembershipChange::Remove(3)]);
    cluster.settle();
    let outcomes = transfer_outcomes(&cluster);
    assert!(
        matches!(outcomes[..], [(3, Err(TransferError::Aborted(_)))]),
        "{outcomes:?}"
    );
}

/// A second transfer while one runs is refused under its own id, and the first completes
/// under its id: a host matches outcomes by id, not by order.
#[test]
fn concurrent_transfers_end_under_their_own_ids() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    cluster.settle();
    cluster.isolate(2);
    let _ = cluster.propose(1, b"behind");
    cluster.settle();
    let first = cluster.node_mut(1).transfer_leadership(Some(2));
    let second = cluster.node_mut(1).transfer_leadership(Some(3));
    assert_ne!(first, second);
    cluster.process(1);
    assert_eq!(
        transfer_outcomes_with_ids(&cluster),
        vec![(second, 3, Err(TransferError::InProgress))]
    );
    cluster.heal();
    cluster.tick_all();
    cluster.settle();
    assert_eq!(cluster.node(2).role(), Role::Leader);
    assert_eq!(
        transfer_outcomes_with_ids(&cluster),
        vec![
            (second, 3, Err(TransferError::InProgress)),
            (first, 2, Ok(()))
        ]
    );
}

#[test]
fn transfer_to_a_non_voter_is_refused() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    let _transfer = cluster.node_mut(1).transfer_leadership(Some(9));
    cluster.process(1);
    assert_eq!(
        transfer_outcomes(&cluster),
        vec![(9, Err(TransferError::InvalidTarget(9)))]
    );
}
