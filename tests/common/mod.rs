//! A switchboard server on 127.0.0.1 (port 0) in its own thread, and client helpers.

#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod chat;
pub mod process;
pub mod redis;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use futures_util::{SinkExt, StreamExt};
use switchboard::Hub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for something that should happen at once: a bound against hangs, not a
/// timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How a [`TestServer`] is served.
pub struct Options {
    /// actix's `client_request_timeout`: the handshake timeout.
    pub request_timeout: Duration,
    /// Serve TLS (on `HttpServer`).
    pub tls: Option<switchboard::rustls::ServerConfig>,
    /// On `switchboard::Server` rather than `HttpServer`.
    pub owned: bool,
    /// `switchboard::Server::max_websockets`.
    pub max_websockets: Option<usize>,
    /// A Redis URL: the server's hub is then one node of those sharing it.
    pub redis: Option<String>,
}

impl Default for Options {
    /// Five seconds to handshake, plain TCP, and the transport of the test binary:
    /// `switchboard::Server` in `tests/on_switchboard_server.rs`, which runs the server tests a
    /// second time, actix-web's `HttpServer` elsewhere.
    fn default() -> Self {
        Options {
            request_timeout: Duration::from_secs(5),
            tls: None,
            owned: env!("CARGO_CRATE_NAME") == "on_switchboard_server",
            max_websockets: None,
            redis: None,
        }
    }
}

#[cfg(feature = "redis")]
async fn clustered_hub(url: &str) -> Hub {
    let config = switchboard::redis::RedisConfig::new(url);
    Hub::with_broker(
        switchboard::redis::RedisBroker::connect(config)
            .await
            .expect("Redis answers"),
    )
}

#[cfg(not(feature = "redis"))]
async fn clustered_hub(_: &str) -> Hub {
    panic!("a test asked for Redis without the redis feature")
}

/// A running server; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Hub,
    pub handle: ServerHandle,
}

impl TestServer {
    /// Starts a one-worker server whose app is built by `configure`, given the server's hub.
    pub fn start<F>(configure: F) -> TestServer
    where
        F: Fn(&mut web::ServiceConfig, &Hub) + Send + Clone + 'static,
    {
        TestServer::spawn(Options::default(), configure)
    }

    /// Like [`TestServer::start`], with the handshake timeout (actix's `client_request_timeout`)
    /// set to `request_timeout`.
    pub fn start_with<F>(request_timeout: Duration, configure: F) -> TestServer
    where
        F: Fn(&mut web::ServiceConfig, &Hub) + Send + Clone + 'static,
    {
        let options = Options {
            request_timeout,
            ..Options::default()
        };
        TestServer::spawn(options, configure)
    }

    /// Like [`TestServer::start`], serving TLS (`wss://`) with `tls`.
    pub fn start_tls<F>(tls: switchboard::rustls::ServerConfig, configure: F) -> TestServer
    where
        F: Fn(&mut web::ServiceConfig, &Hub) + Send + Clone + 'static,
    {
        let options = Options {
            tls: Some(tls),
            ..Options::default()
        };
        TestServer::spawn(options, configure)
    }

    /// Like [`TestServer::start`], on a `switchboard::Server`: WebSocket connections own their
    /// socket after the upgrade.
    pub fn start_owned<F>(configure: F) -> TestServer
    where
        F: Fn(&mut web::ServiceConfig, &Hub) + Send + Clone + 'static,
    {
        let options = Options {
            owned: true,
            ..Options::default()
        };
        TestServer::spawn(options, configure)
    }

