//! Bad peers: broken handshakes, protocol errors, limits, timeouts, slow readers, and shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::{
    client_frame, echo, next_message, next_text, raw_connect, read_close_code, report, send_text, TestServer,
};
use futures_util::{FutureExt, SinkExt};
use switchboard::{CloseCode, Config, SendError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::unbounded_channel;
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn limited_echo(config: Config) -> TestServer {
    TestServer::start(move |cfg, _| {
        cfg.service(switchboard::websocket("/echo", echo).config(config.clone()));
    })
}

#[tokio::test]
async fn broken_handshakes_get_an_http_answer_saying_what_was_wrong() {
    let server = limited_echo(Config::default());
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases = [
        ("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n".to_string(), "426", Some("upgrade: websocket")),
        (
            format!("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n{key}\r\n"),
            "400",
            None,
        ),
        (
            format!("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n{key}\r\n"),
            "426",
            Some("sec-websocket-version: 13"),
        ),
        (
            "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".into(),
            "400",
            None,
        ),
        (
            "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n".into(),
            "400",
            None,
        ),
        (common::upgrade_request("/nowhere", ""), "404", None),
        (common::upgrade_request("/echo", "").replacen("GET", "POST", 1), "405", None),
    ];
    for (request, status, header) in cases {
        let head = server.raw_request(&request).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:?} got {head}"
        );
        if let Some(header) = header {
            assert!(head.to_ascii_lowercase().contains(header), "{request:?} got {head}");
        }
    }
}

