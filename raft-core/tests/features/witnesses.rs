//! Witnesses: vote, never lead, never receive payloads.

use super::*;

#[test]
fn witness_never_leads_and_never_receives_payloads() {
    let mut cluster = Cluster::new(&[1, 2]);
    add_empty_node(&mut cluster, 3);
    cluster.elect(1);
    change(&mut cluster, 1, vec![MembershipChange::AddWitness(3)]);
    tick_rounds(&mut cluster, 5);
    assert!(cluster.node(1).membership().is_witness(3));
    for _ in 0..3 {
        let _ = cluster.propose(1, b"secret");
    }
    tick_rounds(&mut cluster, 2);
    let payloads = cluster
        .node(3)
        .entries(1, 100)
        .iter()
        .filter(|e| matches!(e.payload, EntryPayload::Command(_)))
        .count();
    assert_eq!(payloads, 0, "a witness stores no command payloads");
    assert!(
        cluster
            .node(3)
            .entries(1, 100)
            .iter()
            .any(|e| e.payload == EntryPayload::Elided)
    );
    // Isolate everyone from each other for a long time: the witness never campaigns.
    cluster.isolate(1);
    cluster.isolate(2);
    cluster.isolate(3);
    tick_rounds(&mut cluster, 100);
    assert_eq!(cluster.node(3).role(), Role::Follower);
}

#[test]
fn two_voters_and_a_witness_keep_committing_with_one_voter_down() {
    let mut cluster = Cluster::new(&[1, 2]);
    add_empty_node(&mut cluster, 3);
    cluster.elect(1);
    change(&mut cluster, 1, vec![MembershipChange::AddWitness(3)]);
    tick_rounds(&mut cluster, 5);
    // Voter 1 (the leader) goes down: 2 is elected with the witness's vote and commits.
    cluster.isolate(1);
    tick_rounds(&mut cluster, 40);
    assert_eq!(cluster.node(2).role(), Role::Leader);
    let before = cluster.node(2).commit_index();
    let _ = cluster.propose(2, b"still");
    tick_rounds(&mut cluster, 2);
    assert!(
        cluster.node(2).commit_index() > before,
        "commits with one full voter and the witness"
    );
    let applied: Vec<&[u8]> = cluster.applied[&2]
        .entries
        .iter()
        .map(|(_, d)| &d[..])
        .collect();
    assert!(applied.contains(&&b"still"[..]));
}
