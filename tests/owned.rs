//! `switchboard::Server`: the app answers upgrade requests (routes, middleware, refusals), and
//! accepted WebSockets read and write their own socket. Clients are tokio-tungstenite and raw TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse};
use common::*;
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Lets a request through only with `authorization: yes`.
async fn require_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.headers().get("authorization").is_some_and(|v| v == "yes") {
        Ok(next.call(req).await?.map_into_left_body())
    } else {
        Ok(req
            .into_response(HttpResponse::Unauthorized().finish())
            .map_into_right_body())
    }
}

/// Answers 101 with a body that never ends, as another WebSocket library would.
async fn foreign_upgrade() -> HttpResponse {
    HttpResponse::SwitchingProtocols()
        .upgrade("websocket")
        .streaming(futures_util::stream::pending::<Result<web::Bytes, actix_web::Error>>())
}

fn server() -> TestServer {
    TestServer::start_owned(|cfg, hub| {
        cfg.route("/", web::get().to(|| async { "plain" }))
            .route("/foreign", web::get().to(foreign_upgrade))
            .service(switchboard::websocket("/echo", echo).hub(hub))
            .service(
                web::scope("/private")
                    .wrap(from_fn(require_auth))
                    .service(switchboard::websocket("/echo", echo).hub(hub)),
            );
    })
}

/// Sends `request` and reads until the server closes the connection.
async fn whole_answer(server: &TestServer, request: &str) -> String {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes after answering")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn text_binary_and_large_messages_are_echoed() {
    let server = server();
    let mut client = server.connect("/echo").await;
    send_text(&mut client, "hello").await;
    assert_eq!(next_text(&mut client).await, "hello");
    // Many socket reads long, in one frame.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    client.send(WsMessage::binary(big.clone())).await.unwrap();
    match next_message(&mut client).await {
        WsMessage::Binary(bytes) => assert!(bytes[..] == big[..], "the echo differs"),
        other => panic!("expected binary, got {other:?}"),
    }
    for i in 0..200 {
        send_text(&mut client, &format!("m{i}")).await;
    }
    for i in 0..200 {
        assert_eq!(next_text(&mut client).await, format!("m{i}"));
    }
}

#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_is_not_lost() {
    let server = server();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut bytes = upgrade_request("/echo", "").into_bytes();
    bytes.extend(client_frame(0x81, b"early"));
    stream.write_all(&bytes).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut frame = [0u8; 7];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut frame))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&frame, b"\x81\x05early");
}

#[tokio::test]
async fn plain_requests_and_middleware_still_run() {
    let server = server();
    let answer = whole_answer(&server, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("plain"),
        "{answer}"
    );

    let refused = whole_answer(&server, &upgrade_request("/private/echo", "")).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = upgrade_request("/private/echo", "Authorization: yes\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

#[tokio::test]
async fn refused_upgrades_get_their_status_and_a_closed_connection() {
    let server = server();
    let missing = whole_answer(&server, &upgrade_request("/nowhere", "")).await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let no_key = "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n";
    let bad = whole_answer(&server, no_key).await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    // The server goes on serving.
    let mut client = server.connect("/echo").await;
    send_text(&mut client, "still here").await;
    assert_eq!(next_text(&mut client).await, "still here");
}

#[tokio::test]
async fn a_101_from_another_handler_is_answered_501_not_hung() {
    let server = server();
    let answer = whole_answer(&server, &upgrade_request("/foreign", "")).await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
}

#[tokio::test]
async fn an_unmasked_frame_is_closed_with_1002() {
    let server = server();
    let mut stream = raw_connect(&server, "/echo").await;
    stream.write_all(b"\x81\x02hi").await.unwrap();
    assert_eq!(read_close_code(&mut stream).await, Some(1002));
}

#[tokio::test]
async fn hub_broadcasts_reach_owned_sessions() {
    let server = server();
    let mut a = server.connect("/echo").await;
    let mut b = server.connect("/echo").await;
    // Each session answers once it runs, so both are registered before the broadcast.
    for client in [&mut a, &mut b] {
        send_text(client, "ready").await;
        assert_eq!(next_text(client).await, "ready");
    }
    server.hub.try_publish("/echo", "to all").unwrap();
    assert_eq!(next_text(&mut a).await, "to all");
    assert_eq!(next_text(&mut b).await, "to all");
}
