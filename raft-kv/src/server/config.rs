//! Settings of `raft-kv serve`: every flag also comes from an environment variable
//! (`RAFT_KV_*`) and from an optional TOML file (`--config`, keys named like the flags with
//! underscores). Precedence: flag, then environment, then file, then default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::KvConfig;
use crate::server::limits::{BodyLimits, HttpLimits};
use crate::server::tls::TlsFiles;

/// Flags of `raft-kv serve`. Every field is optional here so that a value given nowhere
/// falls through to the config file and then to the default named in its help.
#[derive(Clone, Debug, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys like the flags, with `_` for `-`).
    #[arg(long, env = "RAFT_KV_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// This node's id: a positive integer, unique in the cluster, never reused. [default: 1]
    #[arg(long, env = "RAFT_KV_ID")]
    pub id: Option<u64>,

    /// Where the node keeps its log, hard state and snapshots. [default: ./raft-kv-data/node-ID]
    #[arg(long, env = "RAFT_KV_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address to accept Raft peer connections on. [default: 127.0.0.1:7001]
    #[arg(long, env = "RAFT_KV_RAFT_ADDR", value_name = "HOST:PORT")]
    pub raft_addr: Option<SocketAddr>,

    /// Address to serve the HTTP API on. [default: 127.0.0.1:8001]
    #[arg(long, env = "RAFT_KV_HTTP_ADDR", value_name = "HOST:PORT")]
    pub http_addr: Option<SocketAddr>,

    /// Raft address other nodes use to reach this one, if not --raft-addr (e.g. when
    /// listening on 0.0.0.0).
    #[arg(long, env = "RAFT_KV_ADVERTISE_RAFT_ADDR", value_name = "HOST:PORT")]
    pub advertise_raft_addr: Option<SocketAddr>,

    /// URL clients are redirected to for this node's API. [default: http://HTTP_ADDR]
    #[arg(long, env = "RAFT_KV_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,

    /// Founding members of a new cluster with their Raft addresses, this node included:
    /// `1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003`. Every founding node gets the
    /// same list. Ignored once the data dir holds state. [default: this node alone]
    #[arg(
        long,
        env = "RAFT_KV_PEERS",
        value_name = "ID=HOST:PORT,...",
        conflicts_with = "join"
    )]
    pub peers: Option<String>,

    /// Join a running cluster through any member's HTTP API (e.g. `http://127.0.0.1:8001`):
    /// the node asks the leader to add it as a learner, catches up, then becomes a voter.
    #[arg(long, env = "RAFT_KV_JOIN", value_name = "URL")]
    pub join: Option<String>,

    /// Cluster identity; peers presenting another one are refused. [default: 1]
    #[arg(long, env = "RAFT_KV_CLUSTER_ID")]
    pub cluster_id: Option<u64>,

    /// Length of one Raft tick in milliseconds. [default: 10]
    #[arg(long, env = "RAFT_KV_TICK_MS", value_name = "MS")]
    pub tick_ms: Option<u64>,

    /// Election timeout in ticks (each timeout is random in [n, 2n)). [default: 10]
    #[arg(long, env = "RAFT_KV_ELECTION_TICKS", value_name = "TICKS")]
    pub election_ticks: Option<u32>,

    /// Ticks between leader heartbeats. [default: a third of --election-ticks, at least 1]
    #[arg(long, env = "RAFT_KV_HEARTBEAT_TICKS", value_name = "TICKS")]
    pub heartbeat_ticks: Option<u32>,

    /// Ticks a leader may go without hearing from a quorum before it steps down
    /// (check-quorum); at least --election-ticks. Longer rides out followers whose disk
    /// stalls their syncs (they answer nothing meanwhile), at the price of a leader cut off
    /// from the others keeping its role longer; failover does not wait for it.
    /// [default: ten times --election-ticks]
    #[arg(long, env = "RAFT_KV_CHECK_QUORUM_TICKS", value_name = "TICKS")]
    pub check_quorum_ticks: Option<u32>,

    /// Serve `consistency=lease` reads from the leader's lease (assumes clock rates of the
    /// nodes differ little). [default: true]
    #[arg(long, env = "RAFT_KV_LEASE_READS", value_name = "BOOL")]
    pub lease_reads: Option<bool>,

    /// Most append messages in flight to one follower before the leader waits for an
    /// acknowledgement; entries proposed meanwhile go out together in the next append.
    /// [default: 64]
    #[arg(long, env = "RAFT_KV_MAX_INFLIGHT_APPENDS", value_name = "N")]
    pub max_inflight_appends: Option<usize>,

    /// Snapshot the state after this many applied entries; 0 turns this trigger off.
    /// [default: 100000]
    #[arg(long, env = "RAFT_KV_SNAPSHOT_ENTRIES", value_name = "N")]
    pub snapshot_entries: Option<u64>,

    /// Snapshot the state after this many bytes of applied entries; 0 turns this trigger
    /// off. [default: 268435456]
    #[arg(long, env = "RAFT_KV_SNAPSHOT_BYTES", value_name = "BYTES")]
    pub snapshot_bytes: Option<u64>,

    /// Longest key accepted, in bytes. Same value on every node. [default: 4096]
    #[arg(long, env = "RAFT_KV_MAX_KEY_BYTES", value_name = "BYTES")]
    pub max_key_bytes: Option<u64>,

    /// Longest value accepted, in bytes. Same value on every node. [default: 1048576]
    #[arg(long, env = "RAFT_KV_MAX_VALUE_BYTES", value_name = "BYTES")]
    pub max_value_bytes: Option<u64>,

    /// How long a request may wait for the cluster before it fails with 504.
    /// [default: 5000]
    #[arg(long, env = "RAFT_KV_REQUEST_TIMEOUT_MS", value_name = "MS")]
    pub request_timeout_ms: Option<u64>,

    /// Client sessions idle longer than this expire (exactly-once retries must come
    /// sooner). Same value on every node. [default: 3600000]
    #[arg(long, env = "RAFT_KV_SESSION_TTL_MS", value_name = "MS")]
    pub session_ttl_ms: Option<u64>,

    /// Most client sessions kept; more evict the least recently active. Same value on every
    /// node. [default: 65536]
    #[arg(long, env = "RAFT_KV_SESSIONS_MAX", value_name = "N")]
    pub sessions_max: Option<u64>,

    /// Run without TLS and without authentication: anyone who can reach the ports can read,
    /// write and reconfigure the cluster. For tests and experiments only.
    #[arg(
        long,
        env = "RAFT_KV_INSECURE",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true
    )]
    pub insecure: Option<bool>,

    /// CA certificate (PEM) that issued every node and client certificate of the cluster.
    #[arg(long, env = "RAFT_KV_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// This node's certificate (PEM), issued by --ca; used for HTTPS (and for the Raft port
    /// where peer TLS is available).
    #[arg(long, env = "RAFT_KV_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// The private key of --cert (PEM).
    #[arg(long, env = "RAFT_KV_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Bearer tokens with their roles (TOML, see SECURITY.md).
    #[arg(long, env = "RAFT_KV_TOKENS", value_name = "FILE")]
    pub tokens: Option<PathBuf>,

    /// Admin token this node presents when it joins a cluster with --join (prefer the
    /// environment variable: command lines are visible to other users).
    #[arg(
        long,
        env = "RAFT_KV_JOIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub join_token: Option<String>,

    /// Most HTTP connections open at once; lowered at start so that descriptors stay free
    /// for the Raft port under the process's open-files limit. [default: 4096]
    #[arg(long, env = "RAFT_KV_HTTP_CONNECTIONS_MAX", value_name = "N")]
    pub http_connections_max: Option<usize>,

    /// Longest wait for a request head, idle keep-alive time included. [default: 30000]
    #[arg(long, env = "RAFT_KV_HTTP_HEADER_TIMEOUT_MS", value_name = "MS")]
    pub http_header_timeout_ms: Option<u64>,

    /// Longest wait for a whole request body. [default: 30000]
    #[arg(long, env = "RAFT_KV_HTTP_BODY_TIMEOUT_MS", value_name = "MS")]
    pub http_body_timeout_ms: Option<u64>,

    /// Bytes of request bodies all requests together may hold in memory; more are refused
    /// with 503. [default: 67108864]
    #[arg(long, env = "RAFT_KV_HTTP_BODY_BUDGET_BYTES", value_name = "BYTES")]
    pub http_body_budget_bytes: Option<usize>,

    /// TEST ONLY, loses data: acknowledge writes before they are synced, and drop the
    /// unsynced log tail on restart (see `raft_kv::server::sabotage`). The nemesis tests
    /// plant this bug to prove they catch it. Flag only (no environment variable, no
    /// config key), hidden from `--help`.
    #[arg(long, hide = true, requires = "insecure")]
    #[serde(skip)]
    pub unsafe_ack_before_fsync: bool,
}

