//! The fault proxy: one listener per target node, standing in for its Raft address. Every
//! peer connection opens with a fixed-size hello naming the dialler, so the proxy knows the
//! directed link `from -> to` of each connection and can cut it one way. A Raft connection
//! carries frames one way only (dialler to receiver), so cutting `i -> j` silences exactly
//! what `i` sends to `j`.
//!
//! Counters per directed link (connections, bytes) are how the harness proves that a fault
//! took effect: traffic flows through the proxies while healthy, and a cut link forwards
//! nothing while cut.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use raft_transport_tcp::handshake::{HELLO_BYTES, Hello};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Traffic through one directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkCounters {
    /// Connections accepted and forwarded.
    pub(crate) connections: u64,
    /// Connections refused because the link was cut.
    pub(crate) refused: u64,
    /// Bytes forwarded from the dialler to the target.
    pub(crate) bytes: u64,
}

#[derive(Default)]
struct State {
    cut: BTreeSet<(u64, u64)>,
    counters: BTreeMap<(u64, u64), LinkCounters>,
}

/// The proxies of a cluster and the link state they share.
#[derive(Clone)]
pub(crate) struct Proxies {
    state: Arc<Mutex<State>>,
    /// Bumped on every cut, so open connections re-check their link.
    epoch: watch::Sender<u64>,
}

impl Proxies {
    pub(crate) fn new() -> Proxies {
        Proxies {
            state: Arc::default(),
            epoch: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panicking proxy task cannot leave the sets half-updated (single inserts).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the proxy for node `to`, forwarding to `target`; returns its address.
    pub(crate) async fn start(&self, to: u64, target: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let proxies = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let proxies = proxies.clone();
                tokio::spawn(async move { proxies.serve(stream, to, target).await });
            }
        });
        address
    }

    pub(crate) fn is_cut(&self, from: u64, to: u64) -> bool {
        self.lock().cut.contains(&(from, to))
    }

    /// Cuts `from -> to`; open connections on it are closed.
    pub(crate) fn cut(&self, from: u64, to: u64) {
        self.lock().cut.insert((from, to));
        self.epoch.send_modify(|e| *e += 1);
    }

    pub(crate) fn heal_all(&self) {
        self.lock().cut.clear();
    }

    pub(crate) fn counters(&self) -> BTreeMap<(u64, u64), LinkCounters> {
        self.lock().counters.clone()
    }

    fn count(&self, link: (u64, u64), update: impl FnOnce(&mut LinkCounters)) {
        update(self.lock().counters.entry(link).or_default());
    }

    async fn serve(self, mut inbound: TcpStream, to: u64, target: SocketAddr) {
        let mut hello = [0u8; HELLO_BYTES];
        if inbound.read_exact(&mut hello).await.is_err() {
            return;
        }
        let Ok(from) = Hello::decode(&hello).map(|h| h.node_id) else {
            return;
        };
        let link = (from, to);
        if self.is_cut(from, to) {
            self.count(link, |c| c.refused += 1);
            return;
        }
        let Ok(mut outbound) = TcpStream::connect(target).await else {
            return;
        };
        let _ = outbound.set_nodelay(true);
        let _ = inbound.set_nodelay(true);
        if outbound.write_all(&hello).await.is_err() {
            return;
        }
        self.count(link, |c| c.connections += 1);
        let (mut in_read, mut in_write) = inbound.into_split();
        let (mut out_read, mut out_write) = outbound.into_split();
        // The receiver's reply (and nothing else) flows back.
        let back = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
        });
        let mut epoch = self.epoch.subscribe();
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            let read = tokio::select! {
                read = in_read.read(&mut buffer) => read,
                _ = epoch.changed() => {
                    if self.is_cut(from, to) { break } else { continue }
                }
            };
            let Ok(n) = read else { break };
            if n == 0 {
                break;
            }
            // Checked and counted under one lock, so a cut is never missed mid-chunk.
            let cut = {
                let mut state = self.lock();
                let cut = state.cut.contains(&link);
                let counters = state.counters.entry(link).or_default();
                if !cut {
                    counters.bytes += n as u64;
                }
                cut
            };
            if cut || out_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        back.abort();
    }
}
