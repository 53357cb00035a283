//! The transcript runner: a [`goldenscript::Runner`] that drives real `raft_core::Node`s
//! through their public API, with the network, the disks and the state machines in the
//! script's hands.
//!
//! Commands: `cluster 1 2 3 [learner=N] [witness=N] [joiner=N] [leader=N] [options]`,
//! `add_node`, `restore` (a node's disk as a list of entry terms), `tick [ids] [count=]
//! [stabilize=true]`, `campaign`, `propose`, `read [lease]`, `transfer [to=]`, `change
//! add_voter= add_learner= add_witness= promote= demote= remove=`, `deliver|drop [from=]
//! [to=] [type=] [count=]`, `stabilize`, `partition`, `cut`, `heal`, `set [persist=manual]
//! [apply=manual]`, `persist [count=]`, `apply [count=]`, `snapshot`, `crash`, `restart`,
//! `send` (a hand-written message, see `inject.rs`), `invariants on|off`, and the views
//! `status`, `log`, `progress`, `messages`, `state`, `disk`, `describe`, `rejected`
//! (validation's per-sender count of dropped messages), `deadline` (`Node::next_deadline`).
//! Every tick checks that contract: a tick before a node's deadline must do nothing.

mod check;
mod host;
mod inject;
mod network;
mod render;
mod setup;

use std::error::Error;

use bytes::Bytes;
use goldenscript::{Command, Context};
use raft_core::{Config, MembershipChange, NodeId, ReadConsistency, Role};

use host::Cluster;
use render::{render_log, render_progress, render_status};

/// Parses a script value.
pub(crate) fn parse<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("cannot parse {value:?}"))
}

/// Runs one script; a new runner per script keeps scripts independent.
pub(crate) struct Runner {
    cluster: Cluster,
    /// Options given to `cluster`, used for every node created later.
    base: Config,
    check_invariants: bool,
}

impl Runner {
    pub(crate) fn new() -> Self {
        Runner {
            cluster: Cluster::new(),
            base: Config {
                seed: 1,
                ..Config::default()
            },
            check_invariants: true,
        }
    }

    /// Positional node ids, or every node when none are given.
    fn ids(&self, command: &Command) -> Result<Vec<NodeId>, String> {
        let mut ids = Vec::new();
        for arg in &command.args {
            if let goldenscript::Argument::Positional(value) = arg {
                ids.push(parse(value)?);
            }
        }
        if ids.is_empty() {
            ids = self.cluster.hosts.keys().copied().collect();
        }
        Ok(ids)
    }

    fn first_id(command: &Command) -> Result<NodeId, String> {
        let mut args = command.consume_args();
        parse(args.next_pos().ok_or("node id missing")?)
    }

    fn count(command: &Command, default: usize) -> Result<usize, String> {
        let mut args = command.consume_args();
        args.take_key("count").map_or(Ok(default), parse)
    }

