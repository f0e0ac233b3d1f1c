//! The client: [`WebSocket::connect`] and [`ClientBuilder`], handing over the same [`WebSocket`]
//! as the server, backed by the same connection actor.
//!
//! ```no_run
//! use switchboard::WebSocket;
//!
//! # async fn run() -> Result<(), switchboard::ConnectError> {
//! let ws = WebSocket::builder("ws://127.0.0.1:9001/echo")
//!     .header("Authorization", "Bearer secret")
//!     .protocols(["chat.v1"])
//!     // Register callbacks here: they are in place before the first frame is read.
//!     .on_connect(|ws| {
//!         ws.on_text(|_ws, text| log::info!("got {text}"));
//!     })
//!     .connect()
//!     .await?;
//! ws.send("hello").await.ok();
//! ws.close().await;
//! # Ok(())
//! # }
//! ```

mod error;
mod handshake;
mod reconnect;
mod transport;
mod url;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::metrics::Metrics;
use tokio_rustls::rustls::ClientConfig;

pub use error::ConnectError;
pub use reconnect::Reconnect;

use crate::config::{Compression, Config};
use crate::connection::Pending;
use crate::protocol::deflate::negotiate::{self, ClientOffer};
use crate::protocol::Role;
use crate::socket::WebSocket;

type OnConnect = Arc<dyn Fn(&WebSocket) + Send + Sync>;

/// Default for [`ClientBuilder::connect_timeout`]: DNS, TCP and TLS together.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ClientBuilder::handshake_timeout`]: the HTTP upgrade exchange.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for a client connection, made by [`WebSocket::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    url: String,
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    config: Config,
    tls: Option<Arc<ClientConfig>>,
    on_connect: Option<OnConnect>,
    reconnect: Option<Reconnect>,
}

impl WebSocket {
    /// Connects to `url` (`ws://` or `wss://`) with default settings. See [`WebSocket::builder`].
    ///
    /// # Errors
    ///
    /// A [`ConnectError`] saying what failed: the URL, DNS, TCP, TLS, a timeout, or the server's
    /// answer (its status when it did not upgrade).
    pub fn connect(url: impl Into<String>) -> impl Future<Output = Result<WebSocket, ConnectError>> {
        WebSocket::builder(url).connect()
    }

    /// A builder for a connection to `url`: headers, subprotocols, timeouts, limits, TLS,
    /// reconnection.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            headers: Vec::new(),
            protocols: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            config: Config::default(),
            tls: None,
            on_connect: None,
            reconnect: None,
        }
    }
}

impl ClientBuilder {
    /// Adds a request header (e.g. `Authorization`). A name that is not an HTTP token or a value
    /// with CR, LF or NUL makes [`connect`](Self::connect) fail with
    /// [`ConnectError::InvalidHeader`] before anything is sent.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The subprotocols to offer, preferred first; [`WebSocket::protocol`] says which the server
    /// chose.
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// How long DNS, TCP and TLS may take together (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the server may take to answer the upgrade request (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Limits and keepalive, as on the server (default [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The largest message (and frame) accepted from the server; a shortcut into
    /// [`ClientBuilder::config`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self.config.max_frame_size = bytes;
        self
    }

    /// The TLS configuration for `wss://` (default: the Mozilla root certificates from
    /// `webpki-roots`, no client certificate).
    pub fn tls(mut self, config: Arc<ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Runs `callback` with each new connection before its first frame is read: register the
    /// socket's callbacks here. With [`ClientBuilder::reconnect`] it runs again on every
    /// reconnection, with the new socket.
    pub fn on_connect(mut self, callback: impl Fn(&WebSocket) + Send + Sync + 'static) -> Self {
        self.on_connect = Some(Arc::new(callback));
        self
    }

    /// Reconnects with backoff when the connection drops (not when this side closes it). Off by
    /// default.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Connects. The connection runs on the current actix arbiter when there is one (inside
    /// `#[actix_web::main]` or an actor), else on switchboard's background arbiter, so this works
    /// from any async runtime.
    ///
    /// # Errors
    ///
    /// A [`ConnectError`] saying what failed.
    pub async fn connect(self) -> Result<WebSocket, ConnectError> {
        if actix_rt::Arbiter::try_current().is_some() {
            return self.connect_here().await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = crate::runtime::background().spawn(async move {
            let _ = tx.send(self.connect_here().await);
        });
        if !spawned {
            return Err(ConnectError::RuntimeGone);
        }
        rx.await.map_err(|_| ConnectError::RuntimeGone)?
    }

    async fn connect_here(self) -> Result<WebSocket, ConnectError> {
        let ws = self.open().await?;
        if let Some(policy) = self.reconnect.clone() {
            actix_rt::spawn(reconnect::keep_connected(self, policy, ws.clone()));
        }
        Ok(ws)
    }

    /// One connection attempt: transport, handshake, then the actor.
    async fn open(&self) -> Result<WebSocket, ConnectError> {
        let url = url::WsUrl::parse(&self.url)?;
        for (name, value) in &self.headers {
            handshake::check_header(name, value)?;
        }
        let mut stream = transport::open(&url, self.tls.clone(), self.connect_timeout).await?;
        let offer = client_offer(self.config.compression);
        let upgrade = transport::upgrade(&mut stream, &url, &self.protocols, &self.headers, offer.as_ref());
        let (agreed, leftover) = tokio::time::timeout(self.handshake_timeout, upgrade)
            .await
            .map_err(|_| ConnectError::HandshakeTimeout(self.handshake_timeout))??;
        let pending = Pending::new(
            Role::Client,
            agreed.protocol,
            Arc::new(self.config.clone()),
            client_metrics(),
            agreed.deflate,
        );
        let ws = pending.socket().clone();
        if let Some(on_connect) = &self.on_connect {
            on_connect(&ws);
        }
        pending.run_owned(stream, leftover, crate::limits::HeldSlots::default());
        log::debug!("client session {} connected to {}", ws.id(), self.url);
        Ok(ws)
    }
}

/// Counters of every client connection in the process.
pub fn client_metrics() -> Arc<Metrics> {
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    METRICS.get_or_init(Arc::default).clone()
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("protocols", &self.protocols)
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("reconnect", &self.reconnect)
            .finish_non_exhaustive()
    }
}

/// What a client offers for its `Config::compression`: to compress its own messages without
/// context takeover in the shared mode, with it in the dedicated mode; the server's side is the
/// server's choice within the window we accept.
fn client_offer(compression: Compression) -> Option<ClientOffer> {
    let (client_no_context_takeover, window) = match compression {
        Compression::Off => return None,
        Compression::Shared => (true, negotiate::MAX_WINDOW_BITS),
        Compression::Dedicated { window_bits, .. } => (false, window_bits),
    };
    Some(ClientOffer {
        server_no_context_takeover: false,
        client_no_context_takeover,
        server_max_window_bits: negotiate::MAX_WINDOW_BITS,
        client_max_window_bits: window,
    })
}
