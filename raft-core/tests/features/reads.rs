//! Reads: ReadIndex, follower reads and leases.

use super::*;

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
    // ...then the read arrives: round r is in flight, so the read waits for the next one.
    let id = read(&mut cluster, 1, ReadConsistency::Linearizable);
    assert!(
        cluster.network.is_empty(),
        "a second round opened while one was in flight"
    );
    // Round r is acknowledged; that opens round r+1 for the read. Hold its heartbeats back.
    for message in early {
        cluster.deliver(message);
    }
    let acks: Vec<_> = cluster.network.drain(..).collect();
    for message in acks {
        cluster.deliver(message);
    }
    assert!(
        read_outcomes(&cluster, 1, id).is_empty(),
        "confirmed by a round sent before the read"
    );
    let late: Vec<_> = cluster.network.drain(..).collect();
    assert!(
        !late.is_empty()
            && late
                .iter()
                .all(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
    );
    for message in late {
        cluster.deliver(message);
    }
    cluster.settle();
    assert_eq!(read_outcomes(&cluster, 1, id).len(), 1);
    assert!(read_outcomes(&cluster, 1, id)[0].is_ok());
}

#[test]
fn reads_arriving_in_one_batch_share_one_round() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    cluster.settle();
    let ids: Vec<_> = (0..10)
        .map(|_| cluster.node_mut(1).read(ReadConsistency::Linearizable))
        .collect();
    cluster.process(1);
    let heartbeats = cluster
        .network
        .iter()
        .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
        .count();
    assert_eq!(heartbeats, 2, "one round: one heartbeat per follower");
    cluster.settle();
    for id in ids {
        assert_eq!(
            read_outcomes(&cluster, 1, id),
            vec![Ok(cluster.node(1).commit_index())]
        );
    }
}

#[test]
fn reads_arriving_while_a_round_is_in_flight_share_the_next_round() {
    let mut cluster = Cluster::new(&[1, 2, 3]);
    cluster.elect(1);
    cluster.settle();
    let first = read(&mut cluster, 1, ReadConsistency::Linearizable);
    let round_one: Vec<_> = cluster.network.drain(..).collect();
    let waiting: Vec<_> = (0..5)
        .map(|_| read(&mut cluster, 1, ReadConsistency::Linearizable))
        .collect();
    assert!(
        cluster.network.is_empty(),
        "no round while one is in flight"
    );
    for message in round_one {
        cluster.deliver(message);
    }
    cluster.settle();
    assert_eq!(read_outcomes(&cluster, 1, first).len(), 1);
    for id in waiting {
        assert_eq!(
            read_outcomes(&cluster, 1, id),
            vec![Ok(cluster.node(1).commit_index())]
        );
    }
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
    // The read waits for a heartbeat round (the periodic one at the latest), which the
    // isolated leader never gets acknowledged.
    for _ in 0..lease(1).heartbeat_ticks {
        cluster.tick(1);
    }
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
