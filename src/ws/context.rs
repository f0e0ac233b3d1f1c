//! [`WebsocketContext`]: the actix context of a session actor, with the connection's sending,
//! closing and hub methods.

use std::rc::Rc;
use std::sync::Arc;

use actix::dev::{AsyncContextParts, ContextParts, Envelope, ToEnvelope};
use actix::fut::wrap_future;
use actix::{Actor, ActorContext, ActorFuture, ActorState, Addr, AsyncContext, Handler, SpawnHandle};
use actix_http::ws::{CloseReason, Message};
use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::oneshot;

use crate::hub::{Hub, SessionId};
use crate::protocol::{CloseCode, CloseFrame, OpCode, MAX_CONTROL_PAYLOAD};
use crate::socket::WebSocket;

use super::inbox::Inbox;
use super::mailbox::{Queue, SessionAddr};
use super::Broadcast;

/// The context of a session actor: `type Context = ws::WebsocketContext<Self>;`.
///
/// It is an actix context ([`AsyncContext`], [`ActorContext`]: `run_interval`, `run_later`,
/// `address`, `spawn`, `wait`, `add_stream`, `stop`), the connection's sending side (`text`,
/// `binary`, `ping`, `pong`, `close`, `write_raw`), and the session's place in the hub (`id`,
/// `join`, `leave`, `set_user`, `hub`). Sends are queued on the connection's bounded outbound
/// queue at once and written by the connection's task; a send after the connection closed is
/// dropped, as in actix-web-actors.
pub struct WebsocketContext<A: Actor<Context = WebsocketContext<A>>> {
    inner: ContextParts<A>,
    pub(crate) ws: WebSocket,
    pub(crate) inbox: Rc<Inbox>,
    pub(crate) hub: Hub,
    pub(crate) queue: Arc<Queue<A>>,
}

impl<A: Actor<Context = WebsocketContext<A>>> std::fmt::Debug for WebsocketContext<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebsocketContext")
            .field("id", &self.ws.id())
            .finish_non_exhaustive()
    }
}

impl<A: Actor<Context = WebsocketContext<A>>> WebsocketContext<A> {
    pub(crate) fn new(
        inner: ContextParts<A>,
        ws: WebSocket,
        inbox: Rc<Inbox>,
        hub: Hub,
        queue: Arc<Queue<A>>,
    ) -> WebsocketContext<A> {
        WebsocketContext {
            inner,
            ws,
            inbox,
            hub,
            queue,
        }
    }

    /// Sends `msg` as it is: a text, binary, ping, pong or close frame. A `Continuation` or
    /// `Nop` is not sent (the connection fragments nothing; see docs/migrating.md).
    pub fn write_raw(&mut self, msg: Message) {
        match msg {
            Message::Text(text) => self.send(crate::Message::from(text)),
            Message::Binary(bytes) => self.send(crate::Message::Binary(bytes)),
            Message::Ping(payload) => self.control(OpCode::Ping, &payload),
            Message::Pong(payload) => self.pong(&payload),
            Message::Close(reason) => self.close(reason),
            Message::Continuation(_) | Message::Nop => {
                log::debug!("session {}: a Continuation or Nop frame is not sent", self.ws.id());
            }
        }
    }

    /// Sends a text message.
    pub fn text(&mut self, text: impl Into<ByteString>) {
        self.send(crate::Message::from(text.into()));
    }

    /// Sends a binary message.
    pub fn binary(&mut self, data: impl Into<Bytes>) {
        self.send(crate::Message::Binary(data.into()));
    }

    /// Sends a ping (payload cut to 125 bytes). The connection already pings on its own
    /// ([`Config::ping_interval`](crate::Config::ping_interval)); a hand-written heartbeat
    /// still works.
    pub fn ping(&mut self, message: &[u8]) {
        self.control(OpCode::Ping, message);
    }

    /// Sends a pong. The connection answers every ping itself: a pong that answers a ping
    /// handed to this actor is not sent again, so the peer gets one pong per ping.
    pub fn pong(&mut self, message: &[u8]) {
        if self.inbox.answered_already(message) {
            return;
        }
        self.control(OpCode::Pong, message);
    }

    /// Starts the close handshake with `reason` (`None`: 1000 with no reason). The connection
    /// then waits for the peer's close and ends; the actor hears the end of its stream. A code
    /// not allowed on the wire (RFC 6455 §7.4) is sent as 1000, and the log says so.
    pub fn close(&mut self, reason: Option<CloseReason>) {
        let frame = match reason {
            None => CloseFrame::new(CloseCode::NORMAL, ""),
            Some(reason) => {
                let code = CloseCode(u16::from(reason.code));
                let text = reason.description.unwrap_or_default();
                if code.is_valid_on_wire() {
                    CloseFrame::new(code, &text)
                } else {
                    log::warn!(
                        "session {}: close code {} may not be sent; sending 1000",
                        self.ws.id(),
                        code.0
                    );
                    CloseFrame::new(CloseCode::NORMAL, &text)
                }
            }
        };
        self.ws.shared.start_close(frame, true);
    }

    /// The handle of the future the actor is running now (as in actix-web-actors).
    pub fn handle(&self) -> SpawnHandle {
        self.inner.curr_handle()
    }

    /// Sets the capacity of the actor's actix mailbox (the one `ctx.address()` sends to;
    /// default 16). The bounded mailbox of [`SessionAddr`] is
    /// [`Config::mailbox_capacity`](crate::Config::mailbox_capacity).
    pub fn set_mailbox_capacity(&mut self, cap: usize) {
        self.inner.set_mailbox_capacity(cap);
    }

