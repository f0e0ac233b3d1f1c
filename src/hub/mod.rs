//! The hub: the supervisor that knows every route, session and room, and [`Hub`], the cheap,
//! cloneable handle any Rust code uses to reach it.
//!
//! The supervisor is an actor; the hub sends it messages. Connections register with it when they
//! start and leave when they stop (the plumbing is crate-private); applications broadcast,
//! send to one session or user, and manage rooms and presence through the hub.
//!
//! | file | what it holds |
//! | --- | --- |
//! | `supervisor.rs` | the registry actor, its bounded mailbox, route broadcast and send-to-one |
//! | `rooms.rs` | rooms, users, presence (state for the joiner, diffs for members) |
//! | `fanout.rs` | broadcast fan-out grouped by worker thread, with a bounded backlog |
//! | `session.rs` | session ids and the sink a connection registers |
//! | `directory.rs` | the session actors' addresses by id ([`Hub::addr`]) |
//! | `error.rs` | [`HubError`] |
//! | `broker.rs` | the [`Broker`] seam to other nodes, and the [`Inbox`] a broker answers through |
//! | `remote.rs` | what the supervisor publishes to and takes from other nodes; presence across them |
//! | `envelope.rs` | the bytes one node sends the others |

mod broker;
mod directory;
mod envelope;
mod error;
mod fanout;
mod remote;
pub(crate) mod rooms;
mod session;
pub(crate) mod supervisor;

use std::sync::{Arc, OnceLock};

use actix::dev::SendError;
use actix::{Actor, Addr, WeakAddr};

pub use broker::{Broker, BrokerCommand, BrokerError, Inbox, DEFAULT_PRESENCE_TTL};
pub use error::HubError;
pub use rooms::{Member, PresenceChange, PresenceEvent};
pub(crate) use session::SessionSink;
pub use session::{SessionId, Undelivered};

use crate::message::{Message, Outgoing};
use crate::metrics::Metrics;
use crate::protocol::CloseCode;
use fanout::Home;
use rooms::{BroadcastRoom, Join, Leave, Members, SendToUser, SetPresenceListener, SetUser};
use supervisor::{Broadcast, CloseAll, Connect, Disconnect, RegisterRoute, Routes, SendTo, Sessions, Supervisor};

/// A handle on the supervisor (the hub's registry actor): broadcast to a route, send to one session, list sessions.
///
/// Clone it freely and move it anywhere: into actix-web `app_data`, an HTTP handler, or a plain
/// tokio task. Its futures can be awaited on any executor.
///
/// ```
/// use switchboard::Hub;
///
/// # actix_rt::System::new().block_on(async {
/// let hub = Hub::start();
/// // From anywhere: reach every session of a route (none yet).
/// assert_eq!(hub.broadcast("/feed", "news").await, Ok(0));
/// assert_eq!(hub.sessions("/feed").await, Ok(vec![]));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Hub {
    addr: Addr<Supervisor>,
    metrics: Arc<Metrics>,
    actors: Arc<directory::Directory>,
}

impl Hub {
    /// Starts a supervisor on the current actix arbiter and returns its hub.
    ///
    /// # Panics
    ///
    /// Outside a running actix system (call it inside `#[actix_web::main]` or `actix_rt::System`).
    pub fn start() -> Hub {
        let metrics = Arc::<Metrics>::default();
        Hub {
            addr: Supervisor::new(metrics.clone()).start(),
            metrics,
            actors: Arc::default(),
        }
    }

    /// The process-wide hub, started on first use on switchboard's background arbiter (a thread
    /// of its own).
    ///
    /// Routes that were given no hub (neither through their builder nor through `app_data`) use
    /// it, so one server's routes can reach each other without any setup. It lives as long as the
    /// process and works with or without a running actix system.
    ///
    /// # Panics
    ///
    /// When the operating system refuses to start the background thread.
    pub fn global() -> Hub {
        static GLOBAL: OnceLock<Hub> = OnceLock::new();
        GLOBAL.get_or_init(Hub::start_on_own_thread).clone()
    }

    /// Starts a supervisor that is one node of several: `broker` carries route and room
    /// broadcasts, messages to sessions and users, and presence to and from the other nodes.
    ///
    /// Broadcasts and sends answer how many *local* sessions took the message; other nodes get it
    /// at most once, in the order this node published it. docs/scaling.md has the whole story.
    ///
    /// # Panics
    ///
    /// Outside a running actix system.
    pub fn with_broker(broker: impl Broker) -> Hub {
        let metrics = Arc::<Metrics>::default();
        let broker: Arc<dyn Broker> = Arc::new(broker);
        let mut supervisor = Supervisor::new(metrics.clone());
        supervisor.remote = Some(remote::Remote::new(broker.clone()));
        let addr = supervisor.start();
        broker.start(Inbox::new(addr.clone()));
        Hub {
            addr,
            metrics,
            actors: Arc::default(),
        }
    }

