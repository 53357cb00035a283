//! Command-line syntax of `raft-kv`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use raft_kv::server::bench::Target;
use raft_kv::server::config::ServeArgs;
use raft_kv::server::credentials::CredentialSources;
use raft_kv::server::wire::{MemberRole, ReadConsistency};

/// A replicated key-value store on Raft: server, local dev cluster, client and load
/// generator.
///
/// Start a local three-node cluster with `raft-kv dev-cluster`, then try
/// `raft-kv put greeting hello` and `raft-kv get greeting`.
#[derive(Debug, Parser)]
#[command(name = "raft-kv", version, about, long_about)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one node of a cluster (founding it with --peers, or joining one with --join).
    Serve(Box<ServeArgs>),
    /// Run a 3-node cluster on loopback (HTTP 127.0.0.1:8001-8003) until Ctrl-C.
    DevCluster(DevClusterArgs),
    /// Set a key to a value.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        #[command(flatten)]
        condition: ConditionArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Read a key's value.
    Get {
        /// The key.
        key: String,
        /// linearizable (default), lease or stale.
        #[arg(long, default_value = "linearizable")]
        consistency: ReadConsistency,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        condition: ConditionArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Compare-and-set: write only if the key is at a revision (or absent).
    Cas {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        #[command(flatten)]
        condition: RequiredConditionArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List keys with a prefix.
    List {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
        /// At most this many keys.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only keys after this one (paging).
        #[arg(long)]
        start_after: Option<String>,
        /// linearizable (default), lease or stale.
        #[arg(long, default_value = "linearizable")]
        consistency: ReadConsistency,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print every change to keys under a prefix as it happens (one line per change:
    /// revision, put or delete, key, value), following the stream to another node when one
    /// fails, without skipping or repeating a change. Runs until Ctrl-C.
    Watch {
        /// Only keys starting with this (empty: every key).
        #[arg(default_value = "")]
        prefix: String,
        /// Start at this revision (from the history the cluster keeps); default: changes
        /// from now on.
        #[arg(long)]
        from_revision: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show every endpoint's status: role, term, leader, commit and applied index.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List, add or remove members.
    Members {
        /// What to do (list when absent).
        #[command(subcommand)]
        action: Option<MembersAction>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Hand leadership to another node.
    TransferLeader {
        /// The node to hand it to (the most up-to-date voter when absent).
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Load generator: puts and gets against the cluster, reporting ops/s and latency.
    Bench(BenchArgs),
}

impl Command {
    /// Whether the command runs server processes (logs at info by default).
    pub(crate) fn is_server(&self) -> bool {
        matches!(self, Command::Serve(_) | Command::DevCluster(_))
    }
}

/// Membership changes.
#[derive(Debug, Subcommand)]
pub(crate) enum MembersAction {
    /// Add a node (start it first with `serve --join` or with `serve` and an empty data dir).
    Add {
        /// The node's id.
        id: u64,
        /// Its Raft address.
        #[arg(long)]
        raft_addr: Option<String>,
        /// Its HTTP URL.
        #[arg(long)]
        url: Option<String>,
        /// voter (default), learner or witness.
        #[arg(long, default_value = "voter")]
        role: MemberRole,
    },
    /// Remove a node.
    Remove {
        /// The node's id.
        id: u64,
    },
}

/// Where the cluster is and how to print.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Nodes to talk to (any of them; the client follows the leader).
    #[arg(
        long,
        env = "RAFT_KV_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003"
    )]
    pub endpoints: Vec<String>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Print JSON instead of human-readable text.
    #[arg(long)]
    pub json: bool,
    /// Keep retrying (other nodes, elections) for this long, in seconds.
    #[arg(long, default_value_t = 15)]
    pub retry_secs: u64,
}

/// How to reach a secured cluster. Without these, the CLI uses the credentials directory
/// of a dev cluster run from the current directory (`./raft-kv-data/credentials`), if any.
/// Endpoints without a scheme use TLS when a CA is known, plaintext otherwise.
#[derive(Debug, Args)]
pub(crate) struct CredentialArgs {
    /// CA certificate to check the nodes against (PEM).
    #[arg(long, env = "RAFT_KV_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate to present (PEM, with --key).
    #[arg(long, env = "RAFT_KV_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Key of --cert (PEM).
    #[arg(
        long = "key",
        id = "client_key",
        env = "RAFT_KV_KEY",
        value_name = "FILE"
    )]
    pub client_key: Option<PathBuf>,
    /// Bearer token (prefer the environment variable: command lines are visible to others).
    #[arg(
        long,
        env = "RAFT_KV_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A directory holding ca.pem, client.pem, client.key and admin.token, as
    /// `raft-kv dev-cluster` writes under <DATA_DIR>/credentials.
    #[arg(long, env = "RAFT_KV_CREDENTIALS_DIR", value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,
}

impl CredentialArgs {
    /// The flags as credential sources.
    pub(crate) fn sources(&self) -> CredentialSources {
        CredentialSources {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.client_key.clone(),
            token: self.token.clone(),
            dir: self.credentials_dir.clone(),
        }
    }
}

/// An optional write condition.
#[derive(Debug, Args)]
pub(crate) struct ConditionArgs {
    /// Only if the key's revision is this (0: only if absent).
    #[arg(long, conflicts_with = "if_absent")]
    pub if_revision: Option<u64>,
    /// Only if the key does not exist.
    #[arg(long)]
    pub if_absent: bool,
}

/// A required write condition.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct RequiredConditionArgs {
    /// Only if the key's revision is this (0: only if absent).
    #[arg(long)]
    pub if_revision: Option<u64>,
    /// Only if the key does not exist.
    #[arg(long)]
    pub if_absent: bool,
}

