//! Reads, leadership transfer, membership changes, learners and witnesses, driven through
//! the in-memory cluster. Each test states the behaviour a user relies on.

mod common;

use common::{Cluster, Disk, config};
use raft_core::{
    Action, Config, EntryPayload, MembershipChange, MembershipError, MessageBody, NodeId,
    ReadConsistency, ReadError, ReadId, Role, TransferError, TransferId,
};

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

fn transfer_outcomes(cluster: &Cluster) -> Vec<(NodeId, Result<(), TransferError>)> {
    transfer_outcomes_with_ids(cluster)
        .into_iter()
        .map(|(_, target, result)| (target, result))
        .collect()
}

fn transfer_outcomes_with_ids(
    cluster: &Cluster,
) -> Vec<(TransferId, NodeId, Result<(), TransferError>)> {
    cluster
        .events
        .iter()
        .filter_map(|(_, a)| match a {
            Action::TransferOutcome { id, target, result } => Some((*id, *target, result.clone())),
            _ => None,
        })
        .collect()
}

fn membership_outcomes(cluster: &Cluster) -> Vec<Result<raft_core::Membership, MembershipError>> {
    cluster
        .events
        .iter()
        .filter_map(|(_, a)| match a {
            Action::MembershipOutcome { result, .. } => Some(result.clone().map(|m| *m)),
            _ => None,
        })
        .collect()
}

/// Asks node `node` to change the membership and carries out its actions.
fn change(cluster: &mut Cluster, node: NodeId, changes: Vec<MembershipChange>) {
    let _ = cluster.node_mut(node).change_membership(changes);
    cluster.process(node);
}

fn tick_rounds(cluster: &mut Cluster, rounds: usize) {
    for _ in 0..rounds {
        cluster.tick_all();
        cluster.settle();
    }
}

fn read(cluster: &mut Cluster, node: NodeId, consistency: ReadConsistency) -> ReadId {
    let id = cluster.node_mut(node).read(consistency);
    cluster.process(node);
    id
}

/// A node that joins later: it knows no membership and waits to be contacted.
fn add_empty_node(cluster: &mut Cluster, id: NodeId) {
    cluster.add_node(id, config(id), Disk::default());
}

// ----- reads -----

#[test]
fn leader_read_index_is_confirmed_by_a_quorum() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    let _ = cluster.propose(1, b"w");
    cluster.settle();
    let id = read(&mut cluster, 1, ReadConsistency::Linearizable);
    cluster.settle();
    assert_eq!(
        read_outcomes(&cluster, 1, id),
        vec![Ok(cluster.node(1).commit_index())]
    );
}

#[test]
fn reads_are_never_served_from_a_deposed_leader() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    cluster.settle();
    cluster.isolate(1);
    // The majority elects a new leader and commits a write the old leader never sees.
    tick_rounds(&mut cluster, 40);
    let new_leader = [2, 3]
        .into_iter()
        .find(|&id| cluster.node(id).role() == Role::Leader)
        .expect("new leader");
    let _ = cluster.propose(new_leader, b"newer");
    cluster.settle();
    // Whatever the old leader believes, its read must not succeed.
    let id = read(&mut cluster, 1, ReadConsistency::Linearizable);
    tick_rounds(&mut cluster, 40);
    let outcomes = read_outcomes(&cluster, 1, id);
    assert_eq!(outcomes.len(), 1, "exactly one outcome");
    assert!(
        outcomes[0].is_err(),
        "deposed leader served a read: {outcomes:?}"
    );
}

#[test]
fn a_read_registered_after_a_heartbeat_round_is_not_confirmed_by_that_round() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    cluster.settle();
    // Round r goes out (heartbeats stay in flight)...
    cluster.tick(1);
    let early: Vec<_> = cluster.network.drain(..).collect();
    assert!(
        early
            .iter()
            .all(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
    );
    // ...then the read arrives and opens round r+1; hold its heartbeats back.
    let id = read(&mut cluster, 1, ReadConsistency::Linearizable);
    let late: Vec<_> = cluster.network.drain(..).collect();
    for message in early {
        cluster.deliver(message);
    }
    cluster.settle();
    assert!(
        read_outcomes(&cluster, 1, id).is_empty(),
        "confirmed by a round sent before the read"
    );
    for message in late {
        cluster.deliver(message);
    }
    cluster.settle();
    assert_eq!(read_outcomes(&cluster, 1, id).len(), 1);
    assert!(read_outcomes(&cluster, 1, id)[0].is_ok());
}

