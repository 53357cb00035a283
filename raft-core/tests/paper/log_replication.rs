//! Section 5.3 and 5.4: log replication, commitment and the election restriction.

use super::*;

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
