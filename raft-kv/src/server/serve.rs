//! Running one node: storage, transport, the Raft node, the HTTP API, registration of the
//! node's client URL, joining a running cluster, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raft_runtime::{AddressBook, Init, PeerInfo, RuntimeConfig, SnapshotPolicy};
use raft_storage_file::FileStorage;
use raft_transport_tcp::{TcpConfig, TcpTransport, TlsConfig, Transport};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

use crate::KvStateMachine;
use crate::server::auth::Auth;
use crate::server::client::{ClientOptions, ClusterClient, random_u64};
use crate::server::config::{Security, ServeConfig};
use crate::server::credentials::Credentials;
use crate::server::http::{self, ApiState, Limits};
use crate::server::limits::{self, HttpLimits};
use crate::server::node::{KvNode, RuntimeBackend};
use crate::server::prom::HttpMetrics;
use crate::server::sabotage::AckBeforeSync;
use crate::server::tls;
use crate::server::wire::{AddMemberBody, MemberRole};

/// Why a node could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be created or opened.
    #[error("data dir {path}: {message}")]
    Storage {
        /// The directory.
        path: String,
        /// What failed.
        message: String,
    },
    /// An address could not be bound (in use, or not local).
    #[error("cannot listen on {address}: {message}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        message: String,
    },
    /// The node could not start.
    #[error("node start failed: {0}")]
    Start(String),
    /// The cluster to join could not be reached.
    #[error("cannot join through {url}: {message}")]
    Join {
        /// The member asked.
        url: String,
        /// Why.
        message: String,
    },
    /// The node stopped on a fatal error.
    #[error("node stopped: {0}")]
    Stopped(String),
    /// TLS material or the token file is unusable.
    #[error("security settings: {0}")]
    Security(String),
}

/// What a node uses to protect its API and to talk to other nodes' APIs.
struct NodeSecurity {
    auth: Auth,
    /// For the HTTPS listener.
    server_tls: Option<Arc<rustls::ServerConfig>>,
    /// For joining and forwarding: the CA and this node's certificate.
    client_tls: Option<Arc<rustls::ClientConfig>>,
}

impl NodeSecurity {
    fn load(security: &Security) -> Result<Self, ServeError> {
        let Security::Tls { files, tokens } = security else {
            tracing::warn!(
                "INSECURE: --insecure is set: no TLS and no authentication; anyone who can \
                 reach this node's ports can read, write and reconfigure the cluster"
            );
            return Ok(NodeSecurity {
                auth: Auth::open(),
                server_tls: None,
                client_tls: None,
            });
        };
        let error = |e: &dyn std::fmt::Display| ServeError::Security(e.to_string());
        let auth = Auth::from_file(tokens).map_err(|e| error(&e))?;
        let server_tls = tls::server_config(files).map_err(|e| error(&e))?;
        let client_tls = tls::client_config(&files.ca, Some((&files.cert, &files.key)))
            .map_err(|e| error(&e))?;
        Ok(NodeSecurity {
            auth,
            server_tls: Some(server_tls),
            client_tls: Some(client_tls),
        })
    }

    /// Credentials for calls to other nodes' APIs (joining), with `token`.
    fn credentials(&self, token: Option<String>) -> Credentials {
        Credentials {
            tls: self.client_tls.clone(),
            token,
        }
    }
}

