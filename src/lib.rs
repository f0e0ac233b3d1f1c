//! switchboard: an actor-model WebSocket runtime on actix and actix-web.
//!
//! Every connection is an actor that reads the peer's frames and runs the callbacks its route's
//! handler registered on its [`WebSocket`] handle. A supervisor, reached through a cloneable
//! [`Hub`], knows every route and session and broadcasts between them.
//!
//! # A server
//!
//! A WebSocket route is an actix-web service: mount it in any `App`, beside other routes and
//! under scopes and middleware. Serve the app with [`Server`], which takes the same app factory
//! as actix-web's `HttpServer` and lets each accepted WebSocket read and write its own socket (or
//! TLS stream: [`Server::bind_rustls`]); `HttpServer` works too, with frames passing through
//! actix-web's dispatcher.
//!
//! ```no_run
//! use actix_web::App;
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     switchboard::Server::new(|| {
//!         App::new().service(switchboard::websocket("/echo", |_req, ws| {
//!             ws.on_text(|ws, text| {
//!                 ws.send(text.as_str());
//!             });
//!             ws.on_binary(|ws, bytes| {
//!                 ws.send(bytes);
//!             });
//!         }))
//!     })
//!     .bind(("127.0.0.1", 9001))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! # Reaching sessions from anywhere
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use switchboard::Hub;
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let hub = Hub::start();
//!     let ticker = hub.clone();
//!     tokio::spawn(async move {
//!         loop {
//!             tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//!             let _ = ticker.broadcast("/ticks", "tick").await;
//!         }
//!     });
//!     HttpServer::new(move || App::new().service(switchboard::websocket("/ticks", |_, _| {}).hub(&hub)))
//!         .bind(("127.0.0.1", 9001))?
//!         .run()
//!         .await
//! }
//! ```
//!
//! # Several nodes as one
//!
//! With the `redis` cargo feature, `Hub::with_broker(RedisBroker::connect(...).await?)` makes the
//! hub one node of several sharing a Redis: broadcasts, rooms, presence and messages to sessions
//! and users cross between them ([`Broker`] is the seam; docs/scaling.md the whole story).
//!
//! `docs/guide.md` walks through every part: sending, receiving, closing, ping/pong. The
//! protocol itself lives in [`protocol`], which does no I/O.

mod callbacks;
mod client;
mod config;
mod connection;
mod error;
mod handshake;
mod hub;
mod json;
mod limits;
mod message;
mod metrics;
pub mod protocol;
mod raw_socket;
#[cfg(feature = "redis")]
pub mod redis;
mod route;
mod runtime;
mod server;
pub mod shutdown;
mod socket;
mod takeover;
pub mod ws;

pub use client::{client_metrics, ClientBuilder, ConnectError, Reconnect};
pub use config::{Compression, Config};
pub use error::{InvalidCloseCode, SendError};
pub use handshake::{accept_key, HandshakeRejection};
pub use hub::{
    Broker, BrokerCommand, BrokerError, Hub, HubError, Inbox, Member, PresenceChange, PresenceEvent, SessionId,
    Undelivered, DEFAULT_PRESENCE_TTL,
};
pub use message::{Message, Text};
pub use metrics::{BrokerSnapshot, DropReason, Metrics, MetricsSnapshot};
pub use protocol::{CloseCode, CloseFrame};
pub use raw_socket::on_connect;
pub use route::{websocket, WebSocketRoute};
/// The serde_json version [`WebSocket::send_json`] and [`WebSocket::on_json`] use.
pub use serde_json;
pub use server::Server;
pub use socket::{SendFuture, WebSocket};
/// The rustls version the client's [`ClientBuilder::tls`] takes.
pub use tokio_rustls::rustls;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
struct GuideDocTests;
