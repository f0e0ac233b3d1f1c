//! What a connection's driver hands the peer's messages to: a [`Session`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Context;

use crate::callbacks::{self, Panicked};
use crate::protocol::{CloseCode, CloseFrame, Event};
use crate::socket::WebSocket;

use super::state::ConnState;

/// The application's side of a connection: it hears every event the peer sends, on the
/// connection's own task.
pub(crate) trait Session: 'static {
    /// One event from the peer (pings are answered and the close handshake is handled before
    /// the session hears of them).
    ///
    /// # Errors
    ///
    /// [`Panicked`] when the application's code panicked: the connection fails with 1011.
    fn event(&mut self, event: Event) -> Result<(), Panicked>;

    /// Runs the session's own work (an actor's mailbox, timers and futures). The driver calls it
    /// at the start of each turn and after each dispatch, with the connection's waker, which the
    /// session's work wakes when it has more to do.
    fn poll(&mut self, _cx: &mut Context<'_>, _state: &mut ConnState) {}

    /// Whether the session takes more events now. A session that holds events it has not
    /// handled yet (an actor waiting on a future) answers `false`, and the driver stops reading:
    /// the peer's bytes wait in the kernel, not in memory of ours.
    fn wants_events(&self) -> bool {
        true
    }

    /// The connection is over: the session's last turn (an actor hears the end of its stream
    /// and stops).
    fn ended(&mut self, _cx: &mut Context<'_>, _state: &mut ConnState) {}
}

/// The session a connection runs: the callback style, known to the compiler so its dispatch
/// stays a direct call, or any other (an application's actor), boxed.
pub(crate) enum AnySession {
    Callbacks(CallbackSession),
    Boxed(Box<dyn Session>),
}

impl Session for AnySession {
    fn event(&mut self, event: Event) -> Result<(), Panicked> {
        match self {
            AnySession::Callbacks(session) => session.event(event),
            AnySession::Boxed(session) => session.event(event),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>, state: &mut ConnState) {
        if let AnySession::Boxed(session) = self {
            session.poll(cx, state);
        }
    }

    fn wants_events(&self) -> bool {
        match self {
            AnySession::Callbacks(_) => true,
            AnySession::Boxed(session) => session.wants_events(),
        }
    }

    fn ended(&mut self, cx: &mut Context<'_>, state: &mut ConnState) {
        if let AnySession::Boxed(session) = self {
            session.ended(cx, state);
        }
    }
}

/// The callback style: the callbacks registered on the connection's [`WebSocket`] handle.
pub(crate) struct CallbackSession {
    ws: WebSocket,
}

impl CallbackSession {
    pub(crate) fn new(ws: WebSocket) -> CallbackSession {
        CallbackSession { ws }
    }
}

impl Session for CallbackSession {
    fn event(&mut self, event: Event) -> Result<(), Panicked> {
        match event {
            Event::Text(text) => callbacks::call(&self.ws, |c| &mut c.text, text),
            Event::Binary(bytes) => callbacks::call(&self.ws, |c| &mut c.binary, bytes),
            Event::Ping(payload) => callbacks::call(&self.ws, |c| &mut c.ping, payload),
            Event::Pong(payload) => callbacks::call(&self.ws, |c| &mut c.pong, payload),
            Event::Close(_) => Ok(()),
        }
    }
}

/// Hands `session` every event received so far, at `now`. A panic in the session fails the
/// connection with 1011, and only this connection. Answers `true` when the session took no more
/// (`wants_events` said no) and events may be left for a later call.
pub(crate) fn dispatch<H: Session + ?Sized>(state: &mut ConnState, session: &mut H, now: std::time::Instant) -> bool {
    while session.wants_events() {
        let Some(event) = state.next_event(now) else {
            return false;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| session.event(event)))
            .unwrap_or_else(|payload| Err(callbacks::panicked(payload)));
        if let Err(Panicked(message)) = outcome {
            log::error!(
                "session {}: a handler panicked ({message}); closing with 1011",
                state.shared().id
            );
            state.fail(CloseFrame::new(CloseCode::INTERNAL, "internal error"));
            return false;
        }
    }
    true
}
