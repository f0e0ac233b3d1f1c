//! [`ActorSession`]: a session actor hosted on its connection's task, as the connection's
//! [`Session`]. The actor's context future is polled by the connection's driver, so the actor,
//! its timers and its mailbox run on the connection's thread with no task or channel of their
//! own, and a panic in the actor is caught where it happens.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix::dev::ContextFut;
use actix::{Actor, Addr, AsyncContext, StreamHandler};
use actix_http::ws::{CloseReason, Message, ProtocolError};
use futures_util::Future;

use crate::callbacks::{self, Panicked};
use crate::config::Config;
use crate::connection::{ConnState, Session};
use crate::hub::{Hub, SessionId};
use crate::protocol::{CloseCode, CloseFrame, Event};

use super::inbox::{Inbox, InboxStream};
use super::mailbox::{Pump, Queue};
use super::wake::ActorWaker;
use super::WebsocketContext;

/// Polls of the actor per driver turn while it stays due: enough for the inbox's 32 messages at
/// actix's 16 per poll, with room for a mailbox batch; a busier actor yields to the connection
/// (and the other connections of its thread) and is polled again on the next turn.
const POLLS_PER_TURN: usize = 4;

/// Restarts a supervised actor's context (actix's `ContextFut::restart`, which calls the
/// actor's `restarting`); answers whether it did.
pub(crate) type Restart<A> = fn(&mut ContextFut<A, WebsocketContext<A>>) -> bool;

/// One session actor and what it needs from its connection.
pub(crate) struct ActorSession<A: Actor<Context = WebsocketContext<A>>> {
    /// The actor and its context; `None` once the actor stopped or failed.
    fut: Option<ContextFut<A, WebsocketContext<A>>>,
    inbox: Rc<Inbox>,
    /// Polled only when due (see `wake.rs`).
    wake: ActorWaker,
    queue: Arc<Queue<A>>,
    /// Keeps the actor's actix mailbox connected while the connection lives: actix restarts
    /// only an actor that has an address, and the actor stops when its stream ends anyway.
    keep: Option<Addr<A>>,
    restart: Option<Restart<A>>,
    restarts: VecDeque<Instant>,
    config: Arc<Config>,
    hub: Hub,
    id: SessionId,
    /// The peer's close frame was handed to the actor.
    heard_close: bool,
}

impl<A> ActorSession<A>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
{
    /// Hosts `actor` with `ctx`; the caller added the inbox stream and the pump to `ctx`.
    pub(crate) fn new(
        actor: A,
        ctx: WebsocketContext<A>,
        mailbox: actix::dev::Mailbox<A>,
        restart: Option<Restart<A>>,
        config: Arc<Config>,
    ) -> (Addr<A>, ActorSession<A>) {
        let inbox = ctx.inbox.clone();
        let queue = ctx.queue.clone();
        let hub = ctx.hub.clone();
        let id = ctx.ws.id();
        let addr = ctx.address();
        let session = ActorSession {
            fut: Some(ContextFut::new(ctx, actor, mailbox)),
            inbox,
            wake: ActorWaker::new(),
            queue,
            keep: Some(addr.clone()),
            restart,
            restarts: VecDeque::new(),
            config,
            hub,
            id,
            heard_close: false,
        };
        (addr, session)
    }

    /// A handler panicked: restart a supervised actor within its budget, or fail the
    /// connection with 1011. Only this connection is affected.
    fn panicked(&mut self, message: &str, state: &mut ConnState) {
        let id = state.shared().id;
        let now = Instant::now();
        let window = self.config.restart_window;
        self.restarts.retain(|at| now.duration_since(*at) < window);
        let within_budget = self.restarts.len() < self.config.max_restarts as usize;
        if let (Some(restart), Some(fut), true) = (self.restart, self.fut.as_mut(), within_budget) {
            if let Ok(true) = catch_unwind(AssertUnwindSafe(|| restart(fut))) {
                log::error!("session {id}: the actor panicked ({message}); restarted it");
                self.restarts.push_back(now);
                state.shared().metrics.actor_restart();
                // A restart cancels what the context ran, the peer's stream included.
                fut.ctx().add_stream(InboxStream(self.inbox.clone()));
                fut.ctx().spawn(Pump::new(self.queue.clone()));
                self.wake.wake();
                return;
            }
        }
        log::error!("session {id}: the actor panicked ({message}); closing with 1011");
        state.fail(CloseFrame::new(CloseCode::INTERNAL, "internal error"));
        self.finish();
    }