/// How a node protects itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// `--insecure`: plaintext, every caller may do everything.
    Insecure,
    /// HTTPS with bearer tokens (and TLS on the Raft port where available).
    Tls {
        /// CA, certificate and key.
        files: TlsFiles,
        /// The token file.
        tokens: PathBuf,
    },
}

/// A setting that cannot be used; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{0}")]
    Invalid(String),
}

/// The settings of one node, resolved.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Node id.
    pub id: u64,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where to listen for peers.
    pub raft_addr: SocketAddr,
    /// Where to serve HTTP.
    pub http_addr: SocketAddr,
    /// The Raft address others use for this node.
    pub advertise_raft_addr: SocketAddr,
    /// The URL clients use for this node.
    pub advertise_url: String,
    /// Founding members (id -> Raft address); empty when joining.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// A member's URL to join through.
    pub join: Option<String>,
    /// Cluster identity.
    pub cluster_id: u64,
    /// Tick length.
    pub tick: Duration,
    /// Election timeout in ticks.
    pub election_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: u32,
    /// Check-quorum interval in ticks.
    pub check_quorum_ticks: u32,
    /// Lease reads on.
    pub lease_reads: bool,
    /// Appends in flight per follower.
    pub max_inflight_appends: usize,
    /// Snapshot trigger in entries.
    pub snapshot_entries: Option<u64>,
    /// Snapshot trigger in bytes.
    pub snapshot_bytes: Option<u64>,
    /// Request timeout.
    pub request_timeout: Duration,
    /// State machine limits.
    pub kv: KvConfig,
    /// TLS and authentication, or `--insecure`.
    pub security: Security,
    /// Admin token for `--join`.
    pub join_token: Option<String>,
    /// HTTP connection and time limits (the connection cap before the open-files limit).
    pub http_limits: HttpLimits,
    /// Request body limits.
    pub body_limits: BodyLimits,
    /// Test only: the planted bug of `--unsafe-ack-before-fsync`.
    pub unsafe_ack_before_fsync: bool,
}

