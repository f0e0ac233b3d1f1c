//! Rooms, presence and users: the supervisor's registry for chat-style apps.
//!
//! A session joins and leaves rooms (up to its cap at once); a broadcast to a room reaches its
//! members, optionally except one. Presence goes out the way Phoenix's does: the session that
//! joins gets the room's whole member list once (the state listener's message), and every member
//! gets a small diff for each join and leave (the presence listener's message), never the whole
//! list again. A session may carry a user name or key, and a message can go to every session of a
//! user.
//!
//! What one session can make the supervisor do is bounded: a join or leave announces one diff
//! through the room's fan-out (one task per worker thread, whatever the room's size), a session
//! is in at most its cap of rooms, and the leaves a disconnect causes are announced
//! [`LEAVE_SLICE`] rooms at a time, with the supervisor's other messages handled in between.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use actix::{AsyncContext, Context, Handler, Message as ActixMessage, MessageResult};

use super::error::HubError;
use super::fanout::Fanout;
use super::session::SessionId;
use super::supervisor::Supervisor;
use crate::message::{Message, Outgoing};

/// How many of a disconnected session's rooms are announced per turn of the supervisor. Each
/// announcement is one fan-out (a few microseconds), so a slice stays far under a millisecond
/// while messages from other sessions wait.
pub(crate) const LEAVE_SLICE: usize = 16;

/// A member of a room, as presence reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// The session.
    pub id: SessionId,
    /// Its user name or key, if the app gave one ([`Hub::claim_user`](crate::Hub::claim_user)).
    pub user: Option<String>,
}

/// Whether a presence event is a join or a leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceChange {
    /// The session joined the room.
    Joined,
    /// The session left the room, by asking or by disconnecting.
    Left,
}

/// One join or leave: a presence diff.
///
/// It carries who changed, not the whole member list: the list goes once, to the session that
/// joins ([`Hub::on_presence_state`](crate::Hub::on_presence_state)), and members keep it up to
/// date from the diffs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceEvent {
    /// The room.
    pub room: String,
    /// Joined or left.
    pub change: PresenceChange,
    /// Who joined or left.
    pub member: Member,
}

/// Turns a presence diff into the message for the room's members (or `None` for silence). It
/// runs on the supervisor's thread: keep it quick.
pub(crate) type PresenceListener = Arc<dyn Fn(&PresenceEvent) -> Option<Message> + Send + Sync>;

/// Turns a room's member list into the message for the session that just joined it (or `None`).
/// It runs on the supervisor's thread: keep it quick.
pub(crate) type PresenceStateListener = Arc<dyn Fn(&str, &[Member]) -> Option<Message> + Send + Sync>;

/// The supervisor's room and user registry.
#[derive(Default)]
pub(crate) struct Rooms {
    pub(crate) members: HashMap<String, BTreeSet<SessionId>>,
    users: HashMap<String, BTreeSet<SessionId>>,
    listener: Option<PresenceListener>,
    state_listener: Option<PresenceStateListener>,
    /// Each room's members grouped by thread, built on the first delivery after a change.
    fanouts: HashMap<String, Arc<Fanout>>,
    /// Leaves that disconnects caused, not announced yet.
    pending_leaves: VecDeque<PresenceEvent>,
    /// A [`DrainLeaves`] is on its way.
    draining: bool,
}

impl Supervisor {
    pub(crate) fn member(&self, id: SessionId) -> Member {
        Member {
            id,
            user: self.sessions.get(&id).and_then(|s| s.user.clone()),
        }
    }

    /// The room's members, local and (with a broker) on other nodes, in id order.
    fn members(&self, room: &str) -> Vec<Member> {
        let ids = self.rooms.members.get(room);
        let mut members: Vec<Member> = ids.into_iter().flatten().map(|id| self.member(*id)).collect();
        members.extend(self.remote_members(room));
        members.sort();
        members
    }

    /// Sends `message` to the members of `room` except `except`, through the room's fan-out;
    /// answers how many sessions it was handed to.
    pub(crate) fn deliver_to_room(&mut self, room: &str, message: &Outgoing, except: Option<SessionId>) -> usize {
        let Some(ids) = self.rooms.members.get(room) else {
            return 0;
        };
        let sessions = &self.sessions;
        let fanout = Fanout::cached(
            &mut self.rooms.fanouts,
            room,
            || room.to_owned(),
            || Fanout::of(ids, sessions),
        );
        fanout.deliver(message, except, &self.metrics)
    }

    /// Tells the room's members about a join or leave, if a listener is set.
    pub(crate) fn announce(&mut self, event: &PresenceEvent) {
        let Some(listener) = self.rooms.listener.clone() else {
            return;
        };
        if let Some(message) = listener(event) {
            self.deliver_to_room(&event.room, &Outgoing::new(message), None);
        }
    }