#[test]
fn follower_reads_get_the_leaders_confirmed_index() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    let _ = cluster.propose(1, b"w");
    cluster.settle();
    let id = read(&mut cluster, 2, ReadConsistency::Linearizable);
    cluster.settle();
    let commit = cluster.node(1).commit_index();
    assert_eq!(read_outcomes(&cluster, 2, id), vec![Ok(commit)]);
}

#[test]
fn lease_reads_are_local_while_the_lease_holds() {
    let lease = |id| Config {
        lease_reads: true,
        ..config(id)
    };
    let mut cluster = Cluster::with_config(&[1, 2, 3], lease);
    cluster.elect(1);
    tick_rounds(&mut cluster, 1);
    let id = read(&mut cluster, 1, ReadConsistency::Lease);
    assert!(cluster.network.is_empty(), "a lease read sends nothing");
    assert_eq!(
        read_outcomes(&cluster, 1, id),
        vec![Ok(cluster.node(1).commit_index())]
    );
    // Cut the leader off: once the lease runs out it must go back to ReadIndex, which fails.
    cluster.isolate(1);
    for _ in 0..lease(1).election_ticks {
        cluster.tick(1);
        cluster.settle();
    }
    let id = read(&mut cluster, 1, ReadConsistency::Lease);
    assert!(read_outcomes(&cluster, 1, id).iter().all(|r| r.is_err()));
    assert!(!cluster.network.is_empty() || cluster.node(1).role() != Role::Leader);
}

#[test]
fn lease_reads_need_the_option() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    let id = read(&mut cluster, 1, ReadConsistency::Lease);
    assert_eq!(
        read_outcomes(&cluster, 1, id),
        vec![Err(ReadError::LeaseDisabled)]
    );
}

// ----- leadership transfer -----

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

// ----- membership -----

#[test]
fn joint_commit_requires_both_majorities() {
    // Joint C({1,2,3},{1,4,5}): acknowledgements from the old majority alone must not commit.
    let mut cluster = Cluster::new(&[1, 2, 3]);
    add_empty_node(&mut cluster, 4);
    add_empty_node(&mut cluster, 5);
    cluster.elect(1);
    cluster.settle();
    change(
        &mut cluster,
        1,
        vec![
            MembershipChange::AddVoter(4),
            MembershipChange::AddVoter(5),
            MembershipChange::Remove(2),
            MembershipChange::Remove(3),
        ],
    );
    // Step until the leader appends the joint entry, then cut the new half off at once.
    for _ in 0..10_000 {
        if cluster.node(1).membership().is_joint() {
            break;
        }
        if !cluster.deliver_one() {
            cluster.tick(1);
        }
    }
    assert!(
        cluster.node(1).membership().is_joint(),
        "joint configuration appended"
    );
    cluster.isolate(4);
    cluster.isolate(5);
    let before = cluster.node(1).commit_index();
    let _ = cluster.propose(1, b"x");
    tick_rounds(&mut cluster, 3);
    assert!(
        cluster.node(2).last_index() > before,
        "the old majority holds the entries"
    );
    assert_eq!(
        cluster.node(1).commit_index(),
        before,
        "old majority alone committed in joint state"
    );
    // With the new half back, the change completes.
    cluster.heal();
    tick_rounds(&mut cluster, 5);
    assert_eq!(
        cluster.node(4).membership().incoming,
        [1, 4, 5].into_iter().collect()
    );
    assert!(!cluster.node(4).membership().is_joint());
}