impl ServeArgs {
    /// Reads the config file named by `--config` (if any) and resolves every setting.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<ServeArgs>(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => ServeArgs::default(),
        };
        self.merged_over(file).finish()
    }

    /// Each setting from `self` when given, else from `file`.
    fn merged_over(self, file: ServeArgs) -> ServeArgs {
        macro_rules! pick {
            ($($field:ident),*) => {
                ServeArgs {
                    config: self.config,
                    unsafe_ack_before_fsync: self.unsafe_ack_before_fsync,
                    $($field: self.$field.or(file.$field)),* }
            };
        }
        pick!(
            id,
            data_dir,
            raft_addr,
            http_addr,
            advertise_raft_addr,
            advertise_url,
            peers,
            join,
            cluster_id,
            tick_ms,
            election_ticks,
            heartbeat_ticks,
            check_quorum_ticks,
            lease_reads,
            max_inflight_appends,
            snapshot_entries,
            snapshot_bytes,
            max_key_bytes,
            max_value_bytes,
            request_timeout_ms,
            session_ttl_ms,
            sessions_max,
            insecure,
            ca,
            cert,
            key,
            tokens,
            join_token,
            http_connections_max,
            http_header_timeout_ms,
            http_body_timeout_ms,
            http_body_budget_bytes
        )
    }

    fn finish(self) -> Result<ServeConfig, ConfigError> {
        let id = self.id.unwrap_or(1);
        if id == 0 {
            return Err(ConfigError::Invalid("--id must be positive".into()));
        }
        let raft_addr = self.raft_addr.unwrap_or(([127, 0, 0, 1], 7001).into());
        let http_addr = self.http_addr.unwrap_or(([127, 0, 0, 1], 8001).into());
        let advertise_raft_addr = self.advertise_raft_addr.unwrap_or(raft_addr);
        let security = self.security()?;
        let scheme = match security {
            Security::Insecure => "http",
            Security::Tls { .. } => "https",
        };
        let advertise_url = self
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{http_addr}"));
        let join = self.join.clone();
        let peers = match (&self.peers, &join) {
            (Some(text), _) => parse_peers(text)?,
            (None, Some(_)) => BTreeMap::new(),
            (None, None) => BTreeMap::from([(id, advertise_raft_addr)]),
        };
        if join.is_none() && !peers.contains_key(&id) {
            return Err(ConfigError::Invalid(format!(
                "--peers must list this node ({id}) too"
            )));
        }
        let positive = |value: Option<u64>| value.filter(|v| *v > 0);
        let election_ticks = self.election_ticks.unwrap_or(10);
        // Ten election timeouts (1 s at the defaults, etcd's election timeout): the syncs
        // of followers that share a disk stalled for up to ~0.5 s under load on the test
        // machine, and with the default window the leader stepped down (BENCHMARKS.md).
        // The core refuses a window shorter than the election timeout when the node starts.
        let check_quorum_ticks = self
            .check_quorum_ticks
            .unwrap_or(election_ticks.saturating_mul(10));
        let defaults = KvConfig::default();
        let kv = KvConfig {
            key_bytes_max: self.max_key_bytes.unwrap_or(defaults.key_bytes_max),
            value_bytes_max: self.max_value_bytes.unwrap_or(defaults.value_bytes_max),
            session_ttl_ms: self.session_ttl_ms.unwrap_or(defaults.session_ttl_ms),
            sessions_max: self.sessions_max.unwrap_or(defaults.sessions_max),
            ..defaults
        };
        kv.validate()
            .map_err(|e| ConfigError::Invalid(format!("key-value limits: {e}")))?;
        let (http_limits, body_limits) = self.http_limits();
        if (body_limits.budget_bytes as u64) < kv.value_bytes_max {
            return Err(ConfigError::Invalid(format!(
                "--http-body-budget-bytes ({}) must hold at least one value of \
                 --max-value-bytes ({})",
                body_limits.budget_bytes, kv.value_bytes_max
            )));
        }
        Ok(ServeConfig {
            id,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("raft-kv-data/node-{id}"))),
            raft_addr,
            http_addr,
            advertise_raft_addr,
            advertise_url,
            peers,
            join,
            cluster_id: self.cluster_id.unwrap_or(1),
            tick: Duration::from_millis(self.tick_ms.unwrap_or(10).max(1)),
            election_ticks,
            // A third of the shortest election timeout: each follower still hears the
            // leader about three times before it would stand, and the lease
            // (election_ticks - 2 from a round's send) outlives two rounds. A heartbeat
            // every tick cost an idle 3-node cluster ~58 ms of CPU per second.
            heartbeat_ticks: self.heartbeat_ticks.unwrap_or((election_ticks / 3).max(1)),
            check_quorum_ticks,
            lease_reads: self.lease_reads.unwrap_or(true),
            max_inflight_appends: self.max_inflight_appends.unwrap_or(64).max(1),
            snapshot_entries: positive(Some(self.snapshot_entries.unwrap_or(100_000))),
            snapshot_bytes: positive(Some(self.snapshot_bytes.unwrap_or(256 << 20))),
            request_timeout: Duration::from_millis(self.request_timeout_ms.unwrap_or(5000).max(1)),
            kv,
            security,
            join_token: self.join_token,
            http_limits,
            body_limits,
            unsafe_ack_before_fsync: self.unsafe_ack_before_fsync,
        })
    }

    /// `--insecure`, or all of the TLS files and the token file.
    fn security(&self) -> Result<Security, ConfigError> {
        let given = [&self.ca, &self.cert, &self.key, &self.tokens];
        if self.insecure.unwrap_or(false) {
            if given.iter().any(|g| g.is_some()) {
                return Err(ConfigError::Invalid(
                    "--insecure turns TLS and tokens off: drop --ca/--cert/--key/--tokens or --insecure".into(),
                ));
            }
            return Ok(Security::Insecure);
        }
        match (&self.ca, &self.cert, &self.key, &self.tokens) {
            (Some(ca), Some(cert), Some(key), Some(tokens)) => Ok(Security::Tls {
                files: TlsFiles {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                },
                tokens: tokens.clone(),
            }),
            _ => Err(ConfigError::Invalid(
                "raft-kv serve needs --ca, --cert, --key and --tokens (TLS and bearer tokens, see \
                 SECURITY.md), or --insecure for a plaintext node that anyone can control \
                 (tests and experiments only). `raft-kv dev-cluster` sets all of this up."
                    .into(),
            )),
        }
    }

    fn http_limits(&self) -> (HttpLimits, BodyLimits) {
        let http_defaults = HttpLimits::default();
        let body_defaults = BodyLimits::default();
        let ms = |value: Option<u64>, default: Duration| {
            value.map_or(default, |ms| Duration::from_millis(ms.max(1)))
        };
        let http = HttpLimits {
            connections_max: self
                .http_connections_max
                .unwrap_or(http_defaults.connections_max)
                .max(1),
            header_timeout: ms(self.http_header_timeout_ms, http_defaults.header_timeout),
            ..http_defaults
        };
        let body = BodyLimits {
            budget_bytes: self
                .http_body_budget_bytes
                .unwrap_or(body_defaults.budget_bytes),
            timeout: ms(self.http_body_timeout_ms, body_defaults.timeout),
        };
        (http, body)
    }
}

