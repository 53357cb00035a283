//! The concrete attacks of issue 14, each replayed against a small in-memory cluster: one
//! spoofed message must be dropped, counted against its sender and leave the cluster
//! electing and committing. Method: build a three-node cluster with a leader and a few
//! committed entries, step the hostile message into one node directly, then check the
//! node's state, its rejection counter and that a fresh proposal still commits everywhere.

mod common;

use bytes::Bytes;
use common::Cluster;
use raft_core::{
    Action, Config, Entry, EntryPayload, HardState, MAX_INDEX, MAX_TERM, MAX_TERM_JUMP, Membership,
    Message, MessageBody, Node, NodeId, RestoredState, Role, Term,
};

/// A cluster of 1, 2, 3 led by 1 with `commands` committed and applied everywhere.
fn cluster_with_commits(commands: usize) -> Cluster {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    for _ in 0..commands {
        let _ = cluster.propose(1, b"honest");
    }
    cluster.settle();
    let commit = cluster.node(1).commit_index();
    for id in [2, 3] {
        cluster.tick(1); // a heartbeat carries the commit index to followers
        cluster.settle();
        assert_eq!(
            cluster.node(id).commit_index(),
            commit,
            "setup: node {id} caught up"
        );
    }
    cluster
}

fn message(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
    Message {
        from,
        to,
        term,
        body,
    }
}

/// Steps `message` into its receiver and carries out what follows.
fn inject(cluster: &mut Cluster, message: Message) {
    cluster.deliver(message);
    cluster.settle();
}

/// The cluster still commits a new command on every node.
fn assert_still_commits(cluster: &mut Cluster) {
    let leader = cluster.leader().expect("a leader");
    let before = cluster.node(leader).commit_index();
    let _ = cluster.propose(leader, b"after the attack");
    cluster.settle();
    cluster.tick(leader);
    cluster.settle();
    for (id, node) in &cluster.nodes {
        assert!(!node.is_halted(), "node {id} halted");
        assert!(
            node.commit_index() > before,
            "node {id} did not commit after the attack"
        );
    }
    cluster.assert_state_machine_safety();
}

fn rejected(cluster: &Cluster, at: NodeId, from: NodeId) -> u64 {
    cluster
        .node(at)
        .rejected_messages()
        .get(&from)
        .copied()
        .unwrap_or(0)
}

#[test]
fn heartbeat_response_with_the_largest_term_leaves_the_leader_leading() {
    let mut cluster = cluster_with_commits(2);
    let term = cluster.node(1).term();
    inject(
        &mut cluster,
        message(2, 1, u64::MAX, MessageBody::HeartbeatResponse { round: 1 }),
    );
    assert_eq!(cluster.node(1).role(), Role::Leader);
    assert_eq!(cluster.node(1).term(), term);
    assert_eq!(rejected(&cluster, 1, 2), 1);
    assert_eq!(cluster.node(1).status().rejected_messages.get(&2), Some(&1));
    assert_still_commits(&mut cluster);
}

#[test]
fn no_message_pushes_a_node_to_a_term_it_cannot_leave() {
    let mut cluster = cluster_with_commits(1);
    let term = cluster.node(2).term();
    // The bare "your term is stale" answer may announce a newer term, but not any term.
    for hostile_term in [u64::MAX, MAX_TERM, term + MAX_TERM_JUMP + 1] {
        let body = MessageBody::AppendResponse {
            success: false,
            match_index: 0,
            hint: None,
        };
        inject(&mut cluster, message(99, 2, hostile_term, body));
        let vote = MessageBody::VoteRequest {
            pre_vote: false,
            last_log_index: 100,
            last_log_term: hostile_term,
            transfer: true,
        };
        inject(&mut cluster, message(99, 2, hostile_term, vote));
    }
    assert_eq!(cluster.node(2).term(), term);
    assert_eq!(rejected(&cluster, 2, 99), 6);
    assert_still_commits(&mut cluster);
}

#[test]
fn a_term_jump_within_the_bound_still_leaves_room_to_elect() {
    // The largest accepted jump moves the cluster forward, and elections still work.
    let mut cluster = cluster_with_commits(1);
    let term = cluster.node(1).term() + MAX_TERM_JUMP;
    let body = MessageBody::AppendResponse {
        success: false,
        match_index: 0,
        hint: None,
    };
    inject(&mut cluster, message(99, 1, term, body));
    assert_eq!(cluster.node(1).role(), Role::Follower);
    assert_eq!(cluster.node(1).term(), term);
    for _ in 0..200 {
        cluster.tick_all();
        cluster.settle();
        if cluster.leader().is_some() {
            break;
        }
    }
    assert!(
        cluster.leader().is_some(),
        "a leader is elected after the jump"
    );
    assert!(cluster.node(cluster.leader().unwrap()).term() > term);
    assert_still_commits(&mut cluster);
}