/// The HTTP limits with the connection cap lowered under the open-files limit.
fn sized_http_limits(wanted: &HttpLimits) -> HttpLimits {
    let fd_limit = limits::open_files_limit();
    let connections_max = limits::connection_cap(wanted.connections_max, fd_limit);
    if connections_max < wanted.connections_max {
        // Info, not a warning: the default cap exceeds the usual 1024-descriptor limit.
        tracing::info!(
            wanted = wanted.connections_max,
            connections_max,
            open_files_limit = fd_limit,
            "HTTP connection cap lowered to keep descriptors for the Raft port; raise \
             `ulimit -n` for more"
        );
    }
    HttpLimits {
        connections_max,
        ..wanted.clone()
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the node");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Runs a node until `shutdown` resolves, then stops it gracefully: the HTTP server stops
/// accepting and finishes in-flight requests, then the node flushes and closes.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let span = tracing::info_span!("kv", node = config.id);
    // The signal's own log line ("SIGTERM received") then names the node too.
    let shutdown = shutdown.instrument(span.clone());
    serve_node(config, shutdown).instrument(span).await
}

async fn serve_node(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let security = NodeSecurity::load(&config.security)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| ServeError::Storage {
        path: config.data_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let http_listener =
        TcpListener::bind(config.http_addr)
            .await
            .map_err(|e| ServeError::Bind {
                address: config.http_addr,
                message: e.to_string(),
            })?;
    let join_credentials = security.credentials(config.join_token.clone());
    let init = initial_membership(&config, &join_credentials).await?;
    let (node, transport) = start_node(&config, init).await?;
    tracing::info!(
        node = config.id,
        raft = %config.raft_addr,
        http = %config.http_addr,
        data_dir = %config.data_dir.display(),
        "node started"
    );
    let (stop_tasks, stopped) = watch::channel(false);
    let span = tracing::Span::current();
    tokio::spawn(
        register_client_url(
            node.clone(),
            config.advertise_raft_addr,
            config.advertise_url.clone(),
            stopped.clone(),
        )
        .instrument(span.clone()),
    );
    if let Some(url) = &config.join {
        let join = join_cluster(
            node.clone(),
            config.clone(),
            url.clone(),
            join_credentials,
            stopped,
        );
        tokio::spawn(join.instrument(span));
    }
    let backend = Arc::new(RuntimeBackend::new(node.clone(), transport));
    let metrics = Arc::new(HttpMetrics::default());
    let state = ApiState::new(backend, Limits::from_kv(&config.kv), Arc::clone(&metrics))
        .with_security(security.auth, security.client_tls.clone())
        .with_body_limits(config.body_limits);
    let acceptor = security.server_tls.map(tokio_rustls::TlsAcceptor::from);
    // Watch streams never end on their own: end them as the graceful shutdown begins.
    let watches = state.watches().clone();
    let shutdown = async move {
        shutdown.await;
        watches.close();
    };
    limits::serve_http(
        http_listener,
        http::service(state),
        acceptor,
        sized_http_limits(&config.http_limits),
        metrics,
        shutdown,
    )
    .await;
    let _ = stop_tasks.send(true);
    tracing::info!("HTTP server stopped; stopping the node");
    node.shutdown()
        .await
        .map_err(|e| ServeError::Stopped(e.to_string()))?;
    tracing::info!("node stopped cleanly");
    Ok(())
}

/// How the node starts: founding a cluster from `--peers`, or joining through `--join`.
async fn initial_membership(
    config: &ServeConfig,
    credentials: &Credentials,
) -> Result<Init<SocketAddr>, ServeError> {
    let Some(url) = &config.join else {
        let members = config
            .peers
            .iter()
            .map(|(id, address)| (*id, PeerInfo::new(*address)))
            .collect();
        return Ok(Init::Bootstrap { members });
    };
    // The node must know the members' addresses to accept their connections before the
    // replicated address book reaches it.
    let options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_for: Duration::from_secs(10),
        credentials: credentials.clone(),
    };
    let join_error = |message: String| ServeError::Join {
        url: url.clone(),
        message,
    };
    let mut client = ClusterClient::new(std::slice::from_ref(url), options)
        .map_err(|e| join_error(e.to_string()))?;
    let members = match client.members().await {
        Ok(members) => members,
        // A node that joined before restarts from its own storage, which knows the members;
        // the member it joined through may be gone by now.
        Err(error) if has_state(&config.data_dir) => {
            tracing::warn!(%url, %error, "cannot reach the join URL; restarting from local state");
            return Ok(Init::Join {
                peers: AddressBook::new(),
            });
        }
        Err(error) => return Err(join_error(error.to_string())),
    };
    let mut peers = AddressBook::new();
    for member in members.members {
        let Some(address) = member.raft_addr.and_then(|a| a.parse::<SocketAddr>().ok()) else {
            continue;
        };
        let mut info = PeerInfo::new(address);
        info.client_url = member.url;
        peers.insert(member.id, info);
    }
    if peers.is_empty() {
        return Err(join_error(
            "the cluster reported no member addresses".into(),
        ));
    }
    Ok(Init::Join { peers })
}

/// Whether the data dir holds anything (a node that ran before).
fn has_state(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

async fn start_node(
    config: &ServeConfig,
    init: Init<SocketAddr>,
) -> Result<(KvNode, TcpTransport), ServeError> {
    let storage_error = |message: String| ServeError::Storage {
        path: config.data_dir.display().to_string(),
        message,
    };
    let storage = FileStorage::open(&config.data_dir).map_err(|e| storage_error(e.to_string()))?;
    let machine =
        KvStateMachine::new(config.kv.clone()).map_err(|e| ServeError::Start(e.to_string()))?;
    let mut tcp = TcpConfig::new(config.id, config.cluster_id, config.raft_addr);
    if let Security::Tls { files, .. } = &config.security {
        // The same files as HTTPS: the certificate must also name `node-<id>.raft`.
        let tls = TlsConfig::from_pem_files(&files.ca, &files.cert, &files.key)
            .map_err(|e| ServeError::Security(format!("peer TLS: {e}")))?;
        tcp = tcp.with_tls(tls);
    }
    let (transport, inbound) = TcpTransport::bind(tcp)
        .await
        .map_err(|e| ServeError::Bind {
            address: config.raft_addr,
            message: e.to_string(),
        })?;
    // Know the peers before the node starts (opening storage and bootstrapping take a
    // while): a peer dialling in meanwhile would otherwise be refused as an unknown node.
    let known_peers = match &init {
        Init::Bootstrap { members } => Some(members),
        Init::Join { peers } => Some(peers),
        Init::Restart => None,
    };
    for (id, info) in known_peers.into_iter().flatten() {
        if *id != config.id {
            let _ = transport.add_peer(*id, info.address);
        }
    }
    let mut raft = raft_core::Config::new(config.id, random_u64());
    raft.election_ticks = config.election_ticks;
    raft.heartbeat_ticks = config.heartbeat_ticks;
    raft.check_quorum_ticks = Some(config.check_quorum_ticks);
    raft.lease_reads = config.lease_reads;
    raft.max_inflight_appends = config.max_inflight_appends;
    // Session writes forwarded to a leader that died are re-sent to the next one.
    raft.retry_safe = raft_core::RetrySafe(crate::server::retry::carries_session);
    let mut runtime = RuntimeConfig::new(raft);
    runtime.tick_interval = config.tick;
    runtime.request_timeout = config.request_timeout;
    runtime.snapshot_policy = SnapshotPolicy {
        every_entries: config.snapshot_entries,
        every_bytes: config.snapshot_bytes,
    };
    let network = (transport.clone(), inbound);
    let node = if config.unsafe_ack_before_fsync {
        tracing::error!(
            "--unsafe-ack-before-fsync: TEST ONLY, this node acknowledges unsynced writes"
        );
        let storage = AckBeforeSync::new(storage);
        KvNode::start(runtime, init, storage, network, machine).await
    } else {
        KvNode::start(runtime, init, storage, network, machine).await
    }
    .map_err(|e| ServeError::Start(e.to_string()))?;
    Ok((node, transport))
}

/// Keeps this node's entry in the replicated address book pointing at its API URL, so
/// other nodes can name it as the leader to clients. Re-checks periodically: a concurrent
/// record from another node may carry an older copy of this entry.
async fn register_client_url(
    node: KvNode,
    raft_addr: SocketAddr,
    url: String,
    mut stopped: watch::Receiver<bool>,
) {
    let mut wait = Duration::from_millis(50);
    loop {
        let status = node.status();
        let member = status.raft.membership.contains(node.id());
        let registered = node.peers().get(&node.id()).is_some_and(|p| {
            p.client_url.as_deref() == Some(url.as_str()) && p.address == raft_addr
        });
        if member && !registered && status.raft.leader.is_some() {
            let info = PeerInfo::new(raft_addr).with_client_url(url.clone());
            match node.set_peer_info(node.id(), info).await {
                Ok(()) => tracing::info!(%url, "client URL registered"),
                Err(error) => tracing::debug!(%error, "client URL registration failed; will retry"),
            }
            wait = Duration::from_millis(50);
        } else if registered {
            wait = Duration::from_millis(500);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Asks the cluster to add this node as a learner, waits until it has caught up, then asks
/// for promotion to voter. Skipped when the node is already a voter (a restart).
async fn join_cluster(
    node: KvNode,
    config: ServeConfig,
    url: String,
    credentials: Credentials,
    mut stopped: watch::Receiver<bool>,
) {
    let options = ClientOptions {
        request_timeout: Duration::from_secs(10),
        retry_for: Duration::from_secs(30),
        credentials,
    };
    let Ok(mut client) = ClusterClient::new(std::slice::from_ref(&url), options) else {
        tracing::error!(%url, "bad join URL");
        return;
    };
    let learner = AddMemberBody {
        id: config.id,
        raft_addr: Some(config.advertise_raft_addr.to_string()),
        url: Some(config.advertise_url.clone()),
        role: MemberRole::Learner,
    };
    let voter = AddMemberBody {
        role: MemberRole::Voter,
        ..learner.clone()
    };
    loop {
        let membership = node.status().raft.membership;
        if membership.is_voter(config.id) {
            tracing::info!("this node is a voter of the cluster");
            return;
        }
        // The cluster's view decides, not our log: the entry that made us a learner may
        // have been overwritten (its leader died before committing it), and a leader no
        // longer sends to a node outside its membership, so our log would never learn it.
        let member = match client.members().await {
            Ok(members) => members.members.iter().any(|m| m.id == config.id),
            Err(_) => membership.is_learner(config.id),
        };
        let step = if member {
            catch_up_then_promote(&node, &mut client, &voter).await
        } else {
            tracing::info!(%url, "asking the cluster to add this node as a learner");
            client
                .add_member(&learner)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        if let Err(error) = step {
            tracing::warn!(%error, "joining the cluster: will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn catch_up_then_promote(
    node: &KvNode,
    client: &mut ClusterClient,
    voter: &AddMemberBody,
) -> Result<(), String> {
    let target = client.status().await.map_err(|e| e.to_string())?.commit;
    node.wait_for(Duration::from_secs(60), |s| s.raft.applied >= target)
        .await
        .map_err(|e| format!("catching up to index {target}: {e}"))?;
    tracing::info!(applied = target, "caught up; asking for promotion to voter");
    client
        .add_member(voter)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
