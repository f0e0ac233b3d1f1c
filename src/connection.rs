//! The connection actor: one per WebSocket, feeding the peer's bytes to the protocol core and
//! running the socket's callbacks, keepalive and close handshake.

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub::Hub;
use crate::metrics::Metrics;
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, SpawnHandle, StreamHandler};
use futures_util::Stream;

use crate::callbacks::{self, Panicked};
use crate::config::Config;
use crate::outbound::{FrameKind, Outbound};
use crate::protocol::{CloseCode, CloseFrame, Decoder, Event, Input, OpCode, ProtocolError, Role};
use crate::raw_socket::RawSocket;
use crate::socket::{Control, Shared, WebSocket};
use crate::timers::{Due, Timers};

/// A connection whose socket handle exists (so a handler can register callbacks on it) but
/// whose actor has not started reading yet.
pub(crate) struct Pending {
    ctx: Context<Connection>,
    ws: WebSocket,
    config: Arc<Config>,
}

impl Pending {
    /// Makes the socket handle and an idle actor context for it.
    pub(crate) fn new(role: Role, protocol: Option<String>, config: Arc<Config>, metrics: Arc<Metrics>) -> Pending {
        let ctx = Context::new();
        let outbound = Outbound::new(config.max_outbound_queue);
        let shared = Shared::new(role, protocol, outbound, ctx.address().recipient(), metrics);
        Pending {
            ctx,
            ws: WebSocket {
                shared: Arc::new(shared),
            },
            config,
        }
    }

    /// The socket handle, to give to the handler before [`Pending::run`].
    pub(crate) fn socket(&self) -> &WebSocket {
        &self.ws
    }

    /// The queue the transport writes to the socket.
    pub(crate) fn outbound(&self) -> Arc<Outbound> {
        self.ws.shared.outbound.clone()
    }

    /// The connection's limits and timers.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Starts the actor reading `inbound`. A server session must already be connected to `hub`,
    /// which it leaves when it stops; `guard` is dropped then too. `dispatched` is `Some` when
    /// actix-web's dispatcher writes the outbound queue (the `HttpServer` transport): the actor
    /// then watches that the queue is taken, and shuts the socket down through it when the
    /// write or close timeout passes. Other transports' writers time their writes themselves.
    ///
    /// Chunks the reader hands over as `BytesMut` are the decoder's own: a large frame in one is
    /// unmasked where it lies ([`Input`]).
    pub(crate) fn run<S, B, E>(
        mut self,
        inbound: S,
        hub: Option<Hub>,
        guard: Box<dyn Send>,
        dispatched: Option<RawSocket>,
    ) where
        S: Stream<Item = Result<B, E>> + 'static,
        B: Into<Input> + 'static,
        E: Display + 'static,
    {
        self.ctx.add_stream(inbound);
        let decoder = Decoder::new(
            self.ws.shared.role,
            self.config.max_frame_size,
            self.config.max_message_size,
        );
        let actor = Connection {
            ws: self.ws,
            decoder,
            timers: Timers::new(&self.config, Instant::now(), dispatched.is_some()),
            config: self.config,
            hub,
            failed: false,
            timer: None,
            dispatched,
            writes: WriteWatch::default(),
            _guard: guard,
        };
        self.ctx.run(actor);
    }
}

/// The actor of one connection.
pub(crate) struct Connection {
    ws: WebSocket,
    decoder: Decoder,
    config: Arc<Config>,
    hub: Option<Hub>,
    timers: Timers,
    /// A protocol error or a panic failed the connection: ignore what the peer sends now.
    failed: bool,
    /// The actix timer armed for the next deadline, and when it fires.
    timer: Option<(SpawnHandle, Instant)>,
    /// On the `HttpServer` transport: the socket, if `on_connect` kept it, to shut down.
    dispatched: Option<RawSocket>,
    writes: WriteWatch,
    _guard: Box<dyn Send>,
}

/// The write timeout on a transport that does not see the socket: whether the queue was taken.
#[derive(Debug, Default)]
struct WriteWatch {
    /// The queue's take count at the last check.
    taken: u64,
    /// Since when something has waited without being taken.
    stalled_since: Option<Instant>,
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::debug!("session {} open", self.ws.id());
        self.ws.shared.metrics.connection_opened();
        self.arm_timer(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let shared = &self.ws.shared;
        shared.set_closed(CloseFrame::new(CloseCode::ABNORMAL, "connection lost"));
        shared.outbound.finish();
        let left = self
            .timers
            .close_left(Instant::now())
            .unwrap_or(self.config.close_timeout);
        abort_after(shared.outbound.clone(), left, self.dispatched.clone());
        if let Some(hub) = &self.hub {
            hub.disconnect(shared.id);
        }
        let code = shared.close_state().map_or(CloseCode::ABNORMAL, |frame| frame.code);
        shared.metrics.connection_closed(code.0);
        log::debug!("session {} closed: {:?}", shared.id, shared.close_state());
    }
}