    /// Takes `id` out of `room`'s member set; answers whether it was in it.
    fn remove_member(&mut self, id: SessionId, room: &str) -> bool {
        let Some(ids) = self.rooms.members.get_mut(room) else {
            return false;
        };
        let was_member = ids.remove(&id);
        if ids.is_empty() {
            self.rooms.members.remove(room);
            self.room_closed(room);
        }
        self.rooms.fanouts.remove(room);
        if was_member {
            self.publish_presence(room, PresenceChange::Left, self.member(id));
        }
        was_member
    }

    fn leave_room(&mut self, id: SessionId, room: &str) -> bool {
        let member = self.member(id);
        if let Some(session) = self.sessions.get_mut(&id) {
            session.rooms.remove(room);
        }
        let was_member = self.remove_member(id, room);
        if was_member {
            self.announce(&PresenceEvent {
                room: room.to_owned(),
                change: PresenceChange::Left,
                member,
            });
        }
        was_member
    }

    /// Takes a disconnecting session out of every room at once; the leaves are announced
    /// [`LEAVE_SLICE`] at a time.
    pub(crate) fn leave_all_rooms(&mut self, id: SessionId, ctx: &mut Context<Self>) {
        let member = self.member(id);
        let rooms = self
            .sessions
            .get_mut(&id)
            .map(|s| std::mem::take(&mut s.rooms))
            .unwrap_or_default();
        for room in rooms {
            if self.remove_member(id, &room) && self.rooms.listener.is_some() {
                self.rooms.pending_leaves.push_back(PresenceEvent {
                    room,
                    change: PresenceChange::Left,
                    member: member.clone(),
                });
            }
        }
        self.drain_leaves(ctx);
    }

    /// Announces up to [`LEAVE_SLICE`] pending leaves, and asks to be called again for the rest
    /// after the messages waiting in the mailbox.
    fn drain_leaves(&mut self, ctx: &mut Context<Self>) {
        for _ in 0..LEAVE_SLICE {
            let Some(event) = self.rooms.pending_leaves.pop_front() else {
                return;
            };
            self.announce(&event);
        }
        if !self.rooms.pending_leaves.is_empty() && !self.rooms.draining {
            self.rooms.draining = true;
            ctx.notify(DrainLeaves);
        }
    }

    /// Forgets a disconnecting session's user.
    pub(crate) fn forget_user(&mut self, id: SessionId) {
        let Some(user) = self.sessions.get(&id).and_then(|s| s.user.clone()) else {
            return;
        };
        if let Some(ids) = self.rooms.users.get_mut(&user) {
            ids.remove(&id);
            if ids.is_empty() {
                self.rooms.users.remove(&user);
                self.remote_unsubscribe(&super::remote::user_topic(&user));
            }
        }
    }
}

/// Announces the next slice of pending leaves.
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
struct DrainLeaves;

impl Handler<DrainLeaves> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: DrainLeaves, ctx: &mut Context<Self>) {
        self.rooms.draining = false;
        self.drain_leaves(ctx);
    }
}

/// Puts a session in a room; answers the members after it joined.
#[derive(Debug, ActixMessage)]
#[rtype(result = "Result<Vec<Member>, HubError>")]
pub(crate) struct Join {
    /// The session.
    pub(crate) id: SessionId,
    /// The room (created by its first member).
    pub(crate) room: String,
}

impl Handler<Join> for Supervisor {
    type Result = Result<Vec<Member>, HubError>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        let session = self.sessions.get_mut(&msg.id).ok_or(HubError::NoSuchSession(msg.id))?;
        if session.rooms.contains(&msg.room) {
            return Ok(self.members(&msg.room));
        }
        if session.rooms.len() >= session.max_rooms {
            return Err(HubError::TooManyRooms {
                id: msg.id,
                max: session.max_rooms,
            });
        }
        session.rooms.insert(msg.room.clone());
        let ids = self.rooms.members.entry(msg.room.clone()).or_default();
        ids.insert(msg.id);
        if ids.len() == 1 {
            self.room_opened(&msg.room);
        }
        self.rooms.fanouts.remove(&msg.room);
        self.publish_presence(&msg.room, PresenceChange::Joined, self.member(msg.id));
        let members = self.members(&msg.room);
        // The state goes straight to the joiner, ahead of any diff announced after this join.
        if let Some(state) = self.rooms.state_listener.clone().and_then(|l| l(&msg.room, &members)) {
            let _ = self.deliver(msg.id, &Outgoing::new(state));
        }
        let event = PresenceEvent {
            room: msg.room,
            change: PresenceChange::Joined,
            member: self.member(msg.id),
        };
        self.announce(&event);
        Ok(members)
    }
}

