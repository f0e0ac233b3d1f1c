//! Connections that own their TCP socket: [`crate::Server`]'s upgrade service, and the reader
//! that feeds the socket's bytes to a connection actor (`crate::writer` writes its frames).
//!
//! The upgrade request goes through the `App` like any other request (routing, guards,
//! middleware, the route's handshake checks). A switchboard route sees the [`OwnsSocket`] marker
//! and answers 101 with a [`Takeover`] in the response's extensions instead of a streaming body.
//! This service then writes the 101 head itself and starts the connection on the bare socket.

use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::hub::Hub;
use actix_codec::{Framed, FramedParts};
use actix_http::body::{self, BodySize, BoxBody, MessageBody};
use actix_http::{h1, ConnectionType, HttpMessage, Request, Response, StatusCode};
use actix_service::Service;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

use crate::connection::Pending;
use crate::limits::{ConnectionSlots, Slot};
use crate::outbound::{Outbound, OutboundStream};
use crate::protocol::{CloseCode, CloseFrame};
use crate::writer::{write_frames, write_through};

/// The smallest read buffer, and the least free space a read is given: less and a large message
/// takes too many syscalls.
const READ_MIN: usize = 4 << 10;

/// The largest read buffer. The size adapts between the two: it doubles after a read that
/// filled it and halves after one that used under a quarter of it.
const READ_MAX: usize = 256 << 10;

/// A connection that goes quiet keeps a read buffer up to this size, and lets a larger one go,
/// so that ten thousand idle connections do not hold their last burst's buffer.
const READ_KEEP: usize = 8 << 10;

/// A body larger than this, on a response that is not a WebSocket upgrade, is not sent.
const ANSWER_BODY_MAX: usize = 64 << 10;

/// Put in the request's extensions by the upgrade service: the route may take the socket.
#[derive(Debug)]
pub(crate) struct OwnsSocket;

/// A started handshake, waiting in the 101 response's extensions for its socket.
pub(crate) struct Takeover {
    /// The connection, not yet reading, and its connection slot; taken when it starts.
    connection: Option<(Pending, Box<dyn Send>)>,
    hub: Hub,
}

impl Takeover {
    /// Holds a connection whose session is already in `hub`, and its connection slot.
    pub(crate) fn new(pending: Pending, hub: Hub, slot: Box<dyn Send>) -> Takeover {
        Takeover {
            connection: Some((pending, slot)),
            hub,
        }
    }

    /// Starts the connection actor on `io`, and its writer; `leftover` is what the peer sent
    /// after its request, `server_slot` the connection's place under `Server::max_websockets`.
    ///
    /// The writer is a task of its own, not part of the upgrade service's future: that future
    /// lives in actix-http's dispatcher task, and keeping the dispatcher alive for the
    /// connection's life doubled an idle WebSocket's memory (6.4 KB to 12.1 KB).
    fn start(mut self, io: TcpStream, leftover: Bytes, server_slot: Slot) {
        let Some((pending, slot)) = self.connection.take() else {
            return;
        };
        // Frames are batched by the outbound queue already; waiting to coalesce adds latency.
        let _ = io.set_nodelay(true);
        let (read, write) = io.into_split();
        let outbound = pending.outbound();
        let shared = pending.socket().shared.clone();
        let timeout = pending.config().write_timeout;
        let reader = Reader::new(read, leftover, outbound.clone());
        pending.run(reader, Some(self.hub.clone()), Box::new((slot, server_slot)), None);
        let on_timeout = move || shared.write_timed_out(timeout.unwrap_or_default());
        actix_rt::spawn(write_frames(write, OutboundStream(outbound), timeout, on_timeout));
    }
}

impl Drop for Takeover {
    /// The session never started (a middleware replaced the 101, or writing it failed): it
    /// leaves the hub now, and its handle reports the connection closed.
    fn drop(&mut self) {
        if let Some((pending, _slot)) = self.connection.take() {
            let shared = &pending.socket().shared;
            log::info!("session {}: not upgraded after all", shared.id);
            shared.set_closed(CloseFrame::new(CloseCode::ABNORMAL, "the upgrade did not happen"));
            shared.outbound.abort();
            self.hub.disconnect(shared.id);
        }
    }
}

/// Answers one upgrade request: through `app`, then either by starting the WebSocket on the
/// socket or by writing the app's response and closing. A failed write ends only this socket.
pub(crate) async fn serve<S, B>(
    app: Option<Rc<S>>,
    req: Request,
    framed: Framed<TcpStream, h1::Codec>,
    websockets: ConnectionSlots,
) -> Result<(), Infallible>
where
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
async fn respond(
    mut framed: Framed<TcpStream, h1::Codec>,
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
async fn answer(mut framed: Framed<TcpStream, h1::Codec>, mut head: Response<()>, mut body: BoxBody) -> io::Result<()> {
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

async fn flush(framed: &mut Framed<TcpStream, h1::Codec>) -> io::Result<()> {
    poll_fn(|cx| Pin::new(&mut *framed).flush::<h1::Message<(Response<()>, BodySize)>>(cx)).await
}

/// The peer's bytes as a stream of chunks read straight from the socket.
///
/// Chunks go out as `BytesMut`, split from one read buffer: the decoder can unmask a large frame
/// where it lies, and the buffer's memory is used again once the frames taken from it are gone.
struct Reader {
    read: OwnedReadHalf,
    buf: BytesMut,
    /// How much the next buffer holds.
    size: usize,
    leftover: Option<Bytes>,
    /// The connection's outbound queue, for the write-through before each read.
    outbound: Arc<Outbound>,
    /// Scratch space for the write-through.
    through: Vec<Bytes>,
}

impl Reader {
    fn new(read: OwnedReadHalf, leftover: Bytes, outbound: Arc<Outbound>) -> Reader {
        Reader {
            read,
            buf: BytesMut::new(),
            size: READ_MIN,
            leftover: (!leftover.is_empty()).then_some(leftover),
            outbound,
            through: Vec::new(),
        }
    }

    /// The next buffer size, from how much of `room` the last read used.
    fn adapt(&mut self, read: usize, room: usize) {
        if read == room {
            self.size = (self.size * 2).min(READ_MAX);
        } else if read < self.size / 4 {
            self.size = (self.size / 2).max(READ_MIN);
        }
    }
}

impl Stream for Reader {
    type Item = io::Result<BytesMut>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.leftover.take() {
            return Poll::Ready(Some(Ok(first.into())));
        }
        // The connection has handled the last chunk: what it queued in answer goes out now.
        write_through(this.read.as_ref(), &this.outbound, &mut this.through);
        if this.read.as_ref().poll_read_ready(cx)?.is_pending() {
            if this.buf.capacity() > READ_KEEP {
                this.buf = BytesMut::new();
            }
            return Poll::Pending;
        }
        if this.buf.capacity() - this.buf.len() < READ_MIN {
            this.buf.reserve(this.size);
        }
        let room = this.buf.capacity() - this.buf.len();
        // tokio's `poll_read`, unlike `try_read`, takes a read that leaves room in the buffer as
        // proof the socket is drained: no second `recv` just to hear `EAGAIN` (one per read in
        // the 32 B echo benchmark).
        match poll_read_buf(Pin::new(&mut this.read), cx, &mut this.buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => Poll::Ready(None),
            Poll::Ready(Ok(read)) => {
                this.adapt(read, room);
                Poll::Ready(Some(Ok(this.buf.split())))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
        }
    }
}
