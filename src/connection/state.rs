//! [`ConnState`]: one connection's protocol, close handshake, clocks and outbound queue, with no
//! I/O. Bytes and the time go in; events for the session and chunks for the socket come out.
//!
//! A driver (`driver.rs` for a socket it owns, `dispatched.rs` under actix-web's `HttpServer`)
//! feeds it what the peer sends ([`ConnState::receive`]), hands the session each event
//! ([`ConnState::next_event`]), writes what it has for the socket ([`ConnState::in_flight`],
//! [`ConnState::wrote`]), and asks it what is due ([`ConnState::handle_timeout`]). Dropping it is
//! the connection's one teardown: it ends the close state, fails unwritten sends, leaves the hub
//! and counts the close.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;

use super::outbound::{Chunk, CloseState, Phase};
use super::timers::{Due, Timers};
use crate::config::Config;
use crate::limits::HeldSlots;
use crate::protocol::deflate::Inflating;
use crate::protocol::{CloseCode, CloseFrame, Decoder, Event, Input, OpCode, ProtocolError};
use crate::socket::Shared;

/// At most this many chunks are taken from the queue for one write (one `writev`).
pub(crate) const WRITE_BATCH: usize = 64;

/// At most about this many bytes are taken from the queue for one write: a slow peer's frames
/// wait in the queue, where the limit counts them, not in the writer's hands.
const WRITE_BATCH_BYTES: usize = 256 << 10;

/// The connection's state; see the module docs.
pub(crate) struct ConnState {
    shared: Arc<Shared>,
    config: Arc<Config>,
    decoder: Decoder,
    timers: Timers,
    /// Reading goes on: false once the peer's close arrived, the connection failed, or the peer
    /// ended its side.
    reading: bool,
    /// The close timer runs: the connection left `Open`.
    closing: bool,
    /// Chunks taken from the queue, not yet written whole; the first may be partly written.
    in_flight: VecDeque<Chunk>,
    /// The write timeout, for drivers that cannot see the socket (actix-web's dispatcher).
    /// Boxed: the other connections' tasks stay within 512 bytes (`driver.rs`).
    watch: Option<Box<WriteWatch>>,
    /// Messages and their payload bytes received since they were last added to the shared
    /// metrics: added once per batch of events (when the decoder runs dry, and at the end)
    /// rather than with two atomic adds per message. The count is 32 bits, so that it packs
    /// with the `reading` and `closing` flags and the task stays in tokio's 512-byte class
    /// (`driver.rs`); it is added early should a batch ever reach its maximum.
    received_messages: u32,
    received_bytes: u64,
    /// Released when the connection ends: its connection slots.
    _slots: HeldSlots,
}

/// Whether the queue moved, for drivers that cannot see the socket.
#[derive(Debug, Default)]
struct WriteWatch {
    /// The queue's take count at the last check.
    taken: u64,
    /// Since when something has waited without being taken.
    stalled_since: Option<Instant>,
}