/// Flags of `dev-cluster`.
#[derive(Debug, Args)]
pub(crate) struct DevClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Data of node i goes to <DATA_DIR>/node-i; kept across runs.
    #[arg(long, default_value = "raft-kv-data")]
    pub data_dir: PathBuf,
    /// Delete the data dir first (start from an empty store).
    #[arg(long)]
    pub fresh: bool,
    /// Raft port of node 1 (node i gets base + i - 1).
    #[arg(long, default_value_t = 7001)]
    pub raft_port: u16,
    /// HTTP port of node 1 (node i gets base + i - 1).
    #[arg(long, default_value_t = 8001)]
    pub http_port: u16,
    /// Run the nodes with --insecure (plaintext, no tokens) instead of generated TLS
    /// certificates and tokens.
    #[arg(long)]
    pub insecure: bool,
    /// Extra DNS name or IP for the node certificates (repeatable); only used when the
    /// credentials are first generated.
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_sans: Vec<String>,
    /// Extra `serve` flags for every node, after `--` (e.g. `-- --snapshot-entries 1000`).
    #[arg(last = true)]
    pub serve_args: Vec<String>,
}

/// Flags of `bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Nodes of the cluster.
    #[arg(
        long,
        env = "RAFT_KV_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003"
    )]
    pub endpoints: Vec<String>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Concurrent clients, one keep-alive connection each.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Fraction of reads, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub read_ratio: f64,
    /// Consistency of reads.
    #[arg(long, default_value = "linearizable")]
    pub consistency: ReadConsistency,
    /// leader: all clients talk to the leader; all: spread over every endpoint.
    #[arg(long, value_enum, default_value = "leader")]
    pub target: Target,
    /// Send writes under client sessions (exactly-once bookkeeping).
    #[arg(long)]
    pub sessions: bool,
    /// Keep the keys written (by default everything under the run's prefix is deleted
    /// after the run).
    #[arg(long)]
    pub keep: bool,
    /// Write keys under this prefix (default: a fresh `bench/<run id>/`).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Process ids of the cluster's nodes on this machine, for CPU per operation (default:
    /// the local `raft-kv serve` processes whose --http-addr is one of the endpoints).
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Start a fresh local cluster of this many nodes for the run (in a temporary dir,
    /// ports from 17001/18001), and stop it afterwards.
    #[arg(long)]
    pub spawn_cluster: Option<u64>,
    /// With --spawn-cluster: run the spawned nodes with --insecure (plaintext, no tokens).
    #[arg(long, requires = "spawn_cluster")]
    pub insecure: bool,
    /// Failover benchmark: SIGKILL the leader of the spawned cluster (needs
    /// --spawn-cluster) every SECS seconds and restart it, while the clients write under
    /// their sessions; reports the gap each client sees per kill and the writes that ended
    /// with an unknown outcome.
    #[arg(long, value_name = "SECS", requires = "spawn_cluster")]
    pub kill_leader_every: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Extra `serve` flags for the spawned nodes, after `--`.
    #[arg(last = true)]
    pub serve_args: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: clap's own consistency checks pass (unique names across flattened flags).
    #[test]
    fn command_line_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
