//! [`Driver`]: one task per connection that owns its socket (a TCP stream, a TLS stream, a
//! client's stream), around the connection's [`ConnState`].
//!
//! Each turn it writes what is queued (vectored, many frames per syscall, payloads by reference),
//! then reads once, feeds the state and hands the session each event, so that what the session
//! answered to one read goes out at the start of the next turn, while its bytes are still in the
//! CPU's cache. (Through a separate writer task, every other ready connection read before the
//! answer was written; the 64 KiB echo's kernel copies took three to four and a half times as long
//! as tungstenite's, which reads and writes one message at a time: docs/bench-results/history.md,
//! profile item 11.) It sleeps until the socket, the queue (another thread sent a frame) or the
//! state's next deadline wakes it.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

use super::alarm::Alarm;
use super::session::{dispatch, Session};
use super::state::{ConnState, WRITE_BATCH};

/// The smallest read buffer (as a power of two: 4 KiB), and the least free space a read is
/// given: less and a large message takes too many syscalls.
const READ_MIN_LOG2: u8 = 12;
const READ_MIN: usize = 1 << READ_MIN_LOG2;

/// The largest read buffer (256 KiB). The size adapts between the two: it doubles after a read
/// that filled it and halves after one that used under a quarter of it.
const READ_MAX_LOG2: u8 = 18;

/// A connection that goes quiet keeps a read buffer up to this size, and lets a larger one go,
/// so that ten thousand idle connections do not hold their last burst's buffer.
const READ_KEEP: usize = 8 << 10;

/// Reads (and the writes around them) per poll before the driver yields to the other
/// connections of its thread, as actix yields after 16 items of a stream.
const TURNS: usize = 16;

/// A stream a driver can own: any `AsyncRead + AsyncWrite`, and, where it can tell, whether it
/// has something to read. A driver reserves its read buffer only once there is: ten thousand idle
/// connections then hold no read buffer at all (4 KiB each otherwise).
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + 'static {
    /// Ready once a read may find bytes. The default cannot tell and is always ready (a TLS
    /// stream buffers what it decrypts anyway).
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Transport for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

/// `switchboard::Server`'s TLS stream. rustls holds what it decrypted, so a read may find bytes
/// with the socket drained: always ready.
impl Transport for actix_tls::accept::rustls_0_23::TlsStream<tokio::net::TcpStream> {}

/// One connection's task; see the module docs.
pub(crate) struct Driver<S, H> {
    io: S,
    state: ConnState,
    session: H,
    /// The read buffer; each read is split off it and handed to the decoder, which unmasks a
    /// large frame where it lies. At the start it holds what the peer sent after its handshake,
    /// fed first (no field of its own: an idle connection's task is smaller).
    buf: BytesMut,
    /// How much the next read buffer holds, as a power of two. A byte, not a `usize`: with it
    /// the task (header, driver, trailer) fits 512 bytes; tokio rounds a task up to a multiple of
    /// 128, and 8 bytes more would make it 640 (test `an_idle_connection_task_fits_512_bytes`).
    size_log2: u8,
    /// Armed for the state's next deadline.
    timer: Alarm,
    /// The session stopped taking events with some left in the state (a busy actor): they are
    /// handed over before anything more is read.
    held_back: bool,
    /// The write side is shut down; what is left is to finish that.
    shutting_down: bool,
}