    /// Starts a server with every option given.
    pub fn spawn<F>(options: Options, configure: F) -> TestServer
    where
        F: Fn(&mut web::ServiceConfig, &Hub) + Send + Clone + 'static,
    {
        let _ = env_logger::builder().is_test(true).format_timestamp_millis().try_init();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let hub = match &options.redis {
                    Some(url) => clustered_hub(url).await,
                    None => Hub::start(),
                };
                let app_hub = hub.clone();
                let app = move || {
                    let hub = app_hub.clone();
                    let configure = configure.clone();
                    App::new()
                        .app_data(hub.clone())
                        .configure(move |cfg| configure(cfg, &hub))
                };
                let server = if options.owned {
                    let mut server = switchboard::Server::new(app)
                        .workers(1)
                        .disable_signals()
                        .client_request_timeout(options.request_timeout);
                    if let Some(max) = options.max_websockets {
                        server = server.max_websockets(max);
                    }
                    let server = match options.tls {
                        Some(tls) => server.listen_rustls(listener, tls),
                        None => server.listen(listener),
                    };
                    server.expect("listen").run()
                } else {
                    let server = HttpServer::new(app)
                        .workers(1)
                        .client_disconnect_timeout(Duration::ZERO)
                        .client_request_timeout(options.request_timeout)
                        .on_connect(switchboard::on_connect)
                        .disable_signals();
                    let server = match options.tls {
                        Some(tls) => server.listen_rustls_0_23(listener, tls),
                        None => server.listen(listener),
                    };
                    server.expect("listen").run()
                };
                tx.send((server.handle(), hub)).expect("test alive");
                let _ = server.await;
            });
        });
        let (handle, hub) = rx.recv().expect("server started");
        TestServer { addr, hub, handle }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Connects tokio-tungstenite to `path`.
    pub async fn connect(&self, path: &str) -> Client {
        let (client, response) = tokio_tungstenite::connect_async(self.url(path))
            .await
            .expect("handshake");
        assert_eq!(response.status(), 101);
        client
    }

    /// Sends raw bytes as an HTTP request and returns the response head.
    pub async fn raw_request(&self, request: &str) -> String {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        read_head(&mut stream).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// The echo route handler most tests mount: every text and binary message comes back.
pub fn echo(_: &actix_web::HttpRequest, ws: switchboard::WebSocket) {
    ws.on_text(|ws, text| {
        ws.send(text);
    });
    ws.on_binary(|ws, bytes| {
        ws.send(bytes);
    });
}

/// A handshake request for `path` with `extra` header lines (each ending in `\r\n`).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Reads an HTTP response head (up to the blank line).
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .expect("response in time")
        {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The value of header `name` in an HTTP head, or `""`.
pub fn header_value(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|line| {
            line.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// An `on_connect` callback that reports every text message into the returned channel.
pub fn reporting_texts() -> (
    impl Fn(&switchboard::WebSocket) + Send + Sync + 'static,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let on_connect = move |ws: &switchboard::WebSocket| {
        let tx = tx.clone();
        ws.on_text(move |_, t| drop(tx.send(t.to_string())));
    };
    (on_connect, rx)
}

/// The next data or close message, skipping pings and pongs.
pub async fn next_message(client: &mut Client) -> WsMessage {
    loop {
        let next = tokio::time::timeout(PATIENCE, client.next())
            .await
            .expect("a message in time");
        match next.expect("stream open").expect("no error") {
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            message => return message,
        }
    }
}

pub async fn next_text(client: &mut Client) -> String {
    match next_message(client).await {
        WsMessage::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

pub async fn send_text(client: &mut Client, text: &str) {
    client.send(WsMessage::text(text)).await.expect("send");
}

/// Waits for a value a server callback reports through a channel.
pub async fn report<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("reported in time")
        .expect("reporter alive")
}

/// Asks for an upgrade to `path` until one is answered 101: a connection slot frees just after
/// the connection holding it closed its socket. Fails after [`PATIENCE`].
pub async fn upgrade_once_a_slot_frees(server: &TestServer, path: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let head = server.raw_request(&upgrade_request(path, "")).await;
        if head.starts_with("HTTP/1.1 101") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never released: {head}"
        );
    }
}

/// A raw TCP peer that has completed the handshake for `path`.
pub async fn raw_connect(server: &TestServer, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(upgrade_request(path, "").as_bytes())
        .await
        .expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// One masked frame, as a client sends it; `first_byte` is FIN, RSV and opcode.
pub fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads server frames until a close frame and returns its code (None: the connection ended
/// without one).
pub async fn read_close_code(stream: &mut TcpStream) -> Option<u16> {
    read_close(stream).await.map(|(code, _)| code)
}

/// Reads server frames until a close frame and returns its code and reason (None: the
/// connection ended without one).
pub async fn read_close(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut decoder = switchboard::protocol::Decoder::new(switchboard::protocol::Role::Client, 1 << 26, 1 << 26);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        while let Ok(Some(event)) = decoder.next_event() {
            if let switchboard::protocol::Event::Close(frame) = event {
                return Some(frame.map_or((1005, String::new()), |f| (f.code.0, f.reason)));
            }
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("close in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        decoder.feed(&buf[..n]);
    }
}