impl<B: Into<Input> + 'static, E: Display + 'static> StreamHandler<Result<B, E>> for Connection {
    fn handle(&mut self, item: Result<B, E>, ctx: &mut Context<Self>) {
        match item {
            Ok(bytes) => self.on_bytes(bytes.into(), ctx),
            Err(error) => {
                log::debug!("session {}: read error: {error}", self.ws.id());
                self.ws
                    .shared
                    .set_closed(CloseFrame::new(CloseCode::ABNORMAL, format!("read error: {error}")));
                self.ws.shared.outbound.abort();
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        let reason = "the peer ended the connection without a close frame";
        self.ws.shared.set_closed(CloseFrame::new(CloseCode::ABNORMAL, reason));
        ctx.stop();
    }
}

impl Handler<Control> for Connection {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        match msg {
            Control::Violation(frame) => self.fail(frame, ctx),
            Control::WriteTimeout => ctx.stop(),
            Control::CloseSent => {
                self.timers.closing(&self.config, Instant::now());
                self.arm_timer(ctx);
            }
        }
    }
}

impl Connection {
    fn on_bytes(&mut self, bytes: Input, ctx: &mut Context<Self>) {
        if self.failed {
            return;
        }
        // A flooding peer keeps this actor so busy that its timer may not fire: the clocks are
        // read here too, once per chunk (its messages are stamped with the same time).
        let now = Instant::now();
        if self.run_due(now, ctx) {
            return;
        }
        self.arm_timer(ctx);
        self.decoder.feed_input(bytes);
        loop {
            match self.decoder.next_event() {
                Ok(Some(Event::Close(frame))) => return self.on_peer_close(frame, ctx),
                Ok(Some(event)) => {
                    if let Err(Panicked(message)) = self.dispatch(event, now) {
                        log::error!(
                            "session {}: a callback panicked ({message}); closing with 1011",
                            self.ws.id()
                        );
                        return self.fail(CloseFrame::new(CloseCode::INTERNAL, "internal error"), ctx);
                    }
                }
                Ok(None) => return,
                Err(error) => return self.protocol_error(error, ctx),
            }
        }
    }

    /// Runs the callback for one event, which arrived at `now`; answers pings.
    fn dispatch(&mut self, event: Event, now: Instant) -> Result<(), Panicked> {
        let shared = &self.ws.shared;
        match event {
            Event::Text(text) => {
                self.timers.message(now);
                shared.metrics.message_in(text.len());
                let callback = shared.callbacks.lock().text.clone();
                callbacks::call(callback, &self.ws, text)
            }
            Event::Binary(bytes) => {
                self.timers.message(now);
                shared.metrics.message_in(bytes.len());
                let callback = shared.callbacks.lock().binary.clone();
                callbacks::call(callback, &self.ws, bytes)
            }
            Event::Ping(payload) => {
                // A few pongs wait at most; refused once our close is queued, when no pong may
                // follow it, and when the queue is full (then the connection is closing, 1008).
                shared.queue_pong(shared.encode(OpCode::Pong, &payload));
                let callback = shared.callbacks.lock().ping.clone();
                callbacks::call(callback, &self.ws, payload)
            }
            Event::Pong(payload) => {
                self.timers.pong(&payload);
                let callback = shared.callbacks.lock().pong.clone();
                callbacks::call(callback, &self.ws, payload)
            }
            Event::Close(_) => Ok(()),
        }
    }

    /// The peer's close frame: answer it if we had not closed, then end the connection.
    fn on_peer_close(&mut self, frame: Option<CloseFrame>, ctx: &mut Context<Self>) {
        let shared = &self.ws.shared;
        let ours = shared.sent_close.lock().clone();
        let record = match ours {
            Some(ours) => ours,
            None => {
                // Echo the peer's code (RFC 6455 §5.5.1); an empty close is answered empty.
                let payload = frame
                    .as_ref()
                    .map(|f| CloseFrame::new(f.code, "").to_payload())
                    .unwrap_or_default();
                let _ = shared
                    .outbound
                    .push(shared.encode(OpCode::Close, &payload), FrameKind::Close);
                frame.unwrap_or_else(|| CloseFrame::new(CloseCode::NO_STATUS, ""))
            }
        };
        log::debug!(
            "session {}: close handshake done ({} {:?})",
            shared.id,
            record.code,
            record.reason
        );
        self.timers.closing(&self.config, Instant::now());
        shared.set_closed(record);
        shared.outbound.finish();
        ctx.stop();
    }

    fn protocol_error(&mut self, error: ProtocolError, ctx: &mut Context<Self>) {
        log::info!(
            "session {}: protocol error: {error}; closing with {}",
            self.ws.id(),
            error.close_code()
        );
        self.ws.shared.metrics.protocol_error();
        self.fail(CloseFrame::new(error.close_code(), error.to_string()), ctx);
    }

