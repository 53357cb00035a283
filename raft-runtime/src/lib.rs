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
//! ## How it runs
//!
//! * **Driver** (one tokio task per node, in the manner of quinn's `ConnectionDriver`): on
//!   each wake-up it takes a batch of inputs (peer messages, client requests, disk and apply
//!   reports, due ticks), feeds them to the core, drains the core's actions *once* and
//!   dispatches them per lane. Ticks come from the clock (see [`RuntimeConfig`]), so a late
//!   wake-up still counts every elapsed tick.
//! * **Disk lane** (a dedicated thread): group commit. It takes every queued
//!   `Persist` / `WriteSnapshotChunk` / `CompactLog`, applies them in order, issues one
//!   `sync`, and reports the highest write token. A failed sync or any storage error stops
//!   the node with [`Error::Stopped`] (a sync is never retried).
//! * **Network**: messages go to the transport at once, in parallel with the disk write
//!   (the core never emits a message that depends on an unfinished write). Snapshot chunks
//!   for lagging peers are read on the blocking pool through per-peer cursors.
//! * **Apply lane** (a dedicated thread owning the state machine): applies committed
//!   entries in order, restores from snapshots installed from the leader, serves queries once
//!   applied >= the read index, and takes the state machine's cheap point-in-time view
//!   every N entries or M bytes ([`SnapshotPolicy`]); the view is written on the blocking
//!   pool and the log compacted, so neither append nor apply waits for a snapshot.
//!
//! Commands are encoded with postcard. A committed command that does not decode is skipped
//! on every replica and its client gets [`Error::InvalidCommand`]; the cluster continues.
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

mod apply;
mod clock;
mod config;
mod disk;
mod driver;
mod envelope;
mod error;
mod event;
mod metrics;
mod node;
mod pending;
mod snapshot;
mod status;

pub use config::{RuntimeConfig, RuntimeConfigError, SnapshotPolicy};
pub use driver::Consistency;
pub use envelope::{AddressBook, PeerInfo};
pub use error::{Error, StartError};
pub use metrics::{LatencySummary, Metrics};
pub use node::{Init, RaftNode};
pub use status::{Lifecycle, NodeStatus};
