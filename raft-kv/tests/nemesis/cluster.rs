//! Real `raft-kv serve` processes, each behind its fault proxy: a node listens on its own
//! Raft port but advertises its proxy's address (`--advertise-raft-addr`), so the replicated
//! address book (which replaces `--peers` shortly after start) keeps every link on a proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raft_kv::server::client::{ClientOptions, ClusterClient};
use raft_kv::server::wire::StatusBody;
use tempfile::TempDir;

use crate::ports::free_port;
use crate::proxy::Proxies;

/// How a node is started: the one place serve flags are built.
#[derive(Clone, Debug)]
pub(crate) struct NodeSpec {
    pub(crate) id: u64,
    pub(crate) data_dir: PathBuf,
    pub(crate) raft_addr: SocketAddr,
    pub(crate) proxy_addr: SocketAddr,
    pub(crate) http_port: u16,
    /// `--peers ...` for founders, `--join URL` for later nodes.
    pub(crate) membership: Vec<String>,
    /// Flags every node gets (the planted bug, later `--insecure`).
    pub(crate) extra: Vec<String>,
}

impl NodeSpec {
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Every flag of `raft-kv serve` for this node.
    fn serve_args(&self) -> Vec<String> {
        let mut args = vec![
            "serve".to_string(),
            "--id".into(),
            self.id.to_string(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--raft-addr".into(),
            self.raft_addr.to_string(),
            "--advertise-raft-addr".into(),
            self.proxy_addr.to_string(),
            "--http-addr".into(),
            format!("127.0.0.1:{}", self.http_port),
            // Plaintext: the fault proxies read each connection's hello to learn its link.
            "--insecure".into(),
        ];
        args.extend(self.membership.iter().cloned());
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// One node process.
pub(crate) struct Node {
    pub(crate) spec: NodeSpec,
    log: PathBuf,
    child: Option<Child>,
    /// Stopped with SIGSTOP and not yet continued.
    paused: bool,
    /// Removed from the cluster: never started again.
    pub(crate) retired: bool,
}

impl Node {
    pub(crate) fn id(&self) -> u64 {
        self.spec.id
    }

    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already runs", self.id());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_raft-kv"))
            .args(self.spec.serve_args())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn raft-kv serve");
        self.child = Some(child);
    }

    /// SIGKILL; returns whether a process was running.
    pub(crate) fn kill(&mut self) -> bool {
        self.resume();
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = child.kill();
        let _ = child.wait();
        true
    }

    fn signal(&self, signal: &str) -> bool {
        let Some(child) = &self.child else {
            return false;
        };
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// SIGSTOP; returns whether it was delivered.
    pub(crate) fn pause(&mut self) -> bool {
        self.paused = self.signal("-STOP");
        self.paused
    }

    /// SIGCONT if paused.
    pub(crate) fn resume(&mut self) {
        if self.paused {
            self.signal("-CONT");
            self.paused = false;
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether the process exited on its own (a crash); returns its status.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Lines of the node's log that show a panic.
    pub(crate) fn panics(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("panicked"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The nodes of one run, their proxies and their temporary directory.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    pub(crate) proxies: Proxies,
    dir: TempDir,
    extra: Vec<String>,
}

impl Cluster {
    /// Starts `n` founding members (ids 1..=n), each with `extra` serve flags.
    pub(crate) async fn start(n: u64, extra: &[String]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            proxies: Proxies::new(),
            dir,
            extra: extra.to_vec(),
        };
        let mut specs = Vec::new();
        for id in 1..=n {
            specs.push(cluster.spec(id, Vec::new()).await);
        }
        let peers = specs
            .iter()
            .map(|s| format!("{}={}", s.id, s.proxy_addr))
            .collect::<Vec<_>>()
            .join(",");
        for mut spec in specs {
            spec.membership = vec!["--peers".into(), peers.clone()];
            cluster.add_process(spec);
        }
        cluster
    }

    async fn spec(&self, id: u64, membership: Vec<String>) -> NodeSpec {
        let raft_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let proxy_addr = self.proxies.start(id, raft_addr).await;
        NodeSpec {
            id,
            data_dir: self.dir.path().join(format!("node-{id}")),
            raft_addr,
            proxy_addr,
            http_port: free_port(),
            membership,
            extra: self.extra.clone(),
        }
    }

    fn add_process(&mut self, spec: NodeSpec) -> usize {
        let log = self.dir.path().join(format!("node-{}.log", spec.id));
        self.nodes.push(Node {
            spec,
            log,
            child: None,
            paused: false,
            retired: false,
        });
        let index = self.nodes.len() - 1;
        self.nodes[index].start();
        index
    }

    /// Starts node `id` joining through `via` (a member's URL).
    pub(crate) async fn join(&mut self, id: u64, via: &str) -> usize {
        let spec = self.spec(id, vec!["--join".into(), via.to_string()]).await;
        self.add_process(spec)
    }

    pub(crate) fn node(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id() == id)
            .expect("node exists")
    }

    /// Ids of nodes that are members (not retired).
    pub(crate) fn member_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| !n.retired)
            .map(Node::id)
            .collect()
    }

    /// URLs of every node ever started (clients follow hints among them).
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.spec.url()).collect()
    }

    pub(crate) fn logs(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.id(), n.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The leader every running, unpaused member names, if they agree.
    pub(crate) async fn agreed_leader(&self) -> Option<u64> {
        let mut leader = None;
        for node in self
            .nodes
            .iter()
            .filter(|n| n.is_running() && !n.is_paused() && !n.retired)
        {
            let status = status_of(&node.spec.url()).await?;
            let this = status.leader?.id;
            if leader.is_some_and(|l| l != this) {
                return None;
            }
            leader = Some(this);
        }
        leader
    }

    /// Waits until the running members agree on a leader.
    pub(crate) async fn wait_leader(&self, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(leader) = self.agreed_leader().await {
                return Some(leader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits until the leader lists exactly the current members as voters (joins done,
    /// removals committed); returns the last voter list seen on failure.
    pub(crate) async fn wait_voters(&self, timeout: Duration) -> Result<(), Vec<u64>> {
        let mut wanted = self.member_ids();
        wanted.sort_unstable();
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(leader) = self.any_leader().await
                && let Some(status) = status_of(
                    &self
                        .nodes
                        .iter()
                        .find(|n| n.id() == leader)
                        .map(|n| n.spec.url())
                        .unwrap_or_default(),
                )
                .await
            {
                seen = status
                    .members
                    .iter()
                    .filter(|m| m.role == "voter")
                    .map(|m| m.id)
                    .collect();
                seen.sort_unstable();
                if seen == wanted {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(seen)
    }

    /// Some node's view of the leader (first that answers).
    pub(crate) async fn any_leader(&self) -> Option<u64> {
        for node in self
            .nodes
            .iter()
            .filter(|n| n.is_running() && !n.is_paused() && !n.retired)
        {
            if let Some(status) = status_of(&node.spec.url()).await
                && status.role == "leader"
            {
                return Some(status.id);
            }
        }
        None
    }
}

/// One node's status, or `None` when it does not answer within 500 ms.
pub(crate) async fn status_of(url: &str) -> Option<StatusBody> {
    let options = ClientOptions {
        credentials: Default::default(),
        request_timeout: Duration::from_millis(500),
        retry_for: Duration::ZERO,
    };
    let mut client = ClusterClient::new(&[url.to_string()], options).ok()?;
    client.status().await.ok()
}
