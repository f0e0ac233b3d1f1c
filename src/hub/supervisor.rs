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
    /// Each route's sessions. A session's `route` shares its route's key.
    pub(crate) routes: HashMap<Arc<str>, BTreeSet<SessionId>>,
    /// Boxed: the table then holds 16 bytes per slot instead of 120, and a hash table keeps about
    /// a third of its slots empty (idle memory per connection, docs/benchmarks.md).
    pub(crate) sessions: HashMap<SessionId, Box<Session>>,
    /// The hub's counters: deliveries refused by their session are counted there, by reason.
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) rooms: super::rooms::Rooms,
    /// Each route's sessions grouped by thread, built on the first broadcast after a change.
    fanouts: HashMap<Arc<str>, Arc<Fanout>>,
    /// The broker to other nodes, if this hub is one node of several.
    pub(crate) remote: Option<super::remote::Remote>,
}

pub(crate) struct Session {
    route: Arc<str>,
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
        self.start_remote(ctx);
    }
}

impl Supervisor {
    /// The route's key in `routes`, shared by its sessions (one string per route, not one per
    /// session).
    fn route_key(&self, route: &str) -> Arc<str> {
        self.routes
            .get_key_value(route)
            .map_or_else(|| Arc::from(route), |(key, _)| key.clone())
    }

    /// A supervisor counting into `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Supervisor {
        Supervisor {
            metrics,
            ..Supervisor::default()
        }
    }

    /// Delivers `message` to the local sessions of `route` except `except`; answers how many.
    pub(crate) fn broadcast_local(&mut self, route: &str, message: &Outgoing, except: Option<SessionId>) -> usize {
        let Some((key, members)) = self.routes.get_key_value(route) else {
            return 0;
        };
        let sessions = &self.sessions;
        let fanout = Fanout::cached(
            &mut self.fanouts,
            route,
            || key.clone(),
            || Fanout::of(members, sessions),
        );
        fanout.deliver(message, except, &self.metrics)
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
        self.routes.entry(Arc::from(msg.0)).or_default();
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
        let route = self.route_key(&msg.route);
        let members = self.routes.entry(route.clone()).or_default();
        members.insert(msg.id);
        if members.len() == 1 {
            self.remote_subscribe(super::remote::route_topic(&route));
        }
        self.fanouts.remove(&*route);
        let session = Box::new(Session {
            route,
            home: msg.home,
            sink: msg.sink,
            rooms: BTreeSet::new(),
            max_rooms: msg.max_rooms,
            user: None,
        });
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
            self.fanouts.remove(&*session.route);
            if let Some(members) = self.routes.get_mut(&session.route) {
                members.remove(&msg.0);
                if members.is_empty() {
                    self.remote_unsubscribe(&super::remote::route_topic(&session.route));
                }
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
        let handed = self.broadcast_local(&msg.route, &msg.message, msg.except);
        self.publish_message(super::remote::route_topic(&msg.route), &msg.message, msg.except);
        handed
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
        match self.deliver(msg.id, &msg.message) {
            Err(HubError::NoSuchSession(id)) if self.send_remote(id, &msg.message) => Ok(()),
            delivered => delivered,
        }
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
                .get(msg.0.as_str())
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
        let mut routes: Vec<String> = self.routes.keys().map(|route| route.to_string()).collect();
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
mod tests;