    /// Rejects key=value arguments a command does not take, so a typo cannot be ignored.
    fn check_keys(command: &Command) -> Result<(), String> {
        let allowed: &[&str] = match command.name.as_str() {
            "tick" => &["count", "stabilize"],
            "persist" | "apply" | "stabilize" => &["count"],
            "set" => &["persist", "apply"],
            "transfer" => &["to"],
            "cut" => &["from", "to"],
            // These parse (and check) their own keys.
            "cluster" | "add_node" | "restore" | "change" | "deliver" | "drop" | "send" => {
                return Ok(());
            }
            _ => &[],
        };
        for arg in &command.args {
            if let goldenscript::Argument::KeyValue(key, _) = arg
                && !allowed.contains(&key.as_str())
            {
                return Err(format!("{} takes no argument {key}", command.name));
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, command: &Command) -> Result<(), String> {
        Self::check_keys(command)?;
        match command.name.as_str() {
            "cluster" => self.cluster(command),
            "add_node" => self.add_node(command),
            "restore" => self.restore(command),
            "tick" => self.tick(command),
            "campaign" => self.campaign(Self::first_id(command)?),
            "propose" => self.propose(command),
            "read" => self.read(command),
            "transfer" => self.transfer(command),
            "change" => self.change(command),
            "deliver" => self.deliver(command, true),
            "drop" => self.deliver(command, false),
            "stabilize" => {
                let mut args = command.consume_args();
                let rounds = args.take_key("count").map_or(Ok(100), parse)?;
                args.reject_next().map_err(|e| e.to_string())?;
                self.stabilize(rounds)
            }
            "partition" => self.partition(command),
            "cut" => self.cut(command),
            "heal" => {
                self.cluster.cut.clear();
                Ok(())
            }
            "persist" => self.persist(command),
            "apply" => self.apply(command),
            "set" => self.set(command),
            "snapshot" => self.cluster.snapshot(Self::first_id(command)?),
            "crash" => self.cluster.crash(Self::first_id(command)?),
            "restart" => self.cluster.restart(Self::first_id(command)?),
            "send" => {
                let mut message = inject::message(command)?;
                if let raft_core::MessageBody::SnapshotChunk { meta, .. } = &mut message.body {
                    meta.membership = self.cluster.host(message.to)?.node.membership().clone();
                }
                self.cluster.deliver(message);
                Ok(())
            }
            "invariants" => {
                self.check_invariants = Self::first_word(command)? == "on";
                Ok(())
            }
            "_breakpoint" => Ok(()),
            _ => self.view(command),
        }
    }

    fn first_word(command: &Command) -> Result<String, String> {
        let mut args = command.consume_args();
        Ok(args.next_pos().ok_or("argument missing")?.to_string())
    }

    /// Read-only commands: `status`, `log`, `progress`, `messages`, `state`, `disk`,
    /// `describe`, `rejected`, `deadline`.
    fn view(&mut self, command: &Command) -> Result<(), String> {
        match command.name.as_str() {
            "status" => self.status_lines(&self.ids(command)?),
            "log" => {
                for id in self.ids(command)? {
                    let text = render_log(&self.cluster.host(id)?.node);
                    self.cluster.line(0, &text);
                }
            }
            "progress" => {
                for id in self.ids(command)? {
                    for line in render_progress(&self.cluster.host(id)?.node) {
                        self.cluster.line(0, &line);
                    }
                }
            }
            "messages" => self.messages(),
            "deadline" => {
                for id in self.ids(command)? {
                    let due = self.cluster.host(id)?.node.next_deadline();
                    let text = match due {
                        None => "none (no timer runs)".to_string(),
                        Some(1) => "the next tick".to_string(),
                        Some(n) => format!("in {n} ticks"),
                    };
                    self.cluster
                        .line(0, &format!("n{id} next deadline: {text}"));
                }
            }
            "rejected" => {
                for id in self.ids(command)? {
                    let counts: Vec<String> = (self.cluster.host(id)?.node.rejected_messages())
                        .iter()
                        .map(|(sender, count)| format!("n{sender}={count}"))
                        .collect();
                    let line = format!("n{id} rejected: [{}]", counts.join(" "));
                    self.cluster.line(0, &line);
                }
            }
            "state" => self.state_lines(&self.ids(command)?)?,
            "disk" => self.disk_lines(&self.ids(command)?)?,
            "describe" => {
                for id in self.ids(command)? {
                    let node = &self.cluster.host(id)?.node;
                    let mut lines = vec![render_status(node, self.cluster.host(id)?.crashed)];
                    lines.push(render_log(node));
                    if node.role() == Role::Leader {
                        lines.extend(render_progress(node));
                    }
                    for line in lines {
                        self.cluster.line(0, &line);
                    }
                }
            }
            other => return Err(format!("unknown command {other}")),
        }
        Ok(())
    }

    fn status_lines(&mut self, ids: &[NodeId]) {
        let ids: Vec<NodeId> = if ids.is_empty() {
            self.cluster.hosts.keys().copied().collect()
        } else {
            ids.to_vec()
        };
        for id in ids {
            if let Some(host) = self.cluster.hosts.get(&id) {
                let line = render_status(&host.node, host.crashed);
                self.cluster.line(0, &line);
            }
        }
    }

    fn state_lines(&mut self, ids: &[NodeId]) -> Result<(), String> {
        for &id in ids {
            let host = self.cluster.host(id)?;
            let commands: Vec<String> = host
                .state
                .iter()
                .map(|(index, data)| format!("{index}:{}", String::from_utf8_lossy(data)))
                .collect();
            let line = format!(
                "n{id} state: applied={} [{}]",
                host.applied_index,
                commands.join(" ")
            );
            self.cluster.line(0, &line);
        }
        Ok(())
    }

    fn disk_lines(&mut self, ids: &[NodeId]) -> Result<(), String> {
        for &id in ids {
            let host = self.cluster.host(id)?;
            let disk = &host.disk;
            let mut line = format!(
                "n{id} disk: term={} vote={} commit={}",
                disk.hard_state.term,
                render::node_name(disk.hard_state.vote),
                disk.hard_state.commit
            );
            if disk.snapshot.index > 0 {
                line.push_str(&format!(
                    " snapshot={}@{}",
                    disk.snapshot.index, disk.snapshot.term
                ));
            }
            line.push_str(&format!(" {}", render::render_entries(&disk.entries)));
            if !host.unpersisted.is_empty() {
                line.push_str(&format!(" ({} writes pending)", host.unpersisted.len()));
            }
            self.cluster.line(0, &line);
        }
        Ok(())
    }

    /// `tick [ids...] [count=N] [stabilize=true]`: ticks the nodes (every live one by
    /// default) N times, delivering every message after each round if asked.
    fn tick(&mut self, command: &Command) -> Result<(), String> {
        let count = Self::count(command, 1)?;
        let ids = self.ids(command)?;
        let settle = command.consume_args().take_key("stabilize") == Some("true");
        for _ in 0..count {
            for &id in &ids {
                if self.cluster.host(id)?.crashed {
                    continue;
                }
                self.cluster.tick(id)?;
            }
            if settle {
                self.stabilize(100)?;
            }
        }
        Ok(())
    }

    /// `campaign N`: ticks node N until its election timeout fires and it starts a
    /// campaign (sends vote or pre-vote requests, or wins at once alone).
    fn campaign(&mut self, id: NodeId) -> Result<(), String> {
        let limit = 2 * self.cluster.host(id)?.config.election_ticks + 1;
        for _ in 0..limit {
            let before_role = self.cluster.live(id)?.role();
            let queued = self.cluster.network.len();
            self.cluster.tick(id)?;
            let asked =
                self.cluster.network.iter().skip(queued).any(|m| {
                    m.from == id && matches!(m.kind(), "vote_request" | "pre_vote_request")
                });
            let role = self.cluster.host(id)?.node.role();
            if asked || (role != before_role && role != Role::Follower) {
                return Ok(());
            }
        }
        Err(format!("n{id} did not campaign within {limit} ticks"))
    }

    /// `propose N command...`: one proposal per command.
    fn propose(&mut self, command: &Command) -> Result<(), String> {
        let mut args = command.consume_args();
        let id: NodeId = parse(args.next_pos().ok_or("node id missing")?)?;
        while let Some(data) = args.next_pos() {
            let proposal = self
                .cluster
                .live(id)?
                .propose(Bytes::from(data.to_string()));
            let name = self.cluster.aliases.name(id, 'p', proposal.0);
            self.cluster
                .line(0, &format!("n{id}: propose {name} {data}"));
            self.cluster.process(id, 0);
        }
        Ok(())
    }

    /// `read N [lease]`.
    fn read(&mut self, command: &Command) -> Result<(), String> {
        let mut args = command.consume_args();
        let id: NodeId = parse(args.next_pos().ok_or("node id missing")?)?;
        let consistency = match args.next_pos() {
            Some("lease") => ReadConsistency::Lease,
            None => ReadConsistency::Linearizable,
            Some(other) => return Err(format!("unknown read mode {other}")),
        };
        let read = self.cluster.live(id)?.read(consistency);
        let name = self.cluster.aliases.name(id, 'r', read.0);
        let mode = if consistency == ReadConsistency::Lease {
            " (lease)"
        } else {
            ""
        };
        self.cluster.line(0, &format!("n{id}: read {name}{mode}"));
        self.cluster.process(id, 0);
        Ok(())
    }

    /// `transfer N [to=M]`.
    fn transfer(&mut self, command: &Command) -> Result<(), String> {
        let mut args = command.consume_args();
        let id: NodeId = parse(args.next_pos().ok_or("node id missing")?)?;
        let target = args.take_key("to").map(parse::<NodeId>).transpose()?;
        let transfer = self.cluster.live(id)?.transfer_leadership(target);
        let name = self.cluster.aliases.name(id, 't', transfer.0);
        let to = target.map_or("the best voter".to_string(), |t| format!("n{t}"));
        self.cluster
            .line(0, &format!("n{id}: transfer {name} leadership to {to}"));
        self.cluster.process(id, 0);
        Ok(())
    }

    /// `change N add_voter=4 add_learner=5 add_witness=6 promote=4 demote=2 remove=3`.
    fn change(&mut self, command: &Command) -> Result<(), String> {
        let mut args = command.consume_args();
        let id: NodeId = parse(args.next_pos().ok_or("node id missing")?)?;
        let mut changes = Vec::new();
        while let Some((key, value)) = args.next_key() {
            let target: NodeId = parse(value)?;
            changes.push(match key {
                "add_voter" => MembershipChange::AddVoter(target),
                "add_learner" => MembershipChange::AddLearner(target),
                "add_witness" => MembershipChange::AddWitness(target),
                "promote" => MembershipChange::PromoteLearner(target),
                "demote" => MembershipChange::DemoteVoter(target),
                "remove" => MembershipChange::Remove(target),
                other => return Err(format!("unknown change {other}")),
            });
        }
        let change = self.cluster.live(id)?.change_membership(changes.clone());
        let name = self.cluster.aliases.name(id, 'c', change.0);
        self.cluster
            .line(0, &format!("n{id}: change {name} {changes:?}"));
        self.cluster.process(id, 0);
        Ok(())
    }

    /// `set N... [persist=manual|auto] [apply=manual|auto]`.
    fn set(&mut self, command: &Command) -> Result<(), String> {
        let ids = self.ids(command)?;
        let mut args = command.consume_args();
        let persist = args.take_key("persist").map(|v| v == "auto");
        let apply = args.take_key("apply").map(|v| v == "auto");
        for id in ids {
            let host = self.cluster.host_mut(id)?;
            if let Some(auto) = persist {
                host.auto_persist = auto;
            }
            if let Some(auto) = apply {
                host.auto_apply = auto;
            }
        }
        Ok(())
    }

    /// `persist N [count=K]`: makes N's oldest K pending disk writes durable (all by default).
    fn persist(&mut self, command: &Command) -> Result<(), String> {
        let id = Self::first_id(command)?;
        let count = Self::count(command, usize::MAX)?;
        for _ in 0..count {
            let Some(action) = self.cluster.host_mut(id)?.unpersisted.pop_front() else {
                break;
            };
            let text = render::render_action(id, &action, &mut self.cluster.aliases);
            self.cluster.line(0, &format!("{text} (durable)"));
            self.cluster.write(id, action);
            self.cluster.process(id, 2);
        }
        Ok(())
    }

    /// `apply N [count=K]`: carries out N's oldest K pending applies (all by default).
    fn apply(&mut self, command: &Command) -> Result<(), String> {
        let id = Self::first_id(command)?;
        let count = Self::count(command, usize::MAX)?;
        for _ in 0..count {
            let Some(action) = self.cluster.host_mut(id)?.unapplied.pop_front() else {
                break;
            };
            let text = render::render_action(id, &action, &mut self.cluster.aliases);
            self.cluster.line(0, &format!("{text} (done)"));
            self.cluster.apply(id, action);
            self.cluster.process(id, 2);
        }
        Ok(())
    }
}

impl goldenscript::Runner for Runner {
    type Command = Command;

    fn run(&mut self, command: &Command, _context: &Context) -> Result<String, Box<dyn Error>> {
        self.cluster.out.clear();
        self.dispatch(command)?;
        Ok(std::mem::take(&mut self.cluster.out))
    }

    fn end_command(
        &mut self,
        _command: &Command,
        context: &Context,
    ) -> Result<String, Box<dyn Error>> {
        if !self.check_invariants || context.fail {
            return Ok(String::new());
        }
        let violations = check::violations(&self.cluster);
        if violations.is_empty() {
            Ok(String::new())
        } else {
            Err(format!("safety invariant violated:\n{}", violations.join("\n")).into())
        }
    }
}
