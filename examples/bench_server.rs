//! The benchmark server: `/echo` echoes text and binary; `/broadcast` sends every text message it
//! receives to every connection open on `/broadcast`, the sender included. `/actor-echo` and
//! `/actor-broadcast` do the same with session actors (`switchboard::ws`) instead of callbacks.
//! Messages up to 64 MiB, keepalive off (the load generator measures, it does not idle), no
//! compression unless `--compression shared|dedicated[:W:M]`; `/metrics` serves the hub's counters
//! (`bench/deflate.sh` reads the deflate calls from it).
//!
//! ```text
//! cargo run --release --example bench_server -- --addr 127.0.0.1:9002 --workers 1
//! ```
//!
//! With `--redis redis://127.0.0.1:6379` (and the `redis` feature) it is one node of several
//! sharing that Redis: `/broadcast` then reaches every node's subscribers (`bench/cross-node.sh`).
//!
//! It serves on `switchboard::Server`; `--actix-http-server` serves the same app on actix-web's
//! `HttpServer` instead, to compare the two transports. `bench/run.sh` runs it side by side with
//! the peer servers; see docs/benchmarks.md.

use std::time::Duration;

use actix::{Actor, StreamHandler};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Parser;
use switchboard::{ws, Compression, Config, Hub, Server, WebSocket};

/// Big enough for the 64 KiB and the multi-megabyte benchmark messages.
const MAX_MESSAGE: usize = 64 << 20;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(about = "switchboard benchmark server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9002")]
    addr: String,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Serve through `actix_web::HttpServer` instead of `switchboard::Server`, to compare the two.
    #[arg(long)]
    actix_http_server: bool,
    /// A Redis server to share with other nodes (needs the `redis` feature).
    #[arg(long)]
    redis: Option<String>,
    /// permessage-deflate: off, shared, dedicated or dedicated:WINDOW_BITS:MEM_LEVEL.
    #[arg(long, default_value = "off")]
    compression: Compression,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let hub = match &args.redis {
        None => Hub::start(),
        Some(url) => clustered_hub(url).await?,
    };
    let app_hub = hub.clone();
    let mut config = Config::default();
    config.max_message_size = MAX_MESSAGE;
    config.max_frame_size = MAX_MESSAGE;
    config.max_outbound_queue = 4 * MAX_MESSAGE;
    config.ping_interval = None;
    config.compression = args.compression;
    let app = move || {
        let hub = app_hub.clone();
        App::new()
            .service(
                switchboard::websocket("/echo", echo)
                    .config(config.clone())
                    .hub(&app_hub),
            )
            .service(
                switchboard::websocket("/broadcast", move |_, ws| relay(&hub, &ws))
                    .config(config.clone())
                    .hub(&app_hub),
            )
            .app_data(config.clone())
            .app_data(app_hub.clone())
            .route("/actor-echo", web::get().to(actor_echo))
            .route("/actor-broadcast", web::get().to(actor_relay))
            .route("/metrics", web::get().to(metrics))
    };
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let server = if args.actix_http_server {
        HttpServer::new(app)
            .client_disconnect_timeout(Duration::ZERO)
            .backlog(4096)
            .max_connections(100_000)
            .disable_signals()
            .workers(workers)
            .bind(&args.addr)?
            .run()
    } else {
        // switchboard::Server: each WebSocket owns its socket after the upgrade.
        Server::new(app)
            .backlog(4096)
            .max_connections(100_000)
            .disable_signals()
            .workers(workers)
            .bind(&args.addr)?
            .run()
    };
    switchboard::shutdown::on_signal(hub, server.handle(), Duration::from_secs(5));
    server.await
}

#[cfg(feature = "redis")]
async fn clustered_hub(url: &str) -> std::io::Result<Hub> {
    use switchboard::redis::{RedisBroker, RedisConfig};
    let broker = RedisBroker::connect(RedisConfig::new(url)).await;
    Ok(Hub::with_broker(broker.map_err(std::io::Error::other)?))
}

#[cfg(not(feature = "redis"))]
async fn clustered_hub(_: &str) -> std::io::Result<Hub> {
    Err(std::io::Error::other("built without the `redis` feature"))
}

/// The hub's counters as Prometheus text.
async fn metrics(req: HttpRequest) -> HttpResponse {
    match req.app_data::<Hub>() {
        Some(hub) => HttpResponse::Ok().body(hub.metrics().prometheus()),
        None => HttpResponse::NotFound().finish(),
    }
}

fn echo(_: &actix_web::HttpRequest, ws: WebSocket) {
    ws.on_text(|ws, text| {
        ws.send(text);
    });
    ws.on_binary(|ws, bytes| {
        ws.send(bytes);
    });
}

/// Every text message goes to every session of `/broadcast`, encoded once. A message the busy
/// supervisor refuses is lost, logged, and counted by the load generator as undelivered.
fn relay(hub: &Hub, ws: &WebSocket) {
    let hub = hub.clone();
    ws.on_text(move |_, text| {
        if let Err(error) = hub.try_publish("/broadcast", text) {
            log::warn!("broadcast dropped: {error}");
        }
    });
}

/// The echo as a session actor, written as for actix-web-actors.
struct Echo;

impl Actor for Echo {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Echo {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(text)) => ctx.text(text),
            Ok(ws::Message::Binary(bytes)) => ctx.binary(bytes),
            _ => {}
        }
    }
}

async fn actor_echo(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    ws::start(Echo, &req, stream)
}

/// The relay as a session actor: every text message is published to the route, and the hub
/// delivers it to every session of `/actor-broadcast` with no code in the actor.
struct Relay;

impl Actor for Relay {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Relay {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        if let Ok(ws::Message::Text(text)) = msg {
            if let Err(error) = ctx.hub().try_publish("/actor-broadcast", text) {
                log::warn!("broadcast dropped: {error}");
            }
        }
    }
}

async fn actor_relay(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    ws::start(Relay, &req, stream)
}
