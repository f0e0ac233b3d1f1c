//! Peer server for the benchmarks, on actix-web with actix-ws: `/echo` and `/broadcast`, the same
//! contract as switchboard's `examples/bench_server.rs`.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin actix_ws_server -- --addr 127.0.0.1:9004
//! ```

#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::{AggregatedMessage, Session};
use clap::Parser;
use futures_util::StreamExt;
use parking_lot::Mutex;

/// Command-line flags.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9004")]
    addr: String,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// Every `/broadcast` session, by connection number.
#[derive(Default)]
struct Subscribers {
    sessions: Mutex<HashMap<u64, Session>>,
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

async fn echo(req: HttpRequest, body: web::Payload) -> actix_web::Result<HttpResponse> {
    let (response, mut session, stream) = actix_ws::handle(&req, body)?;
    let mut stream = stream.aggregate_continuations().max_continuation_size(64 << 20);
    actix_web::rt::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let sent = match message {
                AggregatedMessage::Text(text) => session.text(text).await,
                AggregatedMessage::Binary(bytes) => session.binary(bytes).await,
                AggregatedMessage::Ping(bytes) => session.pong(&bytes).await,
                AggregatedMessage::Close(_) => break,
                AggregatedMessage::Pong(_) => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

async fn broadcast(
    req: HttpRequest,
    body: web::Payload,
    subs: web::Data<Subscribers>,
) -> actix_web::Result<HttpResponse> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let mut stream = stream.aggregate_continuations().max_continuation_size(64 << 20);
    let id = subs.ids.fetch_add(1, Ordering::Relaxed);
    subs.sessions.lock().insert(id, session.clone());
    let subs = subs.into_inner();
    actix_web::rt::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                AggregatedMessage::Text(text) => {
                    let sessions: Vec<Session> = subs.sessions.lock().values().cloned().collect();
                    for mut session in sessions {
                        let _ = session.text(text.clone()).await;
                    }
                }
                AggregatedMessage::Close(_) => break,
                _ => {}
            }
        }
        subs.sessions.lock().remove(&id);
        let _ = session.close(None).await;
    });
    Ok(response)
}
