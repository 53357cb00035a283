//! Section 5.1 and 5.2: terms, roles and leader election.

use super::*;

#[test]
fn higher_term_reverts_any_role_to_follower() {
    let heartbeat = |term| {
        message(
            2,
            1,
            term,
            MessageBody::Heartbeat {
                commit: 0,
                round: 1,
            },
        )
    };
    // Follower.
    let mut follower = node_with_log(1, &[1, 2, 3], 1, &[]);
    follower.step(heartbeat(5));
    assert_eq!(
        (follower.role(), follower.term(), follower.leader()),
        (Role::Follower, 5, Some(2))
    );
    // Candidate.
    let mut candidate = node_with_log(1, &[1, 2, 3], 1, &[]);
    tick_until_campaign(&mut candidate);
    assert_eq!(candidate.role(), Role::Candidate);
    candidate.step(heartbeat(5));
    assert_eq!((candidate.role(), candidate.term()), (Role::Follower, 5));
    // Leader.
    let mut leader = make_leader(&[1, 2, 3]);
    leader.step(message(
        3,
        1,
        9,
        MessageBody::AppendResponse {
            success: false,
            match_index: 0,
            hint: None,
        },
    ));
    assert_eq!(
        (leader.role(), leader.term(), leader.leader()),
        (Role::Follower, 9, None)
    );
}

#[test]
fn stale_term_messages_are_ignored() {
    let mut node = node_with_log(1, &[1, 2, 3], 5, &[]);
    let stale = message(
        2,
        1,
        3,
        MessageBody::Append {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![Entry {
                index: 1,
                term: 3,
                payload: EntryPayload::Noop,
            }],
            leader_commit: 1,
        },
    );
    node.step(stale);
    assert_eq!(
        (
            node.term(),
            node.last_index(),
            node.commit_index(),
            node.leader()
        ),
        (5, 0, 0, None)
    );
    // The stale leader is told about the newer term so it can step down.
    let replies = sent(&drain_persisting(&mut node));
    assert!(replies.iter().any(|m| m.to == 2 && m.term == 5));
}

#[test]
fn nodes_start_as_followers() {
    let node = node_with_log(1, &[1, 2, 3], 0, &[]);
    assert_eq!(
        (node.role(), node.term(), node.leader()),
        (Role::Follower, 0, None)
    );
}

#[test]
fn leader_broadcasts_heartbeats() {
    let mut leader = make_leader(&[1, 2, 3]);
    for _ in 0..leader.config().heartbeat_ticks {
        leader.tick();
    }
    let heartbeats: Vec<NodeId> = sent(&drain_persisting(&mut leader))
        .iter()
        .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
        .map(|m| m.to)
        .collect();
    assert_eq!(heartbeats, vec![2, 3]);
}

#[test]
fn election_timeout_starts_election() {
    let mut node = node_with_log(1, &[1, 2, 3], 2, &[]);
    tick_until_campaign(&mut node);
    assert_eq!(
        (node.role(), node.term(), node.hard_state().vote),
        (Role::Candidate, 3, Some(1))
    );
    let requests = sent(&drain_persisting(&mut node));
    let asked: Vec<NodeId> = requests
        .iter()
        .filter(|m| {
            matches!(
                m.body,
                MessageBody::VoteRequest {
                    pre_vote: false,
                    ..
                }
            ) && m.term == 3
        })
        .map(|m| m.to)
        .collect();
    assert_eq!(asked, vec![2, 3]);
}

