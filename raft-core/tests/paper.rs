//! One test per rule of the Raft paper's section 5, named after the rule. Each drives real
//! nodes, either directly with crafted messages or through the in-memory cluster.

mod common;

use bytes::Bytes;
use common::{Cluster, config};
use raft_core::{
    Action, Config, Entry, EntryPayload, HardState, Membership, Message, MessageBody, Node, NodeId,
    RestoredState, Role, SnapshotMeta, Term,
};

fn plain_config(id: NodeId) -> Config {
    Config {
        pre_vote: false,
        check_quorum: false,
        ..config(id)
    }
}

fn node_with_log(id: NodeId, voters: &[NodeId], term: Term, log_terms: &[Term]) -> Node {
    let entries = log_terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry {
            index: i as u64 + 1,
            term: t,
            payload: EntryPayload::Noop,
        })
        .collect();
    let restored = RestoredState {
        hard_state: HardState {
            term,
            vote: None,
            commit: 0,
        },
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters(voters.iter().copied()),
        },
        entries,
    };
    Node::new(plain_config(id), restored).unwrap()
}

fn message(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
    Message {
        from,
        to,
        term,
        body,
    }
}

/// Drains actions, making every write durable at once; returns the rest.
fn drain_persisting(node: &mut Node) -> Vec<Action> {
    let mut all = Vec::new();
    for _ in 0..8 {
        let mut actions = Vec::new();
        node.drain_actions(&mut actions);
        if actions.is_empty() {
            break;
        }
        for action in actions {
            if let Action::Persist(batch) = &action {
                node.on_persisted(batch.token);
            }
            all.push(action);
        }
    }
    all
}

fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn tick_until_campaign(node: &mut Node) {
    for _ in 0..100 {
        node.tick();
        if node.role() != Role::Follower {
            return;
        }
    }
    panic!("no campaign");
}

fn make_leader(voters: &[NodeId]) -> Node {
    let mut node = node_with_log(1, voters, 0, &[]);
    tick_until_campaign(&mut node);
    drain_persisting(&mut node);
    for &peer in voters.iter().filter(|&&p| p != 1) {
        node.step(message(
            peer,
            1,
            node.term(),
            MessageBody::VoteResponse {
                pre_vote: false,
                granted: true,
            },
        ));
    }
    assert_eq!(node.role(), Role::Leader);
    drain_persisting(&mut node);
    node
}

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

