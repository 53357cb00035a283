//! `Node::next_deadline`: a host may skip every tick before the deadline and deliver them
//! late, at once. The harness (`Cluster::tick`) asserts on every tick that a tick before
//! the deadline emits nothing and changes neither role nor term; these tests drive leaders
//! whose heartbeat is not every tick through the leader's timers.

mod common;

use common::{Cluster, config};
use raft_core::{Config, NodeId, Role};

/// Heartbeats every 3 ticks, check-quorum on: the leader's timers are not all due each tick.
fn sparse(id: NodeId) -> Config {
    Config {
        heartbeat_ticks: 3,
        check_quorum: true,
        ..config(id)
    }
}

/// Goal: an idle leader sleeps until its next heartbeat, which it then sends.
#[test]
fn an_idle_leader_sleeps_until_its_heartbeat() {
    let mut cluster = Cluster::with_config(&[1, 2, 3], sparse);
    cluster.elect(1);
    for _ in 0..10 {
        cluster.tick_all();
        cluster.settle();
    }
    let due = cluster
        .node(1)
        .next_deadline()
        .expect("a leader's timers run");
    assert!((1..=3).contains(&due), "due in {due} ticks");
    for _ in 1..due {
        cluster.tick(1);
    }
    assert_eq!(cluster.node(1).next_deadline(), Some(1));
    cluster.tick(1);
    assert_eq!(
        cluster.node(1).next_deadline(),
        Some(3),
        "after a heartbeat, the next one is heartbeat_ticks away"
    );
}

/// Goal: through proposals, a partition, check-quorum step-down and a new election, no
/// tick before a node's deadline does anything (checked by the harness on every tick).
#[test]
fn ticks_before_the_deadline_do_nothing_through_a_failover() {
    let mut cluster = Cluster::with_config(&[1, 2, 3], sparse);
    cluster.elect(1);
    for round in 0..200 {
        if round % 7 == 0 {
            let _ = cluster.propose(1, b"x");
        }
        if round == 50 {
            cluster.isolate(1);
        }
        if round == 120 {
            cluster.heal();
        }
        cluster.tick_all();
        cluster.settle();
    }
    assert_eq!(
        cluster.node(1).role(),
        Role::Follower,
        "the isolated leader stepped down (check-quorum) and the others moved on"
    );
    assert!(cluster.leader().is_some(), "the cluster has a leader again");
    cluster.assert_state_machine_safety();
}

/// Ticks node 1 alone `ticks` times (its followers say nothing meanwhile) and reports its
/// role after each.
fn roles_while_followers_are_silent(cluster: &mut Cluster, ticks: u32) -> Vec<Role> {
    cluster.isolate(1);
    (0..ticks)
        .map(|_| {
            cluster.tick(1);
            cluster.settle();
            cluster.node(1).role()
        })
        .collect()
}

/// Goal: with `check_quorum_ticks` at three election timeouts, a leader whose followers
/// fall silent together (their syncs stalled on a disk they share) keeps its role through
/// two election timeouts of silence, where the default window steps it down, and still
/// steps down once the silence outlasts the longer window.
#[test]
fn a_longer_check_quorum_window_rides_out_silent_followers() {
    let start = |check_quorum_ticks| {
        let mut cluster = Cluster::with_config(&[1, 2, 3], |id| Config {
            check_quorum_ticks,
            ..sparse(id)
        });
        cluster.elect(1);
        for _ in 0..10 {
            cluster.tick_all();
            cluster.settle();
        }
        cluster
    };
    let election_ticks = config(1).election_ticks;

    let mut default_window = start(None);
    let roles = roles_while_followers_are_silent(&mut default_window, 2 * election_ticks);
    assert_eq!(roles.last(), Some(&Role::Follower), "{roles:?}");

    let mut longer_window = start(Some(3 * election_ticks));
    let roles = roles_while_followers_are_silent(&mut longer_window, 2 * election_ticks);
    assert!(roles.iter().all(|role| *role == Role::Leader), "{roles:?}");
    let roles = roles_while_followers_are_silent(&mut longer_window, 4 * election_ticks);
    assert_eq!(roles.last(), Some(&Role::Follower), "{roles:?}");
}

/// Goal: a check-quorum window shorter than the election timeout is refused.
#[test]
fn a_check_quorum_window_below_the_election_timeout_is_refused() {
    let config = Config {
        check_quorum_ticks: Some(config(1).election_ticks - 1),
        ..config(1)
    };
    assert!(matches!(
        config.validate(),
        Err(raft_core::ConfigError::CheckQuorumTicks { .. })
    ));
}
