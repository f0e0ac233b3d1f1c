//! [`Server`]: serves an actix-web `App` and gives each WebSocket connection its own socket.
//!
//! switchboard routes work under `actix_web::HttpServer` too. There, every frame passes through
//! actix-web's HTTP/1 dispatcher: the peer's bytes arrive as chunks of a read buffer the
//! dispatcher shares, and every outgoing chunk is copied into its write buffer. `Server` takes
//! the same `App` factory. Upgrade requests still go through the `App` (routes, guards,
//! middleware, extractors, the route's handshake checks), but once a switchboard route accepts,
//! the connection reads and writes the TCP socket itself.
//!
//! ```no_run
//! use actix_web::{web, App};
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     switchboard::Server::new(|| {
//!         App::new()
//!             .route("/", web::get().to(|| async { "plain HTTP works as before" }))
//!             .service(switchboard::websocket("/ws", |_, ws| {
//!                 ws.on_text(|ws, text| {
//!                     ws.send(text);
//!                 });
//!             }))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! What differs from `HttpServer` (docs/architecture.md has the why):
//!
//! - An upgrade request that a switchboard route does not accept gets the app's answer and the
//!   connection is closed after it, instead of being kept alive.
//! - Other upgrade handlers (actix-ws, actix-web-actors) get no request body there, so they
//!   cannot work: serve them with `HttpServer`. A 101 from one of them is answered 501.
//! - HTTP/1 only (over TCP, or TLS with [`Server::bind_rustls`]), and only the settings below;
//!   `HttpServer`'s other settings keep their actix-web defaults. `req.app_config()` holds
//!   actix-web's default host, not the bound one.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::{Request, Response};
use actix_server::ServerBuilder;
use actix_service::{IntoServiceFactory, ServiceFactory};
use actix_web::dev::{AppConfig, Server as Running};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_rustls::rustls::ServerConfig;

use crate::limits::ConnectionSlots;
use crate::takeover::{worker_service, Security};

/// Connections the kernel queues before they are accepted, as actix-web's `HttpServer`: enough
/// for a burst of reconnects.
const DEFAULT_BACKLOG: u32 = 2048;

/// How long a client may take to send its request head, as actix-web's `HttpServer`.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP/1 server for an actix-web `App` whose WebSocket connections own their sockets.
///
/// Built like `actix_web::HttpServer`: [`Server::new`] with the app factory, then
/// [`Server::bind`] or [`Server::listen`], then [`Server::run`].
#[must_use]
pub struct Server<F> {
    factory: F,
    builder: ServerBuilder,
    backlog: u32,
    request_timeout: Duration,
    websockets: ConnectionSlots,
    addrs: Vec<SocketAddr>,
}

impl<F> fmt::Debug for Server<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl<F> Server<F> {
    /// A server for the apps `factory` builds: one per worker thread.
    pub fn new(factory: F) -> Server<F> {
        Server {
            factory,
            builder: ServerBuilder::default(),
            backlog: DEFAULT_BACKLOG,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            websockets: ConnectionSlots::new(None),
            addrs: Vec::new(),
        }
    }

    /// How many worker threads accept and serve connections. Default: one per CPU core.
    ///
    /// # Panics
    ///
    /// Panics if `workers` is 0.
    pub fn workers(mut self, workers: usize) -> Self {
        self.builder = self.builder.workers(workers);
        self
    }

    /// Leaves SIGINT and SIGTERM alone, for [`crate::shutdown::on_signal`] to handle them.
    pub fn disable_signals(mut self) -> Self {
        self.builder = self.builder.disable_signals();
        self
    }

    /// How long a stop waits for workers to finish, in seconds. Default: 30.
    pub fn shutdown_timeout(mut self, seconds: u64) -> Self {
        self.builder = self.builder.shutdown_timeout(seconds);
        self
    }

    /// How many connections a listener queues before they are accepted. Default: 2048. Set it
    /// before [`Server::bind`]; it does not apply to [`Server::listen`]'s ready-made listener.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// The addresses served so far, with the port the system chose where port 0 was asked.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// How long a client may take to send its request head (the WebSocket handshake) before it
    /// is answered 408 and dropped. Default: 5 s. Set it before [`Server::bind`] or
    /// [`Server::listen`].
    pub fn client_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The most WebSocket connections the whole server holds at once, over all its workers and
    /// routes; an upgrade over it is answered 503 (a load balancer can try another node).
    /// Default: no limit. Set it before [`Server::bind`] or [`Server::listen`].
    pub fn max_websockets(mut self, max: usize) -> Self {
        self.websockets = ConnectionSlots::new(Some(max));
        self
    }

    /// How many HTTP connections each worker serves at once; more wait to be accepted. Default:
    /// 25,000. A connection leaves this count when it becomes a WebSocket: limit those with
    /// [`Server::max_websockets`] (and per route with `Config::max_connections`).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.builder = self.builder.max_concurrent_connections(max);
        self
    }

    /// Starts the workers. The returned server runs until it is stopped or awaited to the end.
    pub fn run(self) -> Running {
        self.builder.run()
    }

    /// Serves on a listener that is already bound (port 0 in tests).
    ///
    /// # Errors
    ///
    /// The listener's address cannot be read, or it cannot be registered with the runtime.
    pub fn listen<I, S, B>(self, listener: TcpListener) -> io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        self.listen_with::<I, S, B>(listener, Security::Plain)
    }

    /// Serves `wss://` (and HTTPS) on a listener that is already bound, with `config` (rustls
    /// 0.23; the server adds `http/1.1` to its ALPN protocols). WebSockets accepted there read and
    /// write the TLS stream themselves, as plain ones do their socket.
    ///
    /// # Errors
    ///
    /// As [`Server::listen`].
    pub fn listen_rustls<I, S, B>(self, listener: TcpListener, config: ServerConfig) -> io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        self.listen_with::<I, S, B>(listener, Security::Tls(Arc::new(config)))
    }

    fn listen_with<I, S, B>(mut self, listener: TcpListener, security: Security) -> io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let addr = listener.local_addr()?;
        self.addrs.push(addr);
        let (factory, timeout, websockets) = (self.factory.clone(), self.request_timeout, self.websockets.clone());
        self.builder = self.builder.listen(format!("switchboard-{addr}"), listener, move || {
            worker_service::<_, I, S, B>(&factory, addr, timeout, websockets.clone(), security.clone())
        })?;
        Ok(self)
    }

    /// Binds every address `addrs` resolves to (with the [`Server::backlog`] set so far) and
    /// serves on each.
    ///
    /// # Errors
    ///
    /// An address does not resolve or cannot be bound.
    pub fn bind<I, S, B>(self, addrs: impl ToSocketAddrs) -> io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        self.bind_with::<I, S, B>(addrs, Security::Plain)
    }

    /// Binds as [`Server::bind`] does, and serves `wss://` there with `config`; see
    /// [`Server::listen_rustls`].
    ///
    /// ```no_run
    /// use actix_web::App;
    /// use switchboard::rustls::pki_types::pem::PemObject;
    /// use switchboard::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    ///
    /// #[actix_web::main]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let certs = CertificateDer::pem_file_iter("cert.pem")?.collect::<Result<Vec<_>, _>>()?;
    ///     let key = PrivateKeyDer::from_pem_file("key.pem")?;
    ///     let config = switchboard::rustls::ServerConfig::builder()
    ///         .with_no_client_auth()
    ///         .with_single_cert(certs, key)?;
    ///     switchboard::Server::new(|| App::new().service(switchboard::websocket("/ws", |_, _| {})))
    ///         .bind_rustls(("0.0.0.0", 443), config)?
    ///         .run()
    ///         .await?;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Server::bind`].
    pub fn bind_rustls<I, S, B>(self, addrs: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        self.bind_with::<I, S, B>(addrs, Security::Tls(Arc::new(config)))
    }

    fn bind_with<I, S, B>(mut self, addrs: impl ToSocketAddrs, security: Security) -> io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        for addr in addrs.to_socket_addrs()? {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(i32::try_from(self.backlog).unwrap_or(i32::MAX))?;
            self = self.listen_with::<I, S, B>(socket.into(), security.clone())?;
        }
        Ok(self)
    }
}