#[test]
fn joint_election_requires_both_majorities() {
    use raft_core::{HardState, Membership, Message, Node, RestoredState, SnapshotMeta};
    let old = Membership::with_voters([1, 2, 3]);
    let target = old
        .apply_changes(&[
            MembershipChange::AddVoter(4),
            MembershipChange::AddVoter(5),
            MembershipChange::Remove(2),
            MembershipChange::Remove(3),
        ])
        .unwrap();
    let joint = old.enter_joint(&target);
    let restored = RestoredState {
        hard_state: HardState::default(),
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            membership: joint,
        },
        entries: vec![],
    };
    let mut node = Node::new(
        Config {
            pre_vote: false,
            ..config(1)
        },
        restored,
    )
    .unwrap();
    while node.role() == Role::Follower {
        node.tick();
    }
    let term = node.term();
    let mut actions = Vec::new();
    node.drain_actions(&mut actions);
    // Our own vote counts once it is durable.
    for action in &actions {
        if let Action::Persist(batch) = action {
            node.on_persisted(batch.token);
        }
    }
    for peer in [2, 3] {
        node.step(Message {
            from: peer,
            to: 1,
            term,
            body: MessageBody::VoteResponse {
                pre_vote: false,
                granted: true,
            },
        });
    }
    assert_eq!(
        node.role(),
        Role::Candidate,
        "the old majority alone elected a leader"
    );
    node.step(Message {
        from: 4,
        to: 1,
        term,
        body: MessageBody::VoteResponse {
            pre_vote: false,
            granted: true,
        },
    });
    assert_eq!(node.role(), Role::Leader);
}

#[test]
fn membership_change_completes_through_joint_consensus() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    add_empty_node(&mut cluster, 4);
    cluster.elect(1);
    change(
        &mut cluster,
        1,
        vec![MembershipChange::AddVoter(4), MembershipChange::Remove(3)],
    );
    tick_rounds(&mut cluster, 5);
    let outcomes = membership_outcomes(&cluster);
    assert_eq!(outcomes.len(), 1);
    let membership = outcomes[0].clone().expect("change committed");
    assert_eq!(membership.incoming, [1, 2, 4].into_iter().collect());
    assert!(!membership.is_joint());
    // Both configurations went through the log: joint first, then the new one.
    let configs: Vec<bool> = cluster
        .node(4)
        .entries(1, 100)
        .iter()
        .filter_map(|e| match &e.payload {
            EntryPayload::Membership(m) => Some(m.is_joint()),
            _ => None,
        })
        .collect();
    assert_eq!(configs, vec![true, false]);
    // A second change while one is in flight is refused.
    let _ = cluster
        .node_mut(1)
        .change_membership(vec![MembershipChange::AddLearner(7)]);
    change(&mut cluster, 1, vec![MembershipChange::AddLearner(8)]);
    assert!(membership_outcomes(&cluster).contains(&Err(MembershipError::ChangeInProgress)));
}

#[test]
fn leave_completes_after_a_leader_change_in_the_joint_state() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    add_empty_node(&mut cluster, 4);
    cluster.elect(1);
    cluster.settle();
    tick_rounds(&mut cluster, 1);
    change(&mut cluster, 1, vec![MembershipChange::AddVoter(4)]);
    // Let the newcomer catch up and the joint entry replicate, but stop before C(new) commits:
    // deliver messages until some follower holds a joint configuration.
    for _ in 0..10_000 {
        if [2, 3, 4]
            .iter()
            .any(|&id| cluster.node(id).membership().is_joint())
        {
            break;
        }
        if !cluster.deliver_one() {
            cluster.tick(1);
        }
    }
    assert!(cluster.node(2).membership().is_joint() || cluster.node(3).membership().is_joint());
    // The leader dies; a new one must finish the change.
    cluster.isolate(1);
    tick_rounds(&mut cluster, 40);
    let new_leader = [2, 3, 4]
        .into_iter()
        .find(|&id| cluster.node(id).role() == Role::Leader)
        .expect("new leader");
    let membership = cluster.node(new_leader).membership().clone();
    assert!(
        !membership.is_joint(),
        "stuck in joint configuration: {}",
        membership.describe()
    );
    assert!(membership.incoming.contains(&4));
}

#[test]
fn removed_leader_steps_down_and_stays_quiet() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    change(&mut cluster, 1, vec![MembershipChange::Remove(1)]);
    tick_rounds(&mut cluster, 5);
    assert_ne!(cluster.node(1).role(), Role::Leader);
    tick_rounds(&mut cluster, 60);
    let leader = cluster
        .leader()
        .expect("the remaining voters elect a leader");
    assert!(leader == 2 || leader == 3);
    assert_eq!(
        cluster.node(1).role(),
        Role::Follower,
        "a removed node never campaigns"
    );
}

