//! The hosts of a scripted cluster: per node a disk that is written only when the script says
//! so (or at once, by default), a state machine that records the commands it applied, and a
//! network queue the script delivers, drops or reorders by hand.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use raft_core::{
    Action, Config, Entry, EntryPayload, HardState, Index, Message, MessageBody, Node, NodeId,
    PersistBatch, RestoredState, Role, SnapshotMeta, Term,
};

use super::render::{Aliases, render_action, render_message};

/// What one node has on its disk: only what the script made durable.
#[derive(Clone, Debug, Default)]
pub(crate) struct Disk {
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: SnapshotMeta,
    pub(crate) snapshot_data: Vec<u8>,
    pub(crate) entries: Vec<Entry>,
    /// A snapshot being received, chunk by chunk.
    pub(crate) incoming: Vec<u8>,
}

impl Disk {
    fn write(&mut self, batch: PersistBatch) {
        if let Some(from) = batch.truncate_from {
            self.entries.retain(|e| e.index < from);
        }
        if let Some(first) = batch.entries.first() {
            let first_index = first.index;
            self.entries.retain(|e| e.index < first_index);
            self.entries.extend(batch.entries);
        }
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = hard_state;
        }
    }

    pub(crate) fn restored(&self) -> RestoredState {
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

/// One node and everything its host keeps for it.
pub(crate) struct Host {
    pub(crate) node: Node,
    pub(crate) config: Config,
    pub(crate) disk: Disk,
    /// Disk-lane actions issued but not yet carried out (when persistence is manual).
    pub(crate) unpersisted: VecDeque<Action>,
    /// Apply-lane actions not yet carried out (when applying is manual).
    pub(crate) unapplied: VecDeque<Action>,
    /// The state machine: commands applied, with their indexes.
    pub(crate) state: Vec<(Index, Bytes)>,
    pub(crate) applied_index: Index,
    pub(crate) auto_persist: bool,
    pub(crate) auto_apply: bool,
    pub(crate) crashed: bool,
    /// (role, term, leader) as last printed, so that the core's first report of the state
    /// a node starts in is not printed as a change.
    pub(crate) shown_role: (Role, Term, Option<NodeId>),
}

/// The snapshot encoding of the harness state machine: `sm:` then `index=command;...`. Never
/// empty, since an empty snapshot is a witness's.
pub(crate) fn encode_state(state: &[(Index, Bytes)]) -> Vec<u8> {
    let mut data = b"sm:".to_vec();
    for (index, command) in state {
        data.extend_from_slice(format!("{index}=").as_bytes());
        data.extend_from_slice(command);
        data.push(b';');
    }
    data
}

fn decode_state(data: &[u8]) -> Vec<(Index, Bytes)> {
    let text = String::from_utf8_lossy(data.strip_prefix(b"sm:").unwrap_or(&[]));
    text.split(';')
        .filter_map(|item| item.split_once('='))
        .map(|(index, command)| {
            let index = index.parse().expect("harness snapshot index");
            (index, Bytes::from(command.to_string()))
        })
        .collect()
}

/// The scripted cluster.
pub(crate) struct Cluster {
    pub(crate) hosts: BTreeMap<NodeId, Host>,
    pub(crate) network: VecDeque<Message>,
    /// Links that drop every message, as (from, to).
    pub(crate) cut: BTreeSet<(NodeId, NodeId)>,
    pub(crate) aliases: Aliases,
    /// Output of the command being run.
    pub(crate) out: String,
    scratch: Vec<Action>,
}

/// The most drain rounds one input may cause before the harness calls it a livelock.
const DRAIN_ROUNDS_MAX: usize = 1000;

impl Cluster {
    pub(crate) fn new() -> Self {
        Cluster {
            hosts: BTreeMap::new(),
            network: VecDeque::new(),
            cut: BTreeSet::new(),
            aliases: Aliases::default(),
            out: String::new(),
            scratch: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, config: Config, disk: Disk) {
        let node = Node::new(config.clone(), disk.restored()).expect("valid config");
        let state = decode_state(&disk.snapshot_data);
        let shown_role = (node.role(), node.term(), node.leader());
        let host = Host {
            shown_role,
            node,
            applied_index: disk.snapshot.index,
            config,
            disk,
            unpersisted: VecDeque::new(),
            unapplied: VecDeque::new(),
            state,
            auto_persist: true,
            auto_apply: true,
            crashed: false,
        };
        self.hosts.insert(host.config.id, host);
    }

    pub(crate) fn host(&self, id: NodeId) -> Result<&Host, String> {
        self.hosts.get(&id).ok_or_else(|| format!("no node {id}"))
    }

    pub(crate) fn host_mut(&mut self, id: NodeId) -> Result<&mut Host, String> {
        self.hosts
            .get_mut(&id)
            .ok_or_else(|| format!("no node {id}"))
    }

    /// A node that is up, for an input.
    pub(crate) fn live(&mut self, id: NodeId) -> Result<&mut Node, String> {
        let host = self.host_mut(id)?;
        if host.crashed {
            return Err(format!("node {id} is crashed"));
        }
        Ok(&mut host.node)
    }

    /// Ticks node `id` and carries out what it does, checking the contract of
    /// [`Node::next_deadline`] on the way: a tick before the deadline emits nothing and
    /// changes neither role nor term (a host may skip it and deliver it late).
    pub(crate) fn tick(&mut self, id: NodeId) -> Result<(), String> {
        let node = self.live(id)?;
        let quiet = !node.has_pending_actions() && node.next_deadline().is_none_or(|due| due > 1);
        let (role, term) = (node.role(), node.term());
        node.tick();
        let acted = node.has_pending_actions() || node.role() != role || node.term() != term;
        self.process(id, 0);
        if quiet && acted {
            return Err(format!("n{id} acted on a tick before its next deadline"));
        }
        Ok(())
    }

    pub(crate) fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push(' ');
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Drains node `id`'s actions and carries them out until it is quiet, printing each.
    pub(crate) fn process(&mut self, id: NodeId, indent: usize) {
        let mut actions = std::mem::take(&mut self.scratch);
        for _ in 0..DRAIN_ROUNDS_MAX {
            let Some(host) = self.hosts.get_mut(&id) else {
                break;
            };
            if host.crashed {
                break;
            }
            host.node.drain_actions(&mut actions);
            if actions.is_empty() {
                break;
            }
            for action in actions.drain(..) {
                self.carry_out(id, action, indent);
            }
        }
        self.scratch = actions;
    }

    fn carry_out(&mut self, id: NodeId, action: Action, indent: usize) {
        let host = self.hosts.get_mut(&id).expect("processing a known node");
        match action {
            Action::Send(message) => {
                let text = render_message(&message, &mut self.aliases);
                self.line(indent, &text);
                self.network.push_back(message);
            }
            Action::SendSnapshotChunk { .. } => {
                if let Some(message) = snapshot_chunk(host, &action) {
                    let text = render_message(&message, &mut self.aliases);
                    self.line(indent, &text);
                    self.network.push_back(message);
                }
            }
            Action::Persist(_) | Action::WriteSnapshotChunk(_) | Action::CompactLog { .. } => {
                let auto = host.auto_persist;
                let text = render_action(id, &action, &mut self.aliases);
                if auto {
                    self.line(indent, &text);
                    self.write(id, action);
                } else {
                    host.unpersisted.push_back(action);
                    self.line(indent, &format!("{text} (pending)"));
                }
            }
            Action::Apply(_) | Action::RestoreStateMachine { .. } => {
                let auto = host.auto_apply;
                let text = render_action(id, &action, &mut self.aliases);
                if auto {
                    self.line(indent, &text);
                    self.apply(id, action);
                } else {
                    host.unapplied.push_back(action);
                    self.line(indent, &format!("{text} (pending)"));
                }
            }
            Action::RoleChanged { role, term, leader } => {
                if host.shown_role != (role, term, leader) {
                    host.shown_role = (role, term, leader);
                    let text = render_action(id, &action, &mut self.aliases);
                    self.line(indent, &text);
                }
            }
            other => {
                let text = render_action(id, &other, &mut self.aliases);
                self.line(indent, &text);
            }
        }
    }

    /// Carries out one disk-lane action and reports it durable.
    pub(crate) fn write(&mut self, id: NodeId, action: Action) {
        let host = self.hosts.get_mut(&id).expect("writing a known node");
        let disk = &mut host.disk;
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
        host.node.on_persisted(token);
    }

    /// Carries out one apply-lane action and reports it applied.
    pub(crate) fn apply(&mut self, id: NodeId, action: Action) {
        let host = self.hosts.get_mut(&id).expect("applying a known node");
        match action {
            Action::Apply(entries) => {
                let mut last = host.applied_index;
                for entry in entries {
                    last = entry.index;
                    if let EntryPayload::Command(data) = entry.payload {
                        host.state.push((entry.index, data));
                    }
                }
                host.applied_index = last;
                host.node.on_applied(last);
            }
            Action::RestoreStateMachine { meta } => {
                host.state = decode_state(&host.disk.snapshot_data);
                host.applied_index = meta.index;
                host.node.on_applied(meta.index);
            }
            _ => {}
        }
    }

    /// Delivers one message, printing it and the receiver's reactions.
    pub(crate) fn deliver(&mut self, message: Message) {
        let text = render_message(&message, &mut self.aliases);
        let (from, to) = (message.from, message.to);
        if self.cut.contains(&(from, to)) {
            self.line(0, &format!("{text} [dropped: partitioned]"));
            return;
        }
        let up = self.hosts.get(&to).is_some_and(|host| !host.crashed);
        if !up {
            self.line(0, &format!("{text} [dropped: n{to} is down]"));
            return;
        }
        self.line(0, &text);
        let host = self.hosts.get_mut(&to).expect("checked above");
        let rejected_before = rejected_total(&host.node);
        host.node.step(message);
        let rejected = rejected_total(&host.node) - rejected_before;
        if rejected > 0 {
            // Validation dropped the message and blamed the sender. Only a dishonest message
            // gets here (bar the one restart case in validate.rs's docs), so no transcript of
            // honest traffic shows this line.
            let count = host.node.rejected_messages().get(&from).copied();
            let count = count.map_or_else(|| "?".to_string(), |c| c.to_string());
            self.line(
                2,
                &format!("n{to}: rejected as invalid, blamed on n{from} ({count} so far)"),
            );
        }
        self.process(to, 2);
    }

    /// Crashes node `id`: writes not yet durable and applies not yet done are lost.
    pub(crate) fn crash(&mut self, id: NodeId) -> Result<(), String> {
        let host = self.host_mut(id)?;
        let lost = host.unpersisted.len();
        host.unpersisted.clear();
        host.unapplied.clear();
        host.crashed = true;
        self.line(0, &format!("n{id}: crashed, {lost} pending writes lost"));
        Ok(())
    }

    /// Restarts node `id` from its disk with a fresh seed (crashing it first if it is up).
    pub(crate) fn restart(&mut self, id: NodeId) -> Result<(), String> {
        if !self.host(id)?.crashed {
            self.crash(id)?;
        }
        let host = self.host_mut(id)?;
        host.config.seed = host.config.seed.wrapping_add(1);
        host.node =
            Node::new(host.config.clone(), host.disk.restored()).map_err(|e| e.to_string())?;
        host.state = decode_state(&host.disk.snapshot_data);
        host.applied_index = host.disk.snapshot.index;
        host.crashed = false;
        host.shown_role = (host.node.role(), host.node.term(), host.node.leader());
        let hs = host.disk.hard_state;
        let text = format!(
            "n{id}: restarted from disk: term={} vote={} commit={} snapshot={}@{} entries={}",
            hs.term,
            hs.vote.map_or("-".to_string(), |v| format!("n{v}")),
            hs.commit,
            host.disk.snapshot.index,
            host.disk.snapshot.term,
            host.disk.entries.len()
        );
        self.line(0, &text);
        self.process(id, 2);
        Ok(())
    }

    /// Takes a snapshot of node `id`'s state machine at its applied index.
    pub(crate) fn snapshot(&mut self, id: NodeId) -> Result<(), String> {
        let host = self.host_mut(id)?;
        let index = host.applied_index;
        let meta = host
            .node
            .snapshot_meta_at(index)
            .ok_or_else(|| format!("n{id} cannot snapshot at applied index {index}"))?;
        let data = encode_state(&host.state);
        host.disk.snapshot_data = data;
        host.disk.snapshot = meta.clone();
        let text = format!(
            "n{id}: snapshot saved at {}@{} ({} bytes)",
            meta.index,
            meta.term,
            host.disk.snapshot_data.len()
        );
        host.node.on_snapshot_saved(meta);
        self.line(0, &text);
        self.process(id, 2);
        Ok(())
    }
}

/// The chunk message a host sends for a `SendSnapshotChunk`: nothing if its current
/// snapshot is not the one asked for.
fn snapshot_chunk(host: &Host, action: &Action) -> Option<Message> {
    let Action::SendSnapshotChunk {
        to,
        term,
        meta,
        offset,
        max_bytes,
    } = action
    else {
        return None;
    };
    let disk = &host.disk;
    if disk.snapshot != **meta {
        return None;
    }
    let start = (*offset as usize).min(disk.snapshot_data.len());
    let end = (start + *max_bytes as usize).min(disk.snapshot_data.len());
    Some(Message {
        from: host.config.id,
        to: *to,
        term: *term,
        body: MessageBody::SnapshotChunk {
            meta: meta.clone(),
            offset: *offset,
            data: Bytes::copy_from_slice(&disk.snapshot_data[start..end]),
            done: end == disk.snapshot_data.len(),
        },
    })
}

/// Every message validation has rejected at `node`, whoever sent it.
fn rejected_total(node: &Node) -> u64 {
    node.rejected_messages().values().sum()
}