    fn start_on_own_thread() -> Hub {
        let metrics = Arc::<Metrics>::default();
        let supervisor = Supervisor::new(metrics.clone());
        let addr = Supervisor::start_in_arbiter(&crate::runtime::background(), |_| supervisor);
        Hub {
            addr,
            metrics,
            actors: Arc::default(),
        }
    }

    /// Sends `message` to every session of `route` (the name it was mounted with, by default its
    /// path) and answers how many sessions of this node it was handed to (with a broker, the other
    /// nodes' sessions get it too, at most once). The frame is encoded once for all.
    /// Sessions on other worker threads get it from one task per thread; one that turns out to be
    /// closed or full counts in [`Hub::undelivered`].
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn broadcast(&self, route: &str, message: impl Into<Message>) -> Result<usize, HubError> {
        self.broadcast_outgoing(route, Outgoing::new(message), None).await
    }

    /// Like [`Hub::broadcast`] without waiting: the message is queued for the supervisor at
    /// once, in order with this thread's other hub calls, or refused when the supervisor's mailbox
    /// is full. For hot paths (a callback, a tight loop) that must not wait.
    ///
    /// # Errors
    ///
    /// [`HubError::Full`] when the supervisor is that busy: nothing is sent (the refusal is
    /// counted in [`Metrics`]); [`HubError::SupervisorGone`] when it has stopped.
    pub fn try_publish(&self, route: &str, message: impl Into<Message>) -> Result<(), HubError> {
        let broadcast = Broadcast {
            route: route.to_owned(),
            message: Outgoing::new(message),
            except: None,
        };
        self.addr.try_send(broadcast).map_err(|e| self.refused(e))
    }

    /// Counts a `try_send` the supervisor refused and says why.
    fn refused<M>(&self, error: SendError<M>) -> HubError {
        match error {
            SendError::Full(_) => {
                self.metrics.hub_refusal();
                HubError::Full
            }
            SendError::Closed(_) => HubError::SupervisorGone,
        }
    }

    /// Like [`Hub::broadcast`], leaving out one session (typically the sender).
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn broadcast_except(
        &self,
        route: &str,
        message: impl Into<Message>,
        except: SessionId,
    ) -> Result<usize, HubError> {
        self.broadcast_outgoing(route, Outgoing::new(message), Some(except))
            .await
    }

    async fn broadcast_outgoing(
        &self,
        route: &str,
        message: Outgoing,
        except: Option<SessionId>,
    ) -> Result<usize, HubError> {
        let request = self.addr.send(Broadcast {
            route: route.to_owned(),
            message,
            except,
        });
        request.await.map_err(|_| HubError::SupervisorGone)
    }