#[test]
fn new_voter_change_is_abandoned_if_it_cannot_catch_up() {
    let short = |id| Config {
        catch_up_timeout_ticks: 15,
        ..config(id)
    };
    let mut cluster = Cluster::with_config(&[1, 2, 3], short);
    cluster.add_node(4, short(4), Disk::default());
    cluster.elect(1);
    cluster.isolate(4);
    change(&mut cluster, 1, vec![MembershipChange::AddVoter(4)]);
    tick_rounds(&mut cluster, 20);
    assert_eq!(
        membership_outcomes(&cluster),
        vec![Err(MembershipError::CatchUpTimeout(4))]
    );
    assert_eq!(
        cluster.node(1).membership().incoming,
        [1, 2, 3].into_iter().collect(),
        "configuration unchanged"
    );
    // Once reachable, the same change goes through.
    cluster.heal();
    change(&mut cluster, 1, vec![MembershipChange::AddVoter(4)]);
    tick_rounds(&mut cluster, 10);
    assert!(cluster.node(1).membership().incoming.contains(&4));
}

#[test]
fn learners_replicate_but_never_vote_and_are_promoted_only_when_caught_up() {
    let auto = |id| Config {
        auto_promote_learners: true,
        catch_up_max_lag: 0,
        ..config(id)
    };
    let mut cluster = Cluster::with_config(&[1, 2, 3], auto);
    cluster.add_node(4, auto(4), Disk::default());
    cluster.elect(1);
    cluster.isolate(4);
    change(&mut cluster, 1, vec![MembershipChange::AddLearner(4)]);
    tick_rounds(&mut cluster, 3);
    assert!(cluster.node(1).membership().is_learner(4), "learner added");
    for _ in 0..5 {
        let _ = cluster.propose(1, b"x");
    }
    tick_rounds(&mut cluster, 3);
    assert!(
        cluster.node(1).membership().is_learner(4),
        "an unreachable learner is not promoted"
    );
    cluster.heal();
    tick_rounds(&mut cluster, 10);
    assert!(
        cluster.node(1).membership().incoming.contains(&4),
        "caught-up learner promoted"
    );
    assert_eq!(cluster.node(4).last_index(), cluster.node(1).last_index());
}

// ----- witnesses -----

#[test]
fn witness_never_leads_and_never_receives_payloads() {
    let mut cluster = Cluster::new(&[1, 2]);
    add_empty_node(&mut cluster, 3);
    cluster.elect(1);
    change(&mut cluster, 1, vec![MembershipChange::AddWitness(3)]);
    tick_rounds(&mut cluster, 5);
    assert!(cluster.node(1).membership().is_witness(3));
    for _ in 0..3 {
        let _ = cluster.propose(1, b"secret");
    }
    tick_rounds(&mut cluster, 2);
    let payloads = cluster
        .node(3)
        .entries(1, 100)
        .iter()
        .filter(|e| matches!(e.payload, EntryPayload::Command(_)))
        .count();
    assert_eq!(payloads, 0, "a witness stores no command payloads");
    assert!(
        cluster
            .node(3)
            .entries(1, 100)
            .iter()
            .any(|e| e.payload == EntryPayload::Elided)
    );
    // Isolate everyone from each other for a long time: the witness never campaigns.
    cluster.isolate(1);
    cluster.isolate(2);
    cluster.isolate(3);
    tick_rounds(&mut cluster, 100);
    assert_eq!(cluster.node(3).role(), Role::Follower);
}

#[test]
fn two_voters_and_a_witness_keep_committing_with_one_voter_down() {
    let mut cluster = Cluster::new(&[1, 2]);
    add_empty_node(&mut cluster, 3);
    cluster.elect(1);
    change(&mut cluster, 1, vec![MembershipChange::AddWitness(3)]);
    tick_rounds(&mut cluster, 5);
    // Voter 1 (the leader) goes down: 2 is elected with the witness's vote and commits.
    cluster.isolate(1);
    tick_rounds(&mut cluster, 40);
    assert_eq!(cluster.node(2).role(), Role::Leader);
    let before = cluster.node(2).commit_index();
    let _ = cluster.propose(2, b"still");
    tick_rounds(&mut cluster, 2);
    assert!(
        cluster.node(2).commit_index() > before,
        "commits with one full voter and the witness"
    );
    let applied: Vec<&[u8]> = cluster.applied[&2]
        .entries
        .iter()
        .map(|(_, d)| &d[..])
        .collect();
    assert!(applied.contains(&&b"still"[..]));
}

// ----- snapshots -----

