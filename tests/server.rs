//! The server half of the guide, driven over 127.0.0.1 by a third-party client
//! (tokio-tungstenite): messages, sending, receiving, closing, ping/pong, keepalive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{echo, next_message, next_text, report, send_text, TestServer};
use futures_util::SinkExt;
use switchboard::{CloseCode, Config, SendError};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::unbounded_channel;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn echo_server() -> TestServer {
    TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/echo", echo));
    })
}

#[tokio::test]
async fn text_and_binary_messages_are_echoed() {
    let server = echo_server();
    let mut client = server.connect("/echo").await;
    for text in ["hello", "", "héllo wörld ✓ 𝄞 日本語"] {
        send_text(&mut client, text).await;
        assert_eq!(next_text(&mut client).await, text);
    }
    for bytes in [
        vec![],
        vec![0u8, 1, 2, 255],
        (0..1 << 20).map(|i| (i % 251) as u8).collect(),
    ] {
        client.send(WsMessage::binary(bytes.clone())).await.unwrap();
        assert_eq!(next_message(&mut client).await, WsMessage::binary(bytes));
    }
    let big: String = "ü".repeat(1 << 19); // 1 MiB of two-byte characters
    send_text(&mut client, &big).await;
    assert_eq!(next_text(&mut client).await, big);
}

#[tokio::test]
async fn send_futures_resolve_once_written_and_fail_with_the_message_after_close() {
    let (tx, mut rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        cfg.service(switchboard::websocket("/greet", move |_, ws| {
            let tx = tx.clone();
            let sent = ws.send("welcome");
            actix_web::rt::spawn(async move {
                let first = sent.await;
                let closed_code = ws.close_with(CloseCode::NORMAL, "done").unwrap().await;
                let after = ws.send(vec![1u8, 2, 3]).await;
                let _ = tx.send((first, closed_code, after));
            });
        }));
    });
    let mut client = server.connect("/greet").await;
    assert_eq!(next_text(&mut client).await, "welcome");
    // tungstenite answers the server's close when it reads it.
    assert!(matches!(next_message(&mut client).await, WsMessage::Close(Some(frame)) if frame.reason == "done"));
    // Reading on lets tungstenite flush its answer to the close.
    assert!(futures_util::StreamExt::next(&mut client).await.is_none());
    let (first, closed_code, after) = report(&mut rx).await;
    assert_eq!(first, Ok(()));
    assert_eq!(closed_code, CloseCode::NORMAL);
    assert_eq!(
        after,
        Err(SendError::Closed(switchboard::Message::from(vec![1u8, 2, 3])))
    );
}

#[tokio::test]
async fn pings_and_pongs_reach_their_callbacks() {
    let (tx, mut rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        cfg.service(switchboard::websocket("/ping", move |_, ws| {
            let (on_ping, on_pong) = (tx.clone(), tx.clone());
            ws.on_ping(move |_, payload| {
                let _ = on_ping.send(("ping", payload));
            });
            ws.on_pong(move |_, payload| {
                let _ = on_pong.send(("pong", payload));
            });
            ws.on_text(|ws, _| {
                ws.send_ping(Bytes::from_static(b"from-server"));
            });
        }));
    });
    let mut client = server.connect("/ping").await;
    client
        .send(WsMessage::Ping(Bytes::from_static(b"from-client")))
        .await
        .unwrap();
    assert_eq!(report(&mut rx).await, ("ping", Bytes::from_static(b"from-client")));
    // The automatic pong comes back to the client.
    let pong = tokio::time::timeout(common::PATIENCE, futures_util::StreamExt::next(&mut client)).await;
    assert_eq!(
        pong.unwrap().unwrap().unwrap(),
        WsMessage::Pong(Bytes::from_static(b"from-client"))
    );
    // The server pings; tungstenite answers while we read, and on_pong sees it.
    send_text(&mut client, "ping me").await;
    let reader = tokio::spawn(async move { while futures_util::StreamExt::next(&mut client).await.is_some() {} });
    assert_eq!(report(&mut rx).await, ("pong", Bytes::from_static(b"from-server")));
    reader.abort();
}

#[tokio::test]
async fn a_close_from_the_client_resolves_closed_with_its_code_and_reason() {
    let (tx, mut rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        cfg.service(switchboard::websocket("/close", move |_, ws| {
            let tx = tx.clone();
            actix_web::rt::spawn(async move {
                let code = ws.closed().await;
                let _ = tx.send((code, ws.close_code(), ws.close_reason(), ws.is_closed()));
            });
        }));
    });
    let mut client = server.connect("/close").await;
    let frame = WsCloseFrame {
        code: WsCloseCode::from(4001),
        reason: "leaving".into(),
    };
    client.close(Some(frame)).await.unwrap();
    // The server echoes the code.
    match next_message(&mut client).await {
        WsMessage::Close(Some(echo)) => assert_eq!(u16::from(echo.code), 4001),
        other => panic!("expected the close echo, got {other:?}"),
    }
    let (code, close_code, reason, is_closed) = report(&mut rx).await;
    assert_eq!(code, CloseCode(4001));
    assert_eq!(close_code, Some(CloseCode(4001)));
    assert_eq!(reason.as_deref(), Some("leaving"));
    assert!(is_closed);
}