/// Parses `1=host:port,2=host:port`.
pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, SocketAddr>, ConfigError> {
    let mut peers = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, address) = item
            .split_once('=')
            .ok_or_else(|| ConfigError::Invalid(format!("peer `{item}`: expected ID=HOST:PORT")))?;
        let id: u64 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| ConfigError::Invalid(format!("peer `{item}`: bad node id")))?;
        let address: SocketAddr = address
            .trim()
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("peer `{item}`: bad address: {e}")))?;
        if peers.insert(id, address).is_some() {
            return Err(ConfigError::Invalid(format!("peer {id} is listed twice")));
        }
    }
    if peers.is_empty() {
        return Err(ConfigError::Invalid("--peers lists no node".into()));
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insecure() -> ServeArgs {
        ServeArgs {
            insecure: Some(true),
            ..ServeArgs::default()
        }
    }

    /// Goal: defaults suit a single node on a laptop.
    #[test]
    fn defaults_make_a_single_local_node() {
        let config = insecure().resolve().unwrap();
        assert_eq!(config.id, 1);
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8001");
        assert_eq!(config.advertise_url, "http://127.0.0.1:8001");
        assert_eq!(config.peers.len(), 1);
        assert_eq!(config.data_dir, PathBuf::from("raft-kv-data/node-1"));
    }

    /// Goal: a flag wins over the file, the file over the default; unknown keys in the file
    /// are refused with the file's name.
    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 2\nhttp_addr = \"127.0.0.1:9002\"\npeers = \"1=127.0.0.1:7001,2=127.0.0.1:7002\"\nsnapshot_entries = 0\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            http_addr: Some("127.0.0.1:9999".parse().unwrap()),
            ..insecure()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.id, 2);
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:9999");
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.snapshot_entries, None);
        std::fs::write(&path, "idd = 2\n").unwrap();
        let error = ServeArgs {
            config: Some(path),
            ..insecure()
        }
        .resolve()
        .unwrap_err();
        assert!(error.to_string().contains("node.toml"), "{error}");
    }

    /// Goal: malformed peer lists are refused with a message naming the item.
    #[test]
    fn peers_are_checked() {
        assert_eq!(
            parse_peers("1=127.0.0.1:1, 2=127.0.0.1:2").unwrap().len(),
            2
        );
        assert!(parse_peers("1=127.0.0.1:1,1=127.0.0.1:2").is_err());
        assert!(parse_peers("0=127.0.0.1:1").is_err());
        assert!(parse_peers("x").unwrap_err().to_string().contains("`x`"));
        let args = ServeArgs {
            id: Some(3),
            peers: Some("1=127.0.0.1:1".into()),
            ..insecure()
        };
        assert!(args.resolve().is_err());
    }

    /// Goal: secure by default: without TLS material a node refuses to start and says how
    /// to fix it; with it, the advertised URL is https; --insecure cannot be mixed in.
    #[test]
    fn tls_or_insecure_is_required() {
        let error = ServeArgs::default().resolve().unwrap_err().to_string();
        assert!(
            error.contains("--insecure") && error.contains("--ca"),
            "{error}"
        );
        let secure = ServeArgs {
            ca: Some("ca.pem".into()),
            cert: Some("node.pem".into()),
            key: Some("node.key".into()),
            tokens: Some("tokens.toml".into()),
            ..ServeArgs::default()
        };
        let config = secure.clone().resolve().unwrap();
        assert_eq!(config.advertise_url, "https://127.0.0.1:8001");
        assert!(matches!(config.security, Security::Tls { .. }));
        let mixed = ServeArgs {
            insecure: Some(true),
            ..secure
        };
        assert!(mixed.resolve().is_err());
    }

    /// Goal: the HTTP limit flags reach the limits; unset ones keep their defaults.
    #[test]
    fn http_limits_come_from_flags() {
        let config = ServeArgs {
            http_connections_max: Some(10),
            http_header_timeout_ms: Some(1500),
            http_body_budget_bytes: Some(1 << 20),
            ..insecure()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.http_limits.connections_max, 10);
        assert_eq!(
            config.http_limits.header_timeout,
            Duration::from_millis(1500)
        );
        assert_eq!(config.body_limits.budget_bytes, 1 << 20);
        assert_eq!(config.body_limits.timeout, BodyLimits::default().timeout);
        let too_small = ServeArgs {
            http_body_budget_bytes: Some(1000),
            ..insecure()
        };
        assert!(
            too_small
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("budget")
        );
    }

    /// Goal: the leader heartbeats every third of the shortest election timeout unless told
    /// otherwise (three heartbeats per timeout; the core refuses a heartbeat interval that
    /// is not below the election timeout, so short timeouts still start).
    #[test]
    fn heartbeat_defaults_to_a_third_of_the_election_timeout() {
        let resolve = |election_ticks, heartbeat_ticks| {
            ServeArgs {
                election_ticks,
                heartbeat_ticks,
                ..insecure()
            }
            .resolve()
            .unwrap()
        };
        let defaults = resolve(None, None);
        assert_eq!((defaults.election_ticks, defaults.heartbeat_ticks), (10, 3));
        assert_eq!(resolve(Some(30), None).heartbeat_ticks, 10);
        assert_eq!(resolve(Some(2), None).heartbeat_ticks, 1);
        assert_eq!(resolve(None, Some(1)).heartbeat_ticks, 1);
    }

    /// Goal: a leader checks for its quorum every ten election timeouts unless told
    /// otherwise (the core refuses a window below the election timeout at start).
    #[test]
    fn check_quorum_defaults_to_ten_election_timeouts() {
        let resolve = |election_ticks, check_quorum_ticks| {
            ServeArgs {
                election_ticks,
                check_quorum_ticks,
                ..insecure()
            }
            .resolve()
            .unwrap()
            .check_quorum_ticks
        };
        assert_eq!(resolve(None, None), 100);
        assert_eq!(resolve(Some(30), None), 300);
        assert_eq!(resolve(None, Some(10)), 10);
    }
}
