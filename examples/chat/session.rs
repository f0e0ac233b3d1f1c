//! One chat connection: its name, its rooms, and the handling of what its browser sends.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{Actor, ActorFutureExt, AsyncContext, StreamHandler};
use serde::{Deserialize, Serialize};
use switchboard::{ws, HubError, Message};

use crate::names::{self, Names};

/// The longest chat message, in characters.
const MAX_TEXT: usize = 2000;
/// Joins and leaves one connection may make in a burst...
const ROOM_CHANGES_BURST: f64 = 10.0;
/// ...and per second after it: a person changes rooms a few times a minute, and each change is
/// announced to every member of the room, so a script churning rooms would flood them.
const ROOM_CHANGES_PER_SECOND: f64 = 2.0;

/// What a browser sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Incoming {
    Join { room: String, name: String },
    Message { room: String, text: String },
    Leave { room: String },
    Direct { to: String, text: String },
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Outgoing<'a> {
    Message {
        room: &'a str,
        from: &'a str,
        text: &'a str,
    },
    /// To the one who joins: everyone in the room.
    Presence {
        room: &'a str,
        members: Vec<&'a str>,
    },
    /// To every member, on each join and leave.
    PresenceDiff {
        room: &'a str,
        joins: Vec<&'a str>,
        leaves: Vec<&'a str>,
    },
    /// To the recipient's sessions, on whichever node, and to the sender.
    Direct {
        from: &'a str,
        to: &'a str,
        text: &'a str,
    },
    Error {
        message: &'a str,
    },
}

impl Outgoing<'_> {
    pub(crate) fn to_message(&self) -> Message {
        Message::from(self.to_text())
    }

    fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn check_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("empty message".into());
    }
    if text.chars().count() > MAX_TEXT {
        return Err(format!("message over {MAX_TEXT} characters"));
    }
    Ok(())
}

fn reply_error(ctx: &mut ws::WebsocketContext<ChatSession>, message: &str) {
    ctx.text(Outgoing::Error { message }.to_text());
}

/// A token bucket: `ROOM_CHANGES_BURST` at once, then `ROOM_CHANGES_PER_SECOND`.
#[derive(Debug)]
struct RateLimit {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn new() -> RateLimit {
        RateLimit {
            tokens: ROOM_CHANGES_BURST,
            at: Instant::now(),
        }
    }

    /// Takes a token if one is left.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * ROOM_CHANGES_PER_SECOND;
        self.tokens = (self.tokens + refill).min(ROOM_CHANGES_BURST);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// One connection: a session actor. It hears the browser's messages in order; each hub call it
/// makes is awaited with `ctx.wait`, so the next message waits for it, as in a task of its own,
/// and while it waits the connection reads no more (the browser is held back by TCP, not by a
/// queue of ours).
pub(crate) struct ChatSession {
    names: Names,
    name: Option<String>,
    rooms: HashSet<String>,
    room_changes: RateLimit,
}

impl ChatSession {
    pub(crate) fn new(names: Names) -> ChatSession {
        ChatSession {
            names,
            name: None,
            rooms: HashSet::new(),
            room_changes: RateLimit::new(),
        }
    }

    fn handle(&mut self, message: Incoming, ctx: &mut ws::WebsocketContext<Self>) -> Result<(), String> {
        match message {
            Incoming::Join { room, name } => {
                let (room, name) = (names::valid("room", &room)?, names::valid("name", &name)?);
                self.join(room, name, ctx)
            }
            Incoming::Message { room, text } => self.say(&room, &text, ctx),
            Incoming::Leave { room } => self.leave(room, ctx),
            Incoming::Direct { to, text } => self.direct(&to, &text, ctx),
        }
    }

    fn slow_down(&mut self) -> Result<(), String> {
        if self.room_changes.take() {
            return Ok(());
        }
        let wait = Duration::from_secs_f64(1.0 / ROOM_CHANGES_PER_SECOND);
        Err(format!("too many joins and leaves; wait {wait:?} between them"))
    }

