//! # raft-runtime
//!
//! The tokio host of a [`raft_core::Node`]: it owns one core node, a [`raft_core::Storage`],
//! a [`raft_transport_tcp::Transport`] and any [`raft_core::StateMachine`], and gives the
//! application a cheap, cloneable handle, [`RaftNode`].
//!
//! ## Using it
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use raft_kv::{Command, KvConfig, KvStateMachine, Query};
//! use raft_runtime::{AddressBook, Consistency, Init, PeerInfo, RaftNode, RuntimeConfig};
//! use raft_storage_file::FileStorage;
//! use raft_transport_tcp::{TcpConfig, TcpTransport};
//!
//! let id = 1;
//! let transport = TcpTransport::bind(TcpConfig::new(id, 7, "127.0.0.1:7001".parse()?)).await?;
//! let mut members = AddressBook::new();
//! members.insert(1, PeerInfo::new("127.0.0.1:7001".parse()?));
//! members.insert(2, PeerInfo::new("127.0.0.1:7002".parse()?));
//! members.insert(3, PeerInfo::new("127.0.0.1:7003".parse()?));
//! let node: RaftNode<KvStateMachine, TcpTransport> = RaftNode::start(
//!     RuntimeConfig::new(raft_core::Config::new(id, 42)),
//!     Init::Bootstrap { members },
//!     FileStorage::open("/var/lib/node1")?,
//!     transport,
//!     KvStateMachine::new(KvConfig::default())?,
//! )
//! .await?;
//! let response = node.propose(Command::put("k", "v", 0)).await?;
//! let value = node.read(Query::Get { key: "k".into() }, Consistency::Linearizable).await?;
//! # let _ = (response, value);
//! node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! ## Hosting your own state machine
//!
//! This crate is the one dependency you need: it re-exports the [`StateMachine`] trait,
//! the core [`Config`], an in-memory [`MemStorage`], the [`Transport`] trait and (with the
//! default `tcp` feature) [`TcpTransport`] and the in-process [`ChannelNetwork`]. Implement
//! [`StateMachine`], pick a storage (`raft-storage-file` on disk, [`MemStorage`] for tests)
//! and a transport, and call [`RaftNode::start`]:
//!
//! ```
//! use raft_runtime::{
//!     AddressBook, ChannelNetwork, Config, Consistency, Init, MemStorage, PeerInfo, RaftNode,
//!     RuntimeConfig, StateMachine,
//! };
//!
//! /// A counter: commands add to it, queries read it.
//! struct Counter(u64);
//!
//! impl StateMachine for Counter {
//!     type Command = u64;
//!     type Response = u64;
//!     type Query = ();
//!     type QueryResponse = u64;
//!     type Snapshot = u64;
//!     fn apply(&mut self, _index: u64, add: u64) -> u64 {
//!         self.0 += add;
//!         self.0
//!     }
//!     fn query(&self, _: &()) -> u64 {
//!         self.0
//!     }
//!     fn snapshot(&self) -> u64 {
//!         self.0
//!     }
//!     fn write_snapshot(view: u64, out: &mut dyn std::io::Write) -> std::io::Result<()> {
//!         out.write_all(&view.to_le_bytes())
//!     }
//!     fn restore(&mut self, input: &mut dyn std::io::Read) -> std::io::Result<()> {
//!         let mut bytes = [0; 8];
//!         input.read_exact(&mut bytes)?;
//!         self.0 = u64::from_le_bytes(bytes);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = ChannelNetwork::new();
//! let members = AddressBook::from([(1, PeerInfo::new(()))]);
//! let node = RaftNode::start(
//!     RuntimeConfig::new(Config::new(1, 42)),
//!     Init::Bootstrap { members },
//!     MemStorage::new(),
//!     network.endpoint(1),
//!     Counter(0),
//! )
//! .await?;
//! node.wait_for(std::time::Duration::from_secs(10), |s| s.is_leader()).await?;
//! assert_eq!(node.propose(5).await?, 5);
//! assert_eq!(node.read((), Consistency::Linearizable).await?, 5);
//! node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! ## How it runs
//!
//! Every rule of the host contract (group commit, `sync_required`, apply order, the join of
//! outcomes with apply results, reads after apply, snapshots, the address book, ticks) is
//! carried out by the IO-free [`raft_host::Engine`], the same engine the simulator runs.
//! This crate only wires it to tokio:
//!
//! * **Driver** (one tokio task per node, in the manner of quinn's `ConnectionDriver`): on
//!   each wake-up it takes a batch of inputs (peer messages, client requests, lane
//!   completions), tells the engine the time, drains every engine output once and hands
//!   each to its lane, then sleeps until the engine's next deadline.
//! * **Disk lane** (a dedicated thread): runs the engine's disk work (one group of writes
//!   and at most one sync) on the storage. A failed write or sync stops the node with
//!   [`Error::Stopped`] (a sync is never retried).
//! * **Network**: messages go to the transport at once, in parallel with the disk write.
//!   Snapshot saves and snapshot chunks for lagging peers run on the blocking pool.
//! * **Apply lane** (a dedicated thread owning the state machine): runs the engine's apply
//!   work: committed entries in order, restores, queries, snapshot views.
//!
//! ## Client calls
//!
//! Every call resolves exactly once: with the state machine's response, or with an
//! [`Error`] that says what to do (for example [`Error::NotLeader`] names the leader and
//! its address). Calls time out after [`RuntimeConfig::request_timeout`]. Reads come in
//! three levels ([`Consistency`]): linearizable (ReadIndex), lease, and stale.
//!
//! ## Addresses and membership
//!
//! raft-core's membership holds node ids only. The runtime keeps a replicated *address book*
//! (id -> [`PeerInfo`]): changes travel through the log as address records and the book is
//! saved in every snapshot; the transport learns each change when it applies.
//! [`RaftNode::add_learner`] and friends record the new node's address first, then change
//! the membership; removed members leave the book and the transport.
//!
//! ## Restart
//!
//! A node restarts from its storage alone: the latest snapshot is loaded into the state
//! machine, then the core hands out the entries up to the persisted commit index for
//! re-apply, so the state machine never goes backwards. A new cluster's founding membership
//! and addresses are saved as a snapshot at index 0 on first start ([`Init::Bootstrap`]).
#![forbid(unsafe_code)]

mod config;
mod doorbell;
mod driver;
mod error;
mod event;
mod lanes;
mod lease;
mod metrics;
mod node;
mod status;

pub use config::{RuntimeConfig, RuntimeConfigError, SnapshotPolicy};
pub use error::{Error, RestoreError, StartError};
pub use metrics::{LatencySummary, Metrics};
pub use node::RaftNode;
pub use raft_host::{AddressBook, Consistency, Init, PeerInfo};
pub use status::{Lifecycle, NodeStatus};

// What an embedder needs to host a state machine of its own, from this one crate.
pub use raft_core::MemStorage;
pub use raft_core::{Config, StateMachine, Storage};
pub use raft_transport::{PeerError, Transport, TransportMetrics};
#[cfg(feature = "tcp")]
pub use raft_transport_tcp::{ChannelNetwork, ChannelTransport, TcpConfig, TcpTransport};

// The crates underneath, for everything else (the core's types, the engine itself).
pub use raft_core;
pub use raft_host;
