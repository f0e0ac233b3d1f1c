//! The server tests again, on `switchboard::Server` (each WebSocket owns its socket) instead of
//! actix-web's `HttpServer`, so that `cargo test` runs every server test on both transports.
//! `tests/common`'s `Options::default` picks the transport by the test binary's name.

// Each included file is also a test binary of its own, and declares `mod common;` for that: here
// the helpers are compiled once per file, on purpose.
#![allow(clippy::duplicate_mod)]

#[path = "actors.rs"]
mod actors;
#[path = "actors_runtime.rs"]
mod actors_runtime;
#[path = "client.rs"]
mod client;
#[path = "client_handshake.rs"]
mod client_handshake;
#[path = "hardening.rs"]
mod hardening;
#[path = "hostile.rs"]
mod hostile;
#[path = "hostile_limits.rs"]
mod hostile_limits;
#[path = "routes.rs"]
mod routes;
#[path = "server.rs"]
mod server;

mod common;

#[test]
fn this_test_binary_serves_on_switchboard_server() {
    assert!(common::Options::default().owned);
}
