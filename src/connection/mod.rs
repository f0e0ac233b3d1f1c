//! The connection core: one WebSocket connection, as a state with no I/O and a driver per
//! transport.
//!
//! | file | what it holds |
//! | --- | --- |
//! | `frames.rs` | the frames waiting for the socket, in order, measured in bytes and numbered |
//! | `outbound.rs` | those frames and the one close state under one lock, shared with every thread that sends |
//! | `state.rs` | [`ConnState`]: the decoder, the close handshake, pongs, the clocks and the write accounting; bytes and time in, events and chunks out |
//! | `timers.rs` | the keepalive, idle, close and write deadlines as values |
//! | `alarm.rs` | the one tokio timer a driver sleeps on, armed for the next of those deadlines |
//! | `session.rs` | what the peer's events are handed to: the callback style, or a session actor (`crate::ws`) |
//! | `driver.rs` | the task of a connection that owns its socket: TCP, TLS, or a client's stream |
//! | `dispatched.rs` | the adapter under actix-web's `HttpServer`, whose dispatcher owns the socket |
//!
//! A connection is made [`Pending`] (its handle exists, so a handler can register callbacks
//! before anything is read), then started on its transport.
//!
//! [`ConnState`]: state::ConnState

mod alarm;
pub(crate) mod dispatched;
pub(crate) mod driver;
mod frames;
pub(crate) mod outbound;
mod session;
pub(crate) mod state;
mod timers;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;

use crate::config::Config;
use crate::limits::HeldSlots;
use crate::metrics::Metrics;
use crate::protocol::deflate::{Agreed, Deflating, Params};
use crate::protocol::Role;
use crate::raw_socket::RawSocket;
use crate::socket::{Shared, WebSocket};
use dispatched::{Dispatched, OutboundBody};
use driver::Driver;
pub(crate) use driver::Transport;
pub(crate) use session::Session;
use session::{AnySession, CallbackSession};
pub(crate) use state::ConnState;

/// A connection whose handle exists (so a handler can register callbacks on it) but which has
/// not started reading yet.
pub(crate) struct Pending {
    ws: WebSocket,
    config: Arc<Config>,
    /// What hears the peer: a session actor, or (`None`) the callbacks on the handle.
    session: Option<Box<dyn Session>>,
}

impl Pending {
    /// Makes the connection's handle.
    /// `deflate` is the permessage-deflate agreement of the handshake, if any.
    pub(crate) fn new(
        role: Role,
        protocol: Option<String>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        deflate: Option<Agreed>,
    ) -> Pending {
        let deflate = deflate.map(|agreed| Deflating::new(Params::new(agreed, role), &config));
        let shared = Shared::new(role, protocol, config.max_outbound_queue, metrics, deflate);
        Pending {
            ws: WebSocket::new(shared),
            config,
            session: None,
        }
    }

    /// The socket handle, to give to the handler before the connection starts.
    pub(crate) fn socket(&self) -> &WebSocket {
        &self.ws
    }

    /// Hands the peer's events to `session` (a session actor) instead of the handle's callbacks.
    pub(crate) fn set_session(&mut self, session: Box<dyn Session>) {
        self.session = Some(session);
    }

    /// The session the connection runs, taking the handle.
    fn into_session(self) -> AnySession {
        match self.session {
            Some(session) => AnySession::Boxed(session),
            None => AnySession::Callbacks(CallbackSession::new(self.ws)),
        }
    }

    /// The connection's state, starting now.
    fn state(&self, watch_writes: bool, slots: HeldSlots) -> ConnState {
        let shared = self.ws.shared.clone();
        ConnState::new(shared, self.config.clone(), Instant::now(), watch_writes, slots)
    }

    /// Starts the connection on a socket it owns (`leftover` is what the peer sent after its
    /// handshake), as a task on the current actix arbiter. `slots` are released when it ends.
    pub(crate) fn run_owned<S: Transport>(self, io: S, leftover: Bytes, slots: HeldSlots) {
        let state = self.state(false, slots);
        let session = self.into_session();
        actix_rt::spawn(Driver::new(io, state, session, leftover));
    }

    /// Starts the connection under actix-web's `HttpServer`: a task on the current arbiter reads
    /// `payload`; the answer is the 101 response's body. `socket` is the handle `on_connect` left,
    /// if any; `slots` are released when the connection ends.
    pub(crate) fn run_dispatched<P, B, E>(self, payload: P, socket: RawSocket, slots: HeldSlots) -> OutboundBody
    where
        P: Stream<Item = Result<B, E>> + Unpin + 'static,
        B: Into<Bytes> + 'static,
        E: std::fmt::Display + 'static,
    {
        let body = OutboundBody::new(self.ws.shared.outbound.clone());
        let state = self.state(true, slots);
        let session = self.into_session();
        let payload = futures_util::StreamExt::map(payload, |item| item.map(Into::into));
        actix_rt::spawn(Dispatched::new(payload, state, session, socket));
        body
    }
}
