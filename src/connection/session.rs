//! What a connection's driver hands the peer's messages to: a [`Session`].

use std::panic::{catch_unwind, AssertUnwindSafe};

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
        let shared = &self.ws.shared;
        match event {
            Event::Text(text) => {
                let callback = shared.callbacks.lock().text.clone();
                callbacks::call(callback, &self.ws, text)
            }
            Event::Binary(bytes) => {
                let callback = shared.callbacks.lock().binary.clone();
                callbacks::call(callback, &self.ws, bytes)
            }
            Event::Ping(payload) => {
                let callback = shared.callbacks.lock().ping.clone();
                callbacks::call(callback, &self.ws, payload)
            }
            Event::Pong(payload) => {
                let callback = shared.callbacks.lock().pong.clone();
                callbacks::call(callback, &self.ws, payload)
            }
            Event::Close(_) => Ok(()),
        }
    }
}

/// Hands `session` every event received so far, at `now`. A panic in the session fails the
/// connection with 1011, and only this connection.
pub(crate) fn dispatch(state: &mut ConnState, session: &mut impl Session, now: std::time::Instant) {
    while let Some(event) = state.next_event(now) {
        let outcome = catch_unwind(AssertUnwindSafe(|| session.event(event)))
            .unwrap_or_else(|payload| Err(callbacks::panicked(payload)));
        if let Err(Panicked(message)) = outcome {
            log::error!(
                "session {}: a handler panicked ({message}); closing with 1011",
                state.shared().id
            );
            state.fail(CloseFrame::new(CloseCode::INTERNAL, "internal error"));
            return;
        }
    }
}
