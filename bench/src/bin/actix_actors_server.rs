//! Peer server for the benchmarks, on actix-web with actix-web-actors 4.3 (the session-actor API
//! `switchboard::ws` keeps): `/echo` and `/broadcast`, the same contract as switchboard's
//! `examples/bench_server.rs`, whose `/actor-echo` and `/actor-broadcast` are the same actors on
//! switchboard.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin actix_actors_server -- --addr 127.0.0.1:9005
//! ```
//!
//! Written as its users write it: one actor per connection, `ctx.text` to answer (its context
//! buffers what the actor writes and hands it to actix-web's dispatcher in one chunk per poll),
//! the frame limit raised from the codec's 64 KiB default for the large-message cases, and the
//! broadcast as `do_send` to each subscriber's address, the fastest path actix has (no reply, no
//! mailbox bound).

#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Handler, Message, StreamHandler};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use bytestring::ByteString;
use clap::Parser;
use parking_lot::Mutex;

/// The largest frame the benchmark sends (multi-megabyte cases), as in the other servers.
const MAX_FRAME: usize = 64 << 20;

/// Command-line flags.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9005")]
    addr: String,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// Every `/broadcast` session's address, by connection number.
#[derive(Default)]
struct Subscribers {
    sessions: Mutex<HashMap<u64, Addr<Subscriber>>>,
    ids: AtomicU64,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let subscribers = web::Data::new(Subscribers::default());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(subscribers.clone())
            .route("/echo", web::get().to(echo))
            .route("/broadcast", web::get().to(broadcast))
    })
    .workers(args.workers)
    .backlog(4096)
    .max_connections(100_000)
    .client_disconnect_timeout(Duration::ZERO)
    .bind(&args.addr)?;
    for addr in server.addrs() {
        eprintln!("listening on {addr}");
    }
    server.run().await
}

struct Echo;

impl Actor for Echo {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Echo {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(text)) => ctx.text(text),
            Ok(ws::Message::Binary(bytes)) => ctx.binary(bytes),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            _ => {}
        }
    }
}

async fn echo(req: HttpRequest, stream: web::Payload) -> actix_web::Result<HttpResponse> {
    ws::WsResponseBuilder::new(Echo, &req, stream)
        .frame_size(MAX_FRAME)
        .start()
}

/// One text message for a subscriber to write.
#[derive(Message)]
#[rtype(result = "()")]
struct Relay(ByteString);

struct Subscriber {
    id: u64,
    subscribers: Arc<Subscribers>,
}

impl Actor for Subscriber {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.subscribers.sessions.lock().insert(self.id, ctx.address());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.subscribers.sessions.lock().remove(&self.id);
    }
}

impl Handler<Relay> for Subscriber {
    type Result = ();
    fn handle(&mut self, Relay(text): Relay, ctx: &mut Self::Context) {
        ctx.text(text);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Subscriber {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(text)) => {
                for addr in self.subscribers.sessions.lock().values() {
                    addr.do_send(Relay(text.clone()));
                }
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            _ => {}
        }
    }
}

async fn broadcast(
    req: HttpRequest,
    stream: web::Payload,
    subs: web::Data<Subscribers>,
) -> actix_web::Result<HttpResponse> {
    let subscriber = Subscriber {
        id: subs.ids.fetch_add(1, Ordering::Relaxed),
        subscribers: subs.into_inner(),
    };
    ws::WsResponseBuilder::new(subscriber, &req, stream)
        .frame_size(MAX_FRAME)
        .start()
}
