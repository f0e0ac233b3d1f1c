//! [`WebSocket`]: the handle on one connection, the same type on the server and the client, and
//! [`Shared`], what the handle shares with the connection's driver and the hub.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::callbacks::{Callback, Callbacks};
use crate::connection::outbound::{CloseState, Outbound, PushError, Written, COALESCE_MAX};
use crate::error::{InvalidCloseCode, SendError};
use crate::hub::{Hub, Membership, SessionId, SessionSink, Undelivered};
use crate::message::{Message, Outgoing, Text};
use crate::metrics::Metrics;
use crate::protocol::deflate::Deflating;
use crate::protocol::{self, CloseCode, CloseFrame, OpCode, Role, MAX_CONTROL_PAYLOAD};

/// A data message's opcode and payload.
fn frame_parts(message: &Message) -> (OpCode, &[u8]) {
    match message {
        Message::Text(text) => (OpCode::Text, text.as_bytes()),
        Message::Binary(bytes) => (OpCode::Binary, bytes),
    }
}

/// One WebSocket connection: send to it, register callbacks on it, close it.
///
/// Cheap to clone (an `Arc`), `Send` and `Sync`: keep a clone in any thread or task. See the
/// [crate docs](crate) and `docs/guide.md` for a tour.
#[derive(Clone)]
pub struct WebSocket {
    pub(crate) shared: Arc<Shared>,
}

/// What the handle, the connection's driver and the hub share.
pub(crate) struct Shared {
    pub(crate) id: SessionId,
    pub(crate) role: Role,
    /// The subprotocol agreed on. A `Box<str>`: 8 bytes smaller than a `String`.
    pub(crate) protocol: Option<Box<str>>,
    /// The frames waiting for the socket, and the close state.
    pub(crate) outbound: Arc<Outbound>,
    pub(crate) callbacks: Mutex<Callbacks>,
    pub(crate) metrics: Arc<Metrics>,
    /// The hub a server session is registered with, to leave when it ends.
    hub: OnceLock<Membership>,
    /// Where hub messages go instead of the queue, once a session actor intercepts them. Boxed
    /// again (a thin pointer): with this and `protocol`, the handle's allocation is 176 bytes,
    /// not 192, in every connection.
    interceptor: OnceLock<Box<Interceptor>>,
    /// permessage-deflate, when the handshake agreed on it. Boxed: a connection without it
    /// holds 8 bytes here, not 168.
    pub(crate) deflate: Option<Box<Deflating>>,
}

/// Takes a hub message for a session instead of its outbound queue (a session actor's
/// `intercept_broadcasts`).
pub(crate) type Interceptor = Box<dyn Fn(&Message) -> Result<(), Undelivered> + Send + Sync>;

impl Shared {
    pub(crate) fn new(
        role: Role,
        protocol: Option<String>,
        limit: usize,
        metrics: Arc<Metrics>,
        deflate: Option<Deflating>,
    ) -> Shared {
        Shared {
            id: SessionId::next(),
            role,
            protocol: protocol.map(String::into_boxed_str),
            outbound: Outbound::new(limit),
            callbacks: Mutex::new(Callbacks::default()),
            metrics,
            hub: OnceLock::new(),
            interceptor: OnceLock::new(),
            deflate: deflate.map(Box::new),
        }
    }

    /// Remembers the hub this session is registered with, to leave it at the end.
    pub(crate) fn joined(&self, hub: &Hub) {
        let _ = self.hub.set(hub.membership());
    }

    /// Encodes one frame the way this side must (masked from a client, RFC 6455 §5.3).
    pub(crate) fn encode(&self, opcode: OpCode, payload: &[u8]) -> Bytes {
        let mut buf = bytes::BytesMut::with_capacity(payload.len() + protocol::MAX_HEADER_LEN);
        let mask = (self.role == Role::Client).then(protocol::random_mask);
        protocol::encode_frame(&mut buf, opcode, true, payload, mask);
        buf.freeze()
    }

