//! Session actors: every connection an actix actor the application writes, with the API of
//! actix-web-actors' `ws` module.
//!
//! An actor written for `actix_web_actors::ws` compiles with its `use` line changed to
//! `use switchboard::ws;`, on actix-web's `HttpServer` with `web::Payload` as before and on
//! [`Server`](crate::Server). It runs on switchboard's connection core, so with no code of its
//! own it gets messages reassembled from their fragments and UTF-8 checked, size limits (1009),
//! the close handshake, one pong per ping, a keepalive, the bounded outbound queue, graceful
//! shutdown (1001), metrics, and a session in the [`Hub`](crate::Hub): broadcasts, rooms and
//! `send_to` reach its peer without a line in the actor.
//!
//! # An echo actor
//!
//! ```no_run
//! use actix::{Actor, StreamHandler};
//! use actix_web::{web, App, Error, HttpRequest, HttpResponse};
//! use switchboard::ws;
//!
//! struct Echo;
//!
//! impl Actor for Echo {
//!     type Context = ws::WebsocketContext<Self>;
//! }
//!
//! impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Echo {
//!     fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
//!         match msg {
//!             Ok(ws::Message::Text(text)) => ctx.text(text),
//!             Ok(ws::Message::Binary(bin)) => ctx.binary(bin),
//!             Ok(ws::Message::Ping(msg)) => ctx.pong(&msg), // sent once: the core answered already
//!             Ok(ws::Message::Close(reason)) => ctx.close(reason),
//!             _ => {}
//!         }
//!     }
//! }
//!
//! async fn index(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, Error> {
//!     ws::start(Echo, &req, stream)
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     switchboard::Server::new(|| App::new().route("/ws", web::get().to(index)))
//!         .bind(("127.0.0.1", 8080))?
//!         .run()
//!         .await
//! }
//! ```
//!
//! # What the actor can do beyond actix-web-actors
//!
//! - Join rooms and name its user: [`WebsocketContext::join`], [`leave`](WebsocketContext::leave),
//!   [`set_user`](WebsocketContext::set_user); [`WebsocketContext::id`] is its
//!   [`SessionId`](crate::SessionId).
//! - Filter or rewrite hub messages per recipient:
//!   [`intercept_broadcasts`](WebsocketContext::intercept_broadcasts) and `Handler<`[`Broadcast`]`>`.
//! - Be reached from any code that holds the hub, by id, with a typed message:
//!   [`Hub::addr`](crate::Hub::addr) gives a [`SessionAddr`], whose mailbox is bounded with a
//!   stated overflow rule ([`Overflow`]).
//! - Survive its own panics: [`WsResponseBuilder::supervised`] restarts it (actix's
//!   `Supervised::restarting`) within a budget, without dropping the socket.
//!
//! The limits and timers come from the [`Config`](crate::Config) in the app's `app_data` (as
//! `Config` or `web::Data<Config>`), the hub from its `app_data` likewise, else the process-wide
//! one. `docs/guide.md` ("Actors") walks through it; `docs/migrating.md` shows a port.

mod builder;
mod context;
mod inbox;
mod mailbox;
mod session;
mod wake;

use actix::{Actor, Addr, StreamHandler};
use actix_web::error::PayloadError;
use actix_web::{Error, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::Stream;

pub use actix_http::ws::{CloseCode, CloseReason, Frame, HandshakeError, Message, ProtocolError};
pub use builder::WsResponseBuilder;
pub use context::WebsocketContext;
pub use mailbox::{MailboxError, Overflow, SessionAddr};

use crate::handshake::{self, HandshakeRejection, Policy};

/// A hub message for a session whose actor intercepts them
/// ([`WebsocketContext::intercept_broadcasts`]): send it on with `ctx.text` or `ctx.binary`,
/// change it, or drop it.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "()")]
pub struct Broadcast(pub crate::Message);

/// Checks the handshake and starts `actor` on the connection.
///
/// # Errors
///
/// A failed handshake, answered with the status that says why (see [`WsResponseBuilder::start`]).
pub fn start<A, T>(actor: A, req: &HttpRequest, stream: T) -> Result<HttpResponse, Error>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
    T: Stream<Item = Result<Bytes, PayloadError>> + 'static,
{
    WsResponseBuilder::new(actor, req, stream).start()
}

/// As [`start`], and answers the actor's address (prefer [`WsResponseBuilder::start_with_addr`]).
///
/// # Errors
///
/// As [`start`].
pub fn start_with_addr<A, T>(actor: A, req: &HttpRequest, stream: T) -> Result<(Addr<A>, HttpResponse), Error>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
    T: Stream<Item = Result<Bytes, PayloadError>> + 'static,
{
    WsResponseBuilder::new(actor, req, stream).start_with_addr()
}

/// As [`start`], agreeing one of `protocols` (prefer [`WsResponseBuilder::protocols`]).
///
/// # Errors
///
/// As [`start`].
pub fn start_with_protocols<A, T>(
    actor: A,
    protocols: &[&str],
    req: &HttpRequest,
    stream: T,
) -> Result<HttpResponse, Error>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
    T: Stream<Item = Result<Bytes, PayloadError>> + 'static,
{
    WsResponseBuilder::new(actor, req, stream).protocols(protocols).start()
}

/// Checks `req` as a WebSocket handshake and answers the 101 response to finish.
///
/// Only the checks: it starts nothing (use [`start`] for that). Kept for code that inspects a
/// handshake before deciding.
///
/// # Errors
///
/// [`HandshakeError`] saying what is wrong with the request.
pub fn handshake(req: &HttpRequest) -> Result<HttpResponseBuilder, HandshakeError> {
    handshake_with_protocols(req, &[])
}

/// As [`handshake`], agreeing one of `protocols` (in this order of preference) when the client
/// offers it.
///
/// # Errors
///
/// As [`handshake`].
pub fn handshake_with_protocols(req: &HttpRequest, protocols: &[&str]) -> Result<HttpResponseBuilder, HandshakeError> {
    let accepted = handshake::check(req, &Policy::any_origin(protocols)).map_err(|rejection| match rejection {
        HandshakeRejection::NotGet => HandshakeError::GetMethodRequired,
        HandshakeRejection::NotUpgrade => HandshakeError::NoWebsocketUpgrade,
        HandshakeRejection::UnsupportedVersion => HandshakeError::UnsupportedVersion,
        HandshakeRejection::BadKey | HandshakeRejection::DuplicateKey => HandshakeError::BadWebsocketKey,
        _ => HandshakeError::NoConnectionUpgrade,
    })?;
    Ok(crate::route::switching_protocols(&accepted))
}
