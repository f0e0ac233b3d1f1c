//! Connections that own their socket: the service each of [`crate::Server`]'s workers runs (HTTP/1
//! over TCP or TLS for the app, and an upgrade service), which hands an accepted WebSocket its
//! stream.
//!
//! The upgrade request goes through the `App` like any other request (routing, guards,
//! middleware, the route's handshake checks). A switchboard route sees the [`OwnsSocket`] marker
//! and answers 101 with a [`Takeover`] in the response's extensions instead of a streaming body.
//! This service then writes the 101 head itself and starts the connection on the bare socket.

use std::cell::OnceCell;
use std::convert::Infallible;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_codec::{Framed, FramedParts};
use actix_http::body::{self, BodySize, BoxBody, MessageBody};
use actix_http::{h1, ConnectionType, HttpMessage, HttpService, Request, Response, StatusCode};
use actix_rt::net::TcpStream;
use actix_service::boxed::{self, BoxServiceFactory};
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt,
};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::AppConfig;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls::ServerConfig;

use crate::connection::{Pending, Transport};
use crate::hub::Hub;
use crate::limits::{ConnectionSlots, HeldSlots, Slot};
use crate::protocol::{CloseCode, CloseFrame};

/// A body larger than this, on a response that is not a WebSocket upgrade, is not sent.
const ANSWER_BODY_MAX: usize = 64 << 10;

/// Put in the request's extensions by the upgrade service: the route may take the socket.
#[derive(Debug)]
pub(crate) struct OwnsSocket;

/// A started handshake, waiting in the 101 response's extensions for its socket.
pub(crate) struct Takeover {
    /// The connection, not yet reading, and its connection slot; taken when it starts.
    connection: Option<(Pending, HeldSlots)>,
    hub: Hub,
}

impl Takeover {
    /// Holds a connection whose session is already in `hub`, and its connection slots.
    pub(crate) fn new(pending: Pending, hub: Hub, slots: HeldSlots) -> Takeover {
        Takeover {
            connection: Some((pending, slots)),
            hub,
        }
    }

    /// Starts the connection on `io` as a task of its own; `leftover` is what the peer sent
    /// after its request, `server_slot` the connection's place under `Server::max_websockets`.
    ///
    /// The task is not part of the upgrade service's future: that future lives in actix-http's
    /// dispatcher task, and keeping the dispatcher alive for the connection's life doubled an idle
    /// WebSocket's memory (6.4 KB to 12.1 KB).
    fn start<T: Transport>(mut self, io: T, leftover: Bytes, server_slot: Slot) {
        if let Some((pending, slots)) = self.connection.take() {
            pending.run_owned(io, leftover, slots.and_server(server_slot));
        }
    }
}

impl Drop for Takeover {
    /// The session never started (a middleware replaced the 101, or writing it failed): it
    /// leaves the hub now, and its handle reports the connection closed.
    fn drop(&mut self) {
        if let Some((pending, _slot)) = self.connection.take() {
            let shared = &pending.socket().shared;
            log::info!("session {}: not upgraded after all", shared.id);
            let reason = "the upgrade did not happen";
            shared.outbound.abort(CloseFrame::new(CloseCode::ABNORMAL, reason));
            self.hub.disconnect(shared.id);
        }
    }
}

/// Answers one upgrade request: through `app`, then either by starting the WebSocket on the
/// socket or by writing the app's response and closing. A failed write ends only this socket.
pub(crate) async fn serve<S, B, T>(
    app: Option<Rc<S>>,
    req: Request,
    framed: Framed<T, h1::Codec>,
    websockets: ConnectionSlots,
) -> Result<(), Infallible>
where
    T: Transport,
    S: Service<Request>,
    S::Response: Into<Response<B>>,
    S::Error: Into<Response<BoxBody>>,
    B: MessageBody + 'static,
{
    req.extensions_mut().insert(OwnsSocket);
    let response = call_app(app, req).await;
    if let Err(error) = respond(framed, response, &websockets).await {
        log::debug!("writing the answer to an upgrade request failed: {error}");
    }
    Ok(())
}

