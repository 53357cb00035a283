//! A tiny synchronous driver for engine tests: in-memory nodes over `MemStorage`, a lossless
//! in-order network that can isolate nodes, virtual time in 10 ms steps, and a record of
//! every answer (a second answer for one request fails the test at once).
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Duration;

use raft_core::conformance::{MemStorage, MemStorageError};
use raft_core::{
    Entry, HardState, Index, Message, NodeId, RestoredState, SnapshotMeta, StateMachine, Storage,
    Term,
};
use raft_host::{
    AddressBook, ApplyWork, Engine, EngineConfig, Error, Init, PeerInfo, Reply, RequestId,
    SnapshotPolicy,
};

/// Sums its commands; answers queries with the sum.
#[derive(Default)]
pub struct Counter(pub u64);

impl StateMachine for Counter {
    type Command = u64;
    type Response = u64;
    type Query = ();
    type QueryResponse = u64;
    type Snapshot = u64;
    fn apply(&mut self, _: Index, command: u64) -> u64 {
        self.0 += command;
        self.0
    }
    fn query(&self, _: &()) -> u64 {
        self.0
    }
    fn snapshot(&self) -> u64 {
        self.0
    }
    fn write_snapshot(view: u64, writer: &mut dyn Write) -> std::io::Result<()> {
        writer.write_all(&view.to_le_bytes())
    }
    fn restore(&mut self, reader: &mut dyn Read) -> std::io::Result<()> {
        let mut bytes = [0u8; 8];
        reader.read_exact(&mut bytes)?;
        self.0 = u64::from_le_bytes(bytes);
        Ok(())
    }
}

/// `MemStorage` that counts its syncs.
#[derive(Default)]
pub struct Counting {
    pub inner: MemStorage,
    pub syncs: u64,
    /// Makes `restore` give back the log without its first entry, as a corrupt disk would.
    pub lose_first_entry: bool,
}

impl Storage for Counting {
    type Error = MemStorageError;
    type SnapshotReader = <MemStorage as Storage>::SnapshotReader;
    type SnapshotWriter = <MemStorage as Storage>::SnapshotWriter;
    fn restore(&mut self) -> Result<RestoredState, Self::Error> {
        let mut restored = self.inner.restore()?;
        if self.lose_first_entry && !restored.entries.is_empty() {
            restored.entries.remove(0);
        }
        Ok(restored)
    }
    fn append(&mut self, entries: &[Entry]) -> Result<(), Self::Error> {
        self.inner.append(entries)
    }
    fn truncate_suffix(&mut self, from_index: Index) -> Result<(), Self::Error> {
        self.inner.truncate_suffix(from_index)
    }
    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), Self::Error> {
        self.inner.save_hard_state(hard_state)
    }
    fn sync(&mut self) -> Result<(), Self::Error> {
        self.syncs += 1;
        self.inner.sync()
    }
    fn compact(&mut self, through_index: Index) -> Result<(), Self::Error> {
        self.inner.compact(through_index)
    }
    fn first_index(&self) -> Index {
        self.inner.first_index()
    }
    fn last_index(&self) -> Index {
        self.inner.last_index()
    }
    fn term(&self, index: Index) -> Result<Option<Term>, Self::Error> {
        self.inner.term(index)
    }
    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, Self::Error> {
        self.inner.entries(low, high, max_bytes)
    }
    fn begin_snapshot(&mut self, meta: &SnapshotMeta) -> Result<Self::SnapshotWriter, Self::Error> {
        self.inner.begin_snapshot(meta)
    }
    fn commit_snapshot(&mut self, writer: Self::SnapshotWriter) -> Result<(), Self::Error> {
        self.inner.commit_snapshot(writer)
    }
    fn snapshot_meta(&self) -> SnapshotMeta {
        self.inner.snapshot_meta()
    }
    fn open_snapshot(&self) -> Result<Option<(SnapshotMeta, Self::SnapshotReader)>, Self::Error> {
        self.inner.open_snapshot()
    }
    fn install_snapshot_log(&mut self, meta: &SnapshotMeta) -> Result<(), Self::Error> {
        self.inner.install_snapshot_log(meta)
    }
}

pub type TestEngine = Engine<Counter, Counting, u64>;
pub type Answer = Result<Reply<Counter>, Error>;

pub struct Host {
    pub engine: TestEngine,
    pub storage: Mutex<Counting>,
    pub sm: Counter,
    /// While set, apply work waits here instead of running.
    pub hold_apply: bool,
    pub held: Option<ApplyWork<Counter, u64>>,
    pub answers: BTreeMap<RequestId, Answer>,
}

impl Host {
    pub fn syncs(&self) -> u64 {
        self.storage.lock().unwrap().syncs
    }