impl<S, H> Driver<S, H>
where
    S: Transport,
    H: Session,
{
    /// A driver for `state`'s connection on `io`, which starts by feeding it `leftover`.
    pub(crate) fn new(io: S, state: ConnState, session: H, leftover: Bytes) -> Driver<S, H> {
        Driver {
            io,
            state,
            session,
            buf: BytesMut::from(&leftover[..]),
            size_log2: READ_MIN_LOG2,
            timer: Alarm::default(),
            held_back: false,
            shutting_down: false,
        }
    }

    /// Writes what is queued until the socket pushes back or nothing is left.
    fn write(&mut self, cx: &mut Context<'_>, now: Instant) -> Poll<io::Result<()>> {
        loop {
            let chunks = self.state.in_flight(Some(cx));
            let written = match chunks.len() {
                0 => return Poll::Ready(Ok(())),
                // One buffer: `send`, which skips writev's iovec handling in the kernel.
                1 => match chunks.front() {
                    Some(chunk) => Pin::new(&mut self.io).poll_write(cx, &chunk.bytes),
                    None => return Poll::Ready(Ok(())),
                },
                _ => {
                    let mut slices = [IoSlice::new(&[]); WRITE_BATCH + 1];
                    for (slice, chunk) in slices.iter_mut().zip(chunks) {
                        *slice = IoSlice::new(&chunk.bytes);
                    }
                    let count = chunks.len().min(slices.len());
                    let slices = slices.get(..count).unwrap_or_default();
                    Pin::new(&mut self.io).poll_write_vectored(cx, slices)
                }
            };
            match written {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.state.wrote(n),
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    self.state.write_blocked(now);
                    return Poll::Pending;
                }
            }
            // A TLS stream holds the last record until flushed.
            if self.state.in_flight(None).is_empty() {
                ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            }
        }
    }

    /// Reads once: `Some(chunk)`, `None` at the peer's end.
    fn read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<BytesMut>>> {
        if !self.buf.is_empty() {
            // The handshake's leftover (every read is split off whole).
            return Poll::Ready(Ok(Some(self.buf.split())));
        }
        if self.buf.capacity() - self.buf.len() < READ_MIN {
            if self.io.poll_read_ready(cx)?.is_pending() {
                return Poll::Pending;
            }
            self.buf.reserve(1 << self.size_log2);
        }
        let room = self.buf.capacity() - self.buf.len();
        // tokio's `poll_read`, unlike `try_read`, takes a read that leaves room in the buffer as
        // proof the socket is drained: no second `recv` just to hear `EAGAIN` (one per read in
        // the 32 B echo benchmark).
        match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf) {
            Poll::Pending => {
                if self.buf.capacity() > READ_KEEP {
                    self.buf = BytesMut::new();
                }
                Poll::Pending
            }
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(None)),
            Poll::Ready(Ok(read)) => {
                if read == room {
                    self.size_log2 = (self.size_log2 + 1).min(READ_MAX_LOG2);
                } else if read < (1 << self.size_log2) / 4 {
                    self.size_log2 = (self.size_log2 - 1).max(READ_MIN_LOG2);
                }
                Poll::Ready(Ok(Some(self.buf.split())))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }

    /// Arms the timer for the state's next deadline; answers `true` when it has already passed.
    fn arm_timer(&mut self, cx: &mut Context<'_>) -> bool {
        if self.timer.poll(self.state.poll_timeout(), cx) {
            // The same tick lets a quiet connection's spent read buffer go.
            self.state.release_spent_input();
            return true;
        }
        false
    }

    /// One poll's work; `Ready` when the connection is over.
    fn turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        self.state.handle_timeout(now);
        // The session's own work (an actor's mailbox and timers).
        self.session.poll(cx, &mut self.state);
        // Still reading when the turns run out: more may be ready, come back after the others.
        let mut busy = true;
        for _ in 0..TURNS {
            if self.state.is_aborted() {
                return Poll::Ready(());
            }
            if let Poll::Ready(Err(error)) = self.write(cx, now) {
                self.state.write_failed(&error);
                return Poll::Ready(());
            }
            if self.shutting_down || self.state.is_done(Some(cx)) {
                self.shutting_down = true;
                // Closing our side is the last write; the socket is dropped after it.
                return Pin::new(&mut self.io).poll_shutdown(cx).map(|_| ());
            }
            if self.held_back {
                // What the session did not take before: it goes first, and no more is read
                // until it is taken.
                self.held_back = dispatch(&mut self.state, &mut self.session, now);
            }
            if !self.state.wants_read(now) || self.held_back || !self.session.wants_events() {
                busy = false;
                break;
            }
            match self.read(cx) {
                Poll::Pending => {
                    busy = false;
                    break;
                }
                Poll::Ready(Ok(Some(chunk))) => {
                    self.state.receive(chunk);
                    self.held_back = dispatch(&mut self.state, &mut self.session, now);
                    self.session.poll(cx, &mut self.state);
                }
                Poll::Ready(Ok(None)) => self.state.peer_ended(None),
                Poll::Ready(Err(error)) => self.state.peer_ended(Some(error)),
            }
            if self.state.poll_timeout().is_some_and(|deadline| deadline <= now) {
                self.state.handle_timeout(now);
            }
        }
        if self.arm_timer(cx) || busy {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<S, H> Future for Driver<S, H>
where
    S: Transport,
    H: Session + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let done = this.turn(cx);
        if done.is_ready() {
            this.session.ended(cx, &mut this.state);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::session::AnySession;

    /// tokio allocates a task as header (32 bytes), future with scheduler and id, and trailer
    /// (48 bytes), aligned to 128: 8 bytes past 512 cost an idle connection 128 (docs/benchmarks.md).
    /// Tests build tokio with `rt-multi-thread`, which makes its `TcpStream` 8 bytes larger than
    /// in a server on actix's current-thread runtime: that difference is taken off.
    #[test]
    fn an_idle_connection_task_fits_512_bytes() {
        const SERVER_TCP_STREAM: usize = 24;
        let test_only = size_of::<tokio::net::TcpStream>().saturating_sub(SERVER_TCP_STREAM);
        let task = 32 + size_of::<Driver<tokio::net::TcpStream, AnySession>>() - test_only + 24 + 48;
        assert!(task <= 512, "{task} bytes");
    }
}