#[test]
fn election_is_won_lost_or_split_by_vote_count() {
    // (voters, grants, refusals, expected role)
    type Case<'a> = (&'a [NodeId], &'a [NodeId], &'a [NodeId], Role);
    let cases: &[Case] = &[
        (&[1, 2, 3], &[2], &[], Role::Leader),
        (&[1, 2, 3], &[], &[2, 3], Role::Follower),
        (&[1, 2, 3, 4], &[2], &[3], Role::Candidate),
        (&[1, 2, 3, 4, 5], &[2, 3], &[], Role::Leader),
        (&[1, 2, 3, 4, 5], &[2], &[3, 4, 5], Role::Follower),
        (&[1, 2, 3, 4, 5], &[2], &[3, 4], Role::Candidate),
        (&[1, 2, 3, 4, 5], &[2], &[3], Role::Candidate),
    ];
    for (voters, grants, refusals, expected) in cases {
        let mut node = node_with_log(1, voters, 0, &[]);
        tick_until_campaign(&mut node);
        drain_persisting(&mut node);
        let term = node.term();
        for &peer in grants.iter() {
            node.step(message(
                peer,
                1,
                term,
                MessageBody::VoteResponse {
                    pre_vote: false,
                    granted: true,
                },
            ));
        }
        for &peer in refusals.iter() {
            node.step(message(
                peer,
                1,
                term,
                MessageBody::VoteResponse {
                    pre_vote: false,
                    granted: false,
                },
            ));
        }
        assert_eq!(
            node.role(),
            *expected,
            "voters {voters:?} grants {grants:?} refusals {refusals:?}"
        );
    }
}

#[test]
fn one_vote_per_term_first_come_first_served() {
    let mut node = node_with_log(1, &[1, 2, 3], 1, &[]);
    let request = |from| {
        message(
            from,
            1,
            2,
            MessageBody::VoteRequest {
                pre_vote: false,
                last_log_index: 0,
                last_log_term: 0,
                transfer: false,
            },
        )
    };
    node.step(request(2));
    node.step(request(3));
    node.step(request(2));
    let answers: Vec<(NodeId, bool)> = sent(&drain_persisting(&mut node))
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::VoteResponse { granted, .. } => Some((m.to, granted)),
            _ => None,
        })
        .collect();
    assert_eq!(answers, vec![(3, false), (2, true), (2, true)]);
    assert_eq!(node.hard_state().vote, Some(2));
}

#[test]
fn vote_grant_waits_for_durability() {
    let mut node = node_with_log(1, &[1, 2, 3], 1, &[]);
    node.step(message(
        2,
        1,
        2,
        MessageBody::VoteRequest {
            pre_vote: false,
            last_log_index: 0,
            last_log_term: 0,
            transfer: false,
        },
    ));
    let mut actions = Vec::new();
    node.drain_actions(&mut actions);
    assert!(
        sent(&actions).is_empty(),
        "no grant before the vote is durable"
    );
    let token = actions
        .iter()
        .find_map(|a| match a {
            Action::Persist(batch) if batch.hard_state.is_some_and(|hs| hs.vote == Some(2)) => {
                Some(batch.token)
            }
            _ => None,
        })
        .expect("the vote is persisted");
    node.on_persisted(token);
    actions.clear();
    node.drain_actions(&mut actions);
    assert!(matches!(
        sent(&actions)[..],
        [Message {
            to: 2,
            body: MessageBody::VoteResponse { granted: true, .. },
            ..
        }]
    ));
}

#[test]
fn candidate_steps_down_on_append_of_its_term() {
    let mut node = node_with_log(1, &[1, 2, 3], 0, &[]);
    tick_until_campaign(&mut node);
    let term = node.term();
    node.step(message(
        2,
        1,
        term,
        MessageBody::Append {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![],
            leader_commit: 0,
        },
    ));
    assert_eq!(
        (node.role(), node.term(), node.leader()),
        (Role::Follower, term, Some(2))
    );
}

#[test]
fn election_timeouts_are_randomized() {
    let mut timeouts = std::collections::BTreeSet::new();
    for seed in 0..20u64 {
        let config = Config {
            seed,
            ..plain_config(1)
        };
        let restored = RestoredState::bootstrap(Membership::with_voters([1, 2, 3]));
        let mut node = Node::new(config.clone(), restored).unwrap();
        let mut ticks = 0;
        while node.role() == Role::Follower {
            node.tick();
            ticks += 1;
        }
        assert!(
            (config.election_ticks..2 * config.election_ticks).contains(&ticks),
            "timeout {ticks}"
        );
        timeouts.insert(ticks);
    }
    assert!(timeouts.len() >= 4, "timeouts should spread: {timeouts:?}");
}