    /// Sends `message` to one session. With a broker, a session of another node is reached
    /// through it: `Ok` then means the message was handed to the broker.
    ///
    /// # Errors
    ///
    /// [`HubError::NoSuchSession`] when it has disconnected (a session of this process), [`HubError::Undelivered`] when it is
    /// closing or its queue is full, [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn send_to(&self, id: SessionId, message: impl Into<Message>) -> Result<(), HubError> {
        let request = self.addr.send(SendTo {
            id,
            message: Outgoing::new(message),
        });
        request.await.map_err(|_| HubError::SupervisorGone)?
    }

    /// The sessions connected through `route`, in id order.
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn sessions(&self, route: &str) -> Result<Vec<SessionId>, HubError> {
        self.addr
            .send(Sessions(route.to_owned()))
            .await
            .map_err(|_| HubError::SupervisorGone)
    }

    /// The routes the supervisor knows, sorted.
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn routes(&self) -> Result<Vec<String>, HubError> {
        self.addr.send(Routes).await.map_err(|_| HubError::SupervisorGone)
    }

    /// How many deliveries were dropped, for any reason: their session was closed or could take
    /// no more, or its worker thread had too many waiting. [`Metrics::snapshot`] has them by
    /// reason.
    ///
    /// # Errors
    ///
    /// Never fails now; the `Result` is kept for callers written when it asked the supervisor.
    pub async fn undelivered(&self) -> Result<u64, HubError> {
        Ok(self.metrics.snapshot().undelivered.values().sum())
    }

    /// The bounded, typed address of session `id`'s actor, if `id` is a session actor of type
    /// `A` (see [`ws`](crate::ws)) that is still connected.
    ///
    /// ```
    /// use actix::{Actor, Handler, Message, StreamHandler};
    /// use switchboard::{ws, Hub, SessionId};
    ///
    /// struct Session;
    /// impl Actor for Session {
    ///     type Context = ws::WebsocketContext<Self>;
    /// }
    /// impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    ///     fn handle(&mut self, _: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {}
    /// }
    ///
    /// #[derive(Message)]
    /// #[rtype(result = "()")]
    /// struct Kick(String);
    /// impl Handler<Kick> for Session {
    ///     type Result = ();
    ///     fn handle(&mut self, kick: Kick, ctx: &mut Self::Context) {
    ///         ctx.close(Some(ws::CloseReason { code: ws::CloseCode::Policy, description: Some(kick.0) }));
    ///     }
    /// }
    ///
    /// fn kick(hub: &Hub, id: SessionId) {
    ///     if let Some(addr) = hub.addr::<Session>(id) {
    ///         let _ = addr.do_send(Kick("spam".into()));
    ///     }
    /// }
    /// ```
    pub fn addr<A>(&self, id: SessionId) -> Option<crate::ws::SessionAddr<A>>
    where
        A: Actor<Context = crate::ws::WebsocketContext<A>>,
    {
        self.actors.get(id)
    }

    /// Makes session `id`'s actor reachable through [`Hub::addr`].
    pub(crate) fn remember_actor(&self, id: SessionId, addr: Box<dyn std::any::Any + Send + Sync>) {
        self.actors.insert(id, addr);
    }

    /// Session `id`'s actor is gone.
    pub(crate) fn forget_actor(&self, id: SessionId) {
        self.actors.remove(id);
    }

    /// Makes a route known before any session connects. Used by the server when it mounts a
    /// route: once per mounted route and worker, so it bypasses the mailbox bound.
    pub(crate) fn register_route(&self, route: impl Into<String>) {
        self.addr.do_send(RegisterRoute(route.into()));
    }

    /// Registers a session that may be in at most `max_rooms` rooms at once. Used by the
    /// connection layer when a connection starts.
    ///
    /// # Errors
    ///
    /// [`HubError::Full`] when the supervisor's mailbox is full: the server should refuse the
    /// connection (503) rather than queue without bound; [`HubError::SupervisorGone`].
    pub(crate) fn connect(
        &self,
        id: SessionId,
        route: impl Into<String>,
        sink: Arc<dyn SessionSink>,
        max_rooms: usize,
    ) -> Result<(), HubError> {
        // Called on the connection's own thread: remember it for per-thread broadcast fan-out.
        let home = Home::current();
        let connect = Connect {
            id,
            route: route.into(),
            sink,
            home,
            max_rooms,
        };
        self.addr.try_send(connect).map_err(|e| self.refused(e))
    }

    /// Removes a session. Used by the connection layer when a connection stops, for any reason.
    ///
    /// It bypasses the mailbox bound, so that a session always leaves: it is sent at most once
    /// per session that [`Hub::connect`] registered, which bounds it.
    pub(crate) fn disconnect(&self, id: SessionId) {
        self.addr.do_send(Disconnect(id));
    }

    /// What a registered session keeps to leave this hub when it ends.
    pub(crate) fn membership(&self) -> Membership {
        Membership(self.addr.downgrade())
    }

    /// Starts the close handshake of every session with `code` and `reason` (after what is
    /// already queued for each) and answers how many sessions it reached. Used for graceful
    /// shutdown with 1001.
    ///
    /// # Errors
    ///
    /// [`HubError::InvalidCloseCode`] for a code that may not be sent (RFC 6455 §7.4; nothing is
    /// sent), [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn close_all(&self, code: impl Into<CloseCode>, reason: &str) -> Result<usize, HubError> {
        let code = code.into();
        if !code.is_valid_on_wire() {
            return Err(HubError::InvalidCloseCode(code));
        }
        let request = self.addr.send(CloseAll {
            frame: crate::protocol::CloseFrame::new(code, reason),
        });
        request.await.map_err(|_| HubError::SupervisorGone)
    }

    /// The runtime's counters for every connection of this hub: read them with
    /// [`Metrics::snapshot`] or [`Metrics::prometheus`].
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The shared counters, for the connection layer to count into.
    pub(crate) fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Puts session `id` in `room` (a session can be in several, up to its cap) and answers the
    /// members after it joined. The presence listeners, if any, are told.
    ///
    /// # Errors
    ///
    /// [`HubError::NoSuchSession`] when it has disconnected, [`HubError::TooManyRooms`] when it is
    /// in its maximum of rooms already, [`HubError::SupervisorGone`].
    pub async fn join(&self, id: SessionId, room: &str) -> Result<Vec<Member>, HubError> {
        let request = self.addr.send(Join {
            id,
            room: room.to_owned(),
        });
        request.await.map_err(|_| HubError::SupervisorGone)?
    }

    /// Takes session `id` out of `room`; answers whether it was in it. Disconnecting sessions
    /// leave their rooms by themselves.
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn leave(&self, id: SessionId, room: &str) -> Result<bool, HubError> {
        self.addr
            .send(Leave {
                id,
                room: room.to_owned(),
            })
            .await
            .map_err(|_| HubError::SupervisorGone)
    }

    /// Sends `message` to every member of `room`, optionally except one (typically the sender),
    /// encoding it once. Answers how many sessions of this node took it (with a broker, the
    /// members on other nodes get it too).
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn broadcast_room(
        &self,
        room: &str,
        message: impl Into<Message>,
        except: Option<SessionId>,
    ) -> Result<usize, HubError> {
        let request = self.addr.send(BroadcastRoom {
            room: room.to_owned(),
            message: Outgoing::new(message),
            except,
        });
        request.await.map_err(|_| HubError::SupervisorGone)
    }

    /// Who is in `room`, in id order, with their user names.
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn members(&self, room: &str) -> Result<Vec<Member>, HubError> {
        self.addr
            .send(Members(room.to_owned()))
            .await
            .map_err(|_| HubError::SupervisorGone)
    }

    /// Gives session `id` the user name or key `user`, unless another session has it; answers
    /// whether it was given. A session has at most one user; a new one replaces the old.
    ///
    /// # Errors
    ///
    /// [`HubError::NoSuchSession`] when it has disconnected, [`HubError::SupervisorGone`].
    pub async fn claim_user(&self, id: SessionId, user: &str) -> Result<bool, HubError> {
        self.set_user_inner(id, user, true).await
    }

    /// Gives session `id` the user name or key `user`, which other sessions may share (one user
    /// on several devices).
    ///
    /// # Errors
    ///
    /// [`HubError::NoSuchSession`] when it has disconnected, [`HubError::SupervisorGone`].
    pub async fn set_user(&self, id: SessionId, user: &str) -> Result<(), HubError> {
        self.set_user_inner(id, user, false).await.map(|_| ())
    }

    async fn set_user_inner(&self, id: SessionId, user: &str, exclusive: bool) -> Result<bool, HubError> {
        let request = self.addr.send(SetUser {
            id,
            user: user.to_owned(),
            exclusive,
        });
        request.await.map_err(|_| HubError::SupervisorGone)?
    }

    /// Sends `message` to every session of `user`; answers how many of this node's took it (with
    /// a broker, the user's sessions on other nodes get it too).
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn send_to_user(&self, user: &str, message: impl Into<Message>) -> Result<usize, HubError> {
        let request = self.addr.send(SendToUser {
            user: user.to_owned(),
            message: Outgoing::new(message),
        });
        request.await.map_err(|_| HubError::SupervisorGone)
    }

    /// Sets the presence listener: on every join and leave (disconnects included) it gets the
    /// diff and may return a message for the room's members (the one who left excluded, the one
    /// who joined included). Set once, at startup: it bypasses the mailbox bound.
    pub fn on_presence(&self, listener: impl Fn(&PresenceEvent) -> Option<Message> + Send + Sync + 'static) {
        self.addr.do_send(SetPresenceListener {
            diff: Some(Arc::new(listener)),
            state: None,
        });
    }

    /// Sets the presence state listener: when a session joins a room it gets the room's members
    /// (the joiner included, in id order) and may return a message for the joiner alone, which is
    /// queued before any diff announced after the join. Set once, at startup.
    pub fn on_presence_state(&self, listener: impl Fn(&str, &[Member]) -> Option<Message> + Send + Sync + 'static) {
        self.addr.do_send(SetPresenceListener {
            diff: None,
            state: Some(Arc::new(listener)),
        });
    }
}

/// What a registered session keeps to leave its hub: a weak address to the supervisor. A `Hub`
/// clone would allocate the address's sender state for every session (about 70 bytes of an
/// idle connection's memory, docs/benchmarks.md); leaving needs none of it. A supervisor that is
/// gone (every `Hub` dropped) has no registry to leave.
#[derive(Debug)]
pub(crate) struct Membership(WeakAddr<Supervisor>);

impl Membership {
    /// Takes session `id` out of the hub, as [`Hub::disconnect`].
    pub(crate) fn leave(&self, id: SessionId) {
        if let Some(addr) = self.0.upgrade() {
            addr.do_send(Disconnect(id));
        }
    }
}

#[cfg(test)]
mod tests;
