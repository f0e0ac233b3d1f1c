//! A chat server with its web page: rooms, presence, and messages, over JSON text messages.
//!
//! Run it, then open http://127.0.0.1:8080/ in two browser windows:
//!
//! ```text
//! cargo run --release --example chat -- --addr 127.0.0.1:8080
//! ```
//!
//! Several chat processes sharing one Redis are one chat (messages, presence, direct messages),
//! whichever process each browser reached:
//!
//! ```text
//! cargo run --release --features redis --example chat -- --addr 127.0.0.1:8080 --redis redis://127.0.0.1:6379
//! cargo run --release --features redis --example chat -- --addr 127.0.0.1:8081 --redis redis://127.0.0.1:6379
//! ```
//!
//! The page (plain HTML, CSS and JavaScript in `examples/chat/`, no build step) is served at `/`
//! and the WebSocket at `/chat`. The protocol, JSON text messages:
//!
//! - client to server: `{"type":"join","room":R,"name":N}`, `{"type":"message","room":R,"text":T}`,
//!   `{"type":"leave","room":R}`, `{"type":"direct","to":N,"text":T}` (the page sends it for
//!   `/msg N T`);
//! - server to client: `{"type":"message","room":R,"from":N,"text":T}` (the sender gets its own
//!   too); `{"type":"presence","room":R,"members":[N,...]}` once, to the one who joins, then
//!   `{"type":"presence_diff","room":R,"joins":[N],"leaves":[N]}` to every member on each join
//!   and leave; `{"type":"direct","from":N,"to":N,"text":T}` to the recipient's sessions and the
//!   sender; `{"type":"error","message":M}` for anything refused.
//!
//! `/metrics` serves the hub's counters as Prometheus text.
//!
//! Each connection is a session actor (`session.rs`, `switchboard::ws`): it keeps its name and
//! rooms as plain fields, handles the browser's messages one at a time, and needs no channel or
//! task of its own.
//!
//! Only pages served from the same host may open the WebSocket (`--allowed-origin` adds others),
//! so another site cannot chat in a visitor's name. Names are unique whatever their case or
//! Unicode form (`names.rs`), and each connection may change rooms only so often.

mod names;
mod session;

use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, App, HttpRequest, HttpResponse};
use clap::Parser;
use switchboard::{
    ws, Compression, Config, HandshakeRejection, Hub, Member, Message, PresenceChange, PresenceEvent, Server,
};

use names::Names;
use session::{ChatSession, Outgoing};

/// A WebSocket message above this is refused with 1009 before it is parsed: a chat message
/// with JSON around it is far smaller.
const MAX_FRAME: usize = 16 << 10;
/// Rooms one connection may be in at once: a person follows a few.
const MAX_ROOMS: usize = 10;
/// How long shutdown waits for the close handshakes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(about = "switchboard chat server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// An origin, besides the server's own host, whose pages may connect (for example
    /// `https://chat.example`); repeat it for more.
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// A Redis server shared with other chat processes, such as `redis://127.0.0.1:6379`, to be
    /// one chat with them (needs the `redis` cargo feature).
    #[arg(long)]
    redis: Option<String>,
    /// With `--redis`: seconds within which the members of a chat process that died leave the
    /// presence of the others.
    #[arg(long, default_value_t = 15.0)]
    presence_ttl: f64,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let hub = match &args.redis {
        None => Hub::start(),
        Some(url) => clustered_hub(url, Duration::from_secs_f64(args.presence_ttl)).await?,
    };
    hub.on_presence(presence_diff);
    hub.on_presence_state(presence_state);
    let (app_hub, names, origins) = (hub.clone(), Names::default(), args.allowed_origins.clone());
    let server = Server::new(move || {
        let mut config = Config::default();
        config.max_message_size = MAX_FRAME;
        config.max_frame_size = MAX_FRAME;
        config.max_rooms = MAX_ROOMS;
        // Browsers offer permessage-deflate, and chat JSON shrinks several times with it; the
        // shared mode costs no memory per connection and deflates each broadcast once.
        config.compression = Compression::Shared;
        let (names, origins) = (names.clone(), origins.clone());
        App::new()
            .app_data(app_hub.clone())
            .app_data(config)
            .route(
                "/",
                web::get().to(|| async { asset("text/html; charset=utf-8", include_str!("index.html")) }),
            )
            .route(
                "/chat.js",
                web::get().to(|| async { asset("text/javascript", include_str!("chat.js")) }),
            )
            .route(
                "/chat.css",
                web::get().to(|| async { asset("text/css", include_str!("chat.css")) }),
            )
            .route("/metrics", web::get().to(metrics))
            .route(
                "/chat",
                web::get().to(move |req: HttpRequest, stream: web::Payload| {
                    let started = same_host_or(&req, &origins)
                        .map_err(actix_web::Error::from)
                        .and_then(|_| ws::start(ChatSession::new(names.clone()), &req, stream));
                    async move { started }
                }),
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

/// A hub that is one node of the chats sharing the Redis at `url`.
#[cfg(feature = "redis")]
async fn clustered_hub(url: &str, presence_ttl: Duration) -> std::io::Result<Hub> {
    use switchboard::redis::{RedisBroker, RedisConfig};
    let mut config = RedisConfig::new(url);
    config.presence_ttl = presence_ttl;
    let broker = RedisBroker::connect(config).await.map_err(std::io::Error::other)?;
    log::info!("one chat with every process on {url}");
    Ok(Hub::with_broker(broker))
}

#[cfg(not(feature = "redis"))]
async fn clustered_hub(_: &str, _: Duration) -> std::io::Result<Hub> {
    Err(std::io::Error::other(
        "this build has no Redis support: run it with `cargo run --features redis --example chat`",
    ))
}

async fn metrics(req: HttpRequest) -> HttpResponse {
    let text = req.app_data::<Hub>().map(|hub| hub.metrics().prometheus());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text.unwrap_or_default())
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).body(body)
}

/// Accepts a handshake from a page of this server's own host (its `Origin` names the `Host` it
/// connects to), from one of `allowed`, or from a client that is not a browser (no `Origin`:
/// cross-site WebSocket hijacking needs a browser, which always sends one).
fn same_host_or(req: &HttpRequest, allowed: &[String]) -> Result<HeaderMap, HandshakeRejection> {
    let headers = req.headers();
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(HeaderMap::new());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    let same_host = !host.is_empty() && authority.eq_ignore_ascii_case(host);
    if same_host || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return Ok(HeaderMap::new());
    }
    Err(HandshakeRejection::OriginNotAllowed)
}

/// A member's name, as the chat shows it.
fn name(member: &Member) -> &str {
    member.user.as_deref().unwrap_or("?")
}

/// The room's members, for the one who just joined.
fn presence_state(room: &str, members: &[Member]) -> Option<Message> {
    let members = members.iter().filter(|m| m.user.is_some()).map(name).collect();
    Some(Outgoing::Presence { room, members }.to_message())
}

/// One join or leave, for every member.
fn presence_diff(event: &PresenceEvent) -> Option<Message> {
    let who = vec![name(&event.member)];
    let (joins, leaves) = match event.change {
        PresenceChange::Joined => (who, Vec::new()),
        PresenceChange::Left => (Vec::new(), who),
    };
    let room = &event.room;
    Some(Outgoing::PresenceDiff { room, joins, leaves }.to_message())
}