#[tokio::test]
async fn a_close_from_the_server_carries_code_and_reason() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/bye", |_, ws| {
            ws.on_text(|ws, _| {
                drop(ws.close_with(CloseCode(4002), "see you"));
            });
        }));
    });
    let mut client = server.connect("/bye").await;
    send_text(&mut client, "close please").await;
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4002);
            assert_eq!(frame.reason, "see you");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn keepalive_drops_a_peer_that_never_answers() {
    let (tx, mut rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        let mut config = Config::default();
        config.ping_interval = Some(Duration::from_millis(100));
        config.pong_timeout = Duration::from_millis(200);
        cfg.service(
            switchboard::websocket("/alive", move |_, ws| {
                let tx = tx.clone();
                actix_web::rt::spawn(async move {
                    let code = ws.closed().await;
                    let _ = tx.send((code, ws.close_reason().unwrap_or_default()));
                });
            })
            .config(config),
        );
    });
    // A raw TCP peer: it completes the handshake and then reads and answers nothing.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    silent
        .write_all(common::upgrade_request("/alive", "").as_bytes())
        .await
        .unwrap();
    let (code, reason) = report(&mut rx).await;
    assert_eq!(code, CloseCode::ABNORMAL);
    assert!(reason.contains("keepalive timeout"), "{reason}");
    drop(silent);
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays_connected_over_many_intervals() {
    let (tx, mut rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        let mut config = Config::default();
        config.ping_interval = Some(Duration::from_millis(50));
        config.pong_timeout = Duration::from_millis(1000);
        cfg.service(
            switchboard::websocket("/alive", move |_, ws| {
                ws.on_text(|ws, text| {
                    ws.send(text);
                });
                let tx = tx.clone();
                actix_web::rt::spawn(async move {
                    let _ = tx.send(ws.closed().await);
                });
            })
            .config(config),
        );
    });
    // tokio-tungstenite answers every ping while it reads: thirty pings, over the pong timeout,
    // and the connection is still open.
    let mut client = server.connect("/alive").await;
    for _ in 0..30 {
        let ping = tokio::time::timeout(common::PATIENCE, futures_util::StreamExt::next(&mut client)).await;
        assert!(matches!(ping, Ok(Some(Ok(WsMessage::Ping(_))))), "{ping:?}");
    }
    send_text(&mut client, "still here").await;
    assert_eq!(next_text(&mut client).await, "still here");
    assert!(rx.try_recv().is_err(), "the session closed while its peer answered");
    assert_eq!(server.hub.metrics().snapshot().keepalive_timeouts, 0);
}

#[tokio::test]
async fn messages_reset_the_idle_timer() {
    let mut config = Config::default();
    config.idle_timeout = Some(Duration::from_millis(1000));
    let server = TestServer::start(move |cfg, _| {
        cfg.service(switchboard::websocket("/idle", echo).config(config.clone()));
    });
    let mut client = server.connect("/idle").await;
    // Ten messages 250 ms apart: two and a half idle timeouts' worth, each message well within
    // one.
    for i in 0..10 {
        send_text(&mut client, &format!("{i}")).await;
        assert_eq!(next_text(&mut client).await, format!("{i}"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Then quiet: the idle close comes.
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected the idle close, got {other:?}"),
    }
}

#[tokio::test]
async fn close_with_refuses_codes_not_allowed_on_the_wire_and_sends_nothing() {
    let (tx, mut rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        cfg.service(switchboard::websocket("/close", move |_, ws| {
            let tx = tx.clone();
            ws.on_text(move |ws, text| {
                let refused: Vec<bool> = [1005u16, 1006, 1015, 999, 1004, 2000, 5000]
                    .into_iter()
                    .map(|code| matches!(ws.close_with(CloseCode(code), "no"), Err(switchboard::InvalidCloseCode(c)) if c.0 == code))
                    .collect();
                let _ = tx.send(refused);
                ws.send(text);
            });
        }));
    });
    let mut client = server.connect("/close").await;
    send_text(&mut client, "try").await;
    assert_eq!(report(&mut rx).await, vec![true; 7]);
    // Nothing was sent: the echo comes, the connection is open.
    assert_eq!(next_text(&mut client).await, "try");
    send_text(&mut client, "again").await;
    assert_eq!(next_text(&mut client).await, "again");
}

#[tokio::test]
async fn send_json_sends_a_text_message_or_says_why_it_cannot() {
    let (tx, mut rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        cfg.service(switchboard::websocket("/json", move |_, ws| {
            let sent = ws.send_json(&serde_json::json!({"type": "hello", "n": 1})).is_ok();
            // A map with non-string keys has no JSON form: an error, nothing sent.
            let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into_iter().collect();
            let refused = ws.send_json(&bad).is_err();
            let _ = tx.send((sent, refused));
        }));
    });
    let mut client = server.connect("/json").await;
    let text = next_text(&mut client).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({"type": "hello", "n": 1})
    );
    assert_eq!(report(&mut rx).await, (true, true));
    client.send(WsMessage::Ping("after".into())).await.unwrap();
    assert!(
        matches!(next_message_or_pong(&mut client).await, WsMessage::Pong(_)),
        "nothing else came"
    );
}

/// The next message, pongs included.
async fn next_message_or_pong(client: &mut common::Client) -> WsMessage {
    tokio::time::timeout(common::PATIENCE, futures_util::StreamExt::next(client))
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_panicking_callback_closes_only_its_connection_with_1011() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/fragile", |_, ws| {
            ws.on_text(|ws, text| {
                assert_ne!(text.as_str(), "boom", "the test's deliberate panic");
                ws.send(text);
            });
        }));
    });
    let mut victim = server.connect("/fragile").await;
    let mut bystander = server.connect("/fragile").await;
    send_text(&mut victim, "boom").await;
    match next_message(&mut victim).await {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("expected close 1011, got {other:?}"),
    }
    send_text(&mut bystander, "still here").await;
    assert_eq!(next_text(&mut bystander).await, "still here");
    let mut newcomer = server.connect("/fragile").await;
    send_text(&mut newcomer, "hello").await;
    assert_eq!(next_text(&mut newcomer).await, "hello");
}
