//! [`websocket`]: a WebSocket route as an ordinary actix-web service.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use crate::hub::Hub;
use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::config::{Compression, Config};
use crate::connection::Pending;
use crate::handshake::{self, HandshakeRejection, Policy};
use crate::limits::{ConnectionSlots, HeldSlots};
use crate::protocol::deflate::negotiate::{self, ServerPolicy};
use crate::protocol::deflate::Agreed;
use crate::protocol::Role;
use crate::raw_socket::RawSocket;
use crate::socket::WebSocket;
use crate::takeover::{OwnsSocket, Takeover};

type Handler = Rc<dyn Fn(&HttpRequest, WebSocket)>;
type Hook = Rc<dyn Fn(&HttpRequest) -> Result<HeaderMap, HandshakeRejection>>;

/// A WebSocket route at `path`: every connection upgraded there is handed to `handler`, which
/// registers its callbacks before the first frame is read.
///
/// Mount it like any actix-web service, beside ordinary routes and inside scopes (whose
/// middleware runs before the upgrade). The path can hold parameters (`/rooms/{room}`), read
/// from the request the handler gets.
///
/// ```no_run
/// use actix_web::{web, App, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     HttpServer::new(|| {
///         App::new()
///             .route("/health", web::get().to(|| async { "ok" }))
///             .service(switchboard::websocket("/echo", |_req, ws| {
///                 ws.on_text(|ws, text| {
///                     ws.send(text.as_str());
///                 });
///             }))
///     })
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// }
/// ```
pub fn websocket<F>(path: &str, handler: F) -> WebSocketRoute
where
    F: Fn(&HttpRequest, WebSocket) + 'static,
{
    WebSocketRoute {
        path: path.to_owned(),
        name: None,
        handler: Rc::new(handler),
        config: Config::default(),
        policy: Policy::default(),
        hook: None,
        hub: None,
    }
}

/// A WebSocket route, made by [`websocket`]; its methods set the route's handshake policy.
pub struct WebSocketRoute {
    path: String,
    name: Option<String>,
    handler: Handler,
    config: Config,
    policy: Policy,
    hook: Option<Hook>,
    hub: Option<Hub>,
}

impl WebSocketRoute {
    /// The limits and timers of this route's connections (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Accepts only handshakes whose `Origin` is one of `origins` (e.g. `"https://app.example"`);
    /// others get 403. Browsers always send `Origin`, so this stops other sites from opening
    /// sockets with your users' cookies (cross-site WebSocket hijacking). Default: any origin.
    pub fn origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.policy.origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// The subprotocols this route speaks, preferred first. The first one the client also
    /// offers is selected and shown by [`WebSocket::protocol`]; with no match, none is.
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.policy.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// A hook that sees each handshake request after the protocol checks: return headers to add
    /// to the 101 response, or a [`HandshakeRejection`] (e.g.
    /// [`HandshakeRejection::refused`]) to answer with its status instead of upgrading.
    pub fn should_upgrade<F>(mut self, hook: F) -> Self
    where
        F: Fn(&HttpRequest) -> Result<HeaderMap, HandshakeRejection> + 'static,
    {
        self.hook = Some(Rc::new(hook));
        self
    }

    /// The hub this route's sessions join; the route is registered with it when mounted.
    ///
    /// Without it, a [`Hub`] found in the app's `app_data` (as `Hub` or `web::Data<Hub>`) is
    /// used, else [`Hub::global`].
    pub fn hub(mut self, hub: &Hub) -> Self {
        self.hub = Some(hub.clone());
        self
    }

    /// The name the hub knows this route by (default: the path as given to [`websocket`]).
    /// Set it when two routes share a path under different scopes.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl std::fmt::Debug for WebSocketRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketRoute")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("config", &self.config)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What each request to a mounted route needs.
struct RouteState {
    name: String,
    handler: Handler,
    config: Arc<Config>,
    policy: Policy,
    hook: Option<Hook>,
    hub: Option<Hub>,
    slots: ConnectionSlots,
}

impl HttpServiceFactory for WebSocketRoute {
    fn register(self, config: &mut AppService) {
        let name = self.name.unwrap_or_else(|| self.path.clone());
        if let Some(hub) = &self.hub {
            hub.register_route(name.clone());
        }
        let state = Rc::new(RouteState {
            slots: ConnectionSlots::for_route(&name, self.config.max_connections),
            name,
            handler: self.handler,
            config: Arc::new(self.config),
            policy: self.policy,
            hook: self.hook,
            hub: self.hub,
        });
        let resource = web::resource(self.path).to(move |req: HttpRequest, payload: web::Payload| {
            let state = state.clone();
            async move { upgrade(&state, &req, payload) }
        });
        resource.register(config);
    }
}

/// Checks the handshake, hands the socket to the route's handler, starts the connection and
/// answers 101.
fn upgrade(state: &RouteState, req: &HttpRequest, payload: web::Payload) -> Result<HttpResponse, HandshakeRejection> {
    let accepted = handshake::check(req, &state.policy).inspect_err(|e| log_rejection(req, e))?;
    let extra = match &state.hook {
        Some(hook) => hook(req).inspect_err(|e| log_rejection(req, e))?,
        None => HeaderMap::new(),
    };
    let slot = state.slots.acquire().inspect_err(|e| log_rejection(req, e))?;

    let mut response = switching_protocols(&accepted);
    for (name, value) in extra {
        response.append_header((name, value));
    }
    let deflate = negotiate_compression(req, &state.config, &mut response);
    let hub = hub_of(req, state.hub.as_ref());
    let pending = register(req, &hub, accepted.protocol, state.config.clone(), &state.name, deflate)?;
    let ws = pending.socket().clone();
    if catch_unwind(AssertUnwindSafe(|| (state.handler)(req, ws.clone()))).is_err() {
        log::error!("the handler of route {} panicked; answering 500", state.name);
        hub.disconnect(ws.id());
        return Err(HandshakeRejection::refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        ));
    }
    log::debug!("session {} upgraded on {} ({})", ws.id(), state.name, req.path());
    Ok(start(pending, hub, req, payload, response, HeldSlots::route(slot)))
}

