//! Real `raft-kv serve` processes on loopback ports, with temporary data dirs, driven over
//! HTTP with the crate's own client. Shared by the `cluster` and `hostile` test targets
//! (each uses part of it).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raft_kv::server::client::{ClientOptions, ClusterClient};
use raft_kv::server::credentials::{CredentialSources, Credentials, files};
use raft_kv::server::wire::StatusBody;
use tempfile::TempDir;

use crate::ports::free_port;

/// One node: its settings and, while running, its process.
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) raft_port: u16,
    http_port: u16,
    scheme: &'static str,
    log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    pub(crate) fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.http_port)
    }

    /// `127.0.0.1:<http port>`.
    pub(crate) fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// The process id while running.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process under a lower open-files limit (through `prlimit`), as a host
    /// with a small `ulimit -n` would.
    pub(crate) fn start_with_open_files_limit(&mut self, limit: u64) {
        assert!(self.child.is_none(), "node {} already runs", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let child = Command::new("prlimit")
            .arg(format!("--nofile={limit}:{limit}"))
            .arg(env!("CARGO_BIN_EXE_raft-kv"))
            .arg("serve")
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prlimit raft-kv serve");
        self.child = Some(child);
    }

    /// The whole log (for checks on what the node reported).
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts (or restarts) the process with the same settings and data dir.
    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already runs", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_raft-kv"))
            .arg("serve")
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn raft-kv serve");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush beyond what the node already synced.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited with success.
    pub(crate) fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The node's log so far (for failure messages).
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of nodes in one temporary directory.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    dir: TempDir,
    extra: Vec<String>,
    /// What clients present (CA, client certificate, admin token), when secure.
    pub(crate) credentials: Credentials,
    secure: bool,
}

impl Cluster {
    /// Starts `n` founding members with `--insecure`, each with `extra` serve flags.
    pub(crate) fn start(n: u64, extra: &[&str]) -> Cluster {
        Self::start_as(n, extra, false, |_| true)
    }

    /// Starts `n` founding members with generated TLS certificates and tokens (as
    /// `raft-kv dev-cluster` makes them), each with `extra` serve flags.
    pub(crate) fn start_secure(n: u64, extra: &[&str]) -> Cluster {
        Self::start_as(n, extra, true, |_| true)
    }

    /// Makes an `--insecure` cluster of `n` but starts only the nodes `start` selects.
    pub(crate) fn make(n: u64, extra: &[&str], start: impl Fn(u64) -> bool) -> Cluster {
        Self::start_as(n, extra, false, start)
    }

