//! The leader's answer to a follower's rejections is bounded: whatever rejections (honest,
//! stale, repeated or forged, with any hint) and heartbeat answers a follower sends, the
//! leader sends it at most one append per message it receives from it. Method: a settled
//! three-node cluster led by 1 with a few entries, then a random sequence of answers from
//! follower 2 stepped into the leader one by one, counting the appends to 2 each one causes.

mod common;

use common::Cluster;
use proptest::prelude::*;
use raft_core::{Action, ConflictHint, Message, MessageBody, Node};

#[derive(Clone, Debug)]
enum Answer {
    /// A rejection of the append after `prev`, with a hint.
    Reject {
        prev: u64,
        hint_index: u64,
        hint_term: u64,
    },
    HeartbeatResponse,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        4 => (0u64..12, 0u64..12, 0u64..3).prop_map(|(prev, hint_index, hint_term)| {
            Answer::Reject { prev, hint_index, hint_term }
        }),
        1 => Just(Answer::HeartbeatResponse),
    ]
}

/// Appends the leader sent to node 2 in the actions it queued.
fn appends_to_2(node: &mut Node) -> usize {
    let mut actions = Vec::new();
    node.drain_actions(&mut actions);
    actions
        .iter()
        .filter(|action| {
            matches!(
                action,
                Action::Send(Message {
                    to: 2,
                    body: MessageBody::Append { .. },
                    ..
                })
            )
        })
        .count()
}

fn leader_with_entries(entries: usize) -> Cluster {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    for _ in 0..entries {
        let _ = cluster.propose(1, b"x");
    }
    cluster.settle();
    cluster.tick(1);
    cluster.settle();
    cluster
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn at_most_one_append_per_answer(entries in 0usize..8, answers in proptest::collection::vec(answer(), 1..60)) {
        let mut cluster = leader_with_entries(entries);
        let term = cluster.node(1).term();
        let last = cluster.node(1).last_index();
        let leader = cluster.node_mut(1);
        // Nothing left over from the setup.
        prop_assert_eq!(appends_to_2(leader), 0);
        for answer in answers {
            let body = match answer {
                Answer::Reject { prev, hint_index, hint_term } => MessageBody::AppendResponse {
                    success: false,
                    match_index: prev.min(last),
                    hint: Some(ConflictHint { index: hint_index, term: hint_term }),
                },
                Answer::HeartbeatResponse => MessageBody::HeartbeatResponse { round: 0 },
            };
            leader.step(Message { from: 2, to: 1, term, body });
            let sent = appends_to_2(leader);
            prop_assert!(sent <= 1, "{} appends to node 2 for one answer", sent);
        }
    }
}

/// A follower that keeps rejecting an append without moving the leader back gets no append
/// until a heartbeat answer, then one.
#[test]
fn a_rejection_that_does_not_backtrack_waits_for_the_heartbeat() {
    let mut cluster = leader_with_entries(3);
    // One more entry, whose append to 2 is never delivered.
    let _ = cluster.propose(1, b"y");
    let term = cluster.node(1).term();
    let last = cluster.node(1).last_index();
    let leader = cluster.node_mut(1);
    assert_eq!(
        appends_to_2(leader),
        0,
        "the new entry's append already left"
    );
    // 2 rejects it with a hint that puts the next index where it is (after `last`).
    let reject = MessageBody::AppendResponse {
        success: false,
        match_index: last,
        hint: Some(ConflictHint {
            index: last + 1,
            term,
        }),
    };
    let message = |body| Message {
        from: 2,
        to: 1,
        term,
        body,
    };
    for _ in 0..10 {
        leader.step(message(reject.clone()));
        assert_eq!(appends_to_2(leader), 0);
    }
    leader.step(message(MessageBody::HeartbeatResponse { round: 0 }));
    assert_eq!(appends_to_2(leader), 1, "one probe per heartbeat answer");
}