    /// Fails the connection (RFC 6455 §7.1.7): reading stops, our close frame goes out, then the
    /// TCP close, within `close_timeout`.
    fn fail(&mut self, frame: CloseFrame, ctx: &mut Context<Self>) {
        self.failed = true;
        self.timers.closing(&self.config, Instant::now());
        let shared = &self.ws.shared;
        // When a close was already queued, its code stands.
        shared.start_close(frame.clone());
        let record = shared.sent_close.lock().clone().unwrap_or(frame);
        shared.set_closed(record);
        shared.outbound.finish();
        ctx.stop();
    }
}

impl Connection {
    /// Handles whatever is due at `now`; answers whether the connection is ending.
    fn run_due(&mut self, now: Instant, ctx: &mut Context<Self>) -> bool {
        while let Some(due) = self.timers.due(&self.config, now) {
            match due {
                Due::Ping(n) => self.send_keepalive_ping(n),
                Due::Idle => {
                    log::info!(
                        "session {}: no message for {:?}; closing with 1001",
                        self.ws.id(),
                        self.config.idle_timeout
                    );
                    self.timers.closing(&self.config, now);
                    self.ws
                        .shared
                        .start_close(CloseFrame::new(CloseCode::AWAY, "idle timeout"));
                }
                Due::WriteCheck => {
                    if self.write_stalled(now) {
                        return true;
                    }
                }
                Due::KeepaliveTimeout => {
                    self.keepalive_timeout(ctx);
                    return true;
                }
                Due::CloseTimeout => {
                    self.close_timeout(ctx);
                    return true;
                }
            }
        }
        false
    }

    /// Arms the actor's timer for the next deadline, unless it is armed for as early already.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(next) = self.timers.next_deadline(&self.config) else {
            return;
        };
        if let Some((handle, at)) = self.timer {
            if at <= next {
                return;
            }
            ctx.cancel_future(handle);
        }
        let after = next.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(after, |act, ctx| {
            act.timer = None;
            // The same tick lets a quiet connection's spent read buffer go.
            act.decoder.release_spent_input();
            if !act.run_due(Instant::now(), ctx) {
                act.arm_timer(ctx);
            }
        });
        self.timer = Some((handle, next));
    }

    /// Sends keepalive ping number `n`. If it cannot be queued (the queue is full: the peer is not
    /// reading), the pong clock runs all the same: no answer can come.
    fn send_keepalive_ping(&mut self, n: u64) {
        let shared = &self.ws.shared;
        let _ = shared
            .outbound
            .push(shared.encode(OpCode::Ping, &n.to_be_bytes()), FrameKind::Control);
    }

    fn keepalive_timeout(&mut self, ctx: &mut Context<Self>) {
        self.timers.closing(&self.config, Instant::now());
        let shared = &self.ws.shared;
        let reason = format!(
            "keepalive timeout: no answer to a ping within {:?}",
            self.config.pong_timeout
        );
        log::warn!("session {}: {reason}; dropping the connection", shared.id);
        shared.metrics.keepalive_timeout();
        shared.start_close(CloseFrame::new(CloseCode::AWAY, "keepalive timeout"));
        shared.set_closed(CloseFrame::new(CloseCode::ABNORMAL, reason));
        shared.outbound.finish();
        ctx.stop();
    }

    /// The close handshake ran out of time: the connection ends with the code of the close we
    /// sent.
    fn close_timeout(&mut self, ctx: &mut Context<Self>) {
        let sent = self.ws.shared.sent_close.lock().clone();
        log::debug!(
            "session {}: no close answer in {:?}",
            self.ws.id(),
            self.config.close_timeout
        );
        self.ws
            .shared
            .set_closed(sent.unwrap_or_else(|| CloseFrame::new(CloseCode::ABNORMAL, "")));
        ctx.stop();
    }

    /// The write timeout of the `HttpServer` transport: when the queue has had something waiting
    /// and nothing was taken for the timeout, actix-web's dispatcher is stuck on a socket the peer
    /// does not read. Abort, and shut the socket down if `on_connect` kept it. Answers whether it
    /// did.
    fn write_stalled(&mut self, now: Instant) -> bool {
        let Some(timeout) = self.config.write_timeout else {
            return false;
        };
        let (taken, waiting) = self.ws.shared.outbound.progress();
        if !waiting || taken != self.writes.taken {
            self.writes = WriteWatch {
                taken,
                stalled_since: None,
            };
            return false;
        }
        let since = *self.writes.stalled_since.get_or_insert(now);
        if now.duration_since(since) < timeout {
            return false;
        }
        self.ws.shared.write_timed_out(timeout);
        if let Some(socket) = &self.dispatched {
            socket.shutdown();
        }
        true
    }
}

/// Drops whatever is still queued after `timeout`, and shuts a dispatched socket down: a peer
/// that stopped reading cannot hold a finished connection open.
fn abort_after(outbound: Arc<Outbound>, timeout: Duration, socket: Option<RawSocket>) {
    actix::spawn(async move {
        tokio::time::sleep(timeout).await;
        outbound.abort();
        if let Some(socket) = socket {
            socket.shutdown();
        }
    });
}