    fn join(&mut self, room: String, name: String, ctx: &mut ws::WebsocketContext<Self>) -> Result<(), String> {
        let first = match &self.name {
            Some(mine) if names::key(mine) != names::key(&name) => {
                return Err(format!("you are {mine}; reconnect to change your name"))
            }
            Some(_) => false,
            None => {
                if !self.names.claim(&name, ctx.id()) {
                    return Err(format!("the name {name} is taken"));
                }
                self.name = Some(name.clone());
                true
            }
        };
        if self.rooms.contains(&room) {
            return Ok(());
        }
        self.slow_down()?;
        let (hub, id) = (ctx.hub().clone(), ctx.id());
        let joined = async move {
            if first {
                hub.set_user(id, &name).await?;
            }
            hub.join(id, &room).await.map(|_| room)
        };
        ctx.wait(wrap_future(joined).map(|joined, act: &mut Self, ctx| match joined {
            Ok(room) => {
                act.rooms.insert(room);
            }
            Err(HubError::TooManyRooms { max, .. }) => {
                reply_error(ctx, &format!("you are in {max} rooms already; leave one first"));
            }
            Err(error) => reply_error(ctx, &error.to_string()),
        }));
        Ok(())
    }

    fn say(&mut self, room: &str, text: &str, ctx: &mut ws::WebsocketContext<Self>) -> Result<(), String> {
        let (Some(name), true) = (&self.name, self.rooms.contains(room)) else {
            return Err(format!("join {room} before sending to it"));
        };
        check_text(text)?;
        let message = Outgoing::Message { room, from: name, text }.to_message();
        let (hub, room) = (ctx.hub().clone(), room.to_owned());
        let sent = async move { hub.broadcast_room(&room, message, None).await };
        ctx.wait(wrap_future(sent).map(|sent, _: &mut Self, ctx| {
            if let Err(error) = sent {
                reply_error(ctx, &error.to_string());
            }
        }));
        Ok(())
    }

    /// A message for every session of user `to`, here or on another node, and a copy for the sender.
    fn direct(&mut self, to: &str, text: &str, ctx: &mut ws::WebsocketContext<Self>) -> Result<(), String> {
        let Some(name) = &self.name else {
            return Err("join a room before sending direct messages".into());
        };
        check_text(text)?;
        let direct = Outgoing::Direct { from: name, to, text };
        if names::key(name) != names::key(to) {
            ctx.text(direct.to_text());
        }
        let message = direct.to_message();
        let (hub, to) = (ctx.hub().clone(), to.to_owned());
        let sent = async move { hub.send_to_user(&to, message).await };
        ctx.wait(wrap_future(sent).map(|sent, _: &mut Self, ctx| {
            if let Err(error) = sent {
                reply_error(ctx, &error.to_string());
            }
        }));
        Ok(())
    }

    fn leave(&mut self, room: String, ctx: &mut ws::WebsocketContext<Self>) -> Result<(), String> {
        if !self.rooms.contains(&room) {
            return Err(format!("you are not in {room}"));
        }
        self.slow_down()?;
        self.rooms.remove(&room);
        let (hub, id) = (ctx.hub().clone(), ctx.id());
        let left = async move { hub.leave(id, &room).await };
        ctx.wait(wrap_future(left).map(|left, _: &mut Self, ctx| {
            if let Err(error) = left {
                reply_error(ctx, &error.to_string());
            }
        }));
        Ok(())
    }
}

impl Actor for ChatSession {
    type Context = ws::WebsocketContext<Self>;

    /// Frees the name once the connection is gone (the hub forgets the session by itself).
    fn stopped(&mut self, ctx: &mut Self::Context) {
        if let Some(name) = &self.name {
            self.names.release(name, ctx.id());
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ChatSession {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let outcome = match message {
            Ok(ws::Message::Text(text)) => serde_json::from_str::<Incoming>(&text)
                .map_err(|e| format!("malformed message: {e}"))
                .and_then(|incoming| self.handle(incoming, ctx)),
            Ok(ws::Message::Binary(_)) => Err("this chat speaks JSON text messages".to_owned()),
            _ => Ok(()),
        };
        if let Err(error) = outcome {
            reply_error(ctx, &error);
        }
    }
}
