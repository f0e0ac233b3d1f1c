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

use std::cell::OnceCell;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use std::convert::Infallible;
use std::sync::Arc;

use actix_codec::Framed;
use actix_http::body::{BoxBody, MessageBody};
use actix_http::{h1, HttpService, Request, Response};
use actix_rt::net::TcpStream;
use actix_server::ServerBuilder;
use actix_service::boxed::{self, BoxServiceFactory};
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt,
};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::{AppConfig, Server as Running};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_rustls::rustls::ServerConfig;

use crate::connection::Transport;
use crate::limits::ConnectionSlots;
use crate::takeover;

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

/// How a listener's connections arrive.
#[derive(Clone)]
enum Security {
    Plain,
    Tls(Arc<ServerConfig>),
}

/// One worker's service: HTTP/1 (over TLS or not) for the app, built once and shared by plain
/// requests and upgrade requests. Boxed, so that both kinds of listener have one type.
fn worker_service<F, I, S, B>(
    factory: &F,
    addr: SocketAddr,
    request_timeout: Duration,
    websockets: ConnectionSlots,
    security: Security,
) -> BoxServiceFactory<(), TcpStream, (), (), ()>
where
    F: Fn() -> I,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let app = Rc::new(OnceCell::new());
    let make_app = map_config(
        factory().into_factory().map_err(|error| error.into().error_response()),
        |_| AppConfig::default(),
    );
    let keep = app.clone();
    let plain = fn_factory(move || {
        let service = make_app.new_service(());
        let keep = keep.clone();
        async move {
            let service = Rc::new(service.await?);
            let _ = keep.set(service.clone());
            Ok::<_, S::InitError>(service)
        }
    });
    // One builder per branch: its stream type is the branch's.
    macro_rules! builder {
        () => {
            HttpService::build()
                .local_addr(addr)
                // Frames are batched by the outbound queue already; waiting to coalesce adds latency.
                .tcp_nodelay(true)
                .client_request_timeout(request_timeout)
        };
    }
    let init_failed = |_| log::error!("the app of a worker failed to start");
    match security {
        Security::Plain => boxed::factory(
            builder!()
                .upgrade(upgrade_service::<_, B, TcpStream>(app, websockets))
                .finish(plain)
                .tcp()
                .map_err(|error| log::debug!("HTTP connection failed: {error:?}"))
                .map_init_err(init_failed),
        ),
        Security::Tls(config) => boxed::factory(
            builder!()
                .upgrade(upgrade_service::<_, B, TlsStream<TcpStream>>(app, websockets))
                .finish(plain)
                .rustls_0_23((*config).clone())
                .map_err(|error| log::debug!("HTTPS connection failed: {error:?}"))
                .map_init_err(init_failed),
        ),
    }
}

/// The upgrade service of one worker: hands each upgrade request to the app, then starts the
/// WebSocket the app accepted on its stream, `T` (TCP or TLS).
fn upgrade_service<A, B, T>(
    app: Rc<OnceCell<Rc<A>>>,
    websockets: ConnectionSlots,
) -> impl ServiceFactory<(Request, Framed<T, h1::Codec>), Config = (), Response = (), Error = Infallible, InitError = ()>
where
    A: Service<Request> + 'static,
    A::Response: Into<Response<B>>,
    A::Error: Into<Response<BoxBody>>,
    B: MessageBody + 'static,
    T: Transport,
{
    fn_factory(move || {
        let (app, websockets) = (app.clone(), websockets.clone());
        async move {
            Ok::<_, ()>(fn_service(move |(req, framed): (Request, Framed<T, h1::Codec>)| {
                takeover::serve::<_, B, T>(app.get().cloned(), req, framed, websockets.clone())
            }))
        }
    })
}
