//! Durability across restarts: a restarted node never goes back on its term or vote.

use super::*;

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