    fn encode_message(&self, message: &Message) -> Bytes {
        let (opcode, payload) = frame_parts(message);
        self.encode(opcode, payload)
    }

    /// Queues `message` for [`WebSocket::send`]. A small frame is encoded straight into the
    /// queue. A large one on the server goes as a header followed by the payload itself, not
    /// copied; a client masks every payload, which copies it anyway, so it encodes a large frame
    /// into a buffer of its own, outside the queue's lock.
    pub(crate) fn push_message(&self, message: &Message) -> Result<u64, PushError> {
        self.push_message_with(message, true)
    }

    /// [`Shared::push_message`], compressing only if `may_compress` (and compression is on).
    pub(crate) fn push_message_with(&self, message: &Message, may_compress: bool) -> Result<u64, PushError> {
        let (opcode, payload) = frame_parts(message);
        let client = self.role == Role::Client;
        if let Some(deflate) = self.compresses(payload.len()).filter(|_| may_compress) {
            let mask = client.then(protocol::random_mask);
            self.metrics.compressed();
            return deflate.frame(opcode, payload, mask, |frame| self.push_frame(&frame));
        }
        let len = protocol::frame_len(payload.len(), client);
        if len <= COALESCE_MAX {
            let mask = client.then(protocol::random_mask);
            return self.push_data(len, |queue| {
                queue.push_encoded(len, |buf| {
                    protocol::encode_frame(buf, opcode, true, payload, mask);
                })
            });
        }
        if client {
            let frame = self.encode(opcode, payload);
            return self.push_data(len, |queue| queue.push(&frame));
        }
        let mut head = bytes::BytesMut::with_capacity(protocol::MAX_HEADER_LEN);
        protocol::encode_unmasked_header(&mut head, opcode, true, payload.len());
        let body = match message {
            Message::Text(text) => text.clone().into_bytes(),
            Message::Binary(bytes) => bytes.clone(),
        };
        self.push_data(len, |queue| queue.push_parts(head.freeze(), body))
    }

    /// The compressing side, if a `len`-byte message is to be compressed.
    fn compresses(&self, len: usize) -> Option<&Deflating> {
        self.deflate.as_deref().filter(|d| len >= d.threshold)
    }

    /// Queues an encoded data frame.
    fn push_frame(&self, frame: &Bytes) -> Result<u64, PushError> {
        self.push_data(frame.len(), |queue| queue.push(frame))
    }

    /// Queues a data frame of `len` bytes with `push`; on a full queue, fails the connection with
    /// 1008.
    fn push_data(&self, len: usize, push: impl FnOnce(&Outbound) -> Result<u64, PushError>) -> Result<u64, PushError> {
        let result = push(&self.outbound);
        match result {
            Ok(_) => self.metrics.message_out(len),
            Err(PushError::Full) => self.queue_full(),
            Err(PushError::Closed) => {}
        }
        result
    }

    /// The peer does not read what we send: drop what waits for it, and fail the connection
    /// with 1008 (the driver stops reading; the socket goes within `close_timeout`).
    pub(crate) fn queue_full(&self) {
        log::warn!("session {}: outbound queue over its limit, closing with 1008", self.id);
        self.metrics.backpressure_close();
        let frame = CloseFrame::new(CloseCode::POLICY, "outbound queue full");
        let encoded = self.encode(OpCode::Close, &frame.to_payload());
        self.outbound.end(frame, Some(encoded), true);
    }

    /// Queues a ping or pong in order with the data frames; a full queue fails the connection
    /// with 1008 and a closed one drops it.
    pub(crate) fn push_control(&self, opcode: OpCode, payload: &[u8]) {
        let frame = self.encode(opcode, payload);
        if self.outbound.push(&frame) == Err(PushError::Full) {
            self.queue_full();
        }
    }