#[tokio::test]
async fn a_partial_handshake_is_dropped_after_the_request_timeout() {
    let server = TestServer::start_with(Duration::from_millis(300), |cfg, _| {
        cfg.service(switchboard::websocket("/echo", echo));
    });
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // Well before the 5 s default: the server's own timeout (300 ms here) is the one that
    // applies, on either transport. A bound on a deadline the test sets, not a speed.
    let read = tokio::time::timeout(Duration::from_millis(2500), stream.read_to_end(&mut answer)).await;
    // actix-web answers 408 and closes; either way the connection ends.
    assert!(read.is_ok(), "the half-open handshake was not dropped at its timeout");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn protocol_errors_close_with_their_codes() {
    let server = limited_echo(Config::default());
    let cases: [(Vec<u8>, u16); 6] = [
        (vec![0x81, 0x02, b'h', b'i'], 1002),            // unmasked client frame
        (client_frame(0x81, &[0xce, 0xba, 0xff]), 1007), // invalid UTF-8
        (client_frame(0x83, b"x"), 1002),                // reserved opcode
        (client_frame(0xC1, b"x"), 1002),                // RSV1 without an extension
        (client_frame(0x80, b"x"), 1002),                // continuation with nothing to continue
        (client_frame(0x89, &[b'p'; 126]), 1002),        // ping over 125 bytes
    ];
    for (bytes, code) in cases {
        let mut stream = raw_connect(&server, "/echo").await;
        stream.write_all(&bytes).await.unwrap();
        assert_eq!(read_close_code(&mut stream).await, Some(code), "for {bytes:02x?}");
    }
    let invalid_close = client_frame(0x88, &999u16.to_be_bytes());
    let mut stream = raw_connect(&server, "/echo").await;
    stream.write_all(&invalid_close).await.unwrap();
    assert_eq!(read_close_code(&mut stream).await, Some(1002));
    let snapshot = server.hub.metrics().snapshot();
    assert_eq!(snapshot.protocol_errors, 7, "{snapshot:?}");
}

#[tokio::test]
async fn oversize_messages_and_frames_close_with_1009() {
    let mut config = Config::default();
    config.max_frame_size = 1000;
    config.max_message_size = 1500;
    let server = limited_echo(config);
    // One frame over the frame limit.
    let mut client = server.connect("/echo").await;
    client.send(WsMessage::binary(vec![0u8; 1001])).await.unwrap();
    assert!(matches!(next_message(&mut client).await, WsMessage::Close(Some(f)) if u16::from(f.code) == 1009));
    // Fragments each under the frame limit, together over the message limit.
    let mut stream = raw_connect(&server, "/echo").await;
    stream.write_all(&client_frame(0x02, &[1u8; 900])).await.unwrap();
    stream.write_all(&client_frame(0x80, &[1u8; 900])).await.unwrap();
    assert_eq!(read_close_code(&mut stream).await, Some(1009));
    // Right at the limits is fine.
    let mut client = server.connect("/echo").await;
    client.send(WsMessage::binary(vec![7u8; 1000])).await.unwrap();
    assert_eq!(next_message(&mut client).await, WsMessage::binary(vec![7u8; 1000]));
}

#[tokio::test]
async fn over_max_connections_the_handshake_gets_503() {
    let mut config = Config::default();
    config.max_connections = Some(2);
    let server = TestServer::start(move |cfg, _| {
        cfg.service(
            switchboard::websocket("/limited", echo)
                .name("hardening-limited")
                .config(config.clone()),
        );
    });
    let mut first = server.connect("/limited").await;
    let _second = server.connect("/limited").await;
    let refused = server.raw_request(&common::upgrade_request("/limited", "")).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    first.close(None).await.unwrap();
    while futures_util::StreamExt::next(&mut first).await.is_some() {}
    // The slot frees when the first connection's actor stops, just after its socket closes.
    common::upgrade_once_a_slot_frees(&server, "/limited").await;
}

#[tokio::test]
async fn an_idle_peer_is_closed_with_1001() {
    let mut config = Config::default();
    config.idle_timeout = Some(Duration::from_millis(200));
    let server = limited_echo(config);
    let mut client = server.connect("/echo").await;
    send_text(&mut client, "one message, then silence").await;
    assert_eq!(next_text(&mut client).await, "one message, then silence");
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1001);
            assert_eq!(frame.reason, "idle timeout");
        }
        other => panic!("expected close 1001, got {other:?}"),
    }
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_at_the_queue_limit_and_others_go_on() {
    const LIMIT: usize = 1 << 20;
    const CHUNK: usize = 64 << 10;
    // Far more than the socket buffers and the queue together can hold, and still bounded.
    const MAX_SENDS: usize = 4096;
    let (tx, mut rx) = unbounded_channel();
    let mut config = Config::default();
    config.max_outbound_queue = LIMIT;
    config.close_timeout = Duration::from_millis(200);
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        let config = config.clone();
        cfg.service(
            switchboard::websocket("/flood", move |_, ws| {
                let tx = tx.clone();
                ws.on_text(move |ws, _| {
                    let (ws, tx) = (ws.clone(), tx.clone());
                    actix_web::rt::spawn(async move {
                        let mut most_queued = 0;
                        let mut outcome = None;
                        for _ in 0..MAX_SENDS {
                            // A producer that does not wait for its sends: only the queue
                            // limit stops it.
                            if let Some(Err(error)) = ws.send(vec![0u8; CHUNK]).now_or_never() {
                                outcome = Some(error);
                                break;
                            }
                            most_queued = most_queued.max(ws.queued_bytes());
                            tokio::task::yield_now().await;
                        }
                        let code = ws.closed().await;
                        let _ = tx.send((outcome, most_queued, code));
                    });
                });
            })
            .config(config),
        )
        .service(switchboard::websocket("/echo", echo));
    });
    let mut slow = raw_connect(&server, "/flood").await;
    slow.write_all(&client_frame(0x81, b"flood me")).await.unwrap();
    // `slow` now reads nothing. Meanwhile another connection is served as usual.
    let mut other = server.connect("/echo").await;
    let (outcome, most_queued, code) = report(&mut rx).await;
    assert!(
        matches!(outcome, Some(SendError::QueueFull(_)) | Some(SendError::NotWritten(_))),
        "{outcome:?}"
    );
    assert!(
        most_queued <= LIMIT,
        "queued {most_queued} bytes over the {LIMIT}-byte limit"
    );
    assert_eq!(code, CloseCode::POLICY);
    assert_eq!(server.hub.metrics().snapshot().backpressure_closes, 1);
    send_text(&mut other, "unaffected").await;
    assert_eq!(next_text(&mut other).await, "unaffected");
    drop(slow);
}

#[tokio::test]
async fn graceful_shutdown_flushes_then_closes_every_session_with_1001() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/burst", |_, ws| {
            ws.on_text(|ws, _| {
                for i in 0..100 {
                    ws.send(format!("message {i}"));
                }
            });
        }));
    });
    let mut client = server.connect("/burst").await;
    send_text(&mut client, "go").await;
    assert_eq!(next_text(&mut client).await, "message 0");
    let (hub, handle) = (server.hub.clone(), server.handle.clone());
    let shutdown =
        tokio::spawn(async move { switchboard::shutdown::graceful(&hub, &handle, Duration::from_secs(5)).await });
    for i in 1..100 {
        assert_eq!(next_text(&mut client).await, format!("message {i}"));
    }
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    while futures_util::StreamExt::next(&mut client).await.is_some() {}
    let asked = tokio::time::timeout(common::PATIENCE, shutdown)
        .await
        .expect("shutdown in time")
        .unwrap();
    assert_eq!(asked, 1);
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "still accepting after shutdown"
    );
}
