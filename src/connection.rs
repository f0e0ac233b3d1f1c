//! The connection actor: one per WebSocket, feeding the peer's bytes to the protocol core and
//! running the socket's callbacks, keepalive and close handshake.

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, StreamHandler};
use futures_util::Stream;
use switchboard_actors::{Hub, Metrics};

use crate::callbacks::{self, Panicked};
use crate::config::Config;
use crate::outbound::{FrameKind, Outbound};
use crate::protocol::{CloseCode, CloseFrame, Decoder, Event, Input, OpCode, ProtocolError, Role};
use crate::raw_socket::RawSocket;
use crate::socket::{Control, Shared, WebSocket};

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
            config: self.config,
            hub,
            last_answer: Instant::now(),
            last_message: Instant::now(),
            pings: 0,
            failed: false,
            close_deadline: None,
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
    /// When the peer last answered one of our keepalive pings: proof that it reads what we send.
    last_answer: Instant,
    /// When the peer last sent a text or binary message: the idle timeout's clock.
    last_message: Instant,
    /// Keepalive pings sent; each carries its number, which the peer's pong must echo.
    pings: u64,
    /// A protocol error or a panic failed the connection: ignore what the peer sends now.
    failed: bool,
    /// When a closing connection's socket must be gone: set by the first close or failure.
    close_deadline: Option<Instant>,
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

/// How many times per write timeout the `HttpServer` transport looks whether its queue moved:
/// it notices a stall within a quarter of the timeout after it passes.
const WRITE_CHECKS_PER_TIMEOUT: u32 = 4;

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::debug!("session {} open", self.ws.id());
        self.ws.shared.metrics.connection_opened();
        if let Some(interval) = self.config.ping_interval {
            ctx.run_interval(interval, |act, ctx| {
                act.decoder.release_spent_input();
                act.send_keepalive_ping(ctx);
            });
        }
        if let Some(idle) = self.config.idle_timeout {
            self.check_idle_after(idle, ctx);
        }
        if let (Some(_), Some(timeout)) = (&self.dispatched, self.config.write_timeout) {
            ctx.run_interval(timeout / WRITE_CHECKS_PER_TIMEOUT, move |act, ctx| {
                act.check_writes(timeout, ctx);
            });
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let shared = &self.ws.shared;
        shared.set_closed(CloseFrame::new(CloseCode::ABNORMAL, "connection lost"));
        shared.outbound.finish();
        let now = Instant::now();
        let left = self.close_deadline.map_or(self.config.close_timeout, |deadline| {
            deadline.saturating_duration_since(now)
        });
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
                self.start_close_timer();
                ctx.run_later(self.config.close_timeout, |act, ctx| {
                    let sent = act.ws.shared.sent_close.lock().clone();
                    log::debug!(
                        "session {}: no close answer in {:?}",
                        act.ws.id(),
                        act.config.close_timeout
                    );
                    act.ws
                        .shared
                        .set_closed(sent.unwrap_or_else(|| CloseFrame::new(CloseCode::ABNORMAL, "")));
                    ctx.stop();
                });
            }
        }
    }
}

