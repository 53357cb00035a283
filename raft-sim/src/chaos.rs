//! Carrying out the scheduled faults against the running cluster.

use raft_core::{Membership, MembershipChange, NodeId};

use crate::faults::Fault;
use crate::host::Liveness;
use crate::sim::{Event, Simulation};

/// During [`Fault::DivergeLogs`], new leaders last at most this long: long enough to send
/// a few appends, too short to bring every follower up to date.
const DIVERGE_KNOCKOUT_MAX_US: u64 = 30_000;

impl Simulation {
    /// Fires schedule entry `index`.
    pub(crate) fn apply_fault(&mut self, index: usize) {
        if self.healed_at_us.is_some() {
            return;
        }
        let fault = self.schedule[index].fault.clone();
        self.mark_fault(index, &fault);
        let now = self.now_us;
        match fault {
            Fault::Crash { node, down_us } => {
                self.crash(node, "fault", down_us);
            }
            Fault::Pause { node, duration_us } => {
                let host = &mut self.hosts[node as usize - 1];
                if host.liveness == Liveness::Up && host.paused_until.is_none() {
                    host.paused_until = Some(now + duration_us);
                    host.paused_at_us = now;
                    self.schedule(now + duration_us, Event::Resume { node });
                }
            }
            Fault::Partition {
                side,
                one_way,
                duration_us,
            } => {
                let links = self.partition_links(&side, one_way);
                self.cut_for(links, duration_us);
            }
            Fault::IsolateLeader { duration_us } => {
                if let Some(leader) = self.current_leader() {
                    let links = self
                        .node_ids()
                        .filter(|n| *n != leader)
                        .flat_map(|n| [(leader, n), (n, leader)])
                        .collect();
                    self.cut_for(links, duration_us);
                }
            }
            Fault::Clog {
                from,
                to,
                duration_us,
            } => {
                if from != to {
                    self.network.clog((from, to));
                    self.schedule(now + duration_us, Event::Unclog((from, to)));
                }
            }
            Fault::ClockJump {
                node,
                ticks,
                forward,
            } => self.clock_jump(node, ticks, forward),
            Fault::Corrupt { node, pick } => self.corrupt(node, pick),
            Fault::Membership { pick } => self.membership_change(pick),
            Fault::Transfer { pick } => self.transfer(pick),
            Fault::Snapshot { node } => self.with_host(node, |host, ctx| host.take_snapshot(ctx)),
            Fault::LeaderChurn {
                duration_us,
                knockout_max_us,
            } => {
                self.churn_until_us = self.churn_until_us.max(now + duration_us);
                self.churn_knockout_max_us = knockout_max_us;
            }
            Fault::DivergeLogs { pick, duration_us } => self.diverge_logs(pick, duration_us),
            Fault::LagFollower { node, duration_us } => {
                let others: Vec<NodeId> = self.node_ids().filter(|n| *n != node).collect();
                for other in others {
                    self.network.clog((other, node));
                    self.schedule(now + duration_us, Event::Unclog((other, node)));
                }
            }
        }
    }

    /// Cuts the leader (or, if there is none, the next one) and one follower off from the
    /// rest and churns leaders meanwhile and as long again after (see
    /// [`Fault::DivergeLogs`]).
    fn diverge_logs(&mut self, pick: u64, duration_us: u64) {
        self.churn_until_us = self.churn_until_us.max(self.now_us + 2 * duration_us);
        self.churn_knockout_max_us = DIVERGE_KNOCKOUT_MAX_US;
        match self.current_leader() {
            Some(leader) => self.cut_off_with_follower(leader, pick, duration_us),
            None => self.diverge_armed = Some((pick, duration_us)),
        }
    }

    /// Cuts `leader` and the follower `pick` chooses off from the rest for `duration_us`.
    pub(crate) fn cut_off_with_follower(&mut self, leader: NodeId, pick: u64, duration_us: u64) {
        let others: Vec<NodeId> = self.node_ids().filter(|n| *n != leader).collect();
        if others.is_empty() {
            return;
        }
        let follower = others[(pick % others.len() as u64) as usize];
        let links = self.partition_links(&[leader, follower], false);
        self.trace.line(self.now_us, || {
            format!("n{leader} and n{follower} cut off (diverging logs)")
        });
        self.cut_for(links, duration_us);
    }

