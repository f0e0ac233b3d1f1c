//! Routes in an actix-web app: scopes and middleware, path parameters, the handshake policy, and
//! the supervisor reached through the hub.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse};
use common::{next_text, send_text, upgrade_request, TestServer};
use switchboard::HandshakeRejection;

async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if req.headers().get("x-token").is_some_and(|t| t == "secret") {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    }
    let response = HttpResponse::Unauthorized().body("token required");
    Ok(req.into_response(response))
}

fn app(cfg: &mut web::ServiceConfig, _: &switchboard::Hub) {
    cfg.route("/health", web::get().to(|| async { "ok" }))
        .service(switchboard::websocket("/rooms/{room}", |req, ws| {
            ws.send(format!("welcome to {}", &req.match_info()["room"]));
        }))
        .service(
            web::scope("/admin")
                .wrap(from_fn(require_token))
                .service(switchboard::websocket("/feed", |_, ws| {
                    ws.send("admin feed");
                })),
        );
}

#[tokio::test]
async fn a_websocket_route_sits_beside_ordinary_routes_and_reads_path_parameters() {
    let server = TestServer::start(app);
    let health = server.raw_request("GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let mut client = server.connect("/rooms/lobby").await;
    assert_eq!(next_text(&mut client).await, "welcome to lobby");
}

#[tokio::test]
async fn middleware_rejection_answers_401_and_does_not_upgrade() {
    let server = TestServer::start(app);
    let refused = server.raw_request(&upgrade_request("/admin/feed", "")).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(
        !refused.to_ascii_lowercase().contains("sec-websocket-accept"),
        "{refused}"
    );
    let accepted = server
        .raw_request(&upgrade_request("/admin/feed", "X-Token: secret\r\n"))
        .await;
    assert!(accepted.starts_with("HTTP/1.1 101"), "{accepted}");
    assert!(accepted.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{accepted}");
}

#[tokio::test]
async fn handshake_policy_selects_protocols_checks_origins_and_runs_the_hook() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(
            switchboard::websocket("/policy", |_, ws| {
                ws.send(ws.protocol().unwrap_or("none").to_string());
            })
            .protocols(["chat.v2", "chat.v1"])
            .origins(["https://app.example"])
            .should_upgrade(|req| {
                if req.headers().contains_key("x-banned") {
                    return Err(HandshakeRejection::refused(StatusCode::FORBIDDEN, "banned"));
                }
                let mut headers = HeaderMap::new();
                headers.insert(
                    HeaderName::from_static("x-served-by"),
                    HeaderValue::from_static("switchboard"),
                );
                Ok(headers)
            }),
        );
    });
    let good = "Origin: https://app.example\r\nSec-WebSocket-Protocol: chat.v1, chat.v2\r\n";
    let response = server
        .raw_request(&upgrade_request("/policy", good))
        .await
        .to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 101"), "{response}");
    assert!(response.contains("sec-websocket-protocol: chat.v2"), "{response}");
    assert!(response.contains("x-served-by: switchboard"), "{response}");

    let evil = server
        .raw_request(&upgrade_request("/policy", "Origin: https://evil.example\r\n"))
        .await;
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    let banned = server
        .raw_request(&upgrade_request(
            "/policy",
            "Origin: https://app.example\r\nX-Banned: 1\r\n",
        ))
        .await;
    assert!(banned.starts_with("HTTP/1.1 403"), "{banned}");
}

#[tokio::test]
async fn a_route_broadcast_reaches_every_session_of_that_route_and_no_other() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/a", |_, _| {}))
            .service(switchboard::websocket("/b", |_, _| {}));
    });
    let mut a1 = server.connect("/a").await;
    let mut a2 = server.connect("/a").await;
    let mut b = server.connect("/b").await;
    assert_eq!(server.hub.broadcast("/a", "to a").await, Ok(2));
    assert_eq!(next_text(&mut a1).await, "to a");
    assert_eq!(next_text(&mut a2).await, "to a");
    assert_eq!(server.hub.broadcast("/b", "to b").await, Ok(1));
    // b's first message is its own route's: the broadcast to /a never reached it.
    assert_eq!(next_text(&mut b).await, "to b");
    assert_eq!(
        server.hub.routes().await.unwrap(),
        vec!["/a".to_string(), "/b".to_string()]
    );
}

#[tokio::test]
async fn a_plain_tokio_task_sends_to_one_session_through_the_hub() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/direct", |_, ws| {
            ws.on_text(|ws, text| {
                ws.send(text);
            });
        }));
    });
    let mut first = server.connect("/direct").await;
    let mut second = server.connect("/direct").await;
    // Round trips make sure both sessions are registered before we list them.
    send_text(&mut first, "1").await;
    assert_eq!(next_text(&mut first).await, "1");
    send_text(&mut second, "2").await;
    assert_eq!(next_text(&mut second).await, "2");
    let hub = server.hub.clone();
    let task = tokio::spawn(async move {
        let sessions = hub.sessions("/direct").await.unwrap();
        let last = *sessions.last().unwrap();
        hub.send_to(last, "just for you").await.map(|()| sessions.len())
    });
    assert_eq!(task.await.unwrap(), Ok(2));
    assert_eq!(next_text(&mut second).await, "just for you");
    send_text(&mut first, "ping").await;
    assert_eq!(next_text(&mut first).await, "ping");
}

#[tokio::test]
async fn sessions_leave_the_supervisor_when_they_close() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/leave", |_, _| {}));
    });
    let mut client = server.connect("/leave").await;
    assert_eq!(server.hub.sessions("/leave").await.unwrap().len(), 1);
    client.close(None).await.unwrap();
    while futures_util::StreamExt::next(&mut client).await.is_some() {}
    // The disconnect is sent as the actor stops, around when the socket closes: ask the hub
    // (each question a round trip through its mailbox) until it has been processed.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    let mut left = false;
    while !left && tokio::time::Instant::now() < deadline {
        left = server.hub.sessions("/leave").await.unwrap().is_empty();
    }
    assert!(left, "the session was never removed");
}
