//! The supervisor actor: the registry of routes and sessions, and delivery between them.
//!
//! It is only reached through messages, normally sent by a [`Hub`](crate::Hub). Sessions join it
//! when their connection starts and leave it when the connection stops, whatever the reason, so a
//! delivery never targets a session that is known to be gone; one that races with a disconnect is
//! dropped and counted, never a panic.
//!
//! Every way in is bounded: its mailbox holds [`MAILBOX_CAPACITY`] messages (the hub's `try_`
//! methods are refused past it and its async methods wait), and the one message that bypasses
//! the bound, [`Disconnect`], is sent at most once per registered session.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message as ActixMessage, MessageResult};

use super::error::HubError;
use super::fanout::{Fanout, Home};
use super::session::{SessionId, SessionSink, Undelivered};
use crate::message::Outgoing;
use crate::metrics::{DropReason, Metrics};
use crate::protocol::CloseFrame;

/// The supervisor's mailbox capacity. actix's default (16) refused upgrades during a burst of
/// reconnects; this is enough for thousands of connections arriving together, and still a bound
/// on what callers can pile up while the supervisor is busy.
pub(crate) const MAILBOX_CAPACITY: usize = 4096;

/// The registry actor, started by [`Hub::start`](crate::Hub::start).
#[derive(Default)]
pub(crate) struct Supervisor {
    pub(crate) routes: HashMap<String, BTreeSet<SessionId>>,
    pub(crate) sessions: HashMap<SessionId, Session>,
    /// The hub's counters: deliveries refused by their session are counted there, by reason.
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) rooms: super::rooms::Rooms,
    /// Each route's sessions grouped by thread, built on the first broadcast after a change.
    fanouts: HashMap<String, Arc<Fanout>>,
}

pub(crate) struct Session {
    route: String,
    pub(crate) home: Option<Home>,
    pub(crate) sink: Arc<dyn SessionSink>,
    /// The rooms it is in.
    pub(crate) rooms: BTreeSet<String>,
    /// The most rooms it may be in at once.
    pub(crate) max_rooms: usize,
    /// The user name or key the app gave it.
    pub(crate) user: Option<String>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("routes", &self.routes.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervisor {
    /// A supervisor counting into `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Supervisor {
        Supervisor {
            metrics,
            ..Supervisor::default()
        }
    }

    pub(crate) fn deliver(&mut self, id: SessionId, message: &Outgoing) -> Result<(), HubError> {
        let session = self.sessions.get(&id).ok_or(HubError::NoSuchSession(id))?;
        session.sink.deliver(message).map_err(|reason| {
            self.metrics.undelivered(reason.into(), 1);
            log::debug!("message to session {id} dropped: {reason}");
            HubError::Undelivered(id, reason)
        })
    }
}

/// Makes a route known, with no sessions yet. Registering twice is harmless.
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
pub(crate) struct RegisterRoute(pub(crate) String);

impl Handler<RegisterRoute> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: RegisterRoute, _: &mut Context<Self>) {
        self.routes.entry(msg.0).or_default();
    }
}

/// A session joins its route.
#[derive(ActixMessage)]
#[rtype(result = "()")]
pub(crate) struct Connect {
    /// The session.
    pub(crate) id: SessionId,
    /// The route it connected through (its pattern, such as `/rooms/{room}`).
    pub(crate) route: String,
    /// Where its messages go.
    pub(crate) sink: Arc<dyn SessionSink>,
    /// The thread its connection runs on, so broadcasts can be fanned out per thread.
    pub(crate) home: Option<Home>,
    /// The most rooms it may be in at once.
    pub(crate) max_rooms: usize,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("id", &self.id)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl Handler<Connect> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
        log::debug!("session {} joined {}", msg.id, msg.route);
        self.routes.entry(msg.route.clone()).or_default().insert(msg.id);
        self.fanouts.remove(&msg.route);
        let session = Session {
            route: msg.route,
            home: msg.home,
            sink: msg.sink,
            rooms: BTreeSet::new(),
            max_rooms: msg.max_rooms,
            user: None,
        };
        self.sessions.insert(msg.id, session);
    }
}

/// A session leaves, whatever ended it.
///
/// It leaves every room at once; the announcements of those leaves go out in slices, so that a
/// session in many rooms does not hold up everyone else's messages (`rooms.rs`).
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
pub(crate) struct Disconnect(pub(crate) SessionId);

impl Handler<Disconnect> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) {
        self.leave_all_rooms(msg.0, ctx);
        self.forget_user(msg.0);
        if let Some(session) = self.sessions.remove(&msg.0) {
            self.fanouts.remove(&session.route);
            if let Some(members) = self.routes.get_mut(&session.route) {
                members.remove(&msg.0);
            }
            log::debug!("session {} left {}", msg.0, session.route);
        }
    }
}