#[test]
fn far_behind_follower_catches_up_by_snapshot_chunks_despite_losses() {
    let small_chunks = |id| Config {
        snapshot_chunk_bytes: 8,
        snapshot_retry_ticks: 3,
        ..config(id)
    };
    let mut cluster = Cluster::with_config(&[1, 2, 3], small_chunks);
    cluster.elect(1);
    cluster.isolate(3);
    for _ in 0..20 {
        let _ = cluster.propose(1, b"payload");
    }
    tick_rounds(&mut cluster, 2);
    // The leader compacts everything node 3 lacks.
    cluster.snapshot(1);
    assert!(cluster.node(1).first_index() > cluster.node(3).last_index() + 1);
    cluster.heal();
    // Lose every fourth snapshot chunk on the way: the transfer must resume and finish.
    let mut delivered = 0usize;
    for _ in 0..200 {
        cluster.tick_all();
        while let Some(message) = cluster.network.pop_front() {
            let chunk = matches!(message.body, MessageBody::SnapshotChunk { .. });
            delivered += usize::from(chunk);
            if chunk && delivered.is_multiple_of(4) {
                continue;
            }
            cluster.deliver(message);
        }
        if cluster.node(3).commit_index() == cluster.node(1).commit_index() {
            break;
        }
    }
    assert!(delivered > 4, "the snapshot went in several chunks");
    assert_eq!(
        cluster.node(3).commit_index(),
        cluster.node(1).commit_index()
    );
    assert_eq!(
        cluster.applied[&3].entries, cluster.applied[&1].entries,
        "restored and applied the same state"
    );
    let _ = cluster.propose(1, b"after");
    tick_rounds(&mut cluster, 2);
    assert_eq!(
        cluster.node(3).last_index(),
        cluster.node(1).last_index(),
        "replication resumes after the snapshot"
    );
}

#[test]
fn a_late_durability_notice_for_an_overwritten_suffix_is_ignored() {
    use raft_core::{Entry, HardState, Membership, Message, Node, RestoredState, SnapshotMeta};
    // Follower 2 receives entry 2 of term 1 (write A), then a new leader overwrites index 2
    // with term 2 (write B). The notice for A arrives: it must not acknowledge index 2.
    let restored = RestoredState {
        hard_state: HardState {
            term: 1,
            vote: None,
            commit: 0,
        },
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters([1, 2, 3]),
        },
        entries: vec![Entry {
            index: 1,
            term: 1,
            payload: EntryPayload::Noop,
        }],
    };
    let mut node = Node::new(config(2), restored).unwrap();
    let append = |term, from, entry_term| Message {
        from,
        to: 2,
        term,
        body: MessageBody::Append {
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![Entry {
                index: 2,
                term: entry_term,
                payload: EntryPayload::Noop,
            }],
            leader_commit: 0,
        },
    };
    let mut actions = Vec::new();
    node.step(append(1, 1, 1));
    node.drain_actions(&mut actions);
    let write_a = actions
        .iter()
        .find_map(|a| match a {
            Action::Persist(b) => Some(b.token),
            _ => None,
        })
        .unwrap();
    actions.clear();
    node.step(append(2, 3, 2));
    node.drain_actions(&mut actions);
    assert!(
        actions.iter().all(|a| !matches!(a, Action::Send(_))),
        "nothing acknowledged before durability"
    );
    actions.clear();
    node.on_persisted(write_a);
    node.drain_actions(&mut actions);
    let acks: Vec<(u64, u64)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(Message {
                to,
                body:
                    MessageBody::AppendResponse {
                        success: true,
                        match_index,
                        ..
                    },
                ..
            }) => Some((*to, *match_index)),
            _ => None,
        })
        .collect();
    assert!(
        !acks.contains(&(1, 2)),
        "acknowledged an overwritten entry to the old leader: {acks:?}"
    );
    assert!(
        !acks.contains(&(3, 2)),
        "acknowledged write B before it was durable: {acks:?}"
    );
}

