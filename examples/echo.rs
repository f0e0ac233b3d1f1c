//! An echo server: every text and binary message sent to `/echo` comes back.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9001
//! ```
//!
//! then connect with any WebSocket client to `ws://127.0.0.1:9001/echo`. `RUST_LOG=debug` shows
//! every connection's life. With `--tls-cert cert.pem --tls-key key.pem` it serves `wss://`
//! instead; `--http-server` serves the same app on actix-web's `HttpServer` rather than
//! `switchboard::Server`. `--compression shared` (or `dedicated`) negotiates permessage-deflate.

use std::path::PathBuf;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Parser;
use switchboard::rustls::pki_types::pem::PemObject;
use switchboard::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use switchboard::rustls::ServerConfig;
use switchboard::{Compression, Config, Hub, Server};

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
    /// A PEM file of the certificate chain to serve `wss://` with (with `--tls-key`).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// A PEM file of the certificate's private key.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve through actix-web's `HttpServer` instead of `switchboard::Server`.
    #[arg(long)]
    http_server: bool,
    /// permessage-deflate: off, shared, dedicated, or dedicated:WINDOW_BITS:MEM_LEVEL.
    #[arg(long, default_value = "off")]
    compression: Compression,
}

impl Args {
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.max_message_size = self.max_message_size;
        config.max_frame_size = self.max_message_size;
        config.ping_interval = (self.ping_interval > 0).then(|| Duration::from_secs(self.ping_interval));
        config.pong_timeout = Duration::from_secs(self.ping_timeout);
        config.compression = self.compression;
        config
    }
}

/// How long shutdown waits for the close handshakes before dropping what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Args {
    /// The TLS configuration the flags name, if any.
    fn tls(&self) -> std::io::Result<Option<ServerConfig>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let invalid = |e: &dyn std::fmt::Display| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string());
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| invalid(&e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(&e))?;
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid(&e))?;
        Ok(Some(config))
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let (config, tls) = (args.config(), args.tls()?);
    let hub = Hub::start();
    let app_hub = hub.clone();
    let app = move || {
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
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let server = if args.http_server {
        // actix-web's own server: frames pass through its dispatcher (docs/architecture.md).
        let mut server = HttpServer::new(app)
            .disable_signals()
            .client_disconnect_timeout(Duration::ZERO)
            .on_connect(switchboard::on_connect);
        if let Some(workers) = args.workers {
            server = server.workers(workers);
        }
        let server = match tls {
            Some(tls) => server.bind_rustls_0_23(&args.addr, tls)?,
            None => server.bind(&args.addr)?,
        };
        listening(&server.addrs(), scheme);
        server.run()
    } else {
        // switchboard::Server serves the app as actix-web's HttpServer would, and gives each
        // WebSocket its socket once upgraded.
        let mut server = Server::new(app).disable_signals();
        if let Some(workers) = args.workers {
            server = server.workers(workers);
        }
        let server = match tls {
            Some(tls) => server.bind_rustls(&args.addr, tls)?,
            None => server.bind(&args.addr)?,
        };
        listening(&server.addrs(), scheme);
        server.run()
    };
    switchboard::shutdown::on_signal(hub, server.handle(), SHUTDOWN_GRACE);
    server.await
}

fn listening(addrs: &[std::net::SocketAddr], scheme: &str) {
    for addr in addrs {
        log::info!("listening on {addr}: WebSocket echo at {scheme}://{addr}/echo, counters at /metrics");
    }
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
