//! An echo server: every text and binary message sent to `/echo` comes back.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9001
//! ```
//!
//! then connect with any WebSocket client to `ws://127.0.0.1:9001/echo`. `RUST_LOG=debug` shows
//! every connection's life.

use std::time::Duration;

use actix_web::{web, App, HttpResponse};
use clap::Parser;
use switchboard::{Config, Hub, Server};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(about = "switchboard echo server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: String,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = Config::default().max_message_size)]
    max_message_size: usize,
    /// Seconds between keepalive pings (0 turns keepalive off).
    #[arg(long, default_value_t = 20)]
    ping_interval: u64,
    /// Seconds a peer has to answer a ping.
    #[arg(long, default_value_t = 20)]
    ping_timeout: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

impl Args {
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.max_message_size = self.max_message_size;
        config.max_frame_size = self.max_message_size;
        config.ping_interval = (self.ping_interval > 0).then(|| Duration::from_secs(self.ping_interval));
        config.pong_timeout = Duration::from_secs(self.ping_timeout);
        config
    }
}

/// How long shutdown waits for the close handshakes before dropping what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let config = args.config();
    let hub = Hub::start();
    let app_hub = hub.clone();
    // switchboard::Server serves the app as actix-web's HttpServer would, and gives each
    // WebSocket its socket once upgraded.
    let mut server = Server::new(move || {
        App::new()
            .app_data(web::Data::new(app_hub.clone()))
            .route(
                "/",
                web::get().to(|| async { "switchboard echo server: connect to /echo\n" }),
            )
            .route("/metrics", web::get().to(metrics))
            .service(
                switchboard::websocket("/echo", echo)
                    .config(config.clone())
                    .hub(&app_hub),
            )
    })
    .disable_signals();
    if let Some(workers) = args.workers {
        server = server.workers(workers);
    }
    let server = server.bind(&args.addr)?;
    for addr in server.addrs() {
        log::info!("listening on {addr}: WebSocket echo at ws://{addr}/echo, counters at /metrics");
    }
    let server = server.run();
    switchboard::shutdown::on_signal(hub, server.handle(), SHUTDOWN_GRACE);
    server.await
}

/// Serves the runtime's counters as Prometheus text.
async fn metrics(hub: web::Data<Hub>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(hub.metrics().prometheus())
}

/// Registers the echo callbacks on a new connection.
fn echo(_req: &actix_web::HttpRequest, ws: switchboard::WebSocket) {
    ws.on_text(|ws, text| {
        ws.send(text);
    });
    ws.on_binary(|ws, bytes| {
        ws.send(bytes);
    });
}
