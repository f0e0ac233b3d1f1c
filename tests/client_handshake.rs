//! The client's handshake: a typed error for each way a server can fail it, the status of a
//! refusal, the protocols and headers it offers, and the headers it refuses to send.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::{echo, read_head, report, reporting_texts, TestServer, PATIENCE};
use switchboard::{ConnectError, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A server that reads the request and answers with `respond(request)`; `None` closes at once;
/// `Some("")` never answers.
async fn scripted_server(respond: fn(&str) -> Option<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let request = read_head(&mut tcp).await;
                match respond(&request) {
                    None => drop(tcp),
                    Some(answer) if answer.is_empty() => {
                        tokio::time::sleep(PATIENCE).await;
                    }
                    Some(answer) => {
                        let _ = tcp.write_all(answer.as_bytes()).await;
                        tokio::time::sleep(PATIENCE).await;
                    }
                }
            });
        }
    });
    format!("ws://{addr}/")
}

#[tokio::test]
async fn handshake_failures_are_typed_errors() {
    // Nothing listens on a port we bound and released.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let refused = WebSocket::connect(format!("ws://{free}/")).await.unwrap_err();
    assert!(matches!(refused, ConnectError::Connect { .. }), "{refused}");

    // A label over 63 bytes cannot be a DNS name: the resolver fails without sending a query.
    let bad_name = format!("ws://{}.invalid/", "x".repeat(70));
    let dns = WebSocket::connect(bad_name).await.unwrap_err();
    assert!(matches!(dns, ConnectError::Dns { .. }), "{dns}");

    let invalid = WebSocket::connect("http://127.0.0.1/").await.unwrap_err();
    assert!(matches!(invalid, ConnectError::InvalidUrl { .. }), "{invalid}");

    let wrong_accept = scripted_server(|_| {
        Some("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n".into())
    })
    .await;
    let error = WebSocket::connect(wrong_accept).await.unwrap_err();
    assert!(matches!(error, ConnectError::BadAccept), "{error}");

    let hangs_up = scripted_server(|_| None).await;
    let error = WebSocket::connect(hangs_up).await.unwrap_err();
    assert!(matches!(error, ConnectError::ClosedDuringHandshake), "{error}");

    let silent = scripted_server(|_| Some(String::new())).await;
    let error = WebSocket::builder(silent)
        .handshake_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::HandshakeTimeout(_)), "{error}");
}

#[tokio::test]
async fn a_404_or_401_instead_of_an_upgrade_shows_its_status() {
    use actix_web::middleware::{from_fn, Next};
    async fn deny(
        req: actix_web::dev::ServiceRequest,
        _: Next<impl actix_web::body::MessageBody>,
    ) -> Result<actix_web::dev::ServiceResponse, actix_web::Error> {
        Ok(req.into_response(actix_web::HttpResponse::Unauthorized().finish()))
    }
    let server = TestServer::start(|cfg, _| {
        cfg.service(
            actix_web::web::scope("/private")
                .wrap(from_fn(deny))
                .service(switchboard::websocket("/ws", echo)),
        );
    });
    let missing = WebSocket::connect(server.url("/nowhere")).await.unwrap_err();
    assert!(matches!(missing, ConnectError::Status { status: 404, .. }), "{missing}");
    let denied = WebSocket::connect(server.url("/private/ws")).await.unwrap_err();
    assert!(matches!(denied, ConnectError::Status { status: 401, .. }), "{denied}");
}

#[tokio::test]
async fn the_client_offers_protocols_and_headers() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(
            switchboard::websocket("/proto", |req, ws| {
                let token = req
                    .headers()
                    .get("x-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                ws.send(format!("{} {}", ws.protocol().unwrap_or("none"), token));
            })
            .protocols(["v2"]),
        );
    });
    let (on_connect, mut rx) = reporting_texts();
    let ws = WebSocket::builder(server.url("/proto"))
        .protocols(["v1", "v2"])
        .header("X-Token", "abc")
        .on_connect(on_connect)
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.protocol(), Some("v2"));
    assert_eq!(report(&mut rx).await, "v2 abc");
}

#[tokio::test]
async fn a_header_that_would_inject_another_is_refused_before_anything_is_sent() {
    // Nothing listens there: a refusal that came after connecting would be a `Connect` error.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    for (name, value) in [
        ("X-Token", "abc\r\nX-Evil: 1"),
        ("X-Token", "a\nb"),
        ("X Token", "v"),
        ("", "v"),
    ] {
        let error = WebSocket::builder(format!("ws://{free}/"))
            .header(name, value)
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(error, ConnectError::InvalidHeader { .. }), "{name:?}: {error}");
    }
}
