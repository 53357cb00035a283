//! Each shape rule of validation, one honest message next to its broken variant, so a rule
//! that refuses honest traffic or lets the broken one through fails here.

use bytes::Bytes;

use super::*;
use crate::config::Config;
use crate::membership::Membership;
use crate::types::{Entry, EntryPayload, RestoredState, SnapshotMeta};

fn entry(index: Index, term: Term) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Noop,
    }
}

fn append(prev: (Index, Term), entries: Vec<Entry>) -> Message {
    Message {
        from: 2,
        to: 1,
        term: 5,
        body: MessageBody::Append {
            prev_log_index: prev.0,
            prev_log_term: prev.1,
            entries,
            leader_commit: 0,
        },
    }
}

fn chunk(index: Index, term: Term, offset: u64, membership: Membership) -> Message {
    Message {
        from: 2,
        to: 1,
        term: 5,
        body: MessageBody::SnapshotChunk {
            meta: Box::new(SnapshotMeta {
                index,
                term,
                membership,
            }),
            offset,
            data: Bytes::from_static(b"abc"),
            done: false,
        },
    }
}

fn node() -> Node {
    let restored = RestoredState::bootstrap(Membership::with_voters([1, 2, 3]));
    Node::new(Config::new(1, 1), restored).expect("valid config")
}

#[test]
fn honest_appends_pass() {
    assert_eq!(check_shape(&append((0, 0), vec![])), Ok(()));
    assert_eq!(
        check_shape(&append((0, 0), vec![entry(1, 1), entry(2, 5)])),
        Ok(())
    );
    assert_eq!(
        check_shape(&append((7, 3), vec![entry(8, 3), entry(9, 4)])),
        Ok(())
    );
}

#[test]
fn entries_must_start_after_prev_and_be_contiguous() {
    let gap = check_shape(&append((0, 0), vec![entry(1_000_000, 1)]));
    assert!(matches!(
        gap,
        Err(PeerMisbehaved::EntryIndexGap { expected: 1, .. })
    ));
    let hole = check_shape(&append((3, 1), vec![entry(4, 1), entry(6, 1)]));
    assert!(matches!(
        hole,
        Err(PeerMisbehaved::EntryIndexGap { position: 1, .. })
    ));
    let beyond = check_shape(&append((MAX_INDEX, 1), vec![entry(MAX_INDEX + 1, 1)]));
    assert!(matches!(
        beyond,
        Err(PeerMisbehaved::IndexOutOfRange { .. })
    ));
}

#[test]
fn entry_terms_stay_between_prev_term_and_message_term() {
    let decreasing = check_shape(&append((0, 0), vec![entry(1, 3), entry(2, 2)]));
    assert!(matches!(
        decreasing,
        Err(PeerMisbehaved::TermOutOfRange { got: 2, .. })
    ));
    let below_prev = check_shape(&append((4, 3), vec![entry(5, 2)]));
    assert!(matches!(
        below_prev,
        Err(PeerMisbehaved::TermOutOfRange { min: 3, .. })
    ));
    let above_message = check_shape(&append((0, 0), vec![entry(1, 6)]));
    assert!(matches!(
        above_message,
        Err(PeerMisbehaved::TermOutOfRange { max: 5, .. })
    ));
    let zero = check_shape(&append((0, 0), vec![entry(1, 0)]));
    assert!(matches!(
        zero,
        Err(PeerMisbehaved::TermOutOfRange { min: 1, .. })
    ));
    let prev_zero_with_term = check_shape(&append((0, 2), vec![]));
    assert!(matches!(
        prev_zero_with_term,
        Err(PeerMisbehaved::TermOutOfRange { .. })
    ));
}

#[test]
fn snapshot_metadata_must_be_consistent() {
    let voters = Membership::with_voters([1, 2, 3]);
    assert_eq!(check_shape(&chunk(10, 4, 0, voters.clone())), Ok(()));
    let at_zero = check_shape(&chunk(0, 0, 0, voters.clone()));
    assert!(matches!(
        at_zero,
        Err(PeerMisbehaved::IndexOutOfRange { min: 1, .. })
    ));
    let future_term = check_shape(&chunk(10, 6, 0, voters.clone()));
    assert!(matches!(
        future_term,
        Err(PeerMisbehaved::TermOutOfRange { .. })
    ));
    let overflow = check_shape(&chunk(10, 4, u64::MAX - 1, voters.clone()));
    assert!(matches!(
        overflow,
        Err(PeerMisbehaved::SnapshotChunkOverflow { .. })
    ));
    let mut zero_id = voters.clone();
    zero_id.learners.insert(0);
    assert!(matches!(
        check_shape(&chunk(10, 4, 0, zero_id)),
        Err(PeerMisbehaved::InvalidMembership { .. })
    ));
    let mut stray_witness = voters.clone();
    stray_witness.witnesses.insert(9);
    assert!(check_shape(&chunk(10, 4, 0, stray_witness)).is_err());
    let mut voter_and_learner = voters;
    voter_and_learner.learners.insert(2);
    assert!(check_shape(&chunk(10, 4, 0, voter_and_learner)).is_err());
}

#[test]
fn leader_messages_need_a_real_term_and_everything_a_bounded_one() {
    let heartbeat = |term| Message {
        from: 2,
        to: 1,
        term,
        body: MessageBody::Heartbeat {
            commit: 0,
            round: 0,
        },
    };
    assert!(check_shape(&heartbeat(0)).is_err());
    assert_eq!(check_shape(&heartbeat(1)), Ok(()));
    assert!(matches!(
        check_shape(&heartbeat(u64::MAX)),
        Err(PeerMisbehaved::TermTooHigh { .. })
    ));
}

#[test]
fn envelope_and_answers_from_the_future_are_refused() {
    let node = node();
    let mut misaddressed = append((0, 0), vec![]);
    misaddressed.to = 3;
    assert!(matches!(
        node.validate(&misaddressed),
        Err(PeerMisbehaved::WrongRecipient {
            expected: 1,
            got: 3
        })
    ));
    for from in [0, 1] {
        let mut spoofed = append((0, 0), vec![]);
        spoofed.from = from;
        assert_eq!(
            node.validate(&spoofed),
            Err(PeerMisbehaved::InvalidSender { got: from })
        );
    }
    let answer = |body| Message {
        from: 2,
        to: 1,
        term: 1,
        body,
    };
    let heartbeat_ack = answer(MessageBody::HeartbeatResponse { round: 0 });
    assert!(matches!(
        node.validate(&heartbeat_ack),
        Err(PeerMisbehaved::TermAhead { max: 0, got: 1, .. })
    ));
    let granted_pre_vote = answer(MessageBody::VoteResponse {
        pre_vote: true,
        granted: true,
    });
    assert_eq!(node.validate(&granted_pre_vote), Ok(()));
    let stale_notice = answer(MessageBody::AppendResponse {
        success: false,
        match_index: 0,
        hint: None,
    });
    assert_eq!(node.validate(&stale_notice), Ok(()));
    let vote = answer(MessageBody::VoteResponse {
        pre_vote: false,
        granted: true,
    });
    assert!(node.validate(&vote).is_err());
}

#[test]
fn errors_say_what_was_expected_and_what_arrived() {
    let error = PeerMisbehaved::EntryIndexGap {
        position: 0,
        expected: 1,
        got: 1_000_000,
    };
    assert_eq!(
        error.to_string(),
        "entry at position 0: expected index 1, got 1000000"
    );
}
