//! A chat server with its web page: rooms, presence, and messages, over JSON text messages.
//!
//! Run it, then open http://127.0.0.1:8080/ in two browser windows:
//!
//! ```text
//! cargo run --release --example chat -- --addr 127.0.0.1:8080
//! ```
//!
//! The page (plain HTML, CSS and JavaScript in `examples/chat/`, no build step) is served at `/`
//! and the WebSocket at `/chat`. The protocol, JSON text messages:
//!
//! - client to server: `{"type":"join","room":R,"name":N}`, `{"type":"message","room":R,"text":T}`,
//!   `{"type":"leave","room":R}`;
//! - server to client: `{"type":"message","room":R,"from":N,"text":T}` (the sender gets its own
//!   too), `{"type":"presence","room":R,"members":[N,...]}` on every join and leave, and
//!   `{"type":"error","message":M}` for anything refused.

use std::collections::HashSet;
use std::time::Duration;

use actix_web::{web, App, HttpResponse};
use clap::Parser;
use serde::{Deserialize, Serialize};
use switchboard::{Config, Hub, Message, PresenceEvent, Server, WebSocket};
use tokio::sync::mpsc;

/// The longest chat message, in characters.
const MAX_TEXT: usize = 2000;
/// The longest name or room name, in characters.
const MAX_NAME: usize = 32;
/// A WebSocket message above this is refused with 1009 before it is parsed: a chat message
/// with JSON around it is far smaller.
const MAX_FRAME: usize = 16 << 10;
/// Messages from one connection waiting to be handled; past it the sender is told to slow down.
const INBOX: usize = 64;
/// How long shutdown waits for the close handshakes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(about = "switchboard chat server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
}

/// What a browser sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Incoming {
    Join { room: String, name: String },
    Message { room: String, text: String },
    Leave { room: String },
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Outgoing<'a> {
    Message {
        room: &'a str,
        from: &'a str,
        text: &'a str,
    },
    Presence {
        room: &'a str,
        members: Vec<&'a str>,
    },
    Error {
        message: &'a str,
    },
}

impl Outgoing<'_> {
    fn to_message(&self) -> Message {
        // Serializing these plain structs cannot fail.
        Message::from(serde_json::to_string(self).unwrap_or_default())
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let hub = Hub::start();
    hub.on_presence(presence_message);
    let app_hub = hub.clone();
    let server = Server::new(move || {
        let mut config = Config::default();
        config.max_message_size = MAX_FRAME;
        config.max_frame_size = MAX_FRAME;
        let hub = app_hub.clone();
        App::new()
            .route(
                "/",
                web::get().to(|| async { asset("text/html; charset=utf-8", include_str!("chat/index.html")) }),
            )
            .route(
                "/chat.js",
                web::get().to(|| async { asset("text/javascript", include_str!("chat/chat.js")) }),
            )
            .route(
                "/chat.css",
                web::get().to(|| async { asset("text/css", include_str!("chat/chat.css")) }),
            )
            .service(
                switchboard::websocket("/chat", move |_, ws| chat(&hub, ws))
                    .config(config)
                    .hub(&app_hub),
            )
    })
    .disable_signals()
    .bind(&args.addr)?;
    for addr in server.addrs() {
        log::info!("listening on {addr}: open http://{addr}/");
    }
    let server = server.run();
    switchboard::shutdown::on_signal(hub, server.handle(), SHUTDOWN_GRACE);
    server.await
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).body(body)
}

/// Every join and leave is announced to the room with its member list.
fn presence_message(event: &PresenceEvent) -> Option<Message> {
    let members = event.members.iter().filter_map(|m| m.user.as_deref()).collect();
    Some(
        Outgoing::Presence {
            room: &event.room,
            members,
        }
        .to_message(),
    )
}

/// A new connection: its messages are parsed here and handled in order by its own task.
fn chat(hub: &Hub, ws: WebSocket) {
    let hub = hub.clone();
    let (tx, rx) = mpsc::channel(INBOX);
    ws.on_json(move |ws, parsed: Result<Incoming, serde_json::Error>| {
        let item = parsed.map_err(|e| format!("malformed message: {e}"));
        if tx.try_send(item).is_err() {
            reply_error(ws, "too many messages at once; slow down");
        }
    });
    actix_web::rt::spawn(
        Session {
            ws,
            hub,
            name: None,
            rooms: HashSet::new(),
        }
        .run(rx),
    );
}

fn reply_error(ws: &WebSocket, message: &str) {
    ws.send(Outgoing::Error { message }.to_message());
}

/// One connection's chat state.
struct Session {
    ws: WebSocket,
    hub: Hub,
    name: Option<String>,
    rooms: HashSet<String>,
}

impl Session {
    /// Handles the connection's messages until it closes (its callback, holding the sender, is
    /// dropped then).
    async fn run(mut self, mut inbox: mpsc::Receiver<Result<Incoming, String>>) {
        while let Some(item) = inbox.recv().await {
            let outcome = match item {
                Ok(message) => self.handle(message).await,
                Err(error) => Err(error),
            };
            if let Err(error) = outcome {
                reply_error(&self.ws, &error);
            }
        }
    }

    async fn handle(&mut self, message: Incoming) -> Result<(), String> {
        match message {
            Incoming::Join { room, name } => self.join(valid("room", &room)?, valid("name", &name)?).await,
            Incoming::Message { room, text } => self.say(&room, &text).await,
            Incoming::Leave { room } => self.leave(&room).await,
        }
    }

    async fn join(&mut self, room: &str, name: &str) -> Result<(), String> {
        match &self.name {
            Some(mine) if mine != name => return Err(format!("you are {mine}; reconnect to change your name")),
            Some(_) => {}
            None => {
                if !self
                    .hub
                    .claim_user(self.ws.id(), name)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("the name {name} is taken"));
                }
                self.name = Some(name.to_owned());
            }
        }
        if self.rooms.insert(room.to_owned()) {
            self.hub.join(self.ws.id(), room).await.map_err(|e| e.to_string())?;
        }
        Ok(())
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
        if !self.rooms.remove(room) {
            return Err(format!("you are not in {room}"));
        }
        self.hub.leave(self.ws.id(), room).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A trimmed, non-empty name of at most [`MAX_NAME`] characters.
fn valid<'a>(what: &str, value: &'a str) -> Result<&'a str, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if value.chars().count() > MAX_NAME {
        return Err(format!("the {what} is over {MAX_NAME} characters"));
    }
    Ok(value)
}