    /// This session's id in the hub.
    pub fn id(&self) -> SessionId {
        self.ws.id()
    }

    /// The connection's handle, the same as the callback style's: send from other tasks, await
    /// a send's completion, wait for the close, or send one message uncompressed whatever
    /// [`Config::compression`](crate::Config::compression) says
    /// (`ctx.socket().send_uncompressed(text)`, for a secret next to text an attacker chooses;
    /// docs/compression.md).
    pub fn socket(&self) -> &WebSocket {
        &self.ws
    }

    /// The hub this session is registered with, for calls whose answer the actor wants to
    /// await: `ctx.wait(wrap_future(hub.members(room)).map(|members, act, ctx| ...))`.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// A bounded, typed address of this actor, to hand to other code (see [`SessionAddr`]).
    pub fn session_addr(&self) -> SessionAddr<A> {
        SessionAddr::new(self.queue.clone())
    }

    /// Joins `room`: room broadcasts reach the peer from now on, and the room's members hear of
    /// it (presence). An error (too many rooms, a busy hub) is logged; await
    /// [`Hub::join`](crate::Hub::join) through [`hub`](Self::hub) to handle it.
    pub fn join(&mut self, room: &str) {
        let (hub, id, room) = (self.hub.clone(), self.id(), room.to_owned());
        self.spawn(wrap_future(async move {
            if let Err(error) = hub.join(id, &room).await {
                log::warn!("session {id}: joining room {room} failed: {error}");
            }
        }));
    }

    /// Leaves `room`. Errors are logged, as for [`join`](Self::join).
    pub fn leave(&mut self, room: &str) {
        let (hub, id, room) = (self.hub.clone(), self.id(), room.to_owned());
        self.spawn(wrap_future(async move {
            if let Err(error) = hub.leave(id, &room).await {
                log::warn!("session {id}: leaving room {room} failed: {error}");
            }
        }));
    }

    /// Names the user this session belongs to ([`Hub::send_to_user`](crate::Hub::send_to_user)
    /// reaches it, presence shows it). Errors are logged, as for [`join`](Self::join).
    pub fn set_user(&mut self, user: &str) {
        let (hub, id, user) = (self.hub.clone(), self.id(), user.to_owned());
        self.spawn(wrap_future(async move {
            if let Err(error) = hub.set_user(id, &user).await {
                log::warn!("session {id}: setting user {user} failed: {error}");
            }
        }));
    }

    /// From now on, hub messages for this session (route and room broadcasts, `send_to`,
    /// `send_to_user`) come to the actor as [`Broadcast`] instead of going to the peer, so it can
    /// filter or rewrite them per recipient (Phoenix's `handle_out`). They wait in the bounded
    /// mailbox ([`Config::mailbox_capacity`](crate::Config::mailbox_capacity)); a full one closes
    /// the session with 1008.
    pub fn intercept_broadcasts(&mut self)
    where
        A: Handler<Broadcast>,
    {
        let queue = self.queue.clone();
        self.ws.shared.intercept(Box::new(move |message| {
            queue
                .push(Broadcast(message.clone()), None, None)
                .map_err(|error| match error {
                    super::MailboxError::Closed(_) => crate::Undelivered::Closed,
                    _ => crate::Undelivered::QueueFull,
                })
        }));
    }

    fn send(&self, message: crate::Message) {
        // As in actix-web-actors, the actor does not hear of a failed send; a full queue closes
        // the connection with 1008 (logged, counted), a closed one drops the message.
        let _ = self.ws.shared.push_message(&message);
    }

    fn control(&self, opcode: OpCode, payload: &[u8]) {
        let payload = payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload);
        self.ws.shared.push_control(opcode, payload);
    }
}

impl<A: Actor<Context = WebsocketContext<A>>> ActorContext for WebsocketContext<A> {
    fn stop(&mut self) {
        self.inner.stop();
    }

    fn terminate(&mut self) {
        self.inner.terminate();
    }

    fn state(&self) -> ActorState {
        self.inner.state()
    }
}

impl<A: Actor<Context = WebsocketContext<A>>> AsyncContext<A> for WebsocketContext<A> {
    fn spawn<F>(&mut self, fut: F) -> SpawnHandle
    where
        F: ActorFuture<A, Output = ()> + 'static,
    {
        self.inner.spawn(fut)
    }

    fn wait<F>(&mut self, fut: F)
    where
        F: ActorFuture<A, Output = ()> + 'static,
    {
        self.inner.wait(fut);
    }

    fn waiting(&self) -> bool {
        self.inner.waiting() || matches!(self.inner.state(), ActorState::Stopping | ActorState::Stopped)
    }

    fn cancel_future(&mut self, handle: SpawnHandle) -> bool {
        self.inner.cancel_future(handle)
    }

    fn address(&self) -> Addr<A> {
        self.inner.address()
    }
}

impl<A: Actor<Context = WebsocketContext<A>>> AsyncContextParts<A> for WebsocketContext<A> {
    fn parts(&mut self) -> &mut ContextParts<A> {
        &mut self.inner
    }
}

impl<A, M> ToEnvelope<A, M> for WebsocketContext<A>
where
    A: Actor<Context = WebsocketContext<A>> + Handler<M>,
    M: actix::Message + Send + 'static,
    M::Result: Send,
{
    fn pack(msg: M, tx: Option<oneshot::Sender<M::Result>>) -> Envelope<A> {
        Envelope::new(msg, tx)
    }
}