/// Delivers a message to every session of a route, optionally except one. Answers how many
/// sessions it was handed to.
#[derive(Debug, ActixMessage)]
#[rtype(result = "usize")]
pub(crate) struct Broadcast {
    /// The route's pattern.
    pub(crate) route: String,
    /// The message, encoded once for all recipients.
    pub(crate) message: Outgoing,
    /// A session to leave out, typically the sender.
    pub(crate) except: Option<SessionId>,
}

impl Handler<Broadcast> for Supervisor {
    type Result = usize;
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) -> usize {
        let Some(members) = self.routes.get(&msg.route) else {
            return 0;
        };
        let sessions = &self.sessions;
        let fanout = self
            .fanouts
            .entry(msg.route)
            .or_insert_with(|| Arc::new(Fanout::of(members, sessions)));
        fanout.deliver(&msg.message, msg.except, &self.metrics)
    }
}

/// Delivers a message to one session.
#[derive(Debug, ActixMessage)]
#[rtype(result = "Result<(), HubError>")]
pub(crate) struct SendTo {
    /// The session.
    pub(crate) id: SessionId,
    /// The message.
    pub(crate) message: Outgoing,
}

impl Handler<SendTo> for Supervisor {
    type Result = Result<(), HubError>;
    fn handle(&mut self, msg: SendTo, _: &mut Context<Self>) -> Self::Result {
        self.deliver(msg.id, &msg.message)
    }
}

/// Lists the sessions of a route, in id order.
#[derive(Debug, ActixMessage)]
#[rtype(result = "Vec<SessionId>")]
pub(crate) struct Sessions(pub(crate) String);

impl Handler<Sessions> for Supervisor {
    type Result = MessageResult<Sessions>;
    fn handle(&mut self, msg: Sessions, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.routes
                .get(&msg.0)
                .map(|m| m.iter().copied().collect())
                .unwrap_or_default(),
        )
    }
}

/// Lists the known routes, sorted.
#[derive(Debug, ActixMessage)]
#[rtype(result = "Vec<String>")]
pub(crate) struct Routes;

impl Handler<Routes> for Supervisor {
    type Result = MessageResult<Routes>;
    fn handle(&mut self, _: Routes, _: &mut Context<Self>) -> Self::Result {
        let mut routes: Vec<String> = self.routes.keys().cloned().collect();
        routes.sort();
        MessageResult(routes)
    }
}

/// Closes every session with a code and reason; answers how many there were.
#[derive(Debug, ActixMessage)]
#[rtype(result = "usize")]
pub(crate) struct CloseAll {
    /// The close frame, its code valid on the wire.
    pub(crate) frame: CloseFrame,
}

impl Handler<CloseAll> for Supervisor {
    type Result = usize;
    fn handle(&mut self, msg: CloseAll, _: &mut Context<Self>) -> usize {
        self.sessions
            .values()
            .for_each(|session| session.sink.close(&msg.frame));
        self.sessions.len()
    }
}