#[test]
fn leader_appends_proposals_and_replicates_with_previous_index_and_term() {
    let mut leader = make_leader(&[1, 2, 3]);
    let last = leader.last_index();
    let last_term = leader.entry_term(last).unwrap();
    // Followers acknowledge the no-op so the leader streams.
    for peer in [2, 3] {
        leader.step(message(
            peer,
            1,
            leader.term(),
            MessageBody::AppendResponse {
                success: true,
                match_index: last,
                hint: None,
            },
        ));
    }
    drain_persisting(&mut leader);
    let _ = leader.propose(Bytes::from_static(b"x"));
    assert_eq!(leader.last_index(), last + 1);
    let appends: Vec<Message> = sent(&drain_persisting(&mut leader));
    for peer in [2, 3] {
        let append = appends.iter().find(|m| m.to == peer).expect("append sent");
        match &append.body {
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                ..
            } => {
                assert_eq!((*prev_log_index, *prev_log_term), (last, last_term));
                assert_eq!(
                    entries[0].payload,
                    EntryPayload::Command(Bytes::from_static(b"x"))
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn entry_commits_once_a_majority_holds_it() {
    let mut leader = make_leader(&[1, 2, 3, 4, 5]);
    let noop = leader.last_index();
    let term = leader.term();
    let ack = |from| {
        message(
            from,
            1,
            term,
            MessageBody::AppendResponse {
                success: true,
                match_index: noop,
                hint: None,
            },
        )
    };
    leader.step(ack(2));
    assert_eq!(leader.commit_index(), 0, "leader + 1 of 5 is no majority");
    leader.step(ack(3));
    assert_eq!(leader.commit_index(), noop, "leader + 2 of 5 is a majority");
}

#[test]
fn leader_counts_itself_only_once_durable() {
    let mut node = node_with_log(1, &[1, 2, 3], 0, &[]);
    tick_until_campaign(&mut node);
    drain_persisting(&mut node);
    node.step(message(
        2,
        1,
        node.term(),
        MessageBody::VoteResponse {
            pre_vote: false,
            granted: true,
        },
    ));
    let mut actions = Vec::new();
    node.drain_actions(&mut actions); // the no-op write is issued but not durable
    let noop = node.last_index();
    node.step(message(
        2,
        1,
        node.term(),
        MessageBody::AppendResponse {
            success: true,
            match_index: noop,
            hint: None,
        },
    ));
    assert_eq!(
        node.commit_index(),
        0,
        "one durable copy of three is not a majority"
    );
    let token = actions.iter().rev().find_map(|a| match a {
        Action::Persist(b) => Some(b.token),
        _ => None,
    });
    node.on_persisted(token.unwrap());
    assert_eq!(node.commit_index(), noop);
}

#[test]
fn previous_term_entries_commit_only_through_a_current_term_entry() {
    // Figure 8: the leader of term 3 holds an entry of term 2 at index 2 replicated on a
    // majority; it must not count it as committed until an entry of term 3 is.
    let mut leader = node_with_log(1, &[1, 2, 3], 2, &[1, 2]);
    tick_until_campaign(&mut leader);
    drain_persisting(&mut leader);
    let term = leader.term();
    leader.step(message(
        2,
        1,
        term,
        MessageBody::VoteResponse {
            pre_vote: false,
            granted: true,
        },
    ));
    drain_persisting(&mut leader);
    assert_eq!(leader.role(), Role::Leader);
    let ack = |index| {
        message(
            2,
            1,
            term,
            MessageBody::AppendResponse {
                success: true,
                match_index: index,
                hint: None,
            },
        )
    };
    leader.step(ack(2));
    assert_eq!(
        leader.commit_index(),
        0,
        "index 2 is from term 2: not committed by counting"
    );
    leader.step(ack(3));
    assert_eq!(
        leader.commit_index(),
        3,
        "the term-3 no-op commits, and index 2 with it"
    );
}

#[test]
fn followers_apply_committed_entries_in_order() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    for data in [&b"a"[..], b"b", b"c", b"d"] {
        let _ = cluster.propose(1, data);
    }
    cluster.settle();
    cluster.tick(1); // heartbeat carries the final commit index
    cluster.settle();
    for id in [1, 2, 3] {
        let commands: Vec<&[u8]> = cluster.applied[&id]
            .entries
            .iter()
            .map(|(_, d)| &d[..])
            .collect();
        assert_eq!(commands, vec![&b"a"[..], b"b", b"c", b"d"], "node {id}");
    }
}

#[test]
fn follower_rejects_append_on_mismatch_and_truncates_conflicting_suffix() {
    let mut follower = node_with_log(2, &[1, 2, 3], 3, &[1, 1, 2, 2]);
    // Mismatch at prev (index 4 has term 2, not 3): rejected, log unchanged.
    follower.step(message(
        1,
        2,
        3,
        MessageBody::Append {
            prev_log_index: 4,
            prev_log_term: 3,
            entries: vec![],
            leader_commit: 0,
        },
    ));
    let replies = sent(&drain_persisting(&mut follower));
    assert!(
        matches!(replies[0].body, MessageBody::AppendResponse { success: false, hint: Some(h), .. } if h.index == 3 && h.term == 2)
    );
    assert_eq!(follower.last_index(), 4);
    // Conflict at index 3: the suffix from 3 is replaced.
    follower.step(message(
        1,
        2,
        3,
        MessageBody::Append {
            prev_log_index: 2,
            prev_log_term: 1,
            entries: vec![Entry {
                index: 3,
                term: 3,
                payload: EntryPayload::Noop,
            }],
            leader_commit: 0,
        },
    ));
    let actions = drain_persisting(&mut follower);
    assert_eq!(
        (follower.last_index(), follower.entry_term(3)),
        (3, Some(3))
    );
    let truncated = actions
        .iter()
        .any(|a| matches!(a, Action::Persist(b) if b.truncate_from == Some(3)));
    assert!(truncated, "the host is told to truncate from index 3");
}

#[test]
fn follower_commit_is_capped_by_the_last_entry_of_the_request() {
    let mut follower = node_with_log(2, &[1, 2, 3], 1, &[1, 1, 1, 1]);
    // The leader's commit is 4 but this request only vouches for entries through 2.
    follower.step(message(
        1,
        2,
        1,
        MessageBody::Append {
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![Entry {
                index: 2,
                term: 1,
                payload: EntryPayload::Noop,
            }],
            leader_commit: 4,
        },
    ));
    assert_eq!(follower.commit_index(), 2);
}

#[test]
fn leader_repairs_the_divergent_logs_of_figure_7() {
    // Figure 7: the leader of term 8 and followers (a)-(f).
    let leader_log: &[Term] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: &[&[Term]] = &[
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for (case, follower_log) in followers.iter().enumerate() {
        // Node 3 holds the leader's log and elects it; node 2 is the follower under test.
        let voters = [1, 2, 3];
        let mut cluster = Cluster::with_config(&voters, plain_config);
        let leader = node_with_log(1, &voters, 7, leader_log);
        let follower = node_with_log(2, &voters, 7, follower_log);
        let helper = node_with_log(3, &voters, 7, leader_log);
        for (id, node) in [(1, leader), (2, follower), (3, helper)] {
            cluster.nodes.insert(id, node);
            let disk = cluster.disks.get_mut(&id).unwrap();
            disk.entries = cluster.nodes[&id].entries(1, 100).to_vec();
            disk.hard_state.term = 7;
        }
        cluster.elect(1);
        assert_eq!(cluster.node(1).term(), 8, "case {case}");
        cluster.settle();
        cluster.tick(1);
        cluster.settle();
        let leader_entries = cluster.node(1).entries(1, 100).to_vec();
        assert_eq!(
            cluster.node(2).entries(1, 100),
            &leader_entries[..],
            "follower ({}) repaired",
            (b'a' + case as u8) as char
        );
        assert_eq!(cluster.node(2).commit_index(), cluster.node(1).last_index());
    }
}

#[test]
fn vote_requests_carry_last_index_and_term_and_voters_reject_less_up_to_date_logs() {
    let mut candidate = node_with_log(1, &[1, 2, 3], 2, &[1, 2, 2]);
    tick_until_campaign(&mut candidate);
    let request = sent(&drain_persisting(&mut candidate))
        .into_iter()
        .next()
        .unwrap();
    assert!(matches!(
        request.body,
        MessageBody::VoteRequest {
            last_log_index: 3,
            last_log_term: 2,
            ..
        }
    ));
    // (voter's log, candidate's last index, last term, granted)
    let cases: &[(&[Term], u64, Term, bool)] = &[
        (&[1, 2, 2], 3, 2, true),  // equal
        (&[1, 2, 2], 2, 2, false), // same term, shorter
        (&[1, 2, 2], 9, 1, false), // older last term, longer
        (&[1, 2, 2], 1, 3, true),  // newer last term, shorter
    ];
    for (log, index, term, granted) in cases {
        let mut voter = node_with_log(2, &[1, 2, 3], 2, log);
        voter.step(message(
            1,
            2,
            3,
            MessageBody::VoteRequest {
                pre_vote: false,
                last_log_index: *index,
                last_log_term: *term,
                transfer: false,
            },
        ));
        let reply = sent(&drain_persisting(&mut voter))
            .into_iter()
            .next()
            .unwrap();
        assert!(
            matches!(reply.body, MessageBody::VoteResponse { granted: g, .. } if g == *granted),
            "case {index}/{term}"
        );
    }
}

#[test]
fn a_restart_never_resumes_below_the_term_of_its_log() {
    // The entries of term 3 reached the disk, the hard state saying term 3 did not.
    let mut node = node_with_log(1, &[1, 2, 3], 2, &[1, 3]);
    assert_eq!(node.term(), 3, "the log proves the node was in term 3");
    // Its vote in term 3 counts as cast: it grants no one else a vote in term 3.
    node.step(message(
        2,
        1,
        3,
        MessageBody::VoteRequest {
            pre_vote: false,
            last_log_index: 9,
            last_log_term: 3,
            transfer: false,
        },
    ));
    let replies = sent(&drain_persisting(&mut node));
    assert!(matches!(
        replies[..],
        [Message {
            body: MessageBody::VoteResponse { granted: false, .. },
            ..
        }]
    ));
    // And it campaigns in a newer term, never in 3 again.
    tick_until_campaign(&mut node);
    assert_eq!(node.term(), 4);
}

#[test]
fn a_candidate_counts_its_own_vote_only_once_durable() {
    // A single voter must not lead (and send entries to learners) in a term it could
    // forget in a crash.
    let mut node = node_with_log(1, &[1], 0, &[]);
    tick_until_campaign(&mut node);
    let mut actions = Vec::new();
    node.drain_actions(&mut actions);
    assert_eq!(
        node.role(),
        Role::Candidate,
        "not leader before the term is durable"
    );
    let token = actions.iter().find_map(|a| match a {
        Action::Persist(batch) => Some(batch.token),
        _ => None,
    });
    node.on_persisted(token.expect("term and vote are persisted"));
    assert_eq!(node.role(), Role::Leader);
}
