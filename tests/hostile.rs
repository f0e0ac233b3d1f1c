//! Hostile peers at the socket, from the report of issue 13, at small scale over real sockets:
//! floods, peers that never read, stalled sockets, and frames after a violation. Each test
//! asserts a bound (bytes queued, close codes, counts), never a duration.
//!
//! The report's other items: presence churn, room caps, the connection cap and handshake nits
//! (tests/hostile_limits.rs); the chat example's Origin check, name normalization and room-change
//! rate limit (tests/chat.rs); `close_with` refusing codes (tests/server.rs); the client refusing
//! header injection (tests/client_handshake.rs); the second signal (tests/examples.rs); the
//! supervisor's bounded mailbox and fan-out backlog (unit tests in `src/hub/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{client_frame, echo, next_text, raw_connect, read_close, report, send_text, TestServer, PATIENCE};
use futures_util::FutureExt;
use switchboard::{CloseCode, Config, SendError, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// What a watched session reports when it closes.
#[derive(Debug)]
struct Ended {
    most_queued: usize,
    code: CloseCode,
    reason: String,
}

/// A handler that echoes and reports, when the session closes, the most bytes it ever had
/// queued (sampled while it was open) and how it ended.
fn watched(tx: UnboundedSender<Ended>) -> impl Fn(&actix_web::HttpRequest, WebSocket) + Clone {
    move |req, ws| {
        echo(req, ws.clone());
        let tx = tx.clone();
        actix_web::rt::spawn(async move {
            let mut most_queued = 0;
            let mut closed = std::pin::pin!(ws.closed());
            let code = loop {
                most_queued = most_queued.max(ws.queued_bytes());
                tokio::select! {
                    code = &mut closed => break code,
                    () = tokio::time::sleep(Duration::from_micros(200)) => {}
                }
            };
            let reason = ws.close_reason().unwrap_or_default();
            let _ = tx.send(Ended {
                most_queued,
                code,
                reason,
            });
        });
    }
}

/// Writes `frame` `batches` times, `per_batch` copies at a time, until the socket fails; answers
/// how many batches went out.
async fn flood(stream: &mut TcpStream, frame: &[u8], per_batch: usize, batches: usize) -> usize {
    let batch = frame.repeat(per_batch);
    for sent in 0..batches {
        if stream.write_all(&batch).await.is_err() {
            return sent;
        }
    }
    batches
}

#[tokio::test]
async fn a_ping_flood_from_a_peer_that_never_reads_holds_a_few_pongs_and_ends_at_the_keepalive() {
    let (tx, mut rx) = unbounded_channel();
    let mut config = Config::default();
    config.ping_interval = Some(Duration::from_millis(50));
    config.pong_timeout = Duration::from_millis(150);
    let server = TestServer::start(move |cfg, _| {
        cfg.service(switchboard::websocket("/echo", watched(tx.clone())).config(config.clone()))
            .service(switchboard::websocket("/bystander", echo));
    });
    let mut flooder = raw_connect(&server, "/echo").await;
    // Up to 800,000 pings of 125 bytes (105 MB), and never a read.
    const BATCHES: usize = 800;
    let ping = client_frame(0x89, &[b'p'; 125]);
    let flooding = tokio::spawn(async move { flood(&mut flooder, &ping, 1000, BATCHES).await });
    // Meanwhile another connection is served as usual.
    let mut other = server.connect("/bystander").await;
    send_text(&mut other, "unaffected").await;
    assert_eq!(next_text(&mut other).await, "unaffected");

    let ended = report(&mut rx).await;
    // switchboard's PONGS_MAX: pongs that may wait, each of 127 bytes.
    const PONGS_MAX: usize = 16;
    assert!(
        ended.most_queued <= PONGS_MAX * 127 + 10,
        "at most a few pongs and one keepalive ping wait, not {} bytes",
        ended.most_queued
    );
    assert_eq!(ended.code, CloseCode::ABNORMAL);
    assert!(ended.reason.contains("keepalive timeout"), "{ended:?}");
    let sent = tokio::time::timeout(PATIENCE, flooding).await.unwrap().unwrap();
    assert!(sent < BATCHES, "the server kept the flooding socket open");
    assert_eq!(server.hub.metrics().snapshot().keepalive_timeouts, 1);
    send_text(&mut other, "still unaffected").await;
    assert_eq!(next_text(&mut other).await, "still unaffected");
}

#[tokio::test]
async fn a_peer_that_writes_but_never_reads_is_dropped_by_the_keepalive() {
    let (tx, mut rx) = unbounded_channel();
    let mut config = Config::default();
    config.ping_interval = Some(Duration::from_millis(50));
    config.pong_timeout = Duration::from_millis(150);
    let server = TestServer::start(move |cfg, _| {
        cfg.service(switchboard::websocket("/echo", watched(tx.clone())).config(config.clone()));
    });
    let mut talker = raw_connect(&server, "/echo").await;
    let ended = Arc::new(AtomicBool::new(false));
    let talking = {
        let ended = ended.clone();
        tokio::spawn(async move {
            // A message every 20 ms, 500 at most: it writes, it never reads.
            for _ in 0..500 {
                if ended.load(Ordering::Acquire) || talker.write_all(&client_frame(0x81, b"hi")).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let reported = report(&mut rx).await;
    ended.store(true, Ordering::Release);
    assert_eq!(reported.code, CloseCode::ABNORMAL);
    assert!(reported.reason.contains("keepalive timeout"), "{reported:?}");
    assert_eq!(server.hub.metrics().snapshot().keepalive_timeouts, 1);
    talking.await.unwrap();
}

#[tokio::test]
async fn a_socket_that_takes_nothing_for_the_write_timeout_is_aborted_and_closed() {
    let (tx, mut rx) = unbounded_channel();
    let mut config = Config::default();
    config.ping_interval = None;
    config.write_timeout = Some(Duration::from_millis(300));
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        let handler = move |req: &actix_web::HttpRequest, ws: WebSocket| {
            watched(tx.clone())(req, ws.clone());
            // 16 MiB at once: far more than the socket buffers hold, far less than the queue.
            ws.on_text(|ws, _| {
                for _ in 0..256 {
                    ws.send(vec![7u8; 64 << 10]);
                }
            });
        };
        cfg.service(switchboard::websocket("/big", handler).config(config.clone()));
    });
    let mut sleeper = raw_connect(&server, "/big").await;
    sleeper.write_all(&client_frame(0x81, b"send")).await.unwrap();
    let ended = report(&mut rx).await;
    assert_eq!(ended.code, CloseCode::ABNORMAL, "{ended:?}");
    assert!(ended.reason.contains("write timeout"), "{ended:?}");
    assert_eq!(server.hub.metrics().snapshot().write_timeouts, 1);
    // The socket is closed too: reading what it holds ends, before the 16 MiB.
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(PATIENCE, sleeper.read(&mut buf)).await.unwrap() {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(
        got < 16 << 20,
        "the whole 16 MiB arrived: the connection was not aborted"
    );
}

#[tokio::test]
async fn pings_the_server_sends_count_against_the_queue_limit() {
    const LIMIT: usize = 64 << 10;
    let (tx, mut rx) = unbounded_channel();
    let mut config = Config::default();
    config.max_outbound_queue = LIMIT;
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        cfg.service(
            switchboard::websocket("/pings", move |_, ws| {
                let tx = tx.clone();
                ws.on_text(move |ws, _| {
                    let (ws, tx) = (ws.clone(), tx.clone());
                    actix_web::rt::spawn(async move {
                        let mut most_queued = 0;
                        // Bounded: far more pings than the socket buffers and the queue hold.
                        for _ in 0..1_000_000 {
                            if let Some(Err(error)) = ws.send_ping(vec![0u8; 125]).now_or_never() {
                                let _ = tx.send((error, most_queued));
                                return;
                            }
                            most_queued = most_queued.max(ws.queued_bytes());
                            tokio::task::yield_now().await;
                        }
                    });
                });
            })
            .config(config.clone()),
        );
    });
    let mut sleeper = raw_connect(&server, "/pings").await;
    sleeper.write_all(&client_frame(0x81, b"go")).await.unwrap();
    let (error, most_queued) = report(&mut rx).await;
    assert!(matches!(error, SendError::QueueFull(_)), "{error:?}");
    assert!(
        most_queued <= LIMIT,
        "{most_queued} bytes of pings queued over the limit"
    );
    assert_eq!(read_close(&mut sleeper).await.map(|(code, _)| code), Some(1008));
}

#[tokio::test]
async fn after_a_violation_close_the_server_reads_no_more() {
    const LIMIT: usize = 256 << 10;
    let (tx, mut rx) = unbounded_channel();
    let after = Arc::new(AtomicUsize::new(0));
    let mut config = Config::default();
    config.max_outbound_queue = LIMIT;
    config.close_timeout = Duration::from_millis(200);
    let handled_after = after.clone();
    let server = TestServer::start(move |cfg, _| {
        let (tx, after) = (tx.clone(), handled_after.clone());
        let handler = move |_: &actix_web::HttpRequest, ws: WebSocket| {
            let violated = Arc::new(AtomicBool::new(false));
            let (tx, after, flag) = (tx.clone(), after.clone(), violated.clone());
            ws.on_text(move |ws, _| {
                if flag.load(Ordering::Acquire) {
                    after.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if ws.queued_bytes() > 0 {
                    return; // flooding already
                }
                let (ws, tx, flag) = (ws.clone(), tx.clone(), flag.clone());
                actix_web::rt::spawn(async move {
                    for _ in 0..10_000 {
                        if let Some(Err(_)) = ws.send(vec![0u8; 64 << 10]).now_or_never() {
                            flag.store(true, Ordering::Release);
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    let _ = tx.send(ws.closed().await);
                });
            });
        };
        cfg.service(switchboard::websocket("/flood", handler).config(config.clone()));
    });
    let mut peer = raw_connect(&server, "/flood").await;
    // Up to 100,000 messages (10 MB) after the first, never reading: more than the socket
    // buffers hold once the server stops reading.
    const BATCHES: usize = 100;
    let message = client_frame(0x81, &[b'm'; 94]);
    let sent = flood(&mut peer, &message, 1000, BATCHES).await;
    assert_eq!(report(&mut rx).await, CloseCode::POLICY);
    assert!(sent < BATCHES, "every message was read: reading went on after the 1008");
    // What the reader had in hand when the close came may still be handled; nothing later.
    let handled = after.load(Ordering::Relaxed);
    assert!(handled <= 3000, "{handled} messages were handled after the violation");
}