fn append(prev: (u64, Term), entries: Vec<Entry>, leader_commit: u64) -> MessageBody {
    MessageBody::Append {
        prev_log_index: prev.0,
        prev_log_term: prev.1,
        entries,
        leader_commit,
    }
}

fn command(index: u64, term: Term, data: &'static [u8]) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Command(Bytes::from_static(data)),
    }
}

#[test]
fn append_with_an_index_gap_is_dropped_without_panic() {
    let mut cluster = cluster_with_commits(1);
    let term = cluster.node(2).term();
    // From the real leader's id, in its term (the worst case), and from a stranger.
    let gap = append((0, 0), vec![command(1_000_000, term, b"gap")], 1_000_000);
    inject(&mut cluster, message(1, 2, term, gap.clone()));
    inject(&mut cluster, message(42, 2, term + 1, gap));
    let beyond = append(
        (MAX_INDEX, term),
        vec![command(MAX_INDEX + 1, term, b"x")],
        0,
    );
    inject(&mut cluster, message(1, 2, term, beyond));
    assert!(!cluster.node(2).is_halted());
    assert_eq!(
        cluster.node(2).term(),
        term,
        "an invalid message changes no term"
    );
    assert_eq!(rejected(&cluster, 2, 1), 2);
    assert_eq!(rejected(&cluster, 2, 42), 1);
    assert_still_commits(&mut cluster);
}

#[test]
fn a_conflicting_append_over_committed_entries_does_not_halt_a_follower() {
    let mut cluster = cluster_with_commits(2);
    let term = cluster.node(2).term();
    let commit = cluster.node(2).commit_index();
    // From a node that is not the leader of the current term.
    let forged = append((0, 0), vec![command(1, term, b"forged")], commit);
    inject(&mut cluster, message(3, 2, term, forged));
    // From anyone claiming a newer term: a leader of a newer term holds every committed
    // entry, so an append contradicting one is refused, and no term changes.
    let forged = append((0, 0), vec![command(1, term + 1, b"forged")], commit);
    inject(&mut cluster, message(3, 2, term + 1, forged));
    assert!(!cluster.node(2).is_halted());
    assert_eq!(cluster.node(2).term(), term);
    assert_eq!(cluster.node(2).leader(), Some(1));
    assert_eq!(rejected(&cluster, 2, 3), 2);
    assert_still_commits(&mut cluster);
}

#[test]
fn a_follower_acknowledges_only_what_an_append_showed_it() {
    // The follower holds 1..=commit, all committed. A (late or duplicated) append from the
    // leader that covers only entry 2 must be acknowledged as matching through 2, not
    // through the follower's whole commit index: the request did not vouch for the rest.
    let mut cluster = cluster_with_commits(4);
    let term = cluster.node(1).term();
    let commit = cluster.node(2).commit_index();
    assert!(commit >= 4);
    let entries = cluster.node(1).entries(2, 3).to_vec();
    let prev_term = cluster.node(1).entry_term(1).expect("entry 1");
    cluster.network.clear();
    let node = cluster.node_mut(2);
    node.step(message(1, 2, term, append((1, prev_term), entries, commit)));
    cluster.process(2);
    let acks: Vec<u64> = cluster
        .network
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::AppendResponse {
                success: true,
                match_index,
                ..
            } => Some(match_index),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![2]);
}

#[test]
fn spoofed_timeout_now_from_a_non_leader_never_starts_an_election() {
    let mut cluster = cluster_with_commits(1);
    let term = cluster.node(2).term();
    for from in [3, 3, 3, 3, 99] {
        inject(
            &mut cluster,
            message(from, 2, term, MessageBody::TimeoutNow),
        );
    }
    // Nor one from the real leader's id in a newer term: the leader only sends it to a
    // follower it has caught up in its own term.
    inject(
        &mut cluster,
        message(1, 2, term + 1, MessageBody::TimeoutNow),
    );
    assert_eq!(cluster.node(2).term(), term);
    assert_eq!(cluster.leader(), Some(1));
    assert_eq!(cluster.node(1).term(), term);
    assert_eq!(rejected(&cluster, 2, 3), 4);
    assert_eq!(rejected(&cluster, 2, 99), 1);
    assert_eq!(rejected(&cluster, 2, 1), 1);
    assert_still_commits(&mut cluster);
}