    /// What the actor hears when the connection failed for a protocol error it did not see
    /// as a close frame: actix-web-actors handed such errors to the stream handler.
    fn failure(&self, state: &ConnState) -> Option<ProtocolError> {
        let record = state.shared().close_record()?;
        let error = |reason: String| ProtocolError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, reason));
        match record.code {
            CloseCode::TOO_BIG => Some(ProtocolError::Overflow),
            CloseCode::PROTOCOL | CloseCode::INVALID_DATA => Some(error(record.reason)),
            _ => None,
        }
    }
}

impl<A: Actor<Context = WebsocketContext<A>>> ActorSession<A> {
    /// The actor is gone (stopped, or failed past its budget): nothing more reaches it.
    fn finish(&mut self) {
        self.queue.close();
        self.hub.forget_actor(self.id);
        self.keep = None;
        if let Some(fut) = self.fut.take() {
            // Dropping a live context stops the actor, which runs its `stopping` and `stopped`.
            if catch_unwind(AssertUnwindSafe(|| drop(fut))).is_err() {
                log::error!("a session actor panicked while stopping");
            }
        }
    }
}

impl<A: Actor<Context = WebsocketContext<A>>> Drop for ActorSession<A> {
    /// However the connection went (it may never have started: a middleware replaced the 101),
    /// the hub forgets the actor, its mailbox refuses more, and a live actor is stopped.
    fn drop(&mut self) {
        self.finish();
    }
}

impl<A> Session for ActorSession<A>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<Message, ProtocolError>>,
{
    fn event(&mut self, event: Event) -> Result<(), Panicked> {
        if self.fut.is_none() {
            return Ok(());
        }
        let message = match event {
            Event::Text(text) => Message::Text(text.into_byte_string()),
            Event::Binary(bytes) => Message::Binary(bytes),
            Event::Ping(payload) => {
                self.inbox.ping_delivered(payload.clone());
                Message::Ping(payload)
            }
            Event::Pong(payload) => Message::Pong(payload),
            Event::Close(frame) => {
                self.heard_close = true;
                Message::Close(frame.map(|frame| CloseReason {
                    code: frame.code.0.into(),
                    description: (!frame.reason.is_empty()).then_some(frame.reason),
                }))
            }
        };
        self.inbox.push(Ok(message));
        self.wake.mark();
        Ok(())
    }

    fn poll(&mut self, cx: &mut Context<'_>, state: &mut ConnState) {
        // actix handles 16 items of a stream per poll, then wakes itself: polling again while the
        // actor is due lets it answer everything one read brought (up to the inbox's 32) before
        // the driver writes, so a read of more than 16 messages still costs one write.
        for _ in 0..POLLS_PER_TURN {
            if !self.wake.take_due(cx) {
                return;
            }
            let Some(fut) = self.fut.as_mut() else { return };
            let mut actor_cx = Context::from_waker(self.wake.waker());
            match catch_unwind(AssertUnwindSafe(|| Pin::new(fut).poll(&mut actor_cx))) {
                Ok(Poll::Pending) => {}
                Ok(Poll::Ready(())) => {
                    // The actor stopped on its own: the connection closes normally.
                    self.finish();
                    state.shared().start_close(CloseFrame::new(CloseCode::NORMAL, ""), true);
                    return;
                }
                Err(payload) => {
                    let Panicked(message) = callbacks::panicked(payload);
                    self.panicked(&message, state);
                    return;
                }
            }
        }
    }

    fn wants_events(&self) -> bool {
        self.fut.is_none() || !self.inbox.is_full()
    }

    fn ended(&mut self, cx: &mut Context<'_>, state: &mut ConnState) {
        if self.fut.is_none() {
            return;
        }
        if !self.heard_close {
            if let Some(error) = self.failure(state) {
                self.inbox.push(Err(error));
            }
        }
        self.inbox.end();
        self.wake.mark();
        self.queue.close();
        self.hub.forget_actor(self.id);
        // Its last turn: it handles what is queued and hears the end of the stream (by default,
        // `StreamHandler::finished` stops it).
        self.poll(cx, state);
        self.finish();
    }
}