    fn start_as(n: u64, extra: &[&str], secure: bool, start: impl Fn(u64) -> bool) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let credentials = if secure {
            let credentials_dir = dir.path().join("credentials");
            raft_kv::server::devcerts::generate(&credentials_dir, n, &[])
                .expect("generate credentials");
            CredentialSources {
                dir: Some(credentials_dir),
                ..CredentialSources::default()
            }
            .load()
            .expect("load credentials")
        } else {
            Credentials::default()
        };
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, (raft, _))| format!("{}=127.0.0.1:{raft}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            dir,
            extra,
            credentials,
            secure,
        };
        for (i, (raft_port, http_port)) in ports.into_iter().enumerate() {
            let id = i as u64 + 1;
            let node = cluster.node(id, raft_port, http_port, &["--peers", &peers]);
            cluster.nodes.push(node);
        }
        for node in cluster.nodes.iter_mut().filter(|n| start(n.id)) {
            node.start();
        }
        cluster
    }

    /// The credentials directory of a secure cluster.
    pub(crate) fn credentials_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("credentials")
    }

    fn node(&self, id: u64, raft_port: u16, http_port: u16, membership: &[&str]) -> Node {
        let data_dir = self.dir.path().join(format!("node-{id}"));
        let mut args: Vec<String> = vec![
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--raft-addr".into(),
            format!("127.0.0.1:{raft_port}"),
            "--http-addr".into(),
            format!("127.0.0.1:{http_port}"),
        ];
        args.extend(membership.iter().map(|s| s.to_string()));
        args.extend(self.security_args(id));
        args.extend(self.extra.iter().cloned());
        Node {
            id,
            raft_port,
            http_port,
            scheme: if self.secure { "https" } else { "http" },
            log: self.dir.path().join(format!("node-{id}.log")),
            args,
            child: None,
        }
    }

    /// Starts a new node that joins through `via`'s API.
    pub(crate) fn join(&mut self, id: u64, via: &str) -> usize {
        let node = self.node(id, free_port(), free_port(), &["--join", via]);
        self.nodes.push(node);
        let index = self.nodes.len() - 1;
        self.nodes[index].start();
        index
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(Node::url)
            .collect()
    }

    pub(crate) fn by_id(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("node exists")
    }

    /// A client of every running node.
    pub(crate) fn client(&self) -> ClusterClient {
        let options = ClientOptions {
            credentials: self.credentials.clone(),
            ..ClientOptions::default()
        };
        ClusterClient::new(&self.urls(), options).expect("client")
    }

    /// The one helper that decides how the tests' nodes are secured: `--insecure` for the
    /// tests of replication, failover and API semantics; generated certificates and tokens
    /// for secure clusters (the `hostile` suite).
    fn security_args(&self, id: u64) -> Vec<String> {
        if !self.secure {
            return vec!["--insecure".into()];
        }
        let path = |name: &str| self.credentials_dir().join(name).display().to_string();
        vec![
            "--ca".into(),
            path(files::CA_CERT),
            "--cert".into(),
            path(&files::node_cert(id)),
            "--key".into(),
            path(&files::node_key(id)),
            "--tokens".into(),
            path(files::TOKENS),
        ]
    }

    /// Waits until every running node names the same leader, with its URL; returns it.
    pub(crate) async fn wait_leader(&self, timeout: Duration) -> u64 {
        self.wait_leader_other_than(0, timeout).await
    }

    /// Waits until every running node names the same leader, other than `old`.
    pub(crate) async fn wait_leader_other_than(&self, old: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.agreed_leader().await {
                Ok(leader) if leader != old => return leader,
                Ok(_) => last = format!("node {old} is still named leader"),
                Err(problem) => last = problem,
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "no agreed leader within {timeout:?}: {last}\n{}",
            self.logs()
        );
    }

    async fn agreed_leader(&self) -> Result<u64, String> {
        let mut leader = None;
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let status = status_with(&node.url(), &self.credentials).await?;
            let this = status
                .leader
                .ok_or(format!("node {} has no leader", node.id))?;
            if this.url.is_none() {
                return Err(format!("node {} lacks the leader's URL", node.id));
            }
            if leader.is_some_and(|l| l != this.id) {
                return Err("nodes disagree".into());
            }
            leader = Some(this.id);
        }
        leader.ok_or_else(|| "no running node".into())
    }

    pub(crate) fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.id, n.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One node's status (no retries).
pub(crate) async fn status_of(url: &str) -> Result<StatusBody, String> {
    status_with(url, &Credentials::default()).await
}

/// One node's status (no retries), presenting `credentials`.
pub(crate) async fn status_with(
    url: &str,
    credentials: &Credentials,
) -> Result<StatusBody, String> {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(500),
        retry_for: Duration::ZERO,
        credentials: credentials.clone(),
    };
    let mut client = ClusterClient::new(&[url.to_string()], options).map_err(|e| e.to_string())?;
    client.status().await.map_err(|e| e.to_string())
}

/// A client bound to one node only, that does not fail over.
pub(crate) fn node_client(url: &str) -> ClusterClient {
    // Generous: an election on a loaded machine can take seconds.
    let options = ClientOptions {
        request_timeout: Duration::from_secs(6),
        retry_for: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    ClusterClient::new(&[url.to_string()], options).expect("client")
}

/// Polls `condition` every 25 ms until it holds or `timeout` passes.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}