    /// From now on, hub messages for this session go to `interceptor`. Set once; a second call
    /// is ignored.
    pub(crate) fn intercept(&self, interceptor: Interceptor) {
        if self.interceptor.set(Box::new(interceptor)).is_err() {
            log::debug!("session {}: broadcasts are intercepted already", self.id);
        }
    }

    /// Queues the pong to a ping (past a few waiting, it replaces the newest of them).
    pub(crate) fn queue_pong(&self, pong: Bytes) {
        if self.outbound.push_pong(pong) == Err(PushError::Full) {
            self.queue_full();
        }
    }

    /// Queues our close frame unless one is out already, which starts the close handshake.
    /// `by_user` marks a close the application asked for. Answers whether this call sent it.
    pub(crate) fn start_close(&self, frame: CloseFrame, by_user: bool) -> bool {
        let encoded = self.encode(OpCode::Close, &frame.to_payload());
        self.outbound.close(frame, encoded, by_user)
    }

    /// How the connection ended, once it has.
    pub(crate) fn close_record(&self) -> Option<CloseFrame> {
        match self.outbound.close_state() {
            CloseState::Closed(record) => Some(record),
            _ => None,
        }
    }

    /// The end of the connection: it leaves its hub, the close is counted and logged, and the
    /// callbacks (which may hold clones of this socket) are dropped.
    pub(crate) fn teardown(&self) {
        if let Some(hub) = self.hub.get() {
            hub.leave(self.id);
        }
        let record = self.close_record();
        let code = record.as_ref().map_or(CloseCode::ABNORMAL, |frame| frame.code);
        self.metrics.connection_closed(code.0);
        log::debug!("session {} closed: {record:?}", self.id);
        *self.callbacks.lock() = Callbacks::default();
    }
}

impl SessionSink for Shared {
    fn deliver(&self, message: &Outgoing) -> Result<(), Undelivered> {
        if let Some(interceptor) = self.interceptor.get() {
            return interceptor(message.message());
        }
        let (opcode, payload) = frame_parts(message.message());
        let pushed = match (self.compresses(payload.len()), self.role) {
            // Without context takeover every recipient can take the same compressed frame:
            // deflated once per broadcast, by whichever recipient's thread comes first.
            (Some(deflate), Role::Server) if deflate.is_shared() => {
                let window = deflate.params.compress_window;
                let frame = message.deflated(window, |m| {
                    self.metrics.compressed();
                    let (opcode, payload) = frame_parts(m);
                    deflate.frame(opcode, payload, None, |frame| frame)
                });
                self.push_frame(&frame)
            }
            (Some(deflate), role) => {
                self.metrics.compressed();
                let mask = (role == Role::Client).then(protocol::random_mask);
                deflate.frame(opcode, payload, mask, |frame| self.push_frame(&frame))
            }
            // A server's frames are the same bytes for every recipient: encode once, share.
            (None, Role::Server) => self.push_frame(message.frame(|m| self.encode_message(m))),
            (None, Role::Client) => self.push_frame(&self.encode_message(message.message())),
        };
        match pushed {
            Ok(_) => Ok(()),
            Err(PushError::Closed) => Err(Undelivered::Closed),
            Err(PushError::Full) => Err(Undelivered::QueueFull),
        }
    }

    fn close(&self, frame: &CloseFrame) {
        self.start_close(frame.clone(), false);
    }
}

impl WebSocket {
    /// A handle on a new connection's shared half.
    pub(crate) fn new(shared: Shared) -> WebSocket {
        WebSocket {
            shared: Arc::new(shared),
        }
    }

    /// This connection's id, as the [`Hub`](crate::Hub) knows it.
    pub fn id(&self) -> SessionId {
        self.shared.id
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.shared.protocol.as_deref()
    }