#[test]
fn a_former_witness_re_added_with_its_old_log_never_leads_or_serves() {
    let mut cluster = Cluster::new(&[1, 2]);
    add_empty_node(&mut cluster, 3);
    cluster.elect(1);
    change(&mut cluster, 1, vec![MembershipChange::AddWitness(3)]);
    tick_rounds(&mut cluster, 5);
    let _ = cluster.propose(1, b"secret");
    tick_rounds(&mut cluster, 2);
    // A witness cannot be turned into a learner in place...
    change(&mut cluster, 1, vec![MembershipChange::DemoteVoter(3)]);
    assert!(membership_outcomes(&cluster).contains(&Err(MembershipError::WitnessRoleChange(3))));
    // ...and removing it, then adding it back as a voter with its old data, leaves a node
    // that votes but never leads and refuses client requests.
    change(&mut cluster, 1, vec![MembershipChange::Remove(3)]);
    tick_rounds(&mut cluster, 5);
    change(&mut cluster, 1, vec![MembershipChange::AddVoter(3)]);
    tick_rounds(&mut cluster, 5);
    assert!(cluster.node(1).membership().incoming.contains(&3));
    assert!(cluster.node(3).has_incomplete_state());
    let read = read(&mut cluster, 3, ReadConsistency::Linearizable);
    assert!(matches!(
        read_outcomes(&cluster, 3, read)[..],
        [Err(ReadError::NotLeader { .. })]
    ));
    let proposal = cluster.propose(3, b"via-3");
    let refused = cluster.events.iter().any(|(n, a)| {
        *n == 3 && matches!(a, Action::ProposalOutcome { id, result: Err(raft_core::ProposalError::NotLeader { .. }) } if *id == proposal)
    });
    assert!(
        refused,
        "a node with holes in its state machine must not answer proposals"
    );
    // Leader 1 goes away: 2 must lead; 3 never campaigns.
    cluster.isolate(1);
    tick_rounds(&mut cluster, 60);
    assert_eq!(cluster.node(2).role(), Role::Leader);
    assert_ne!(cluster.node(3).role(), Role::Leader);
    assert!(!cluster.node(3).is_halted());
}

#[test]
fn a_witness_being_added_never_receives_payloads_even_while_catching_up() {
    let mut cluster = Cluster::new(&[1, 2]);
    add_empty_node(&mut cluster, 3);
    cluster.elect(1);
    for _ in 0..3 {
        let _ = cluster.propose(1, b"secret");
    }
    tick_rounds(&mut cluster, 2);
    // Compact so that catching up needs a snapshot, which a witness gets without data.
    cluster.snapshot(1);
    let _ = cluster.propose(1, b"after");
    tick_rounds(&mut cluster, 1);
    let mut payloads_seen = 0;
    change(&mut cluster, 1, vec![MembershipChange::AddWitness(3)]);
    for _ in 0..20 {
        cluster.tick_all();
        while let Some(message) = cluster.network.pop_front() {
            if message.to == 3 {
                payloads_seen += match &message.body {
                    MessageBody::Append { entries, .. } => entries
                        .iter()
                        .filter(|e| matches!(e.payload, EntryPayload::Command(_)))
                        .count(),
                    MessageBody::SnapshotChunk { data, .. } => data.len(),
                    _ => 0,
                };
            }
            cluster.deliver(message);
        }
    }
    assert!(cluster.node(1).membership().is_witness(3), "witness added");
    assert_eq!(
        payloads_seen, 0,
        "the future witness was sent command payloads or snapshot data"
    );
}

#[test]
fn only_commit_only_writes_may_skip_the_fsync() {
    use raft_core::{Entry, Membership, Message, Node, RestoredState};
    let mut follower = Node::new(
        config(2),
        RestoredState::bootstrap(Membership::with_voters([1, 2, 3])),
    )
    .unwrap();
    let mut batches = Vec::new();
    let mut drain = |node: &mut Node| {
        let mut actions = Vec::new();
        node.drain_actions(&mut actions);
        for action in actions {
            if let Action::Persist(batch) = action {
                node.on_persisted(batch.token);
                batches.push(batch);
            }
        }
    };
    let entry = Entry {
        index: 1,
        term: 1,
        payload: EntryPayload::Noop,
    };
    let append = MessageBody::Append {
        prev_log_index: 0,
        prev_log_term: 0,
        entries: vec![entry],
        leader_commit: 0,
    };
    follower.step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: append,
    });
    drain(&mut follower);
    follower.step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Heartbeat {
            commit: 1,
            round: 1,
        },
    });
    drain(&mut follower);
    assert_eq!(batches.len(), 2);
    assert!(
        batches[0].sync_required,
        "new term and entries must be fsynced"
    );
    assert_eq!(batches[1].hard_state.map(|hs| hs.commit), Some(1));
    assert!(batches[1].entries.is_empty());
    assert!(
        !batches[1].sync_required,
        "a write that only raises the commit index needs no fsync"
    );
}
