//! A small in-memory cluster for tests and benchmarks: nodes in one thread, messages in a
//! queue, a disk per node that is either written at once or on demand, and a state machine
//! that records the commands it applied.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use raft_core::{
    Action, Config, Entry, EntryPayload, HardState, Index, Membership, Message, MessageBody, Node,
    NodeId, PersistBatch, RestoredState, Role, SnapshotMeta, Status,
};

/// What one node has on "disk".
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: SnapshotMeta,
    pub snapshot_data: Vec<u8>,
    pub entries: Vec<Entry>,
    /// A snapshot being received.
    pub incoming: Vec<u8>,
}

impl Disk {
    fn write(&mut self, batch: PersistBatch) {
        if let Some(from) = batch.truncate_from {
            self.truncate(from);
        }
        if let Some(first) = batch.entries.first() {
            self.truncate(first.index);
            assert_eq!(
                self.entries.last().map_or(self.snapshot.index, |e| e.index) + 1,
                first.index,
                "gap in log"
            );
            self.entries.extend(batch.entries);
        }
        if let Some(hs) = batch.hard_state {
            self.hard_state = hs;
        }
    }

    /// Drops entries with index >= `from` (entries are contiguous, so by position).
    fn truncate(&mut self, from: Index) {
        let keep = self
            .entries
            .first()
            .map_or(0, |first| from.saturating_sub(first.index) as usize);
        self.entries.truncate(keep);
    }

    pub fn restored(&self) -> RestoredState {
        RestoredState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            // A crash between saving a snapshot and compacting leaves covered entries.
            entries: self
                .entries
                .iter()
                .filter(|e| e.index > self.snapshot.index)
                .cloned()
                .collect(),
        }
    }
}

/// The harness state machine: the commands applied, in order, with their indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub entries: Vec<(Index, Bytes)>,
    pub last_index: Index,
}

pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    pub disks: BTreeMap<NodeId, Disk>,
    pub applied: BTreeMap<NodeId, Applied>,
    pub network: VecDeque<Message>,
    /// Disk-lane actions issued but not yet carried out (when `auto_persist` is off).
    pub unpersisted: BTreeMap<NodeId, Vec<Action>>,
    pub auto_persist: bool,
    /// Links that drop every message (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every non-send action, by node, for assertions.
    pub events: Vec<(NodeId, Action)>,
    pub configs: BTreeMap<NodeId, Config>,
    pub record_events: bool,
    /// Reused action buffer.
    scratch: Vec<Action>,
    /// Each node's status as a host keeps it: refreshed in place after every step and
    /// checked against a fresh [`Node::status`].
    statuses: BTreeMap<NodeId, Status>,
}

pub fn config(id: NodeId) -> Config {
    Config {
        id,
        seed: id * 7919,
        ..Config::default()
    }
}

impl Cluster {
    pub fn new(ids: &[NodeId]) -> Self {
        Self::with_config(ids, config)
    }