impl Connection {
    fn on_bytes(&mut self, bytes: Input, ctx: &mut Context<Self>) {
        if self.failed {
            return;
        }
        self.decoder.feed_input(bytes);
        loop {
            match self.decoder.next_event() {
                Ok(Some(Event::Close(frame))) => return self.on_peer_close(frame, ctx),
                Ok(Some(event)) => {
                    if let Err(Panicked(message)) = self.dispatch(event) {
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

    /// Runs the callback for one event; answers pings.
    fn dispatch(&mut self, event: Event) -> Result<(), Panicked> {
        let shared = &self.ws.shared;
        match event {
            Event::Text(text) => {
                self.last_message = Instant::now();
                shared.metrics.message_in(text.len());
                let callback = shared.callbacks.lock().text.clone();
                callbacks::call(callback, &self.ws, text)
            }
            Event::Binary(bytes) => {
                self.last_message = Instant::now();
                shared.metrics.message_in(bytes.len());
                let callback = shared.callbacks.lock().binary.clone();
                callbacks::call(callback, &self.ws, bytes)
            }
            Event::Ping(payload) => {
                // One pong waits at most; refused once our close is queued, when no pong may
                // follow it, and when the queue is full (then the connection is closing, 1008).
                shared.queue_pong(shared.encode(OpCode::Pong, &payload));
                let callback = shared.callbacks.lock().ping.clone();
                callbacks::call(callback, &self.ws, payload)
            }
            Event::Pong(payload) => {
                if answers_keepalive(&payload, self.pings) {
                    self.last_answer = Instant::now();
                }
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
        self.start_close_timer();
        let shared = &self.ws.shared;
        // When a close was already queued, its code stands.
        shared.start_close(frame.clone());
        let record = shared.sent_close.lock().clone().unwrap_or(frame);
        shared.set_closed(record);
        shared.outbound.finish();
        ctx.stop();
    }

    /// Starts the close timer unless it runs already: the socket goes within `close_timeout`.
    fn start_close_timer(&mut self) {
        if self.close_deadline.is_none() {
            self.close_deadline = Some(Instant::now() + self.config.close_timeout);
        }
    }

    /// Sends a keepalive ping carrying its number. If it cannot be queued (the queue is full: the
    /// peer is not reading), the pong timer runs all the same: no answer can come.
    fn send_keepalive_ping(&mut self, ctx: &mut Context<Self>) {
        let shared = &self.ws.shared;
        if shared.is_closing() {
            return; // the close handshake has its own timer
        }
        self.pings += 1;
        let frame = shared.encode(OpCode::Ping, &self.pings.to_be_bytes());
        let _ = shared.outbound.push(frame, FrameKind::Control);
        let sent_at = Instant::now();
        ctx.run_later(self.config.pong_timeout, move |act, ctx| {
            if act.last_answer < sent_at {
                act.keepalive_timeout(ctx);
            }
        });
    }

    fn keepalive_timeout(&mut self, ctx: &mut Context<Self>) {
        self.start_close_timer();
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
}

impl Connection {
    /// Checks, `after` from now, whether the peer has sent a message within the idle timeout;
    /// closes with 1001 if not, else checks again when it could next expire.
    fn check_idle_after(&mut self, after: std::time::Duration, ctx: &mut Context<Self>) {
        ctx.run_later(after, |act, ctx| {
            let Some(idle) = act.config.idle_timeout else { return };
            let quiet = act.last_message.elapsed();
            if quiet < idle {
                return act.check_idle_after(idle - quiet, ctx);
            }
            log::info!("session {}: no message for {idle:?}; closing with 1001", act.ws.id());
            act.ws
                .shared
                .start_close(CloseFrame::new(CloseCode::AWAY, "idle timeout"));
        });
    }
}

impl Connection {
    /// The write timeout of the `HttpServer` transport: when the queue has had something waiting
    /// and nothing was taken for `timeout`, actix-web's dispatcher is stuck on a socket the peer
    /// does not read. Abort, and shut the socket down if `on_connect` kept it.
    fn check_writes(&mut self, timeout: Duration, ctx: &mut Context<Self>) {
        let (taken, waiting) = self.ws.shared.outbound.progress();
        let now = Instant::now();
        if !waiting || taken != self.writes.taken {
            self.writes = WriteWatch {
                taken,
                stalled_since: None,
            };
            return;
        }
        let since = *self.writes.stalled_since.get_or_insert(now);
        if now.duration_since(since) >= timeout {
            self.ws.shared.write_timed_out(timeout);
            if let Some(socket) = &self.dispatched {
                socket.shutdown();
            }
            ctx.stop();
        }
    }
}

/// Whether a pong's payload echoes one of the keepalive pings sent so far (their numbers run
/// from 1 to `pings`): the peer read that ping. Other pongs (unsolicited ones, answers to the
/// application's own pings) prove nothing about reading.
fn answers_keepalive(payload: &[u8], pings: u64) -> bool {
    <[u8; 8]>::try_from(payload).is_ok_and(|bytes| (1..=pings).contains(&u64::from_be_bytes(bytes)))
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

#[cfg(test)]
mod tests {
    use super::answers_keepalive;

    #[test]
    fn only_a_pong_echoing_a_keepalive_ping_counts_as_an_answer() {
        assert!(answers_keepalive(&1u64.to_be_bytes(), 1));
        assert!(answers_keepalive(&3u64.to_be_bytes(), 5), "an older ping's pong");
        assert!(!answers_keepalive(&6u64.to_be_bytes(), 5), "a ping never sent");
        assert!(!answers_keepalive(&0u64.to_be_bytes(), 5));
        assert!(!answers_keepalive(b"", 5), "an unsolicited empty pong");
        assert!(!answers_keepalive(b"12345678x", 5));
    }
}