/// The app's answer to an upgrade request.
async fn call_app<S, B>(app: Option<Rc<S>>, req: Request) -> Response<BoxBody>
where
    S: Service<Request>,
    S::Response: Into<Response<B>>,
    S::Error: Into<Response<BoxBody>>,
    B: MessageBody + 'static,
{
    match app {
        Some(app) => match app.call(req).await {
            Ok(response) => response.into().map_into_boxed_body(),
            Err(error) => error.into(),
        },
        None => Response::new(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// Starts the WebSocket the response carries, or writes the response. A WebSocket over the
/// server's limit is answered 503 instead (its session leaves the hub as the takeover drops).
async fn respond<T: Transport>(
    mut framed: Framed<T, h1::Codec>,
    response: Response<BoxBody>,
    websockets: &ConnectionSlots,
) -> io::Result<()> {
    let (mut head, body) = response.into_parts();
    let takeover = head.extensions_mut().remove::<Takeover>();
    let Some(takeover) = takeover else {
        return answer(framed, head, body).await;
    };
    let slot = match websockets.acquire() {
        Ok(slot) => slot,
        Err(rejection) => {
            log::info!("WebSocket upgrade refused: the server holds its maximum of WebSockets");
            drop(takeover);
            let response: Response<BoxBody> = actix_web::ResponseError::error_response(&rejection).into();
            let (head, body) = response.into_parts();
            return answer(framed, head, body).await;
        }
    };
    Pin::new(&mut framed).write(h1::Message::Item((head, BodySize::None)))?;
    flush(&mut framed).await?;
    let FramedParts { io, read_buf, .. } = framed.into_parts();
    takeover.start(io, read_buf.freeze(), slot);
    Ok(())
}

/// Writes a response that does not upgrade (a refused handshake, a 404) and closes.
async fn answer<T: AsyncRead + AsyncWrite + Unpin>(
    mut framed: Framed<T, h1::Codec>,
    mut head: Response<()>,
    mut body: BoxBody,
) -> io::Result<()> {
    if head.status() == StatusCode::SWITCHING_PROTOCOLS {
        // Its body streams frames for a payload actix-http never gave it: drop both.
        log::error!("a handler that is not a switchboard route answered 101; switchboard::Server cannot serve it");
        head = Response::new(StatusCode::NOT_IMPLEMENTED).drop_body();
        body = BoxBody::new(());
    }
    head.head_mut().set_connection_type(ConnectionType::Close);
    let bytes = match body::to_bytes_limited(body, ANSWER_BODY_MAX).await {
        Ok(Ok(bytes)) => bytes,
        _ => {
            log::warn!("the answer to an upgrade request has a body over 64 KiB or one that failed; sent without it");
            Bytes::new()
        }
    };
    let size = BodySize::Sized(bytes.len() as u64);
    Pin::new(&mut framed).write(h1::Message::Item((head, size)))?;
    if !bytes.is_empty() {
        Pin::new(&mut framed).write(h1::Message::Chunk(Some(bytes)))?;
    }
    Pin::new(&mut framed).write(h1::Message::Chunk(None))?;
    flush(&mut framed).await?;
    framed.io_mut().shutdown().await
}

async fn flush<T: AsyncRead + AsyncWrite + Unpin>(framed: &mut Framed<T, h1::Codec>) -> io::Result<()> {
    poll_fn(|cx| Pin::new(&mut *framed).flush::<h1::Message<(Response<()>, BodySize)>>(cx)).await
}

/// How a listener's connections arrive.
#[derive(Clone)]
pub(crate) enum Security {
    Plain,
    Tls(Arc<ServerConfig>),
}

/// One worker's service: HTTP/1 (over TLS or not) for the app, built once and shared by plain
/// requests and upgrade requests. Boxed, so that both kinds of listener have one type.
pub(crate) fn worker_service<F, I, S, B>(
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
                serve::<_, B, T>(app.get().cloned(), req, framed, websockets.clone())
            }))
        }
    })
}
