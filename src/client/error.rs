//! [`ConnectError`]: every way opening a client connection fails.

use std::io;

/// Why [`WebSocket::connect`](crate::WebSocket::connect) failed. Each variant says what to fix or
/// whether retrying can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `ws://` or `wss://` URL. Fix the URL.
    #[error("invalid WebSocket URL {url:?}: {why}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A header given to [`ClientBuilder::header`](crate::ClientBuilder::header) cannot be sent:
    /// its name is not an HTTP token, or its value holds CR, LF or NUL (which would let it add
    /// headers of its own). Nothing was sent; fix the header.
    #[error("invalid request header {name:?}: {why}")]
    InvalidHeader {
        /// The header's name, as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The host name did not resolve. Check the name; retrying helps only if DNS was down.
    #[error("cannot resolve {host}: {source}")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No TCP connection could be made (refused, unreachable). Is the server running there?
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried last.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// The TCP connection (and TLS handshake) took longer than the connect timeout.
    #[error("connecting took longer than {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// The TLS handshake failed: an untrusted or mismatched certificate, or no common protocol.
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// The server did not answer the upgrade within the handshake timeout.
    #[error("the server did not complete the WebSocket handshake within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// The server answered with another status than 101 (404: wrong path; 401/403: credentials
    /// or origin refused; 426: version; 503: the server is full).
    #[error("the server answered {status} {reason} instead of upgrading")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The status line's reason phrase.
        reason: String,
    },
    /// A 101 without `Upgrade: websocket` and `Connection: upgrade`.
    #[error("the server's 101 response does not upgrade to websocket")]
    NotUpgraded,
    /// The `Sec-WebSocket-Accept` header is missing or does not match our key: not a WebSocket
    /// server, or a proxy in the way.
    #[error("the server's Sec-WebSocket-Accept does not match the key sent")]
    BadAccept,
    /// The server selected a subprotocol the client did not offer.
    #[error("the server selected subprotocol {0:?}, which was not offered")]
    UnofferedProtocol(String),
    /// The response is not HTTP, or is too large.
    #[error("malformed handshake response: {0}")]
    MalformedResponse(String),
    /// The connection closed before the handshake completed.
    #[error("the server closed the connection during the handshake")]
    ClosedDuringHandshake,
    /// Reading or writing the socket failed during the handshake.
    #[error("I/O error during the handshake: {0}")]
    Io(#[from] io::Error),
    /// The background runtime that runs connections made outside actix stopped.
    #[error("the switchboard runtime is gone")]
    RuntimeGone,
}
