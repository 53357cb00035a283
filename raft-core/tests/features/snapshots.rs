//! Snapshots, catch-up by chunks, and durability races around them.

use super::*;

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
