//! The hub: a cheap, cloneable handle on the supervisor, usable from any thread or task.

use std::sync::{Arc, OnceLock};

use actix::{Actor, Addr};

use crate::error::HubError;
use crate::fanout::Home;
use crate::message::{Message, Outgoing};
use crate::metrics::Metrics;
use crate::rooms::{
    BroadcastRoom, Join, Leave, Member, Members, PresenceEvent, SendToUser, SetPresenceListener, SetUser,
};
use crate::session::{SessionId, SessionSink};
use crate::supervisor::{
    Broadcast, CloseAll, Connect, Disconnect, RegisterRoute, Routes, SendTo, Sessions, Supervisor, UndeliveredCount,
};

/// A handle on the [`Supervisor`]: broadcast to a route, send to one session, list sessions.
///
/// Clone it freely and move it anywhere: into actix-web `app_data`, an HTTP handler, or a plain
/// tokio task. Its futures can be awaited on any executor.
///
/// ```
/// use switchboard_actors::Hub;
///
/// # actix_rt::System::new().block_on(async {
/// let hub = Hub::start();
/// hub.register_route("/feed");
/// // From anywhere: reach every session of the route (none yet).
/// assert_eq!(hub.broadcast("/feed", "news").await, Ok(0));
/// assert_eq!(hub.routes().await, Ok(vec!["/feed".to_string()]));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Hub {
    addr: Addr<Supervisor>,
    metrics: Arc<Metrics>,
}

impl Hub {
    /// Starts a supervisor on the current actix arbiter and returns its hub.
    ///
    /// # Panics
    ///
    /// Outside a running actix system (call it inside `#[actix_web::main]` or `actix_rt::System`).
    pub fn start() -> Hub {
        Hub {
            addr: Supervisor::default().start(),
            metrics: Arc::default(),
        }
    }

    /// The process-wide hub, started on first use on the [background
    /// arbiter](crate::runtime::background).
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

    fn start_on_own_thread() -> Hub {
        let addr = Supervisor::start_in_arbiter(&crate::runtime::background(), |_| Supervisor::default());
        Hub {
            addr,
            metrics: Arc::default(),
        }
    }

    /// Sends `message` to every session of `route` (the name it was mounted with, by default its
    /// path) and answers how many sessions it was handed to. The frame is encoded once for all.
    /// Sessions on other worker threads get it from one task per thread; one that turns out to be
    /// closed or full counts in [`Hub::undelivered`].
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn broadcast(&self, route: &str, message: impl Into<Message>) -> Result<usize, HubError> {
        self.broadcast_outgoing(route, Outgoing::new(message), None).await
    }

    /// Like [`Hub::broadcast`] without waiting for the answer: the message is queued for the
    /// supervisor at once, in order with this thread's other hub calls. For hot paths that do not
    /// need the count.
    pub fn publish(&self, route: &str, message: impl Into<Message>) {
        self.addr.do_send(Broadcast {
            route: route.to_owned(),
            message: Outgoing::new(message),
            except: None,
        });
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

    /// Sends `message` to one session.
    ///
    /// # Errors
    ///
    /// [`HubError::NoSuchSession`] when it has disconnected, [`HubError::Undelivered`] when it is
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

    /// How many deliveries were dropped because their session could take no more.
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn undelivered(&self) -> Result<u64, HubError> {
        self.addr
            .send(UndeliveredCount)
            .await
            .map_err(|_| HubError::SupervisorGone)
    }

    /// Makes a route known before any session connects. Used by the server when it mounts a route.
    pub fn register_route(&self, route: impl Into<String>) {
        self.addr.do_send(RegisterRoute(route.into()));
    }

    /// Registers a session. Used by the connection layer when a connection starts.
    pub fn connect(&self, id: SessionId, route: impl Into<String>, sink: Arc<dyn SessionSink>) {
        // Called on the connection's own thread: remember it for per-thread broadcast fan-out.
        let home = Home::current();
        self.addr.do_send(Connect {
            id,
            route: route.into(),
            sink,
            home,
        });
    }

    /// Removes a session. Used by the connection layer when a connection stops, for any reason.
    pub fn disconnect(&self, id: SessionId) {
        self.addr.do_send(Disconnect(id));
    }

    /// Starts the close handshake of every session with `code` and `reason` (after what is
    /// already queued for each) and answers how many sessions it reached. Used for graceful
    /// shutdown with 1001.
    ///
    /// # Errors
    ///
    /// [`HubError::SupervisorGone`] when the supervisor has stopped.
    pub async fn close_all(&self, code: u16, reason: &str) -> Result<usize, HubError> {
        let request = self.addr.send(CloseAll {
            code,
            reason: reason.to_owned(),
        });
        request.await.map_err(|_| HubError::SupervisorGone)
    }

    /// The runtime's counters for every connection of this hub: read them with
    /// [`Metrics::snapshot`] or [`Metrics::prometheus`].
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The shared counters, for the connection layer to count into.
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Puts session `id` in `room` (a session can be in many) and answers the members after it
    /// joined. The presence listener, if any, is told.
    ///
    /// # Errors
    ///
    /// [`HubError::NoSuchSession`] when it has disconnected, [`HubError::SupervisorGone`].
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
    /// encoding it once. Answers how many sessions took it.
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

    /// Sends `message` to every session of `user`; answers how many took it.
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
    /// event and may return a message for the room's members (the one who left excluded).
    pub fn on_presence(&self, listener: impl Fn(&PresenceEvent) -> Option<Message> + Send + Sync + 'static) {
        self.addr.do_send(SetPresenceListener(Some(Arc::new(listener))));
    }
}