    /// Leader churn: if `node` still leads in `term` (and the fault phase lasts), cut it
    /// off or crash it, so it leaves behind what it appended but did not replicate.
    pub(crate) fn knock_out(&mut self, node: NodeId, term: u64, may_crash: bool) {
        if self.healed_at_us.is_some() {
            return;
        }
        let host = &self.hosts[node as usize - 1];
        let leads = host.liveness == Liveness::Up
            && host
                .node()
                .is_some_and(|n| n.role() == raft_core::Role::Leader && n.term() == term);
        if !leads {
            return;
        }
        if may_crash && self.churn_rng.chance(0.5) {
            let down_us = self.churn_rng.range(1_000, 400_000);
            self.crash(node, "leader churn", down_us);
        } else {
            let duration_us = self.churn_rng.range(20_000, 600_000);
            let links = self
                .node_ids()
                .filter(|n| *n != node)
                .flat_map(|n| [(node, n), (n, node)])
                .collect();
            self.trace
                .line(self.now_us, || format!("n{node} isolated (leader churn)"));
            self.cut_for(links, duration_us);
        }
    }

    /// Records the fault in the trace and the timeline.
    fn mark_fault(&mut self, index: usize, fault: &Fault) {
        let now = self.now_us;
        self.trace.line(now, || format!("fault #{index}: {fault}"));
        if let Some(t) = self.timeline.as_mut() {
            let node = match fault {
                Fault::Crash { node, .. }
                | Fault::Pause { node, .. }
                | Fault::ClockJump { node, .. }
                | Fault::Corrupt { node, .. }
                | Fault::Snapshot { node }
                | Fault::LagFollower { node, .. } => Some(*node),
                _ => None,
            };
            t.mark(now, node, fault.to_string());
        }
    }

    /// The directed links a partition of `side` from the rest cuts.
    fn partition_links(&self, side: &[NodeId], one_way: bool) -> Vec<(NodeId, NodeId)> {
        let rest: Vec<NodeId> = self.node_ids().filter(|n| !side.contains(n)).collect();
        let mut links = Vec::new();
        for a in side {
            for b in &rest {
                links.push((*a, *b));
                if !one_way {
                    links.push((*b, *a));
                }
            }
        }
        links
    }

