//! [`WsResponseBuilder`] and the one path every `start` function takes: check the handshake,
//! register the session, host the actor on its connection, answer 101.

use std::rc::Rc;
use std::sync::Arc;

use actix::dev::{ContextParts, Mailbox};
use actix::{Actor, Addr, AsyncContext, StreamHandler, Supervised};
use actix_http::ws::{Message, ProtocolError};
use actix_web::error::PayloadError;
use actix_web::{web, Error, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::Stream;

use crate::config::Config;
use crate::handshake::{self, Policy};
use crate::limits::HeldSlots;
use crate::route;

use super::inbox::{Inbox, InboxStream};
use super::mailbox::{Pump, Queue, SessionAddr};
use super::session::{ActorSession, Restart};
use super::WebsocketContext;

/// Starts a session actor with options: subprotocols, a frame size limit, supervision.
///
/// ```
/// use actix::{Actor, StreamHandler};
/// use actix_web::{web, Error, HttpRequest, HttpResponse};
/// use switchboard::ws;
///
/// struct Session;
/// impl Actor for Session {
///     type Context = ws::WebsocketContext<Self>;
/// }
/// impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
///     fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
///         if let Ok(ws::Message::Text(text)) = msg {
///             ctx.text(text);
///         }
///     }
/// }
///
/// async fn index(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, Error> {
///     ws::WsResponseBuilder::new(Session, &req, stream)
///         .protocols(&["chat.v2", "chat.v1"])
///         .frame_size(64 << 10)
///         .start()
/// }
/// ```
#[must_use = "nothing starts until `start` or `start_with_addr`"]
pub struct WsResponseBuilder<'a, A, T>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
    T: Stream<Item = Result<Bytes, PayloadError>> + 'static,
{
    actor: A,
    req: &'a HttpRequest,
    stream: T,
    protocols: Option<&'a [&'a str]>,
    frame_size: Option<usize>,
    restart: Option<Restart<A>>,
}

impl<A, T> std::fmt::Debug for WsResponseBuilder<'_, A, T>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
    T: Stream<Item = Result<Bytes, PayloadError>> + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsResponseBuilder")
            .field("protocols", &self.protocols)
            .field("frame_size", &self.frame_size)
            .field("supervised", &self.restart.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a, A, T> WsResponseBuilder<'a, A, T>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
    T: Stream<Item = Result<Bytes, PayloadError>> + 'static,
{
    /// A builder for `actor` on the upgrade request `req`, whose body is `stream` (the handler's
    /// `web::Payload`; on `switchboard::Server` the connection reads the socket itself).
    pub fn new(actor: A, req: &'a HttpRequest, stream: T) -> Self {
        WsResponseBuilder {
            actor,
            req,
            stream,
            protocols: None,
            frame_size: None,
            restart: None,
        }
    }

    /// The subprotocols this endpoint speaks, in its order of preference: the first of them the
    /// client offers is agreed (actix-web-actors took the client's order).
    pub fn protocols(mut self, protocols: &'a [&'a str]) -> Self {
        self.protocols = Some(protocols);
        self
    }

    /// The largest frame the peer may send (default: the app's [`Config`], 16 MiB; it was
    /// 64 KiB in actix-web-actors). A larger one closes the connection with 1009.
    pub fn frame_size(mut self, frame_size: usize) -> Self {
        self.frame_size = Some(frame_size);
        self
    }

    /// Restart the actor after a panic in one of its handlers, as actix's `Supervisor` does:
    /// its `restarting` hook runs, then `started`, and the connection stays open, up to
    /// [`Config::max_restarts`] in [`Config::restart_window`]; past that, or without this, the
    /// connection closes with 1011. The panicking message is lost.
    pub fn supervised(mut self) -> Self
    where
        A: Supervised,
    {
        self.restart = Some(|fut| fut.restart());
        self
    }

    /// Checks the handshake and starts the actor.
    ///
    /// # Errors
    ///
    /// A failed handshake, answered with the status that says why
    /// ([`HandshakeRejection`](crate::HandshakeRejection): 400, 405, 426, or 503 when the hub is
    /// too busy to register another session).
    pub fn start(self) -> Result<HttpResponse, Error> {
        self.start_with_addr().map(|(_, response)| response)
    }

    /// As [`start`](Self::start), and answers the actor's address too.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with_addr(self) -> Result<(Addr<A>, HttpResponse), Error> {
        launch(self)
    }
}

/// The app's [`Config`] for session actors: `app_data` as `Config` or `web::Data<Config>`,
/// else the defaults.
fn config_of(req: &HttpRequest) -> Config {
    req.app_data::<Config>()
        .cloned()
        .or_else(|| req.app_data::<web::Data<Config>>().map(|c| c.get_ref().clone()))
        .unwrap_or_default()
}

fn launch<A, T>(builder: WsResponseBuilder<'_, A, T>) -> Result<(Addr<A>, HttpResponse), Error>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
    T: Stream<Item = Result<Bytes, PayloadError>> + 'static,
{
    let WsResponseBuilder {
        actor,
        req,
        stream,
        protocols,
        frame_size,
        restart,
    } = builder;
    let policy = Policy::any_origin(protocols.unwrap_or_default());
    let accepted = handshake::check(req, &policy).inspect_err(|e| route::log_rejection(req, e))?;
    let mut config = config_of(req);
    if let Some(size) = frame_size {
        config.max_frame_size = size;
    }
    let config = Arc::new(config);
    let hub = route::hub_of(req, None);
    let name = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
    let mut response = route::switching_protocols(&accepted);
    let deflate = route::negotiate_compression(req, &config, &mut response);
    let mut pending = route::register(req, &hub, accepted.protocol, config.clone(), &name, deflate)?;

    let ws = pending.socket().clone();
    let mailbox = Mailbox::default();
    let queue = Queue::new(config.mailbox_capacity, &ws.shared);
    let inbox = Rc::new(Inbox::default());
    let parts = ContextParts::new(mailbox.sender_producer());
    let mut ctx = WebsocketContext::new(parts, ws.clone(), inbox.clone(), hub.clone(), queue.clone());
    ctx.add_stream(InboxStream(inbox));
    ctx.spawn(Pump::new(queue.clone()));
    hub.remember_actor(ws.id(), Box::new(SessionAddr::new(queue)));
    let (addr, session) = ActorSession::new(actor, ctx, mailbox, restart, config);
    pending.set_session(Box::new(session));
    log::debug!("session {} (actor) upgraded on {name}", ws.id());
    let response = route::start(pending, hub, req, Box::pin(stream), response, HeldSlots::default());
    Ok((addr, response))
}
