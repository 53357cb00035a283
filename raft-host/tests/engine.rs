//! The engine driven by a tiny synchronous driver (tests/common): a 3-node in-memory
//! cluster over `MemStorage`, checked for what a user of a host would notice.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{Cluster, Counter, Counting, Host, config};
use raft_core::{MembershipChange, MessageBody};
use raft_host::{
    AddressBook, Consistency, Engine, Error, Init, PeerInfo, Proposal, Reply, SnapshotPolicy,
};

fn response(answer: Option<&common::Answer>) -> u64 {
    match answer {
        Some(Ok(Reply::Response(value))) => *value,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Goal: every proposal, on the leader or forwarded by a follower, gets exactly one answer,
/// the state machine's response. Method: propose on both in one batch; the harness fails
/// on a second answer for any request.
#[test]
fn every_proposal_gets_exactly_one_answer() {
    let mut cluster = Cluster::new(3, SnapshotPolicy::disabled());
    let leader = cluster.elect();
    let follower = if leader == 1 { 2 } else { 1 };
    let mut requests = Vec::new();
    for node in [leader, follower] {
        for _ in 0..10 {
            let proposal = Proposal::command(&1u64).unwrap();
            requests.push((node, cluster.host(node).engine.handle_propose(proposal)));
        }
    }
    cluster.run_until(200, |c| {
        requests
            .iter()
            .all(|(node, id)| c.hosts[node].answers.contains_key(id))
    });
    let mut responses: Vec<u64> = requests
        .iter()
        .map(|(node, id)| response(cluster.hosts[node].answers.get(id)))
        .collect();
    responses.sort_unstable();
    assert_eq!(
        responses,
        (1..=20).collect::<Vec<_>>(),
        "each command applied once"
    );
    for host in cluster.hosts.values() {
        assert_eq!(host.engine.requests_waiting(), 0);
    }
}

/// Goal: a linearizable read is answered only from a state that has applied its read
/// index. Method: hold the follower's apply lane, write, read on the follower; no answer
/// while held; released, the answer includes the write.
#[test]
fn reads_wait_for_apply() {
    let mut cluster = Cluster::new(3, SnapshotPolicy::disabled());
    let leader = cluster.elect();
    let follower = if leader == 3 { 2 } else { 3 };
    cluster.host(follower).hold_apply = true;
    let write = cluster
        .host(leader)
        .engine
        .handle_propose(Proposal::command(&10u64).unwrap());
    cluster.run_until(100, |c| c.hosts[&leader].answers.contains_key(&write));
    let read = cluster
        .host(follower)
        .engine
        .handle_read((), Consistency::Linearizable);
    for _ in 0..30 {
        cluster.step();
    }
    assert!(
        !cluster.hosts[&follower].answers.contains_key(&read),
        "read answered before its index was applied"
    );
    cluster.host(follower).hold_apply = false;
    cluster.run_until(100, |c| c.hosts[&follower].answers.contains_key(&read));
    match &cluster.hosts[&follower].answers[&read] {
        Ok(Reply::Query(sum)) => assert_eq!(*sum, 10),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// A single-node cluster with its no-op committed, settled.
fn single_node() -> Cluster {
    let mut cluster = Cluster::new(1, SnapshotPolicy::disabled());
    cluster.elect();
    cluster
}

/// Goal: writes queued while a syncing disk work is out go out together as the next work,
/// with exactly one sync. Method: hold the first write, propose more, check nothing else is
/// handed out, then count syncs.
#[test]
fn group_commit_syncs_once_per_batch() {
    let mut cluster = single_node();
    let host: &mut Host = cluster.host(1);
    host.engine
        .handle_propose(Proposal::command(&1u64).unwrap());
    let first = host.engine.poll_disk().expect("the first write");
    assert!(first.needs_sync());
    for value in 2..=20u64 {
        host.engine
            .handle_propose(Proposal::command(&value).unwrap());
        assert!(
            host.engine.poll_disk().is_none(),
            "a second disk work while a syncing one is out"
        );
    }
    let done = first.run(&mut host.storage.lock().unwrap());
    host.engine.handle_disk_done(done);
    let group = host.engine.poll_disk().expect("the grouped writes");
    assert!(group.needs_sync());
    assert!(group.op_count() >= 19, "{group:?}");
    let before = host.syncs();
    let done = group.run(&mut host.storage.lock().unwrap());
    assert!(done.synced());
    host.engine.handle_disk_done(done);
    assert_eq!(host.syncs(), before + 1, "one sync for the whole group");
}

/// Goal: a write does not wait behind a commit-index-only write (which needs no sync): it
/// goes out at once. Method: hold the commit-only work, propose, poll.
#[test]
fn write_goes_out_behind_a_commit_only_write() {
    let mut cluster = single_node();
    let host = cluster.host(1);
    host.engine
        .handle_propose(Proposal::command(&1u64).unwrap());
    let write = host.engine.poll_disk().unwrap();
    let done = write.run(&mut host.storage.lock().unwrap());
    host.engine.handle_disk_done(done);
    let commit = host.engine.poll_disk().expect("the commit index write");
    assert!(!commit.needs_sync());
    host.engine
        .handle_propose(Proposal::command(&2u64).unwrap());
    let next = host
        .engine
        .poll_disk()
        .expect("the next write, behind the commit-only one");
    assert!(next.needs_sync());
    for work in [commit, next] {
        let done = work.run(&mut host.storage.lock().unwrap());
        host.engine.handle_disk_done(done);
    }
}

/// Goal: a driver can tell a small append (which it may sync on its own thread) from a
/// big one. Method: one 8-byte command weighs its payload plus the fixed per-entry
/// overhead (`Entry::size_bytes`), so a bound below that refuses it.
#[test]
fn disk_work_knows_the_bytes_it_appends() {
    let mut cluster = single_node();
    let host = cluster.host(1);
    host.engine
        .handle_propose(Proposal::command(&1u64).unwrap());
    let write = host.engine.poll_disk().unwrap();
    assert!(write.persists_at_most(1024), "{write:?}");
    assert!(!write.persists_at_most(8), "{write:?}");
    let done = write.run(&mut host.storage.lock().unwrap());
    host.engine.handle_disk_done(done);
}

/// Goal: a batch that only raises the commit index (sync_required false) costs no sync.
/// Method: on a single node, a write's durability commits it; the next disk work carries
/// only the commit index; running it must not sync.
#[test]
fn commit_only_batch_is_not_synced() {
    let mut cluster = single_node();
    let host = cluster.host(1);
    host.engine
        .handle_propose(Proposal::command(&1u64).unwrap());
    let write = host.engine.poll_disk().unwrap();
    let done = write.run(&mut host.storage.lock().unwrap());
    host.engine.handle_disk_done(done);
    let commit = host.engine.poll_disk().expect("the commit index write");
    assert!(!commit.needs_sync(), "{commit:?}");
    let before = host.syncs();
    let done = commit.run(&mut host.storage.lock().unwrap());
    assert!(!done.synced());
    host.engine.handle_disk_done(done);
    assert_eq!(host.syncs(), before);
}

fn lone_engine() -> (Engine<Counter, Counting, u64>, Mutex<Counting>) {
    let storage = Mutex::new(Counting::default());
    let members = [(1, PeerInfo::new(1u64))].into_iter().collect();
    let startup = raft_host::restore(
        1,
        &storage,
        &mut Counter::default(),
        &Init::Bootstrap { members },
    )
    .unwrap();
    let engine = Engine::new(
        config(1, SnapshotPolicy::disabled()),
        startup,
        Duration::ZERO,
    );
    (engine.unwrap(), storage)
}

/// Runs `engine` until it hands out disk work.
fn first_disk_work(engine: &mut Engine<Counter, Counting, u64>) -> raft_host::DiskWork<Counting> {
    for tick in 1..1000 {
        if let Some(work) = engine.poll_disk() {
            return work;
        }
        engine.handle_timeout(Duration::from_millis(10 * tick));
    }
    panic!("no disk work");
}

/// Goal: reporting a completion the engine never handed out is a driver bug that panics
/// with a message naming it.
#[test]
#[should_panic(expected = "engine misuse: handle_disk_done for work #1, but no such work")]
fn completion_never_handed_out_panics() {
    let (mut one, storage) = lone_engine();
    let (mut other, _) = lone_engine();
    let done = first_disk_work(&mut one).run(&mut storage.lock().unwrap());
    other.handle_disk_done(done);
}

/// Goal: a completion reported out of order (not the work that is out) panics.
#[test]
#[should_panic(
    expected = "engine misuse: handle_disk_done for work #2, but the oldest work out is #1"
)]
fn completion_out_of_order_panics() {
    let (mut one, storage) = lone_engine();
    let (mut other, other_storage) = lone_engine();
    let done = first_disk_work(&mut one).run(&mut storage.lock().unwrap());
    one.handle_disk_done(done);
    let second = first_disk_work(&mut one).run(&mut storage.lock().unwrap());
    let _out = first_disk_work(&mut other);
    drop(other_storage);
    other.handle_disk_done(second);
}

/// Goal: a node cut off while the others compact their logs catches up through a
/// snapshot, and its state machine ends equal to the leader's. Method: snapshot every 5
/// entries, isolate node 3, write 40 times, heal.
#[test]
fn lagging_node_installs_snapshot() {
    let policy = SnapshotPolicy {
        every_entries: Some(5),
        every_bytes: None,
    };
    let mut cluster = Cluster::new(3, policy);
    let mut leader = cluster.elect();
    if leader == 3 {
        cluster.host(3).engine.handle_transfer(Some(1));
        cluster.run_until(200, |c| c.leader() == Some(1));
        leader = 1;
    }
    cluster.isolated.insert(3);
    for value in 1..=40u64 {
        let proposal = Proposal::command(&value).unwrap();
        cluster.host(leader).engine.handle_propose(proposal);
        cluster.step();
    }
    cluster.run_until(200, |c| c.hosts[&leader].engine.node().first_index() > 20);
    assert!(cluster.hosts[&leader].engine.metrics().snapshots_saved > 0);
    cluster.isolated.clear();
    let target = cluster.hosts[&leader].engine.node().commit_index();
    cluster.run_until(500, |c| c.hosts[&3].engine.node().applied_index() >= target);
    let lagging = &cluster.hosts[&3];
    assert!(
        lagging.engine.metrics().snapshots_restored > 0,
        "caught up without a snapshot"
    );
    assert_eq!(lagging.sm.0, (1..=40).sum::<u64>());
    assert_eq!(lagging.sm.0, cluster.hosts[&leader].sm.0);
}

/// Goal: an address record proposed on the leader reaches every node's book. Method: set
/// a fourth node's address, wait for the answer, read every book.
#[test]
fn address_record_reaches_every_book() {
    let mut cluster = Cluster::new(3, SnapshotPolicy::disabled());
    let leader = cluster.elect();
    let request = cluster
        .host(leader)
        .engine
        .handle_set_peer(4, PeerInfo::new(4004).with_client_url("http://four"));
    cluster.run_until(200, |c| c.hosts[&leader].answers.contains_key(&request));
    assert!(matches!(
        cluster.hosts[&leader].answers[&request],
        Ok(Reply::PeersUpdated)
    ));
    cluster.run_until(200, |c| {
        c.hosts.values().all(|h| h.engine.book().contains_key(&4))
    });
    for host in cluster.hosts.values() {
        assert_eq!(host.engine.book()[&4].address, 4004);
        assert_eq!(host.engine.book().len(), 4);
    }
}

/// Goal: a node rebuilt from its storage alone (a crash: the engine and the state machine
/// are dropped) re-applies what was committed, so its state machine does not go back.
/// Method: single node, three writes, then restore a fresh engine and counter from the
/// same storage and drive it.
#[test]
fn restart_reapplies_committed_entries() {
    let mut cluster = single_node();
    for value in [3u64, 4, 5] {
        let request = cluster
            .host(1)
            .engine
            .handle_propose(Proposal::command(&value).unwrap());
        cluster.run_until(100, |c| c.hosts[&1].answers.contains_key(&request));
    }
    assert_eq!(cluster.hosts[&1].sm.0, 12);
    let now = cluster.now;
    let host = cluster.host(1);
    let mut counter = Counter::default();
    let startup = raft_host::restore(1, &host.storage, &mut counter, &Init::Restart).unwrap();
    host.engine = Engine::new(config(1, SnapshotPolicy::disabled()), startup, now).unwrap();
    host.sm = counter;
    host.answers.clear();
    cluster.run_until(100, |c| c.hosts[&1].sm.0 == 12);
}

/// Goal: a snapshot request has an id and ends in exactly one answer: the index of the
/// snapshot saved for it, covering what was applied when it was made; a second request
/// when nothing new was applied is answered with the same snapshot.
#[test]
fn a_snapshot_request_is_answered_with_the_saved_index() {
    let mut cluster = single_node();
    for value in [3u64, 4] {
        let request = cluster
            .host(1)
            .engine
            .handle_propose(Proposal::command(&value).unwrap());
        cluster.run_until(100, |c| c.hosts[&1].answers.contains_key(&request));
    }
    let applied = cluster.host(1).engine.node().applied_index();
    let first = cluster.host(1).engine.handle_trigger_snapshot();
    cluster.run_until(100, |c| c.hosts[&1].answers.contains_key(&first));
    let saved = match &cluster.hosts[&1].answers[&first] {
        Ok(Reply::Snapshot(index)) => *index,
        other => panic!("{other:?}"),
    };
    assert!(saved >= applied, "saved {saved}, applied {applied}");
    assert_eq!(cluster.host(1).engine.node().snapshot_meta().index, saved);
    let second = cluster.host(1).engine.handle_trigger_snapshot();
    assert_ne!(first, second);
    cluster.run_until(100, |c| c.hosts[&1].answers.contains_key(&second));
    assert!(
        matches!(cluster.hosts[&1].answers[&second], Ok(Reply::Snapshot(index)) if index == saved),
        "{:?}",
        cluster.hosts[&1].answers[&second]
    );
}

/// Goal: a restarted node knows how large its stored snapshot is, so the snapshot policy
/// amortises its first snapshot after the restart against it (as it does after a save)
/// instead of rewriting a large state after the plain thresholds. Method: single node,
/// save a snapshot, restore a fresh engine from the same storage, compare the sizes.
#[test]
fn a_restart_learns_the_stored_snapshot_size() {
    let mut cluster = single_node();
    let request = cluster
        .host(1)
        .engine
        .handle_propose(Proposal::command(&7u64).unwrap());
    cluster.run_until(100, |c| c.hosts[&1].answers.contains_key(&request));
    let snapshot = cluster.host(1).engine.handle_trigger_snapshot();
    cluster.run_until(100, |c| c.hosts[&1].answers.contains_key(&snapshot));
    let saved_bytes = cluster.hosts[&1].engine.metrics().last_snapshot_bytes;
    assert!(saved_bytes > 0, "a saved snapshot has a size");
    let now = cluster.now;
    let host = cluster.host(1);
    let mut counter = Counter::default();
    let startup = raft_host::restore(1, &host.storage, &mut counter, &Init::Restart).unwrap();
    assert_eq!(startup.snapshot_bytes, saved_bytes);
    host.engine = Engine::new(config(1, SnapshotPolicy::disabled()), startup, now).unwrap();
    assert_eq!(host.engine.metrics().last_snapshot_bytes, saved_bytes);
    assert_eq!(counter.0, 7, "the snapshot was loaded");
}

/// Goal: a log read back from storage with a gap is refused by `restore` with an error
/// naming the fault, instead of panicking in the core (whose `Node::new` would).
#[test]
fn restore_refuses_a_stored_log_with_a_gap() {
    let mut cluster = single_node();
    for value in [3u64, 4] {
        let request = cluster
            .host(1)
            .engine
            .handle_propose(Proposal::command(&value).unwrap());
        cluster.run_until(100, |c| c.hosts[&1].answers.contains_key(&request));
    }
    let host = cluster.host(1);
    host.storage.lock().unwrap().lose_first_entry = true;
    let Err(error) = raft_host::restore(
        1,
        &host.storage,
        &mut Counter::default(),
        &Init::<u64>::Restart,
    ) else {
        panic!("a log with a gap is refused");
    };
    assert!(
        matches!(&error, raft_host::RestoreError::Inconsistent(reason) if reason.contains("not contiguous")),
        "{error}"
    );
}

/// Goal: an idle follower sleeps until its election timeout instead of waking every tick,
/// while the leader, which heartbeats every tick, wakes every tick; a follower that hears
/// nothing meanwhile campaigns on that one wake-up, not before.
#[test]
fn an_idle_follower_sleeps_until_its_election_timeout() {
    let tick = Duration::from_millis(10);
    let mut cluster = Cluster::new(3, SnapshotPolicy::disabled());
    let leader = cluster.elect();
    cluster.step();
    let now = cluster.now;
    assert_eq!(cluster.host(leader).engine.poll_timeout(), now + tick);
    let follower = if leader == 1 { 2 } else { 1 };
    let engine = &mut cluster.host(follower).engine;
    let wake = engine.poll_timeout();
    assert!(
        wake >= now + 10 * tick,
        "the follower heard the leader this tick; its timeout is at least 10 ticks away, yet it wakes at {wake:?} (now {now:?})"
    );
    engine.handle_timeout(wake - tick);
    assert_eq!(engine.node().role(), raft_core::Role::Follower);
    engine.handle_timeout(wake);
    // Silence is judged when the batch's outputs are polled (after its messages).
    while engine.poll_transmit().is_some() {}
    assert_ne!(
        engine.node().role(),
        raft_core::Role::Follower,
        "the election timeout started a campaign at the promised time"
    );
}

/// Goal: the observation feed tells a watcher what the engine did, in order: the write the
/// core handed out, that it became durable after a sync, the entry applied with its term and
/// response, the role change and the answer; and it is silent when off.
#[test]
fn observation_feed_reports_writes_durability_applies_and_answers() {
    use raft_host::Observation;
    let (mut engine, storage) = lone_engine();
    assert!(
        engine.poll_observation().is_none(),
        "the feed is off by default"
    );
    engine.set_observing(true);
    let mut counter = Counter::default();
    let mut seen = Vec::new();
    let mut request = None;
    let mut answered = false;
    for tick in 1..1000u64 {
        engine.handle_timeout(Duration::from_millis(10 * tick));
        if request.is_none() && engine.node().leader() == Some(1) {
            request = Some(engine.handle_propose(Proposal::command(&5u64).unwrap()));
        }
        loop {
            let mut busy = false;
            while let Some(work) = engine.poll_disk() {
                // The split run: writes first, the sync at "completion".
                let written = work.write(&mut storage.lock().unwrap());
                let done = written.sync(&mut storage.lock().unwrap());
                engine.handle_disk_done(done);
                busy = true;
            }
            while let Some(work) = engine.poll_apply() {
                engine.handle_applied(work.run(&mut counter, &storage));
                busy = true;
            }
            while let Some((id, _)) = engine.poll_reply() {
                answered |= Some(id) == request;
                busy = true;
            }
            while let Some(observation) = engine.poll_observation() {
                seen.push(observation);
                busy = true;
            }
            if !busy {
                break;
            }
        }
        if answered {
            break;
        }
    }
    assert!(answered, "the proposal was never answered");
    let position = |pred: &dyn Fn(&Observation<Counter>) -> bool| {
        seen.iter()
            .position(pred)
            .unwrap_or_else(|| panic!("missing observation in {seen:?}"))
    };
    let leader = position(&|o| {
        matches!(
            o,
            Observation::Role {
                role: raft_core::Role::Leader,
                ..
            }
        )
    });
    let persisted = position(&|o| {
        matches!(o, Observation::Persist { entries, sync_required: true, .. }
            if entries.iter().any(|e| matches!(e.payload, raft_core::EntryPayload::Command(_))))
    });
    let Observation::Persist { token, .. } = &seen[persisted] else {
        unreachable!()
    };
    let token = *token;
    let durable =
        position(&|o| matches!(o, Observation::Durable { token: t, synced: true } if *t >= token));
    let applied = position(
        &|o| matches!(o, Observation::Applied { response: Some(5), term, .. } if *term >= 1),
    );
    let answer = position(&|o| matches!(o, Observation::Answered { ok: true, .. }));
    assert!(leader < persisted && persisted < durable && durable < applied && applied < answer);
    engine.set_observing(false);
    assert!(
        engine.poll_observation().is_none(),
        "turning the feed off drops it"
    );
}

/// Goal: a node being added as a witness never answers a read from its state machine, even
/// one it accepted before it learned it is a witness. Method: node 4 joins; it hears the
/// leader's heartbeats (so it knows the leader) but none of its appends, takes a read (the
/// leader confirms the read index), then gets the log: elided payloads and the
/// configuration that names it a witness. Its counter never saw the write, so an answer
/// would be wrong; the read must fail with `Witness` instead.
#[test]
fn a_read_taken_before_learning_it_is_a_witness_is_refused() {
    let mut cluster = Cluster::new(3, SnapshotPolicy::disabled());
    let leader = cluster.elect();
    let write = cluster
        .host(leader)
        .engine
        .handle_propose(Proposal::command(&10u64).unwrap());
    cluster.run_until(100, |c| c.hosts[&leader].answers.contains_key(&write));

    let peers: AddressBook<u64> = (1..=3).map(|id| (id, PeerInfo::new(id))).collect();
    cluster.start(4, &Init::Join { peers }, SnapshotPolicy::disabled());
    let _change = cluster
        .host(leader)
        .engine
        .handle_change_membership(vec![MembershipChange::AddWitness(4)]);

    // Deliver everything but the leader's appends and snapshots to node 4, until a few
    // rounds after node 4 took the read (the leader confirms its index meanwhile).
    let mut read = None;
    let mut rounds_since_read = 0;
    for _ in 0..300 {
        cluster.step_delivering(|message| {
            message.to != 4
                || !matches!(
                    message.body,
                    MessageBody::Append { .. } | MessageBody::SnapshotChunk { .. }
                )
        });
        let knows_leader = cluster.hosts[&4].engine.node().leader() == Some(leader);
        if read.is_none() && knows_leader {
            assert!(!cluster.hosts[&4].engine.node().has_incomplete_state());
            read = Some(
                cluster
                    .host(4)
                    .engine
                    .handle_read((), Consistency::Linearizable),
            );
        }
        if read.is_some() {
            rounds_since_read += 1;
            if rounds_since_read > 3 {
                break;
            }
        }
    }
    let read = read.expect("node 4 heard the leader's heartbeats");
    assert!(
        !cluster.hosts[&4].answers.contains_key(&read),
        "the read waits for entries node 4 does not have yet"
    );

    // Now the log reaches node 4: elided payloads while it catches up as a witness.
    cluster.run_until(300, |c| c.hosts[&4].answers.contains_key(&read));
    assert!(cluster.hosts[&4].engine.node().has_incomplete_state());
    match &cluster.hosts[&4].answers[&read] {
        Err(Error::Witness) => {}
        other => panic!("a witness answered a read: {other:?}"),
    }
}

/// Advances the cluster `ticks` ticks while node `stalled` gets neither time nor messages
/// (a process the machine did not schedule, or a driver its runtime did not poll); returns
/// the messages that queued up for it meanwhile, in order.
fn stall(cluster: &mut Cluster, stalled: u64, ticks: u32) -> Vec<raft_core::Message> {
    let mut queued = Vec::new();
    for _ in 0..ticks {
        cluster.now += Duration::from_millis(10);
        let now = cluster.now;
        for (id, host) in cluster.hosts.iter_mut() {
            if *id != stalled {
                host.engine.handle_timeout(now);
            }
        }
        for _ in 0..1000 {
            let mut outbox = Vec::new();
            for (id, host) in cluster.hosts.iter_mut() {
                if *id != stalled {
                    host.drain(&mut outbox);
                }
            }
            if outbox.is_empty() {
                break;
            }
            for message in outbox {
                if message.to == stalled {
                    queued.push(message);
                } else if let Some(host) = cluster.hosts.get_mut(&message.to) {
                    host.engine.handle_message(message);
                }
            }
        }
    }
    queued
}

/// Wakes the stalled node as a driver does: the time first, then the queued messages, then
/// its outputs; returns what it sent.
fn wake(
    cluster: &mut Cluster,
    id: u64,
    queued: Vec<raft_core::Message>,
) -> Vec<raft_core::Message> {
    let now = cluster.now;
    let host = cluster.host(id);
    host.engine.handle_timeout(now);
    for message in queued {
        host.engine.handle_message(message);
    }
    let mut sent = Vec::new();
    host.drain(&mut sent);
    sent
}

/// Goal (issue 15: failed writes on a loaded machine): a follower whose driver wakes past
/// its election timeout, with the leader's appends already in its queue, keeps following:
/// it sends no pre-vote (a pre-candidate forgets its leader and refuses requests with 503
/// "no leader known") and still names the leader.
#[test]
fn a_late_follower_hears_its_queued_leader_before_timing_out() {
    let mut cluster = Cluster::new(3, SnapshotPolicy::disabled());
    let leader = cluster.elect();
    cluster.step();
    let follower = if leader == 1 { 2 } else { 1 };
    // Two maximal election timeouts (10-19 ticks each): the timer has expired however it
    // was drawn, while the leader's heartbeats (every 3 ticks) queued up.
    let queued = stall(&mut cluster, follower, 40);
    assert!(
        queued.iter().any(|m| m.from == leader
            && matches!(
                m.body,
                MessageBody::Append { .. } | MessageBody::Heartbeat { .. }
            )),
        "the leader kept sending during the stall"
    );
    let sent = wake(&mut cluster, follower, queued);
    let votes: Vec<_> = sent
        .iter()
        .filter(|m| matches!(m.body, MessageBody::VoteRequest { .. }))
        .collect();
    assert!(
        votes.is_empty(),
        "campaigned with the leader's messages queued: {votes:?}"
    );
    let node = cluster.host(follower).engine.node();
    assert_eq!(node.role(), raft_core::Role::Follower);
    assert_eq!(node.leader(), Some(leader));
}

/// Goal (issue 15): a leader whose driver wakes past its check-quorum, with its followers'
/// acknowledgements already in its queue, stays leader (a step-down costs the clients an
/// election of failed writes). Its followers wait longer than the stall (election timeout
/// 50 ticks), so only the leader's own judgement is tested.
#[test]
fn a_late_leader_hears_its_queued_followers_before_stepping_down() {
    // Node 1 times out first and leads; the others wait 50-99 ticks for it.
    let mut cluster = Cluster::new_with(3, SnapshotPolicy::disabled(), |config| {
        if config.raft.id != 1 {
            config.raft.election_ticks = 50;
        }
    });
    let leader = cluster.elect();
    assert_eq!(leader, 1);
    cluster.step();
    // The leader's last tick before it stalls: its round goes out, and the answers queue.
    cluster.now += Duration::from_millis(10);
    let now = cluster.now;
    let mut round = Vec::new();
    let host = cluster.host(leader);
    host.engine.handle_timeout(now);
    host.drain(&mut round);
    assert!(!round.is_empty(), "the leader sends a round every tick");
    for message in round {
        cluster.host(message.to).engine.handle_message(message);
    }
    // Longer than two check-quorum intervals (10 ticks), shorter than the followers' timeout.
    let queued = stall(&mut cluster, leader, 25);
    assert!(
        queued.iter().any(|m| m.to == leader),
        "the followers answered the leader's last round during the stall"
    );
    wake(&mut cluster, leader, queued);
    assert_eq!(
        cluster.host(leader).engine.node().role(),
        raft_core::Role::Leader,
        "stepped down with its followers' acknowledgements queued"
    );
}
