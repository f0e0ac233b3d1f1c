//! The `HttpServer` transport: actix-web's dispatcher owns the socket, so a connection reads the
//! upgraded request's payload and its frames leave as the 101 response's body. [`Dispatched`]
//! is the task that feeds the payload to the connection's [`ConnState`]; [`OutboundBody`] is
//! the body, taking frames from the queue. A thin adapter over the same state as [`Driver`]
//! (`driver.rs`).
//!
//! actix-web keeps a reference to every payload chunk it hands over, so the decoder copies each
//! frame out of it (`src/protocol/input.rs`). A frame counts as written when the body hands it to
//! the dispatcher, which copies it into its write buffer and writes it in the same poll. The
//! socket is out of reach: when the dispatcher takes nothing for `write_timeout`, or a closing
//! connection's time runs out, the connection shuts the socket down through the handle that
//! [`on_connect`](crate::on_connect) kept (plain TCP only).
//!
//! [`Driver`]: super::driver::Driver

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;

use super::alarm::Alarm;
use super::outbound::{Chunk, Outbound};
use super::session::{dispatch, Session};
use super::state::{ConnState, WRITE_BATCH};
use crate::protocol::{CloseCode, CloseFrame};
use crate::raw_socket::RawSocket;

/// Payload chunks per poll before the task yields to the others of its thread.
const TURNS: usize = 16;

/// At most about this many bytes are handed to the dispatcher per batch.
const BODY_BATCH_BYTES: usize = 256 << 10;

/// The task of one connection under `HttpServer`; see the module docs.
pub(crate) struct Dispatched<P, H> {
    payload: P,
    state: ConnState,
    session: H,
    socket: RawSocket,
    timer: Alarm,
    /// The session stopped taking events with some left in the state (a busy actor): they are
    /// handed over before anything more is read.
    held_back: bool,
}

impl<P, H> Dispatched<P, H> {
    /// The task reading `payload` into `state`'s connection; `socket` shuts it down if needed.
    pub(crate) fn new(payload: P, state: ConnState, session: H, socket: RawSocket) -> Self {
        Dispatched {
            payload,
            state,
            session,
            socket,
            timer: Alarm::default(),
            held_back: false,
        }
    }
}

impl<P, H, E> Dispatched<P, H>
where
    P: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
    H: Session,
{
    fn turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        self.state.handle_timeout(now);
        self.session.poll(cx, &mut self.state);
        let mut busy = true;
        for _ in 0..TURNS {
            if self.held_back {
                // What the session did not take before goes first; no more is read until it is.
                self.held_back = dispatch(&mut self.state, &mut self.session, now);
            }
            if self.state.is_aborted() || !self.state.wants_read(now) || self.held_back || !self.session.wants_events()
            {
                busy = false;
                break;
            }
            match Pin::new(&mut self.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    self.state.receive(bytes);
                    self.held_back = dispatch(&mut self.state, &mut self.session, now);
                    self.session.poll(cx, &mut self.state);
                }
                Poll::Ready(Some(Err(error))) => {
                    self.state.peer_ended(Some(std::io::Error::other(error.to_string())));
                }
                Poll::Ready(None) => self.state.peer_ended(None),
                Poll::Pending => {
                    busy = false;
                    break;
                }
            }
        }
        if self.state.is_aborted() {
            // A write or close timeout (or the dispatcher went away): unstick the dispatcher.
            self.socket.shutdown();
            return Poll::Ready(());
        }
        if self.state.shared().outbound.poll_drained(cx) {
            return Poll::Ready(());
        }
        if self.arm_timer(cx) || busy {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Arms the timer for the state's next deadline; answers `true` when it has already passed.
    fn arm_timer(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.poll(self.state.poll_timeout(), cx)
    }
}

impl<P, H, E> Future for Dispatched<P, H>
where
    P: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
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

/// The 101 response's body: the connection's frames, taken from its queue. It ends once the
/// connection is closed and everything was taken.
///
/// Dropped (the dispatcher went away), it aborts the connection.
#[derive(Debug)]
pub(crate) struct OutboundBody {
    outbound: Arc<Outbound>,
    ready: VecDeque<Chunk>,
}

impl OutboundBody {
    pub(crate) fn new(outbound: Arc<Outbound>) -> OutboundBody {
        OutboundBody {
            outbound,
            ready: VecDeque::new(),
        }
    }
}

impl Stream for OutboundBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ready.is_empty() {
            let done = this
                .outbound
                .take(&mut this.ready, WRITE_BATCH, BODY_BATCH_BYTES, Some(cx));
            if this.ready.is_empty() {
                return if done { Poll::Ready(None) } else { Poll::Pending };
            }
        }
        let Some(chunk) = this.ready.pop_front() else {
            return Poll::Pending;
        };
        // In the dispatcher's write buffer now, written in the same poll.
        if let Some(seq) = chunk.last {
            this.outbound.wrote(seq);
        }
        Poll::Ready(Some(Ok(chunk.bytes)))
    }
}

impl Drop for OutboundBody {
    fn drop(&mut self) {
        let reason = "the HTTP connection went away";
        self.outbound.abort(CloseFrame::new(CloseCode::ABNORMAL, reason));
    }
}