/// The 101 answer to an accepted handshake.
pub(crate) fn switching_protocols(accepted: &handshake::Accepted) -> HttpResponseBuilder {
    let mut response = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
    response
        .upgrade("websocket")
        .insert_header((header::SEC_WEBSOCKET_ACCEPT, accepted.accept.as_str()));
    if let Some(protocol) = accepted.protocol.as_deref().and_then(|p| HeaderValue::from_str(p).ok()) {
        response.insert_header((header::SEC_WEBSOCKET_PROTOCOL, protocol));
    }
    response
}

/// Chooses permessage-deflate parameters from the client's offers, if `config` turns
/// compression on, and puts the answer in `response`.
pub(crate) fn negotiate_compression(
    req: &HttpRequest,
    config: &Config,
    response: &mut HttpResponseBuilder,
) -> Option<Agreed> {
    let policy = match config.compression {
        Compression::Off => return None,
        Compression::Shared => ServerPolicy {
            context_takeover: false,
            max_window_bits: negotiate::MAX_WINDOW_BITS,
        },
        Compression::Dedicated { window_bits, .. } => ServerPolicy {
            context_takeover: true,
            max_window_bits: window_bits,
        },
    };
    let offers = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .filter_map(|v| v.to_str().ok());
    let agreed = policy.accept(offers)?;
    response.insert_header((header::SEC_WEBSOCKET_EXTENSIONS, agreed.response_header()));
    Some(agreed)
}

/// The hub a connection registers with: the route's own, else the app's (`app_data`, as `Hub`
/// or `web::Data<Hub>`), else the process-wide one.
pub(crate) fn hub_of(req: &HttpRequest, own: Option<&Hub>) -> Hub {
    own.cloned()
        .or_else(|| req.app_data::<Hub>().cloned())
        .or_else(|| req.app_data::<web::Data<Hub>>().map(|hub| hub.get_ref().clone()))
        .unwrap_or_else(Hub::global)
}

/// Makes the connection's handle and registers its session with `hub` under `route` (before
/// any handler runs, so the handler's own broadcasts include it).
///
/// # Errors
///
/// [`HandshakeRejection::Overloaded`] (503) when the hub's supervisor is too busy.
pub(crate) fn register(
    req: &HttpRequest,
    hub: &Hub,
    protocol: Option<String>,
    config: Arc<Config>,
    route: &str,
    deflate: Option<Agreed>,
) -> Result<Pending, HandshakeRejection> {
    let max_rooms = config.max_rooms;
    let pending = Pending::new(Role::Server, protocol, config, hub.metrics_handle(), deflate);
    let shared = &pending.socket().shared;
    hub.connect(shared.id, route, shared.clone(), max_rooms)
        .map_err(|error| {
            let rejection = HandshakeRejection::Overloaded;
            log::warn!(
                "session {} not registered with the hub ({error}); answering 503",
                shared.id
            );
            log_rejection(req, &rejection);
            rejection
        })?;
    shared.joined(hub);
    Ok(pending)
}

/// Starts the connection and finishes its 101: on `switchboard::Server`, which writes the 101
/// itself and hands the socket over; under `HttpServer`, reading `payload` with the socket's
/// frames as the body. `slots` are released when the connection ends.
pub(crate) fn start<P, E>(
    pending: Pending,
    hub: Hub,
    req: &HttpRequest,
    payload: P,
    mut response: HttpResponseBuilder,
    slots: HeldSlots,
) -> HttpResponse
where
    P: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin + 'static,
    E: std::fmt::Display + 'static,
{
    if req.extensions().contains::<OwnsSocket>() {
        let mut response = response.finish();
        response.extensions_mut().insert(Takeover::new(pending, hub, slots));
        return response;
    }
    let body = pending.run_dispatched(payload, RawSocket::of(req), slots);
    response.streaming(body)
}

pub(crate) fn log_rejection(req: &HttpRequest, rejection: &HandshakeRejection) {
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    log::info!(
        "handshake from {peer} to {} refused ({}): {rejection}",
        req.path(),
        rejection.status()
    );
}