impl From<Undelivered> for DropReason {
    fn from(reason: Undelivered) -> Self {
        match reason {
            Undelivered::Closed => DropReason::Closed,
            Undelivered::QueueFull => DropReason::QueueFull,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use crate::hub::{Hub, HubError, SessionId, SessionSink, Undelivered};
    use crate::message::{Message, Outgoing};
    use crate::protocol::CloseFrame;

    /// A session that records what it is given, or refuses everything once closed.
    #[derive(Default)]
    struct Recorder {
        got: Mutex<Vec<Message>>,
        closed: bool,
    }

    impl SessionSink for Recorder {
        fn deliver(&self, message: &Outgoing) -> Result<(), Undelivered> {
            if self.closed {
                return Err(Undelivered::Closed);
            }
            self.got.lock().push(message.message().clone());
            Ok(())
        }

        fn close(&self, frame: &CloseFrame) {
            self.got.lock().push(Message::from(format!("closed {}", frame.code.0)));
        }
    }

    fn join(hub: &Hub, route: &str, sink: &Arc<Recorder>) -> SessionId {
        let id = SessionId::next();
        hub.connect(id, route, sink.clone(), 100).unwrap();
        id
    }

    #[actix_rt::test]
    async fn broadcast_reaches_a_route_except_one_and_counts() {
        let hub = Hub::start();
        let (a, b, c) = (
            Arc::new(Recorder::default()),
            Arc::new(Recorder::default()),
            Arc::new(Recorder::default()),
        );
        let a_id = join(&hub, "/chat", &a);
        join(&hub, "/chat", &b);
        join(&hub, "/other", &c);
        assert_eq!(hub.broadcast("/chat", "all").await, Ok(2));
        assert_eq!(hub.broadcast_except("/chat", "not a", a_id).await, Ok(1));
        assert_eq!(a.got.lock().len(), 1);
        assert_eq!(b.got.lock().len(), 2);
        assert!(c.got.lock().is_empty());
        assert_eq!(hub.broadcast("/nowhere", "x").await, Ok(0));
    }

    #[actix_rt::test]
    async fn send_to_reports_gone_and_refusing_sessions() {
        let hub = Hub::start();
        let open = Arc::new(Recorder::default());
        let closed = Arc::new(Recorder {
            closed: true,
            ..Recorder::default()
        });
        let open_id = join(&hub, "/r", &open);
        let closed_id = join(&hub, "/r", &closed);
        assert_eq!(hub.send_to(open_id, "hi").await, Ok(()));
        assert_eq!(
            hub.send_to(closed_id, "hi").await,
            Err(HubError::Undelivered(closed_id, Undelivered::Closed))
        );
        assert_eq!(hub.undelivered().await, Ok(1));
        hub.disconnect(open_id);
        assert_eq!(hub.send_to(open_id, "hi").await, Err(HubError::NoSuchSession(open_id)));
        assert_eq!(hub.sessions("/r").await, Ok(vec![closed_id]));
    }

    #[actix_rt::test]
    async fn routes_are_known_from_registration_even_without_sessions() {
        let hub = Hub::start();
        hub.register_route("/b");
        join(&hub, "/a", &Arc::new(Recorder::default()));
        assert_eq!(hub.routes().await, Ok(vec!["/a".to_string(), "/b".to_string()]));
    }

    #[actix_rt::test]
    async fn close_all_reaches_every_session() {
        let hub = Hub::start();
        let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        join(&hub, "/x", &a);
        join(&hub, "/y", &b);
        assert_eq!(hub.close_all(1001, "bye").await, Ok(2));
        assert_eq!(a.got.lock().as_slice(), &[Message::from("closed 1001")]);
        assert_eq!(b.got.lock().len(), 1);
    }

    #[actix_rt::test]
    async fn rooms_reach_their_members_and_forget_disconnected_ones() {
        let hub = Hub::start();
        let (a, b, c) = (
            Arc::new(Recorder::default()),
            Arc::new(Recorder::default()),
            Arc::new(Recorder::default()),
        );
        let (a_id, b_id, c_id) = (
            join(&hub, "/chat", &a),
            join(&hub, "/chat", &b),
            join(&hub, "/chat", &c),
        );
        hub.join(a_id, "lobby").await.unwrap();
        hub.join(a_id, "games").await.unwrap();
        let members = hub.join(b_id, "lobby").await.unwrap();
        assert_eq!(members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a_id, b_id]);
        hub.join(c_id, "games").await.unwrap();
        assert_eq!(hub.broadcast_room("lobby", "hi lobby", Some(a_id)).await, Ok(1));
        assert_eq!(hub.broadcast_room("games", "hi games", None).await, Ok(2));
        assert_eq!(a.got.lock().len(), 1);
        assert_eq!(b.got.lock().as_slice(), &[Message::from("hi lobby")]);
        hub.disconnect(a_id);
        assert_eq!(hub.members("lobby").await.unwrap().len(), 1);
        assert_eq!(
            hub.members("games")
                .await
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>(),
            vec![c_id]
        );
        assert_eq!(hub.leave(b_id, "lobby").await, Ok(true));
        assert_eq!(hub.leave(b_id, "lobby").await, Ok(false));
        assert!(hub.members("lobby").await.unwrap().is_empty());
    }

    #[actix_rt::test]
    async fn the_joiner_gets_the_state_and_every_member_gets_diffs() {
        use crate::hub::rooms::PresenceChange;
        let hub = Hub::start();
        hub.on_presence(|event| {
            let verb = if event.change == PresenceChange::Joined {
                "joined"
            } else {
                "left"
            };
            Some(Message::from(format!(
                "{} {verb}",
                event.member.user.clone().unwrap_or_default()
            )))
        });
        hub.on_presence_state(|room, members| {
            let names: Vec<String> = members.iter().map(|m| m.user.clone().unwrap_or_default()).collect();
            Some(Message::from(format!("{room}: {}", names.join(","))))
        });
        let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let (a_id, b_id) = (join(&hub, "/chat", &a), join(&hub, "/chat", &b));
        assert_eq!(hub.claim_user(a_id, "ann").await, Ok(true));
        assert_eq!(hub.claim_user(b_id, "ann").await, Ok(false));
        assert_eq!(hub.claim_user(b_id, "bob").await, Ok(true));
        hub.join(a_id, "r").await.unwrap();
        hub.join(b_id, "r").await.unwrap();
        hub.disconnect(b_id);
        assert_eq!(hub.members("r").await.unwrap().len(), 1);
        let seen: Vec<Message> = a.got.lock().clone();
        assert_eq!(
            seen,
            vec![
                Message::from("r: ann"),
                Message::from("ann joined"),
                Message::from("bob joined"),
                Message::from("bob left")
            ]
        );
        assert_eq!(
            b.got.lock().clone(),
            vec![Message::from("r: ann,bob"), Message::from("bob joined")],
            "bob's state lists both, then its own join's diff"
        );
        // bob's name is free again once bob is gone.
        let c = Arc::new(Recorder::default());
        let c_id = join(&hub, "/chat", &c);
        assert_eq!(hub.claim_user(c_id, "bob").await, Ok(true));
    }

    #[actix_rt::test]
    async fn a_session_is_in_at_most_its_cap_of_rooms() {
        let hub = Hub::start();
        let sink = Arc::new(Recorder::default());
        let id = SessionId::next();
        hub.connect(id, "/chat", sink, 3).unwrap();
        for room in ["a", "b", "c"] {
            hub.join(id, room).await.unwrap();
        }
        assert_eq!(
            hub.join(id, "a").await.map(|m| m.len()),
            Ok(1),
            "rejoining is not a new room"
        );
        assert_eq!(hub.join(id, "d").await, Err(HubError::TooManyRooms { id, max: 3 }));
        assert_eq!(hub.leave(id, "a").await, Ok(true));
        assert!(hub.join(id, "d").await.is_ok());
    }

    #[actix_rt::test]
    async fn the_leaves_of_a_disconnect_are_announced_in_slices_with_other_messages_between() {
        use crate::hub::rooms::LEAVE_SLICE;
        let hub = Hub::start();
        hub.on_presence(|event| Some(Message::from(format!("left {}", event.room))));
        let rooms = 3 * LEAVE_SLICE + 1;
        let leaver = SessionId::next();
        hub.connect(leaver, "/chat", Arc::new(Recorder::default()), rooms)
            .unwrap();
        let watcher = Arc::new(Recorder::default());
        let watcher_id = join(&hub, "/chat", &watcher);
        for room in 0..rooms {
            hub.join(leaver, &room.to_string()).await.unwrap();
            hub.join(watcher_id, &room.to_string()).await.unwrap();
        }
        watcher.got.lock().clear();
        hub.disconnect(leaver);
        // Sent right after the disconnect: handled before the last slices of its leaves.
        hub.send_to(watcher_id, "between").await.unwrap();
        let _ = hub.members("0").await;
        // Every leave is announced in the end, in room order.
        let mut got = Vec::new();
        for _ in 0..100 {
            got = watcher.got.lock().clone();
            if got.len() == rooms + 1 {
                break;
            }
            let _ = hub.members("0").await;
        }
        assert_eq!(got.len(), rooms + 1, "{got:?}");
        let at = got.iter().position(|m| *m == Message::from("between")).unwrap();
        assert!(
            at >= LEAVE_SLICE && at < rooms,
            "the direct message came at {at} of {}",
            got.len()
        );
    }

    #[actix_rt::test]
    async fn a_user_key_reaches_all_its_sessions() {
        let hub = Hub::start();
        let (phone, laptop, other) = (
            Arc::new(Recorder::default()),
            Arc::new(Recorder::default()),
            Arc::new(Recorder::default()),
        );
        for (sink, user) in [(&phone, "ann"), (&laptop, "ann"), (&other, "bob")] {
            let id = join(&hub, "/chat", sink);
            hub.set_user(id, user).await.unwrap();
        }
        assert_eq!(hub.send_to_user("ann", "for ann").await, Ok(2));
        assert_eq!(hub.send_to_user("nobody", "lost").await, Ok(0));
        assert!(other.got.lock().is_empty());
    }

    #[test]
    fn the_global_hub_works_without_an_actix_system() {
        let hub = Hub::global();
        let sink = Arc::new(Recorder::default());
        let id = join(&hub, "/global-test", &sink);
        let runtime = tokio_runtime();
        assert_eq!(runtime.block_on(hub.send_to(id, "x")), Ok(()));
        assert_eq!(sink.got.lock().len(), 1);
    }

    fn tokio_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }
}