/// Takes a session out of a room; answers whether it was in it.
#[derive(Debug, ActixMessage)]
#[rtype(result = "bool")]
pub(crate) struct Leave {
    /// The session.
    pub(crate) id: SessionId,
    /// The room.
    pub(crate) room: String,
}

impl Handler<Leave> for Supervisor {
    type Result = bool;
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) -> bool {
        self.leave_room(msg.id, &msg.room)
    }
}

/// Delivers to every member of a room, optionally except one; answers how many sessions it was
/// handed to.
#[derive(Debug, ActixMessage)]
#[rtype(result = "usize")]
pub(crate) struct BroadcastRoom {
    /// The room.
    pub(crate) room: String,
    /// The message, encoded once for every member.
    pub(crate) message: Outgoing,
    /// A member to leave out (typically the sender).
    pub(crate) except: Option<SessionId>,
}

impl Handler<BroadcastRoom> for Supervisor {
    type Result = usize;
    fn handle(&mut self, msg: BroadcastRoom, _: &mut Context<Self>) -> usize {
        let handed = self.deliver_to_room(&msg.room, &msg.message, msg.except);
        self.publish_message(super::remote::room_topic(&msg.room), &msg.message, msg.except);
        handed
    }
}

/// The members of a room, in id order.
#[derive(Debug, ActixMessage)]
#[rtype(result = "Vec<Member>")]
pub(crate) struct Members(pub(crate) String);

impl Handler<Members> for Supervisor {
    type Result = MessageResult<Members>;
    fn handle(&mut self, msg: Members, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.members(&msg.0))
    }
}

/// Gives a session a user name or key. With `exclusive`, only if no other session has it;
/// answers whether the session has it now.
#[derive(Debug, ActixMessage)]
#[rtype(result = "Result<bool, HubError>")]
pub(crate) struct SetUser {
    /// The session.
    pub(crate) id: SessionId,
    /// The user name or key.
    pub(crate) user: String,
    /// Refuse when another session has this user.
    pub(crate) exclusive: bool,
}

impl Handler<SetUser> for Supervisor {
    type Result = Result<bool, HubError>;
    fn handle(&mut self, msg: SetUser, _: &mut Context<Self>) -> Self::Result {
        if !self.sessions.contains_key(&msg.id) {
            return Err(HubError::NoSuchSession(msg.id));
        }
        let holders = self.rooms.users.get(&msg.user);
        if msg.exclusive && holders.is_some_and(|ids| ids.iter().any(|id| *id != msg.id)) {
            return Ok(false);
        }
        self.forget_user(msg.id);
        let holders = self.rooms.users.entry(msg.user.clone()).or_default();
        holders.insert(msg.id);
        if holders.len() == 1 {
            self.remote_subscribe(super::remote::user_topic(&msg.user));
        }
        if let Some(session) = self.sessions.get_mut(&msg.id) {
            session.user = Some(msg.user);
        }
        Ok(true)
    }
}

/// Delivers to every session of a user; answers how many took it.
#[derive(Debug, ActixMessage)]
#[rtype(result = "usize")]
pub(crate) struct SendToUser {
    /// The user name or key.
    pub(crate) user: String,
    /// The message.
    pub(crate) message: Outgoing,
}

impl Handler<SendToUser> for Supervisor {
    type Result = usize;
    fn handle(&mut self, msg: SendToUser, _: &mut Context<Self>) -> usize {
        let handed = self.deliver_to_user(&msg.user, &msg.message);
        self.publish_message(super::remote::user_topic(&msg.user), &msg.message, None);
        handed
    }
}

impl Supervisor {
    /// Delivers to the local sessions of `user`; answers how many took it.
    pub(crate) fn deliver_to_user(&mut self, user: &str, message: &Outgoing) -> usize {
        let ids: Vec<SessionId> = self.rooms.users.get(user).into_iter().flatten().copied().collect();
        ids.into_iter().filter(|id| self.deliver(*id, message).is_ok()).count()
    }
}

/// Sets the presence listeners given (`None` leaves one as it is): the diff listener for every
/// join and leave, and the state listener for the session that joins.
#[derive(ActixMessage)]
#[rtype(result = "()")]
pub(crate) struct SetPresenceListener {
    /// The diff listener.
    pub(crate) diff: Option<PresenceListener>,
    /// The state listener.
    pub(crate) state: Option<PresenceStateListener>,
}

impl std::fmt::Debug for SetPresenceListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPresenceListener")
            .field("diff", &self.diff.is_some())
            .field("state", &self.state.is_some())
            .finish()
    }
}

impl Handler<SetPresenceListener> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: SetPresenceListener, _: &mut Context<Self>) {
        if let Some(diff) = msg.diff {
            self.rooms.listener = Some(diff);
        }
        if let Some(state) = msg.state {
            self.rooms.state_listener = Some(state);
        }
    }
}
