//! Membership changes by joint consensus, catch-up, removal and learners.

use super::*;

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
