//! The `cluster`, `add_node` and `restore` commands: building nodes from script options.

use std::collections::BTreeSet;

use bytes::Bytes;
use goldenscript::Command;
use raft_core::{Config, Entry, EntryPayload, HardState, Membership, NodeId, SnapshotMeta};

use super::host::Disk;
use super::{Runner, parse};

/// Applies one config option; returns false if `key` is not one.
fn config_option(config: &mut Config, key: &str, value: &str) -> Result<bool, String> {
    match key {
        "prevote" => config.pre_vote = parse(value)?,
        "checkquorum" => config.check_quorum = parse(value)?,
        "lease" => config.lease_reads = parse(value)?,
        "lease_drift" => config.lease_drift_ticks = parse(value)?,
        "election" => config.election_ticks = parse(value)?,
        "heartbeat" => config.heartbeat_ticks = parse(value)?,
        "seed" => config.seed = parse(value)?,
        "auto_promote" => config.auto_promote_learners = parse(value)?,
        "catch_up_timeout" => config.catch_up_timeout_ticks = parse(value)?,
        "catch_up_lag" => config.catch_up_max_lag = parse(value)?,
        "request_timeout" => config.request_timeout_ticks = parse(value)?,
        "max_append_bytes" => config.max_append_bytes = parse(value)?,
        "max_inflight" => config.max_inflight_appends = parse(value)?,
        "max_entry_bytes" => config.max_entry_bytes = parse(value)?,
        "max_uncommitted_bytes" => config.max_uncommitted_bytes = parse(value)?,
        "snapshot_chunk" => config.snapshot_chunk_bytes = parse(value)?,
        "snapshot_retry" => config.snapshot_retry_ticks = parse(value)?,
        "forward" => config.forward_proposals = parse(value)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Node `id`'s config: the script's base config with a seed fixed per script and node.
fn node_config(base: &Config, id: NodeId) -> Config {
    Config {
        id,
        seed: base.seed.wrapping_mul(1000).wrapping_add(id),
        ..base.clone()
    }
}

impl Runner {
    /// `cluster 1 2 3 [learner=4]... [witness=3]... [joiner=5]... [leader=1] [options]`:
    /// voters are positional (witnesses among them); joiners start empty, as a node that
    /// will be added later does.
    pub(super) fn cluster(&mut self, command: &Command) -> Result<(), String> {
        let mut voters = BTreeSet::new();
        let (mut learners, mut witnesses, mut joiners) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let mut leader = None;
        for arg in command.consume_args() {
            match arg {
                goldenscript::Argument::Positional(id) => {
                    voters.insert(parse::<NodeId>(id)?);
                }
                goldenscript::Argument::KeyValue(key, value) => match key.as_str() {
                    "learner" => {
                        learners.insert(parse::<NodeId>(value)?);
                    }
                    "witness" => {
                        witnesses.insert(parse::<NodeId>(value)?);
                    }
                    "joiner" => {
                        joiners.insert(parse::<NodeId>(value)?);
                    }
                    "leader" => leader = Some(parse::<NodeId>(value)?),
                    _ if config_option(&mut self.base, key, value)? => {}
                    _ => return Err(format!("unknown option {key}")),
                },
                other => return Err(format!("unexpected argument {other}")),
            }
        }
        let membership = Membership {
            incoming: voters.clone(),
            outgoing: BTreeSet::new(),
            learners: learners.clone(),
            witnesses,
        };
        for id in voters.iter().chain(&learners) {
            let disk = Disk {
                snapshot: SnapshotMeta {
                    index: 0,
                    term: 0,
                    membership: membership.clone(),
                },
                ..Disk::default()
            };
            self.cluster.add(node_config(&self.base, *id), disk);
        }
        for id in joiners {
            self.cluster
                .add(node_config(&self.base, id), Disk::default());
        }
        if let Some(leader) = leader {
            self.elect(leader)?;
        }
        self.status_lines(&[]);
        Ok(())
    }

    /// Elects `id` quietly: ticks it until it campaigns and delivers until quiet.
    fn elect(&mut self, id: NodeId) -> Result<(), String> {
        self.campaign(id)?;
        self.stabilize(100)?;
        self.cluster.out.clear();
        if self.cluster.host(id)?.node.leader() != Some(id) {
            return Err(format!("n{id} did not win the election"));
        }
        Ok(())
    }

    /// `add_node 4 [options]`: a new, empty node that waits to be contacted.
    pub(super) fn add_node(&mut self, command: &Command) -> Result<(), String> {
        let mut args = command.consume_args();
        let id: NodeId = parse(args.next_pos().ok_or("node id missing")?)?;
        let mut config = node_config(&self.base, id);
        while let Some((key, value)) = args.next_key() {
            if !config_option(&mut config, key, value)? {
                return Err(format!("unknown option {key}"));
            }
        }
        if self.cluster.hosts.contains_key(&id) {
            return Err(format!("n{id} exists"));
        }
        self.cluster.add(config, Disk::default());
        self.status_lines(&[id]);
        Ok(())
    }

    /// `restore 2 term=3 log="1 1 2 2" [vote=1] [commit=2]`: replaces node 2's disk with a
    /// log of entries of the given terms (numbered from 1; commands `i@t`) and restarts it.
    /// Builds the logs of the paper's figures 7 and 8.
    pub(super) fn restore(&mut self, command: &Command) -> Result<(), String> {
        let mut args = command.consume_args();
        let id: NodeId = parse(args.next_pos().ok_or("node id missing")?)?;
        let term = parse(args.take_key("term").ok_or("term= missing")?)?;
        let vote = args.take_key("vote").map(parse::<NodeId>).transpose()?;
        let commit = args.take_key("commit").map(parse).transpose()?.unwrap_or(0);
        let terms = args.take_key("log").unwrap_or_default();
        args.reject_next().map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        for (position, term) in terms.split_whitespace().enumerate() {
            let (index, term) = (position as u64 + 1, parse(term)?);
            entries.push(Entry {
                index,
                term,
                payload: EntryPayload::Command(Bytes::from(format!("{index}@{term}"))),
            });
        }
        let host = self.cluster.host_mut(id)?;
        host.disk.entries = entries;
        host.disk.hard_state = HardState { term, vote, commit };
        host.disk.incoming.clear();
        host.state.clear();
        host.crashed = true;
        host.unpersisted.clear();
        host.unapplied.clear();
        self.cluster.restart(id)
    }
}
