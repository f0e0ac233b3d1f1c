//! One chat connection: its name, its rooms, and the handling of what its browser sends.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard::{Hub, HubError, Message, WebSocket};
use tokio::sync::mpsc;

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
    Error {
        message: &'a str,
    },
}

impl Outgoing<'_> {
    pub(crate) fn to_message(&self) -> Message {
        // Serializing these plain structs cannot fail.
        Message::from(serde_json::to_string(self).unwrap_or_default())
    }
}

pub(crate) fn reply_error(ws: &WebSocket, message: &str) {
    ws.send(Outgoing::Error { message }.to_message());
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

/// One connection's chat state.
pub(crate) struct Session {
    pub(crate) ws: WebSocket,
    pub(crate) hub: Hub,
    pub(crate) names: Names,
    name: Option<String>,
    rooms: HashSet<String>,
    room_changes: RateLimit,
}

impl Session {
    pub(crate) fn new(ws: WebSocket, hub: Hub, names: Names) -> Session {
        Session {
            ws,
            hub,
            names,
            name: None,
            rooms: HashSet::new(),
            room_changes: RateLimit::new(),
        }
    }

    /// Handles the connection's messages until it closes (its callback, holding the sender, is
    /// dropped then), then frees its name.
    pub(crate) async fn run(mut self, mut inbox: mpsc::Receiver<Result<Incoming, String>>) {
        while let Some(item) = inbox.recv().await {
            let outcome = match item {
                Ok(message) => self.handle(message).await,
                Err(error) => Err(error),
            };
            if let Err(error) = outcome {
                reply_error(&self.ws, &error);
            }
        }
        if let Some(name) = &self.name {
            self.names.release(name, self.ws.id());
        }
    }

    async fn handle(&mut self, message: Incoming) -> Result<(), String> {
        match message {
            Incoming::Join { room, name } => {
                self.join(&names::valid("room", &room)?, &names::valid("name", &name)?)
                    .await
            }
            Incoming::Message { room, text } => self.say(&room, &text).await,
            Incoming::Leave { room } => self.leave(&room).await,
        }
    }

    fn slow_down(&mut self) -> Result<(), String> {
        if self.room_changes.take() {
            return Ok(());
        }
        let wait = Duration::from_secs_f64(1.0 / ROOM_CHANGES_PER_SECOND);
        Err(format!("too many joins and leaves; wait {wait:?} between them"))
    }

    async fn join(&mut self, room: &str, name: &str) -> Result<(), String> {
        match &self.name {
            Some(mine) if names::key(mine) != names::key(name) => {
                return Err(format!("you are {mine}; reconnect to change your name"))
            }
            Some(_) => {}
            None => {
                if !self.names.claim(name, self.ws.id()) {
                    return Err(format!("the name {name} is taken"));
                }
                self.hub.set_user(self.ws.id(), name).await.map_err(|e| e.to_string())?;
                self.name = Some(name.to_owned());
            }
        }
        if self.rooms.contains(room) {
            return Ok(());
        }
        self.slow_down()?;
        match self.hub.join(self.ws.id(), room).await {
            Ok(_) => {
                self.rooms.insert(room.to_owned());
                Ok(())
            }
            Err(HubError::TooManyRooms { max, .. }) => Err(format!("you are in {max} rooms already; leave one first")),
            Err(error) => Err(error.to_string()),
        }
    }

    async fn say(&mut self, room: &str, text: &str) -> Result<(), String> {
        let (Some(name), true) = (&self.name, self.rooms.contains(room)) else {
            return Err(format!("join {room} before sending to it"));
        };
        if text.trim().is_empty() {
            return Err("empty message".into());
        }
        if text.chars().count() > MAX_TEXT {
            return Err(format!("message over {MAX_TEXT} characters"));
        }
        let message = Outgoing::Message { room, from: name, text }.to_message();
        self.hub
            .broadcast_room(room, message, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn leave(&mut self, room: &str) -> Result<(), String> {
        if !self.rooms.contains(room) {
            return Err(format!("you are not in {room}"));
        }
        self.slow_down()?;
        self.rooms.remove(room);
        self.hub.leave(self.ws.id(), room).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}
