//! Graceful shutdown: stop accepting, close every session with 1001 after what was queued for it,
//! wait a bounded time for the close handshakes, stop the server.
//!
//! ```no_run
//! use std::time::Duration;
//! use actix_web::{App, HttpServer};
//! use switchboard::Hub;
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let hub = Hub::start();
//!     let app_hub = hub.clone();
//!     let server = HttpServer::new(move || App::new().service(switchboard::websocket("/ws", |_, _| {}).hub(&app_hub)))
//!         .disable_signals() // switchboard handles SIGINT and SIGTERM
//!         .bind(("127.0.0.1", 8080))?
//!         .run();
//!     // On SIGINT or SIGTERM: close every session with 1001, then stop.
//!     switchboard::shutdown::on_signal(hub, server.handle(), Duration::from_secs(10));
//!     server.await
//! }
//! ```

use std::time::Duration;

use crate::hub::Hub;
use actix_web::dev::ServerHandle;

use crate::protocol::CloseCode;

/// How often [`graceful`] looks whether every session has gone. Short, since shutdown waits on it;
/// it only reads a counter.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                log::warn!("cannot listen for SIGTERM ({error}); waiting for Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Shuts the server down gracefully and answers how many sessions were asked to close:
///
/// 1. the server stops accepting connections;
/// 2. every session of `hub` gets close 1001 ("server shutting down"), written after what was
///    already queued for it;
/// 3. it waits until every session has closed, or `grace` has passed;
/// 4. the server stops, dropping whatever connection is left.
pub async fn graceful(hub: &Hub, server: &ServerHandle, grace: Duration) -> usize {
    server.pause().await;
    let asked = hub
        .close_all(CloseCode::AWAY.0, "server shutting down")
        .await
        .unwrap_or(0);
    log::info!("shutting down: closing {asked} WebSocket sessions (at most {grace:?})");
    let deadline = tokio::time::Instant::now() + grace;
    while hub.metrics().snapshot().connections_open > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let left = hub.metrics().snapshot().connections_open;
    if left > 0 {
        log::warn!("shutting down: {left} sessions did not close in {grace:?}; dropping them");
    }
    server.stop(false).await;
    asked
}

/// Spawns, on the current actix runtime, a task that waits for [`signal`] and then runs
/// [`graceful`]: what a server's `main` needs, in one call.
///
/// A second SIGINT or SIGTERM during the graceful shutdown ends the process at once (exit code
/// 130): an operator who presses Ctrl-C twice means it.
pub fn on_signal(hub: Hub, server: ServerHandle, grace: Duration) {
    actix_web::rt::spawn(async move {
        signal().await;
        tokio::select! {
            _ = graceful(&hub, &server, grace) => {}
            () = signal() => {
                log::warn!("second signal during shutdown: exiting now");
                std::process::exit(EXIT_ON_SECOND_SIGNAL);
            }
        }
    });
}

/// The exit code after a second signal: 128 + SIGINT, as a shell reports an interrupted program.
const EXIT_ON_SECOND_SIGNAL: i32 = 130;
