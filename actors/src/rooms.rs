//! Rooms, presence and users: the supervisor's registry for chat-style apps.
//!
//! A session joins and leaves rooms (any number at once); a broadcast to a room reaches its
//! members, optionally except one. On every join and leave, including the leaves a disconnect
//! causes, a presence listener (if set) may turn the event into a message for the room. A session
//! may carry a user name or key, and a message can go to every session of a user.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix::{Context, Handler, Message as ActixMessage, MessageResult};

use crate::error::HubError;
use crate::message::{Message, Outgoing};
use crate::session::SessionId;
use crate::supervisor::Supervisor;

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

/// A join or leave, with the room's members after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    /// The room.
    pub room: String,
    /// Joined or left.
    pub change: PresenceChange,
    /// Who joined or left.
    pub member: Member,
    /// Everyone in the room after the change, in id order.
    pub members: Vec<Member>,
}

/// Turns a presence event into the message to send to the room (or `None` for silence). It runs
/// on the supervisor's thread: keep it quick.
pub type PresenceListener = Arc<dyn Fn(&PresenceEvent) -> Option<Message> + Send + Sync>;

/// The supervisor's room and user registry.
#[derive(Default)]
pub(crate) struct Rooms {
    members: HashMap<String, BTreeSet<SessionId>>,
    users: HashMap<String, BTreeSet<SessionId>>,
    listener: Option<PresenceListener>,
}

impl Supervisor {
    fn member(&self, id: SessionId) -> Member {
        Member {
            id,
            user: self.sessions.get(&id).and_then(|s| s.user.clone()),
        }
    }

    fn members(&self, room: &str) -> Vec<Member> {
        let ids = self.rooms.members.get(room);
        ids.into_iter().flatten().map(|id| self.member(*id)).collect()
    }

    /// Sends `message` to the members of `room` except `except`; answers how many took it.
    fn deliver_to_room(&mut self, room: &str, message: &Outgoing, except: Option<SessionId>) -> usize {
        let Some(ids) = self.rooms.members.get(room) else {
            return 0;
        };
        let targets: Vec<SessionId> = ids.iter().copied().filter(|id| Some(*id) != except).collect();
        targets
            .into_iter()
            .filter(|id| self.deliver(*id, message).is_ok())
            .count()
    }

    fn announce(&mut self, room: &str, change: PresenceChange, id: SessionId) {
        let Some(listener) = self.rooms.listener.clone() else {
            return;
        };
        let event = PresenceEvent {
            room: room.to_owned(),
            change,
            member: self.member(id),
            members: self.members(room),
        };
        if let Some(message) = listener(&event) {
            self.deliver_to_room(room, &Outgoing::new(message), None);
        }
    }

    fn leave_room(&mut self, id: SessionId, room: &str) -> bool {
        let was_member = self.rooms.members.get_mut(room).is_some_and(|ids| ids.remove(&id));
        if let Some(session) = self.sessions.get_mut(&id) {
            session.rooms.remove(room);
        }
        if self.rooms.members.get(room).is_some_and(BTreeSet::is_empty) {
            self.rooms.members.remove(room);
        }
        if was_member {
            self.announce(room, PresenceChange::Left, id);
        }
        was_member
    }

    /// Takes a disconnecting session out of every room, announcing each leave.
    pub(crate) fn leave_all_rooms(&mut self, id: SessionId) {
        let rooms = self.sessions.get(&id).map(|s| s.rooms.clone()).unwrap_or_default();
        for room in rooms {
            self.leave_room(id, &room);
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
            }
        }
    }
}

/// Puts a session in a room; answers the members after it joined.
#[derive(Debug, ActixMessage)]
#[rtype(result = "Result<Vec<Member>, HubError>")]
pub struct Join {
    /// The session.
    pub id: SessionId,
    /// The room (created by its first member).
    pub room: String,
}

impl Handler<Join> for Supervisor {
    type Result = Result<Vec<Member>, HubError>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        let session = self.sessions.get_mut(&msg.id).ok_or(HubError::NoSuchSession(msg.id))?;
        if session.rooms.insert(msg.room.clone()) {
            self.rooms.members.entry(msg.room.clone()).or_default().insert(msg.id);
            self.announce(&msg.room, PresenceChange::Joined, msg.id);
        }
        Ok(self.members(&msg.room))
    }
}

/// Takes a session out of a room; answers whether it was in it.
#[derive(Debug, ActixMessage)]
#[rtype(result = "bool")]
pub struct Leave {
    /// The session.
    pub id: SessionId,
    /// The room.
    pub room: String,
}

impl Handler<Leave> for Supervisor {
    type Result = bool;
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) -> bool {
        self.leave_room(msg.id, &msg.room)
    }
}

/// Delivers to every member of a room, optionally except one; answers how many took it.
#[derive(Debug, ActixMessage)]
#[rtype(result = "usize")]
pub struct BroadcastRoom {
    /// The room.
    pub room: String,
    /// The message, encoded once for every member.
    pub message: Outgoing,
    /// A member to leave out (typically the sender).
    pub except: Option<SessionId>,
}

impl Handler<BroadcastRoom> for Supervisor {
    type Result = usize;
    fn handle(&mut self, msg: BroadcastRoom, _: &mut Context<Self>) -> usize {
        self.deliver_to_room(&msg.room, &msg.message, msg.except)
    }
}

/// The members of a room, in id order.
#[derive(Debug, ActixMessage)]
#[rtype(result = "Vec<Member>")]
pub struct Members(pub String);

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
pub struct SetUser {
    /// The session.
    pub id: SessionId,
    /// The user name or key.
    pub user: String,
    /// Refuse when another session has this user.
    pub exclusive: bool,
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
        self.rooms.users.entry(msg.user.clone()).or_default().insert(msg.id);
        if let Some(session) = self.sessions.get_mut(&msg.id) {
            session.user = Some(msg.user);
        }
        Ok(true)
    }
}

/// Delivers to every session of a user; answers how many took it.
#[derive(Debug, ActixMessage)]
#[rtype(result = "usize")]
pub struct SendToUser {
    /// The user name or key.
    pub user: String,
    /// The message.
    pub message: Outgoing,
}

impl Handler<SendToUser> for Supervisor {
    type Result = usize;
    fn handle(&mut self, msg: SendToUser, _: &mut Context<Self>) -> usize {
        let ids: Vec<SessionId> = self.rooms.users.get(&msg.user).into_iter().flatten().copied().collect();
        ids.into_iter()
            .filter(|id| self.deliver(*id, &msg.message).is_ok())
            .count()
    }
}

/// Sets (or with `None` removes) the presence listener.
#[derive(ActixMessage)]
#[rtype(result = "()")]
pub struct SetPresenceListener(pub Option<PresenceListener>);

impl std::fmt::Debug for SetPresenceListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SetPresenceListener").field(&self.0.is_some()).finish()
    }
}

impl Handler<SetPresenceListener> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: SetPresenceListener, _: &mut Context<Self>) {
        self.rooms.listener = msg.0;
    }
}