    /// Carries out every output until the engine is quiet; messages go to `outbox`.
    pub fn drain(&mut self, outbox: &mut Vec<Message>) {
        loop {
            let mut busy = false;
            while let Some(work) = self.engine.poll_disk() {
                let done = work.run(&mut self.storage.lock().unwrap());
                self.engine.handle_disk_done(done);
                busy = true;
            }
            if self.held.is_none() {
                self.held = self.engine.poll_apply();
            }
            if !self.hold_apply
                && let Some(work) = self.held.take()
            {
                let done = work.run(&mut self.sm, &self.storage);
                self.engine.handle_applied(done);
                busy = true;
            }
            while let Some(work) = self.engine.poll_snapshot() {
                let done = work.run(&self.storage);
                self.engine.handle_snapshot_done(done);
                busy = true;
            }
            while let Some(message) = self.engine.poll_transmit() {
                outbox.push(message);
            }
            while let Some((id, answer)) = self.engine.poll_reply() {
                let previous = self.answers.insert(id, answer);
                assert!(previous.is_none(), "request {id:?} answered twice");
            }
            while self.engine.poll_peer_change().is_some() {}
            assert_eq!(self.engine.fatal_error(), None);
            if !busy {
                return;
            }
        }
    }
}

pub struct Cluster {
    pub hosts: BTreeMap<NodeId, Host>,
    pub now: Duration,
    pub isolated: BTreeSet<NodeId>,
}

pub fn config(id: NodeId, policy: SnapshotPolicy) -> EngineConfig {
    let mut config = EngineConfig::new(raft_core::Config::new(id, 1000 + id));
    config.snapshot_policy = policy;
    config
}

impl Cluster {
    pub fn new(size: u64, policy: SnapshotPolicy) -> Cluster {
        Cluster::new_with(size, policy, |_| {})
    }

    /// As [`Cluster::new`], with `tweak` applied to every node's configuration.
    pub fn new_with(size: u64, policy: SnapshotPolicy, tweak: fn(&mut EngineConfig)) -> Cluster {
        let members: AddressBook<u64> = (1..=size).map(|id| (id, PeerInfo::new(id))).collect();
        let mut cluster = Cluster {
            hosts: BTreeMap::new(),
            now: Duration::ZERO,
            isolated: BTreeSet::new(),
        };
        for id in 1..=size {
            let init = Init::Bootstrap {
                members: members.clone(),
            };
            cluster.start_with(id, &init, policy.clone(), tweak);
        }
        cluster
    }

    /// Starts node `id` on empty storage with `init`, at the cluster's current time.
    pub fn start(&mut self, id: NodeId, init: &Init<u64>, policy: SnapshotPolicy) {
        self.start_with(id, init, policy, |_| {});
    }

    /// As [`Cluster::start`], with `tweak` applied to the configuration.
    pub fn start_with(
        &mut self,
        id: NodeId,
        init: &Init<u64>,
        policy: SnapshotPolicy,
        tweak: fn(&mut EngineConfig),
    ) {
        let storage = Mutex::new(Counting::default());
        let mut sm = Counter::default();
        let startup = raft_host::restore(id, &storage, &mut sm, init).unwrap();
        let mut config = config(id, policy);
        tweak(&mut config);
        let engine = Engine::new(config, startup, self.now).unwrap();
        let host = Host {
            engine,
            storage,
            sm,
            hold_apply: false,
            held: None,
            answers: BTreeMap::new(),
        };
        self.hosts.insert(id, host);
    }

    pub fn host(&mut self, id: NodeId) -> &mut Host {
        self.hosts.get_mut(&id).unwrap()
    }

    /// Drains every node and delivers messages until the network is empty (no time passes).
    pub fn settle(&mut self) {
        self.settle_delivering(|_| true);
    }

    /// As [`Cluster::settle`], but drops the messages `deliver` refuses.
    pub fn settle_delivering(&mut self, mut deliver: impl FnMut(&Message) -> bool) {
        for _ in 0..1000 {
            let mut outbox = Vec::new();
            for host in self.hosts.values_mut() {
                host.drain(&mut outbox);
            }
            if outbox.is_empty() {
                return;
            }
            for message in outbox {
                if self.isolated.contains(&message.from)
                    || self.isolated.contains(&message.to)
                    || !deliver(&message)
                {
                    continue;
                }
                if let Some(host) = self.hosts.get_mut(&message.to) {
                    host.engine.handle_message(message);
                }
            }
        }
        panic!("the cluster did not settle");
    }

    /// One tick of virtual time for every node, then settle.
    pub fn step(&mut self) {
        self.step_delivering(|_| true);
    }

    /// As [`Cluster::step`], but drops the messages `deliver` refuses.
    pub fn step_delivering(&mut self, deliver: impl FnMut(&Message) -> bool) {
        self.now += Duration::from_millis(10);
        for host in self.hosts.values_mut() {
            host.engine.handle_timeout(self.now);
        }
        self.settle_delivering(deliver);
    }

    /// Steps until `condition` holds; fails after `steps_max` steps.
    pub fn run_until(&mut self, steps_max: usize, mut condition: impl FnMut(&mut Cluster) -> bool) {
        for _ in 0..steps_max {
            if condition(self) {
                return;
            }
            self.step();
        }
        panic!("condition not reached within {steps_max} steps");
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.hosts
            .iter()
            .find(|(_, h)| h.engine.node().role() == raft_core::Role::Leader)
            .map(|(id, _)| *id)
    }

    /// Waits for a leader whose no-op has committed; returns its id.
    pub fn elect(&mut self) -> NodeId {
        self.run_until(500, |c| {
            c.leader()
                .is_some_and(|l| c.hosts[&l].engine.node().commit_index() > 0)
        });
        self.leader().unwrap()
    }
}