    /// Sends a message: `&str` and `String` as text, `&[u8]`, `Vec<u8>` and `Bytes` as binary.
    ///
    /// The frame is queued at once, in order with every other send on this socket. The returned
    /// future resolves when the socket has accepted the frame's last byte (under actix-web's
    /// `HttpServer`: when actix-web's dispatcher has taken it to write); it is not a receipt from
    /// the peer. Awaiting it is optional.
    ///
    /// # Errors
    ///
    /// The future fails with a [`SendError`] holding the message when the socket is closed, its
    /// outbound queue is full, or it ends before the frame is written.
    pub fn send(&self, message: impl Into<Message>) -> SendFuture {
        self.send_with(message.into(), true)
    }

    /// Like [`send`](Self::send), never compressed, whatever `Config::compression` says.
    ///
    /// For a message that holds a secret next to text an attacker chooses (a token beside a
    /// user's chat line): compressed together, the compressed size tells how much of the
    /// attacker's text matches the secret, the CRIME and BREACH attacks (docs/compression.md).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_uncompressed(&self, message: impl Into<Message>) -> SendFuture {
        self.send_with(message.into(), false)
    }

    fn send_with(&self, message: Message, may_compress: bool) -> SendFuture {
        match self.shared.push_message_with(&message, may_compress) {
            Ok(seq) => SendFuture::pending(self.shared.outbound.clone(), seq, message),
            Err(PushError::Closed) => SendFuture::failed(SendError::Closed(message)),
            Err(PushError::Full) => SendFuture::failed(SendError::QueueFull(message)),
        }
    }

    /// Sends a ping with `payload` (at most 125 bytes). The peer answers with a pong, which
    /// [`on_pong`](Self::on_pong) sees. Pings count against the outbound queue's limit.
    ///
    /// # Errors
    ///
    /// Like [`send`](Self::send), and [`SendError::PingTooLong`] for a payload over 125 bytes.
    pub fn send_ping(&self, payload: impl Into<Bytes>) -> SendFuture {
        let payload = payload.into();
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return SendFuture::failed(SendError::PingTooLong(Message::Binary(payload)));
        }
        let frame = self.shared.encode(OpCode::Ping, &payload);
        match self.shared.outbound.push(&frame) {
            Ok(seq) => SendFuture::pending(self.shared.outbound.clone(), seq, Message::Binary(payload)),
            Err(PushError::Closed) => SendFuture::failed(SendError::Closed(Message::Binary(payload))),
            Err(PushError::Full) => {
                self.shared.queue_full();
                SendFuture::failed(SendError::QueueFull(Message::Binary(payload)))
            }
        }
    }

    /// Calls `callback` with every text message, reassembled and UTF-8 checked.
    ///
    /// It runs on the connection's task: keep it short, and spawn a task for slow work. A panic
    /// in it closes this connection with 1011 and is logged. Registering again replaces it.
    pub fn on_text(&self, callback: impl Fn(&WebSocket, Text) + Send + Sync + 'static) {
        self.shared.callbacks.lock().text = Some(Box::new(callback) as Callback<Text>);
    }

    /// Calls `callback` with every binary message, reassembled. As [`on_text`](Self::on_text).
    pub fn on_binary(&self, callback: impl Fn(&WebSocket, Bytes) + Send + Sync + 'static) {
        self.shared.callbacks.lock().binary = Some(Box::new(callback) as Callback<Bytes>);
    }

    /// Calls `callback` with the payload of every ping. The pong answer is sent for you.
    pub fn on_ping(&self, callback: impl Fn(&WebSocket, Bytes) + Send + Sync + 'static) {
        self.shared.callbacks.lock().ping = Some(Box::new(callback) as Callback<Bytes>);
    }

    /// Calls `callback` with the payload of every pong, keepalive answers included.
    pub fn on_pong(&self, callback: impl Fn(&WebSocket, Bytes) + Send + Sync + 'static) {
        self.shared.callbacks.lock().pong = Some(Box::new(callback) as Callback<Bytes>);
    }

    /// Closes with 1000 (normal closure). See [`close_with`](Self::close_with).
    pub fn close(&self) -> impl Future<Output = CloseCode> + Send + 'static {
        self.shared.start_close(CloseFrame::new(CloseCode::NORMAL, ""), true);
        self.closed()
    }

    /// Starts the close handshake with `code` and `reason` (cut to 123 bytes), and returns a
    /// future that completes, with the connection's close code, once the socket is closed.
    ///
    /// Messages sent before it are written first; sends after it fail with
    /// [`SendError::Closed`]. If the socket is already closing, it only waits.
    ///
    /// # Errors
    ///
    /// [`InvalidCloseCode`] for a code RFC 6455 §7.4 does not allow in a close frame (1005,
    /// 1006 and 1015 are for reporting only; below 1000, 1004, 1016 to 2999 and from 5000 are not
    /// assigned): nothing is sent and the connection stays open.
    pub fn close_with(
        &self,
        code: CloseCode,
        reason: &str,
    ) -> Result<impl Future<Output = CloseCode> + Send + 'static, InvalidCloseCode> {
        if !code.is_valid_on_wire() {
            return Err(InvalidCloseCode(code));
        }
        self.shared.start_close(CloseFrame::new(code, reason), true);
        Ok(self.closed())
    }

    /// Completes, with the close code, once the connection has closed, whichever side closed it.
    ///
    /// The code is the one of the close handshake (the first close frame sent, by either side),
    /// 1005 when the peer's close frame had none, or 1006 when the connection ended without a
    /// close handshake (then [`close_reason`](Self::close_reason) says why, e.g. a keepalive
    /// timeout).
    pub fn closed(&self) -> impl Future<Output = CloseCode> + Send + 'static {
        let outbound = self.shared.outbound.clone();
        std::future::poll_fn(move |cx| outbound.poll_closed(cx).map(|frame| frame.code))
    }

    /// The close code, once closed; `None` while open. See [`closed`](Self::closed).
    pub fn close_code(&self) -> Option<CloseCode> {
        self.shared.close_record().map(|frame| frame.code)
    }

    /// The close reason, once closed; `None` while open.
    pub fn close_reason(&self) -> Option<String> {
        self.shared.close_record().map(|frame| frame.reason)
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.shared.close_record().is_some()
    }

    /// Bytes queued for this connection and not yet handed to its socket.
    pub fn queued_bytes(&self) -> usize {
        self.shared.outbound.queued_bytes()
    }
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.shared.id)
            .field("role", &self.shared.role)
            .field("closed", &self.shared.close_record())
            .finish()
    }
}