impl ConnState {
    /// The state of a connection opened at `now`. `watch_writes` for a driver that cannot see
    /// the socket: the state then watches that its queue is taken. `slots` are released with it.
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: Arc<Config>,
        now: Instant,
        watch_writes: bool,
        slots: HeldSlots,
    ) -> ConnState {
        let mut decoder = Decoder::new(shared.role, config.max_frame_size, config.max_message_size);
        if let Some(deflate) = &shared.deflate {
            decoder.set_inflating(Inflating::new(&deflate.params));
        }
        shared.metrics.connection_opened();
        log::debug!("session {} open", shared.id);
        ConnState {
            timers: Timers::new(&config, now, watch_writes),
            shared,
            config,
            decoder,
            reading: true,
            closing: false,
            in_flight: VecDeque::new(),
            watch: watch_writes.then(Box::default),
            received_messages: 0,
            received_bytes: 0,
            _slots: slots,
        }
    }

    /// The connection's shared half (the handle's).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether the driver should read: not after the close handshake, a failure, or the peer's
    /// end. Notices a close made by another thread, and starts the close timer then.
    pub(crate) fn wants_read(&mut self, now: Instant) -> bool {
        let phase = self.shared.outbound.phase();
        if phase != Phase::Open {
            self.enter_closing(now);
        }
        self.reading && phase < Phase::Closed
    }

    /// The connection left `Open` at `now`: the close timer starts, keepalive and idle stop.
    fn enter_closing(&mut self, now: Instant) {
        if !self.closing {
            self.closing = true;
            self.timers.closing(&self.config, now);
        }
    }

    /// Whether the connection is over and everything it had to write is written: the driver
    /// shuts the socket down. With `cx`, the driver's waker is kept to hear of new frames.
    pub(crate) fn is_done(&mut self, cx: Option<&mut std::task::Context<'_>>) -> bool {
        // What the queue hands over now is not written yet: done only with nothing in flight.
        self.in_flight.is_empty() && self.take(cx) && self.in_flight.is_empty()
    }

    /// Whether the connection was aborted: the driver drops the socket without writing more.
    pub(crate) fn is_aborted(&self) -> bool {
        self.shared.outbound.phase() == Phase::Aborted
    }

    /// Bytes the peer sent.
    pub(crate) fn receive(&mut self, input: impl Into<Input>) {
        self.decoder.feed_input(input.into());
    }

    /// The next event for the session from what was received, at `now`; `None` when more bytes
    /// are needed or reading has stopped. Pings are answered, the close handshake and protocol
    /// errors are handled here; the session hears of them all the same.
    pub(crate) fn next_event(&mut self, now: Instant) -> Option<Event> {
        if !self.reading {
            return None;
        }
        match self.decoder.next_event() {
            Ok(Some(event)) => {
                self.on_event(&event, now);
                Some(event)
            }
            Ok(None) => {
                self.count_received();
                None
            }
            Err(error) => {
                self.count_received();
                self.protocol_error(error);
                None
            }
        }
    }

    /// Adds what was received since the last call to the shared metrics.
    fn count_received(&mut self) {
        let messages = std::mem::take(&mut self.received_messages);
        let bytes = std::mem::take(&mut self.received_bytes);
        if messages > 0 {
            self.shared.metrics.messages_in(u64::from(messages), bytes);
        }
    }

    /// Counts one message of `len` payload bytes received.
    fn received(&mut self, len: usize) {
        if self.received_messages == u32::MAX {
            self.count_received();
        }
        self.received_messages += 1;
        self.received_bytes += len as u64;
    }

    fn on_event(&mut self, event: &Event, now: Instant) {
        let shared = &self.shared;
        match event {
            Event::Text(text) => {
                self.timers.message(now);
                self.received(text.len());
            }
            Event::Binary(bytes) => {
                self.timers.message(now);
                self.received(bytes.len());
            }
            // A few pongs wait at most; refused once our close is queued, when no pong may
            // follow it, and when the queue is full (then the connection fails, 1008).
            Event::Ping(payload) => shared.queue_pong(shared.encode(OpCode::Pong, payload)),
            Event::Pong(payload) => self.timers.pong(payload),
            Event::Close(frame) => self.on_peer_close(frame.clone()),
        }
    }

    /// The peer's close frame: answered with its code if we had not closed; the handshake is
    /// over and reading stops.
    fn on_peer_close(&mut self, frame: Option<CloseFrame>) {
        self.reading = false;
        let shared = &self.shared;
        // Echo the peer's code (RFC 6455 §5.5.1); an empty close is answered empty.
        let answer = frame
            .as_ref()
            .map(|f| CloseFrame::new(f.code, "").to_payload())
            .unwrap_or_default();
        let peer = frame.unwrap_or_else(|| CloseFrame::new(CloseCode::NO_STATUS, ""));
        let answer = shared.encode(OpCode::Close, &answer);
        let record = shared.outbound.end(peer, Some(answer), false);
        log::debug!(
            "session {}: close handshake done ({} {:?})",
            shared.id,
            record.code,
            record.reason
        );
    }

    fn protocol_error(&mut self, error: ProtocolError) {
        log::info!(
            "session {}: protocol error: {error}; closing with {}",
            self.shared.id,
            error.close_code()
        );
        self.shared.metrics.protocol_error();
        self.fail(CloseFrame::new(error.close_code(), error.to_string()));
    }

    /// Fails the connection (RFC 6455 §7.1.7): reading stops, our close frame goes out after what
    /// is queued (unless ours went already), then the socket closes, within `close_timeout`.
    pub(crate) fn fail(&mut self, frame: CloseFrame) {
        self.reading = false;
        let encoded = self.shared.encode(OpCode::Close, &frame.to_payload());
        self.shared.outbound.end(frame, Some(encoded), false);
    }

    /// The peer ended its side of the connection (`None`), or reading failed.
    pub(crate) fn peer_ended(&mut self, error: Option<std::io::Error>) {
        self.reading = false;
        match error {
            None => {
                let reason = "the peer ended the connection without a close frame";
                self.shared
                    .outbound
                    .end(CloseFrame::new(CloseCode::ABNORMAL, reason), None, false);
            }
            Some(error) => {
                log::debug!("session {}: read error: {error}", self.shared.id);
                let reason = format!("read error: {error}");
                self.shared.outbound.abort(CloseFrame::new(CloseCode::ABNORMAL, reason));
            }
        }
    }

    /// Writing failed: the socket is gone.
    pub(crate) fn write_failed(&mut self, error: &std::io::Error) {
        log::debug!("session {}: socket write failed: {error}", self.shared.id);
        let reason = format!("write error: {error}");
        self.shared.outbound.abort(CloseFrame::new(CloseCode::ABNORMAL, reason));
    }

    /// Chunks to write, oldest first; refilled from the queue when empty. With `cx`, the driver's
    /// waker is kept to hear of new frames when there are none.
    pub(crate) fn in_flight(&mut self, cx: Option<&mut std::task::Context<'_>>) -> &VecDeque<Chunk> {
        if self.in_flight.is_empty() {
            self.take(cx);
        }
        &self.in_flight
    }

    /// Takes frames from the queue; answers whether the queue is done.
    fn take(&mut self, cx: Option<&mut std::task::Context<'_>>) -> bool {
        let outbound = &self.shared.outbound;
        outbound.take(&mut self.in_flight, WRITE_BATCH, WRITE_BATCH_BYTES, cx)
    }

    /// A write waits for the socket at `now`: the write timeout runs from the first such time.
    pub(crate) fn write_blocked(&mut self, now: Instant) {
        self.timers.write_blocked(now);
    }

    /// The socket accepted `written` bytes of the chunks in flight: frames written to their last
    /// byte resolve their send futures.
    pub(crate) fn wrote(&mut self, mut written: usize) {
        if written > 0 {
            self.timers.write_moved();
        }
        let mut last = None;
        while let Some(chunk) = self.in_flight.front_mut() {
            if written < chunk.bytes.len() {
                chunk.bytes.advance(written);
                break;
            }
            written -= chunk.bytes.len();
            last = chunk.last.or(last);
            self.in_flight.pop_front();
        }
        if let Some(seq) = last {
            self.shared.outbound.wrote(seq);
        }
    }

    /// When something is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline(&self.config)
    }

    /// Does what is due at `now`: keepalive pings and their timeout, the idle close, the close
    /// timeout, the write check.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(due) = self.timers.due(&self.config, now) {
            let shared = &self.shared;
            match due {
                Due::Ping(n) => {
                    // Refused when the queue is full (the peer does not read): the pong clock
                    // runs all the same, no answer can come.
                    let _ = shared.outbound.push(&shared.encode(OpCode::Ping, &n.to_be_bytes()));
                    if let Some(deflate) = &shared.deflate {
                        deflate.release_if_unused();
                    }
                }
                Due::Idle => {
                    log::info!(
                        "session {}: no message for {:?}; closing with 1001",
                        shared.id,
                        self.config.idle_timeout
                    );
                    shared.start_close(CloseFrame::new(CloseCode::AWAY, "idle timeout"), false);
                    self.enter_closing(now);
                }
                Due::WriteCheck => self.check_writes(now),
                Due::WriteTimeout => self.write_timed_out(),
                Due::KeepaliveTimeout => {
                    self.keepalive_timeout();
                    self.enter_closing(now);
                }
                Due::CloseTimeout => self.close_timeout(),
            }
        }
    }

    fn keepalive_timeout(&mut self) {
        self.reading = false;
        let shared = &self.shared;
        let reason = format!(
            "keepalive timeout: no answer to a ping within {:?}",
            self.config.pong_timeout
        );
        log::warn!("session {}: {reason}; dropping the connection", shared.id);
        shared.metrics.keepalive_timeout();
        let goodbye = CloseFrame::new(CloseCode::AWAY, "keepalive timeout").to_payload();
        let goodbye = shared.encode(OpCode::Close, &goodbye);
        shared
            .outbound
            .end(CloseFrame::new(CloseCode::ABNORMAL, reason), Some(goodbye), false);
    }

    /// The close handshake, or the last writes of a closed connection, ran out of time.
    fn close_timeout(&mut self) {
        let record = match self.shared.outbound.close_state() {
            CloseState::Closing(ours) => ours,
            CloseState::Closed(record) => record,
            CloseState::Open => CloseFrame::new(CloseCode::ABNORMAL, ""),
        };
        log::debug!(
            "session {}: closing took over {:?}",
            self.shared.id,
            self.config.close_timeout
        );
        self.shared.outbound.abort(record);
    }

    /// The write timeout of a driver that does not see the socket: when the queue has had
    /// something waiting and nothing was taken for the timeout, the socket takes nothing.
    fn check_writes(&mut self, now: Instant) {
        let (Some(watch), Some(timeout)) = (self.watch.as_mut(), self.config.write_timeout) else {
            return;
        };
        let (taken, waiting) = self.shared.outbound.progress();
        if !waiting || taken != watch.taken {
            **watch = WriteWatch {
                taken,
                stalled_since: None,
            };
            return;
        }
        let since = *watch.stalled_since.get_or_insert(now);
        if now.duration_since(since) >= timeout {
            self.write_timed_out();
        }
    }

    /// The socket accepted no byte for `write_timeout`: the connection is aborted (no close frame
    /// can reach the peer), counted and logged.
    pub(crate) fn write_timed_out(&mut self) {
        let timeout = self.config.write_timeout.unwrap_or_default();
        log::warn!(
            "session {}: the socket took no byte for {timeout:?}; aborting the connection",
            self.shared.id
        );
        self.shared.metrics.write_timeout();
        let reason = format!("write timeout: the peer read nothing for {timeout:?}");
        self.shared.outbound.abort(CloseFrame::new(CloseCode::ABNORMAL, reason));
    }

    /// Lets a quiet connection's spent read buffer go (the decoder keeps the last chunk's empty
    /// rest, which holds the chunk's memory).
    pub(crate) fn release_spent_input(&mut self) {
        self.decoder.release_spent_input();
    }
}

impl Drop for ConnState {
    /// The one teardown of every connection, however it ended.
    fn drop(&mut self) {
        self.count_received();
        let shared = &self.shared;
        shared
            .outbound
            .abort(CloseFrame::new(CloseCode::ABNORMAL, "connection lost"));
        shared.teardown();
    }
}

#[cfg(test)]
mod tests;