    pub fn with_config(ids: &[NodeId], make: impl Fn(NodeId) -> Config) -> Self {
        let membership = Membership::with_voters(ids.iter().copied());
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            applied: BTreeMap::new(),
            network: VecDeque::new(),
            unpersisted: BTreeMap::new(),
            auto_persist: true,
            cut: BTreeSet::new(),
            events: Vec::new(),
            configs: BTreeMap::new(),
            record_events: true,
            scratch: Vec::new(),
            statuses: BTreeMap::new(),
        };
        for &id in ids {
            let disk = Disk {
                snapshot: SnapshotMeta {
                    index: 0,
                    term: 0,
                    membership: membership.clone(),
                },
                ..Disk::default()
            };
            cluster.add_node(id, make(id), disk);
        }
        cluster
    }

    pub fn add_node(&mut self, id: NodeId, config: Config, disk: Disk) {
        let node = Node::new(config.clone(), disk.restored()).expect("valid config");
        self.configs.insert(id, config);
        self.nodes.insert(id, node);
        self.disks.insert(id, disk);
        self.applied.insert(id, Applied::default());
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes.get_mut(&id).expect("known node")
    }

    /// Drains and carries out the actions of node `id`.
    pub fn process(&mut self, id: NodeId) {
        let mut actions = std::mem::take(&mut self.scratch);
        while let Some(node) = self.nodes.get_mut(&id) {
            node.drain_actions(&mut actions);
            if actions.is_empty() {
                break;
            }
            for action in actions.drain(..) {
                self.carry_out(id, action);
            }
        }
        self.scratch = actions;
        self.check_status(id);
    }

    /// Refreshes the status kept for `id` in place and checks it against a fresh one.
    fn check_status(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let kept = self.statuses.entry(id).or_insert_with(|| node.status());
        let before = kept.clone();
        let changed = node.refresh_status(kept);
        assert_eq!(*kept, node.status(), "node {id}: refreshed status is stale");
        assert_eq!(
            changed,
            before != *kept,
            "node {id}: refresh_status misreported"
        );
    }

    fn carry_out(&mut self, id: NodeId, action: Action) {
        match action {
            Action::Send(message) => self.network.push_back(message),
            Action::Persist(_) | Action::WriteSnapshotChunk(_) | Action::CompactLog { .. } => {
                // The disk lane: carried out in order, now or when `persist` is called.
                if self.auto_persist {
                    self.write(id, action);
                } else {
                    self.unpersisted.entry(id).or_default().push(action);
                }
            }
            Action::Apply(entries) => self.apply(id, entries),
            Action::SendSnapshotChunk {
                to,
                term,
                meta,
                offset,
                max_bytes,
            } => {
                let disk = &self.disks[&id];
                if disk.snapshot != *meta {
                    return;
                }
                let start = (offset as usize).min(disk.snapshot_data.len());
                let end = (start + max_bytes as usize).min(disk.snapshot_data.len());
                let data = Bytes::copy_from_slice(&disk.snapshot_data[start..end]);
                let done = end == disk.snapshot_data.len();
                self.network.push_back(Message {
                    from: id,
                    to,
                    term,
                    body: MessageBody::SnapshotChunk {
                        meta,
                        offset,
                        data,
                        done,
                    },
                });
            }
            Action::RestoreStateMachine { meta } => {
                let data = self.disks[&id].snapshot_data.clone();
                // A witness receives metadata only.
                let entries: Vec<(Index, Vec<u8>)> = if data.is_empty() {
                    Vec::new()
                } else {
                    postcard::from_bytes(&data).expect("harness snapshot")
                };
                let applied = self.applied.get_mut(&id).expect("applied");
                applied.entries = entries
                    .into_iter()
                    .map(|(i, b)| (i, Bytes::from(b)))
                    .collect();
                applied.last_index = meta.index;
                self.node_mut(id).on_applied(meta.index);
            }
            other => {
                if self.record_events {
                    self.events.push((id, other));
                }
            }
        }
    }

    /// Carries out one disk-lane action and reports it durable.
    fn write(&mut self, id: NodeId, action: Action) {
        let disk = self.disks.get_mut(&id).expect("disk");
        let token = match action {
            Action::Persist(batch) => {
                let token = batch.token;
                disk.write(batch);
                token
            }
            Action::WriteSnapshotChunk(chunk) => {
                if chunk.offset == 0 {
                    disk.incoming.clear();
                }
                disk.incoming.extend_from_slice(&chunk.data);
                if chunk.done {
                    disk.snapshot_data = std::mem::take(&mut disk.incoming);
                    disk.snapshot = chunk.meta.clone();
                    let meta = &chunk.meta;
                    let keep = disk
                        .entries
                        .iter()
                        .any(|e| e.index == meta.index && e.term == meta.term);
                    if keep {
                        disk.entries.retain(|e| e.index > meta.index);
                    } else {
                        disk.entries.clear();
                    }
                }
                chunk.token
            }
            Action::CompactLog { through_index } => {
                disk.entries.retain(|e| e.index > through_index);
                return;
            }
            _ => return,
        };
        self.node_mut(id).on_persisted(token);
    }

    fn apply(&mut self, id: NodeId, entries: Vec<Entry>) {
        let applied = self.applied.get_mut(&id).expect("applied");
        let mut last = applied.last_index;
        for entry in entries {
            assert_eq!(entry.index, last + 1, "node {id} applies in order");
            last = entry.index;
            if let EntryPayload::Command(data) = entry.payload {
                applied.entries.push((entry.index, data));
            }
        }
        applied.last_index = last;
        self.node_mut(id).on_applied(last);
    }

    /// Makes node `id`'s outstanding writes durable.
    pub fn persist(&mut self, id: NodeId) {
        for action in self.unpersisted.remove(&id).unwrap_or_default() {
            self.write(id, action);
        }
        self.process(id);
    }

    /// Delivers one message; returns false if the network is empty.
    pub fn deliver_one(&mut self) -> bool {
        let Some(message) = self.network.pop_front() else {
            return false;
        };
        self.deliver(message);
        true
    }

    pub fn deliver(&mut self, message: Message) {
        if self.cut.contains(&(message.from, message.to)) {
            return;
        }
        let to = message.to;
        if let Some(node) = self.nodes.get_mut(&to) {
            node.step(message);
            self.process(to);
        }
    }

    /// Processes every node and delivers messages until the network is quiet (bounded).
    pub fn settle(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in &ids {
            self.process(*id);
        }
        for _ in 0..1_000_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Ticks node `id` and carries out what it does, checking the contract of
    /// [`Node::next_deadline`] on the way: a tick before the deadline changes nothing a
    /// peer, the disk or a client could see.
    pub fn tick(&mut self, id: NodeId) {
        // Outputs of earlier inputs first, so that what the tick does can be told apart.
        self.process(id);
        let node = self.node_mut(id);
        let quiet = node.next_deadline().is_none_or(|due| due > 1);
        let (role, term) = (node.role(), node.term());
        node.tick();
        let mut actions = Vec::new();
        node.drain_actions(&mut actions);
        if quiet {
            assert!(
                actions.is_empty() && node.role() == role && node.term() == term,
                "node {id} acted on a tick before its next deadline: {actions:?}"
            );
        }
        for action in actions {
            self.carry_out(id, action);
        }
        self.process(id);
    }

    pub fn tick_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.tick(id);
        }
    }

    /// Ticks node `id` alone until it campaigns, then settles; asserts it became leader.
    pub fn elect(&mut self, id: NodeId) {
        for _ in 0..100 {
            if self.node(id).role() != Role::Follower {
                break;
            }
            self.tick(id);
        }
        self.settle();
        assert_eq!(
            self.node(id).role(),
            Role::Leader,
            "node {id} should have won"
        );
    }

    pub fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.role() == Role::Leader)
            .map(|(id, _)| *id)
            .collect();
        leaders
            .iter()
            .copied()
            .max_by_key(|id| self.node(*id).term())
    }

    pub fn propose(&mut self, id: NodeId, data: &'static [u8]) -> raft_core::ProposalId {
        let proposal = self.node_mut(id).propose(Bytes::from_static(data));
        self.process(id);
        proposal
    }

    pub fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for other in ids {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Takes a snapshot of node `id`'s harness state machine at its applied index.
    pub fn snapshot(&mut self, id: NodeId) {
        let applied = self.applied[&id].clone();
        let meta = self
            .node(id)
            .snapshot_meta_at(applied.last_index)
            .expect("snapshot meta");
        let data: Vec<(Index, Vec<u8>)> = applied
            .entries
            .iter()
            .map(|(i, b)| (*i, b.to_vec()))
            .collect();
        let disk = self.disks.get_mut(&id).expect("disk");
        disk.snapshot_data = postcard::to_allocvec(&data).expect("encode");
        disk.snapshot = meta.clone();
        self.node_mut(id).on_snapshot_saved(meta);
        self.process(id);
    }

    /// Restarts node `id` from its disk (unpersisted writes are lost).
    pub fn restart(&mut self, id: NodeId) {
        self.unpersisted.remove(&id);
        let disk = self.disks[&id].clone();
        // Each incarnation gets a fresh seed, as the host contract asks.
        let config = self.configs.get_mut(&id).expect("config");
        config.seed = config.seed.wrapping_add(1);
        let config = config.clone();
        self.nodes
            .insert(id, Node::new(config, disk.restored()).expect("restart"));
        let mut applied = Applied::default();
        if !disk.snapshot_data.is_empty() {
            let entries: Vec<(Index, Vec<u8>)> =
                postcard::from_bytes(&disk.snapshot_data).expect("snapshot");
            applied.entries = entries
                .into_iter()
                .map(|(i, b)| (i, Bytes::from(b)))
                .collect();
        }
        applied.last_index = disk.snapshot.index;
        self.applied.insert(id, applied);
        self.process(id);
    }

    pub fn committed_outcomes(&self) -> Vec<(NodeId, raft_core::ProposalId, Index)> {
        self.events
            .iter()
            .filter_map(|(node, action)| match action {
                Action::ProposalOutcome {
                    id,
                    result: Ok(index),
                } => Some((*node, *id, *index)),
                _ => None,
            })
            .collect()
    }

    /// Safety: no two nodes applied different commands at one index.
    pub fn assert_state_machine_safety(&self) {
        let mut by_index: BTreeMap<Index, (NodeId, Bytes)> = BTreeMap::new();
        for (id, applied) in &self.applied {
            for (index, data) in &applied.entries {
                if let Some((other, existing)) = by_index.get(index) {
                    assert_eq!(
                        existing, data,
                        "nodes {other} and {id} applied different commands at {index}"
                    );
                } else {
                    by_index.insert(*index, (*id, data.clone()));
                }
            }
        }
    }
}