#[test]
fn forged_acknowledgements_cannot_commit_or_confirm_anything() {
    let mut cluster = cluster_with_commits(1);
    let term = cluster.node(1).term();
    let last = cluster.node(1).last_index();
    cluster.isolate(2);
    cluster.isolate(3);
    let _ = cluster.propose(1, b"unreplicated");
    cluster.settle();
    let commit = cluster.node(1).commit_index();
    let ack = MessageBody::AppendResponse {
        success: true,
        match_index: last + 10,
        hint: None,
    };
    cluster.heal();
    cluster.node_mut(1).step(message(2, 1, term, ack));
    let round = MessageBody::HeartbeatResponse { round: u64::MAX };
    cluster.node_mut(1).step(message(2, 1, term, round));
    assert_eq!(cluster.node(1).commit_index(), commit);
    assert_eq!(rejected(&cluster, 1, 2), 2);
}

#[test]
fn rejection_counters_stay_bounded_under_a_flood_of_sender_ids() {
    let mut node = Node::new(
        common::config(1),
        RestoredState::bootstrap(Membership::with_voters([1, 2, 3])),
    )
    .unwrap();
    for from in 2..2_000 {
        node.step(message(from, 1, u64::MAX, MessageBody::TimeoutNow));
    }
    let counters = node.rejected_messages();
    assert!(counters.len() <= 257, "{} counters", counters.len());
    assert_eq!(counters.values().sum::<u64>(), 1_998);
    assert!(counters[&0] > 0, "the overflow is counted under id 0");
}

#[test]
fn a_node_whose_term_cannot_grow_does_not_campaign() {
    for term in [u64::MAX, MAX_TERM] {
        let restored = RestoredState {
            hard_state: HardState {
                term,
                vote: None,
                commit: 0,
            },
            ..RestoredState::bootstrap(Membership::with_voters([1]))
        };
        let mut node = Node::new(Config::new(1, 7), restored).unwrap();
        let mut actions = Vec::new();
        for _ in 0..200 {
            node.tick();
            node.drain_actions(&mut actions);
        }
        assert_eq!(node.term(), term, "the term neither wrapped nor moved");
        assert_eq!(node.role(), Role::Follower);
        assert!(!node.is_halted());
    }
}

/// Goal: a node whose log already ends at `MAX_INDEX` (restored from a store pushed there
/// before indices were validated) stays a quiet follower: as leader its no-op would need an
/// index past `MAX_INDEX`. One entry short of that, it campaigns as usual.
#[test]
fn a_node_whose_log_is_full_does_not_campaign() {
    for (last, campaigns) in [(MAX_INDEX, false), (MAX_INDEX - 1, true)] {
        let restored = RestoredState {
            hard_state: HardState {
                term: 1,
                vote: None,
                commit: last,
            },
            snapshot: raft_core::SnapshotMeta {
                index: last,
                term: 1,
                membership: Membership::with_voters([1]),
            },
            entries: Vec::new(),
        };
        let mut node = Node::new(Config::new(1, 7), restored).unwrap();
        let mut actions = Vec::new();
        for _ in 0..200 {
            node.tick();
            node.drain_actions(&mut actions);
        }
        if campaigns {
            assert!(node.term() > 1, "a log ending at {last} still campaigns");
        } else {
            assert_eq!(node.term(), 1, "the term did not move");
            assert_eq!(node.role(), Role::Follower);
        }
        assert!(!node.is_halted());
    }
}

#[test]
#[should_panic(expected = "host misuse: on_applied(5)")]
fn applying_beyond_what_was_handed_out_panics() {
    let mut node = Node::new(
        Config::new(1, 1),
        RestoredState::bootstrap(Membership::with_voters([1])),
    )
    .unwrap();
    node.on_applied(5);
}

#[test]
#[should_panic(expected = "host misuse: durability notice")]
fn a_write_token_from_another_node_panics() {
    let bootstrap = |voters: &[NodeId]| {
        RestoredState::bootstrap(Membership::with_voters(voters.iter().copied()))
    };
    let mut issuer = Node::new(Config::new(1, 1), bootstrap(&[1])).unwrap();
    let mut other = Node::new(Config::new(2, 2), bootstrap(&[1, 2, 3])).unwrap();
    let mut actions = Vec::new();
    let token = (0..100)
        .find_map(|_| {
            issuer.tick();
            issuer.drain_actions(&mut actions);
            actions.drain(..).find_map(|action| match action {
                Action::Persist(batch) => Some(batch.token),
                _ => None,
            })
        })
        .expect("the issuer campaigns and writes its vote");
    other.on_persisted(token);
}