/// The future [`WebSocket::send`] returns: resolves once the socket has accepted the frame's last
/// byte, or fails with the message.
///
/// Dropping it does not cancel the send.
#[derive(Debug)]
pub struct SendFuture {
    state: Option<SendState>,
}

#[derive(Debug)]
enum SendState {
    Pending {
        outbound: Arc<Outbound>,
        seq: u64,
        message: Message,
    },
    Failed(SendError),
}

impl SendFuture {
    fn pending(outbound: Arc<Outbound>, seq: u64, message: Message) -> SendFuture {
        SendFuture {
            state: Some(SendState::Pending { outbound, seq, message }),
        }
    }

    fn failed(error: SendError) -> SendFuture {
        SendFuture {
            state: Some(SendState::Failed(error)),
        }
    }
}

impl Future for SendFuture {
    type Output = Result<(), SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let written = match &self.state {
            Some(SendState::Pending { outbound, seq, .. }) => match outbound.poll_written(*seq, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(written) => written,
            },
            Some(SendState::Failed(_)) => Written::No,
            // Polled after completion: it has nothing more to say.
            None => return Poll::Pending,
        };
        match self.state.take() {
            Some(SendState::Pending { .. }) if written == Written::Yes => Poll::Ready(Ok(())),
            Some(SendState::Pending { message, .. }) => Poll::Ready(Err(SendError::NotWritten(message))),
            Some(SendState::Failed(error)) => Poll::Ready(Err(error)),
            None => Poll::Pending,
        }
    }
}
