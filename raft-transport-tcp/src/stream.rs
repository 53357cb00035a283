//! What a peer connection runs over: a TCP socket, optionally inside TLS.
//!
//! Both kinds are handled as one boxed byte stream, so the handshake, the frame reader and
//! the lane writer are written once. The indirection costs a virtual call per read or
//! write of a whole batch, nothing per message.

use std::io;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::TcpConfig;

/// Keepalive probes left unanswered before the kernel closes a connection.
const KEEPALIVE_RETRIES: u32 = 3;

/// A byte stream to or from a peer.
pub(crate) trait PeerStream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> PeerStream for T {}

/// A peer connection, plaintext or TLS.
pub(crate) type BoxedStream = Box<dyn PeerStream>;

/// Socket options every peer connection gets: no Nagle delay (frames are already
/// coalesced), and keepalive, so a peer that vanished without closing is noticed even on a
/// lane that carries nothing.
pub(crate) fn configure_socket(stream: &TcpStream, config: &TcpConfig) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(config.keepalive_time)
        .with_interval(config.keepalive_interval)
        .with_retries(KEEPALIVE_RETRIES);
    SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Goal: peer sockets really carry the configured keepalive and no Nagle delay.
    #[tokio::test]
    async fn peer_sockets_get_keepalive_and_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("bound");
        let stream = TcpStream::connect(address).await.expect("connect");
        let mut config = TcpConfig::new(1, 7, address);
        config.keepalive_time = Duration::from_secs(7);
        config.keepalive_interval = Duration::from_secs(3);
        configure_socket(&stream, &config).expect("socket options");
        let socket = SockRef::from(&stream);
        assert!(socket.keepalive().expect("read option"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("read option"),
            Duration::from_secs(7)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().expect("read option"),
            Duration::from_secs(3)
        );
        assert_eq!(
            socket.tcp_keepalive_retries().expect("read option"),
            KEEPALIVE_RETRIES
        );
        assert!(stream.nodelay().expect("read option"));
    }
}