    fn node_ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        1..=self.hosts.len() as NodeId
    }

    fn cut_for(&mut self, links: Vec<(NodeId, NodeId)>, duration_us: u64) {
        self.network.cut(&links);
        self.schedule(self.now_us + duration_us, Event::Uncut(links));
    }

    fn clock_jump(&mut self, node: NodeId, ticks: u64, forward: bool) {
        let host = &self.hosts[node as usize - 1];
        if !host.is_running() {
            return;
        }
        if forward {
            self.with_host(node, |host, ctx| host.advance_clock(ticks, ctx));
        } else {
            let lag = ticks * host.tick_us;
            *self.tick_lag_us.entry(node).or_default() += lag;
        }
    }

    /// The configuration in force as the highest-term live node sees it.
    fn cluster_membership(&self) -> Option<Membership> {
        // Nodes that know no configuration (spares never added) say nothing about it; when
        // no member runs, there is no answer and the caller skips its fault.
        self.hosts
            .iter()
            .filter_map(|h| h.node())
            .filter(|n| n.membership().node_count() > 0)
            .max_by_key(|n| (n.term(), n.last_index()))
            .map(|n| n.membership().clone())
    }

    /// Halted, or with a corrupt disk it has not restarted from yet (it will halt then).
    fn halted(&self, node: NodeId) -> bool {
        matches!(self.hosts[node as usize - 1].liveness, Liveness::Halted(_))
            || self.corrupted.contains(&node)
    }

    /// True if losing the nodes in `lost` (plus the halted ones) leaves a majority of
    /// full voters able to elect a leader in `membership`, in each half of a joint config.
    fn survivable(&self, membership: &Membership, lost: &[NodeId]) -> bool {
        let ok = |voters: &std::collections::BTreeSet<NodeId>| {
            if voters.is_empty() {
                return true;
            }
            let down = voters
                .iter()
                .filter(|v| lost.contains(v) || self.halted(**v))
                .count();
            // Healthy full voters must form a quorum on their own: a witness may hold the
            // only copy of a crashed leader's unsynced tail, and then it refuses its vote
            // to every full voter forever (see notes/sim-bugs.md, finding 4).
            let healthy_full = voters
                .iter()
                .filter(|v| !lost.contains(v) && !self.halted(**v) && !membership.is_witness(**v))
                .count();
            // Keep one failure of margin beyond the losses, so a crash at the wrong moment
            // after healing cannot be confused with a protocol liveness bug.
            (down + 1) * 2 <= voters.len() && healthy_full > voters.len() / 2
        };
        ok(&membership.incoming) && ok(&membership.outgoing)
    }

    fn corrupt(&mut self, node: NodeId, pick: u64) {
        if self.cluster_membership().is_none() || self.halted(node) {
            return;
        }
        // Every configuration some running node holds may end up in force (a change in
        // flight can still commit): losing the node must be survivable in all of them.
        let views: Vec<Membership> = self
            .hosts
            .iter()
            .filter_map(|h| h.node())
            .map(|n| n.membership().clone())
            .filter(|m| m.node_count() > 0)
            .collect();
        if views.iter().any(|m| !self.survivable(m, &[node])) {
            return;
        }
        if !self.hosts[node as usize - 1].corrupt(pick) {
            return;
        }

        self.corrupted.push(node);
        if self.hosts[node as usize - 1].liveness == Liveness::Up {
            self.crash(node, "disk corrupted", 1_000);
        }
    }

    fn membership_change(&mut self, pick: u64) {
        let Some(leader) = self.current_leader() else {
            return;
        };
        let Some(node) = self.hosts[leader as usize - 1].node() else {
            return;
        };
        let m = node.membership().clone();
        if m.is_joint() {
            return;
        }
        let candidates = self.candidate_changes(&m);
        if candidates.is_empty() {
            return;
        }
        let change = candidates[(pick % candidates.len() as u64) as usize].clone();
        if let MembershipChange::AddWitness(id)
        | MembershipChange::AddLearner(id)
        | MembershipChange::AddVoter(id) = change
        {
            self.wipe_if_former_witness(id);
        }
        self.trace
            .line(self.now_us, || format!("n{leader} asked for {change:?}"));
        self.with_host(leader, |host, ctx| {
            host.change_membership(vec![change], ctx)
        });
    }

    /// A node that ever held a witness's log must be wiped before it joins again (the core
    /// halts otherwise): the operator's procedure, carried out here.
    fn wipe_if_former_witness(&mut self, id: NodeId) {
        let host = &self.hosts[id as usize - 1];
        if !host.held_witness_data || matches!(host.liveness, Liveness::Halted(_)) {
            return;
        }
        let pick = self.disk_rng.next_u64();
        let host = &mut self.hosts[id as usize - 1];
        host.held_witness_data = false;
        host.wipe(pick);
        self.checker.observe_wipe(id);
        self.trace.line(self.now_us, || {
            format!("n{id} wiped before joining again (it was a witness)")
        });
        self.start_node(id);
    }

    /// Membership changes that keep the cluster able to recover after healing.
    fn candidate_changes(&self, m: &Membership) -> Vec<MembershipChange> {
        let mut out = Vec::new();
        let members = m.members();
        for id in self.node_ids() {
            if self.halted(id) {
                continue;
            }
            if !members.contains(&id) {
                out.push(MembershipChange::AddLearner(id));
                out.push(MembershipChange::AddVoter(id));
                if m.witnesses.is_empty() {
                    out.push(MembershipChange::AddWitness(id));
                }
            } else if m.is_learner(id) && !m.is_voter(id) {
                out.push(MembershipChange::PromoteLearner(id));
                out.push(MembershipChange::Remove(id));
            } else if m.is_voter(id) && m.incoming.len() > 3 {
                out.push(MembershipChange::Remove(id));
                if !m.is_witness(id) {
                    out.push(MembershipChange::DemoteVoter(id));
                }
            }
        }
        // The leader itself may be removed or demoted too (it must then step down).
        out.retain(|change| self.survivable(&after_change(m, change), &[]));
        out
    }

    fn transfer(&mut self, pick: u64) {
        let Some(leader) = self.current_leader() else {
            return;
        };
        let Some(node) = self.hosts[leader as usize - 1].node() else {
            return;
        };
        let m = node.membership();
        let targets: Vec<NodeId> = m
            .incoming
            .iter()
            .copied()
            .filter(|v| *v != leader && !m.is_witness(*v))
            .collect();
        if targets.is_empty() {
            return;
        }
        let target = targets[(pick % targets.len() as u64) as usize];
        self.with_host(leader, |host, ctx| host.transfer_leadership(target, ctx));
    }
}

/// The configuration a change leads to once complete (for the survivability rule).
fn after_change(m: &Membership, change: &MembershipChange) -> Membership {
    let mut after = m.clone();
    match *change {
        MembershipChange::AddVoter(id) | MembershipChange::PromoteLearner(id) => {
            after.learners.remove(&id);
            after.incoming.insert(id);
        }
        MembershipChange::AddWitness(id) => {
            after.incoming.insert(id);
            after.witnesses.insert(id);
        }
        MembershipChange::AddLearner(id) => {
            after.learners.insert(id);
        }
        MembershipChange::DemoteVoter(id) => {
            after.incoming.remove(&id);
            after.learners.insert(id);
        }
        MembershipChange::Remove(id) => {
            after.incoming.remove(&id);
            after.learners.remove(&id);
            after.witnesses.remove(&id);
        }
    }
    after
}
