//! The client: against switchboard's server and a third-party server (tokio-tungstenite), on an
//! actix arbiter, with keepalive, reconnection and its message limit. The handshake's failures
//! are in `client_handshake.rs`, TLS in `client_tls.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{echo, header_value, read_head, report, TestServer, PATIENCE};
use futures_util::{SinkExt, StreamExt};
use switchboard::{CloseCode, Config, Reconnect, Text, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// What the client's callbacks saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Text(String),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
}

/// Connects to `url` with callbacks reporting into a channel.
async fn connect_reporting(url: String) -> (WebSocket, UnboundedReceiver<Seen>) {
    let (tx, rx) = unbounded_channel();
    let ws = WebSocket::builder(url)
        .on_connect(move |ws| {
            let (text, binary, ping, pong) = (tx.clone(), tx.clone(), tx.clone(), tx.clone());
            ws.on_text(move |_, t: Text| drop(text.send(Seen::Text(t.to_string()))));
            ws.on_binary(move |_, b| drop(binary.send(Seen::Binary(b))));
            ws.on_ping(move |_, p| drop(ping.send(Seen::Ping(p))));
            ws.on_pong(move |_, p| drop(pong.send(Seen::Pong(p))));
        })
        .connect()
        .await
        .unwrap();
    (ws, rx)
}

/// What `seen` reports, without the tungstenite server's `pong seen` text and pings.
fn skip_server_extras(mut seen: UnboundedReceiver<Seen>) -> UnboundedReceiver<Seen> {
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = seen.recv().await {
            let extra = matches!(&item, Seen::Text(t) if t == "pong seen") || matches!(item, Seen::Ping(_));
            if !extra && tx.send(item).is_err() {
                break;
            }
        }
    });
    rx
}

/// The same rows against any echo server: messages, the send future, pings, and a close.
async fn exercise_echo(url: String) {
    let _ = env_logger::builder().is_test(true).try_init();
    let (ws, mut seen) = connect_reporting(url).await;
    // A server that pings once (the tungstenite one) says so before its echoes go on.
    ws.send("warm up").await.unwrap();
    loop {
        match report(&mut seen).await {
            Seen::Text(text) if text == "warm up" => break,
            Seen::Ping(_) | Seen::Text(_) => continue,
            other => panic!("{other:?}"),
        }
    }
    let mut seen = skip_server_extras(seen);
    for text in ["hello", "", "héllo ✓ 𝄞"] {
        assert_eq!(ws.send(text).await, Ok(()));
        assert_eq!(report(&mut seen).await, Seen::Text(text.into()));
    }
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
    for bytes in [Vec::new(), vec![1, 2, 3], big] {
        ws.send(bytes.clone()).await.unwrap();
        assert_eq!(report(&mut seen).await, Seen::Binary(bytes.into()));
    }
    ws.send_ping(Bytes::from_static(b"are you there")).await.unwrap();
    assert_eq!(
        report(&mut seen).await,
        Seen::Pong(Bytes::from_static(b"are you there"))
    );
    let too_long = ws.send_ping(vec![0u8; 126]).await;
    assert!(
        matches!(too_long, Err(switchboard::SendError::PingTooLong(_))),
        "{too_long:?}"
    );
    let code = tokio::time::timeout(PATIENCE, ws.close_with(CloseCode(4000), "done").unwrap())
        .await
        .unwrap();
    assert_eq!(code, CloseCode(4000));
    assert!(ws.is_closed());
    assert!(ws.send("late").await.is_err());
}

#[tokio::test]
async fn the_client_talks_to_switchboards_server() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/echo", echo));
    });
    exercise_echo(server.url("/echo")).await;
}

/// A tokio-tungstenite echo server on 127.0.0.1, port 0. Before its first echo it pings with
/// `server ping`; when the pong to it comes back, it sends the text `pong seen`.
async fn tungstenite_echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let mut pinged = false;
                while let Some(Ok(message)) = ws.next().await {
                    let reply = match message {
                        WsMessage::Text(_) | WsMessage::Binary(_) if !pinged => {
                            pinged = true;
                            if ws.send(WsMessage::Ping("server ping".into())).await.is_err() {
                                break;
                            }
                            message
                        }
                        WsMessage::Text(_) | WsMessage::Binary(_) => message,
                        WsMessage::Pong(payload) if payload.as_ref() == b"server ping" => WsMessage::text("pong seen"),
                        // Reading on after a close flushes tungstenite's answer to it.
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("ws://{addr}/")
}

#[tokio::test]
async fn the_client_talks_to_a_tokio_tungstenite_server() {
    let url = tungstenite_echo_server().await;
    let (ws, mut seen) = connect_reporting(url.clone()).await;
    ws.send("first").await.unwrap();
    // The server's ping reaches on_ping, our automatic pong reaches the server.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(report(&mut seen).await);
    }
    assert!(got.contains(&Seen::Ping(Bytes::from_static(b"server ping"))), "{got:?}");
    assert!(got.contains(&Seen::Text("first".into())), "{got:?}");
    assert!(got.contains(&Seen::Text("pong seen".into())), "{got:?}");
    ws.close().await;
    exercise_echo(url).await;
}

#[tokio::test]
async fn server_pings_reach_the_client_and_a_server_close_resolves_closed() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/bye", |_, ws| {
            ws.on_text(|ws, _| {
                ws.send_ping(Bytes::from_static(b"server ping"));
                drop(ws.close_with(CloseCode(4100), "server says bye"));
            });
        }));
    });
    let (ws, mut seen) = connect_reporting(server.url("/bye")).await;
    ws.send("bye?");
    assert_eq!(report(&mut seen).await, Seen::Ping(Bytes::from_static(b"server ping")));
    let code = tokio::time::timeout(PATIENCE, ws.closed()).await.unwrap();
    assert_eq!(code, CloseCode(4100));
    assert_eq!(ws.close_reason().as_deref(), Some("server says bye"));
}

#[actix_rt::test]
async fn inside_an_actix_system_the_connection_runs_on_the_current_arbiter() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/echo", echo));
    });
    let ws = WebSocket::connect(server.url("/echo")).await.unwrap();
    // Registered right after connect: the actor cannot read before this task yields.
    let (tx, mut rx) = unbounded_channel();
    ws.on_text(move |_, text| {
        let on_arbiter = actix_rt::Arbiter::try_current().is_some();
        drop(tx.send((text.to_string(), std::thread::current().id(), on_arbiter)));
    });
    ws.send("same thread");
    let (text, thread, on_arbiter) = report(&mut rx).await;
    assert_eq!(text, "same thread");
    // This thread runs one arbiter, the test's: the same thread is the same arbiter.
    assert_eq!(
        thread,
        std::thread::current().id(),
        "the callback ran on another thread"
    );
    assert!(on_arbiter);
    assert_eq!(ws.close().await, CloseCode::NORMAL);
}

#[tokio::test]
async fn client_keepalive_drops_a_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let request = read_head(&mut tcp).await;
        let key = header_value(&request, "sec-websocket-key");
        let accept = switchboard::accept_key(key.as_bytes());
        let response = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
        tcp.write_all(response.as_bytes()).await.unwrap();
        // Then silence, while holding the socket open.
        tokio::time::sleep(PATIENCE).await;
        drop(tcp);
    });
    let mut config = Config::default();
    config.ping_interval = Some(Duration::from_millis(100));
    config.pong_timeout = Duration::from_millis(200);
    let ws = WebSocket::builder(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    let code = tokio::time::timeout(PATIENCE, ws.closed()).await.unwrap();
    assert_eq!(code, CloseCode::ABNORMAL);
    assert!(ws.close_reason().unwrap().contains("keepalive timeout"));
}

#[tokio::test]
async fn a_dropped_connection_reconnects_with_backoff_and_says_so() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/flaky", |_, ws| {
            ws.on_text(|ws, text| {
                if text.as_str() == "drop me" {
                    drop(ws.close_with(CloseCode::AWAY, "restarting"));
                } else {
                    ws.send(text);
                }
            });
        }));
    });
    let (tx, mut connections) = unbounded_channel();
    let mut policy = Reconnect::default();
    policy.initial_delay = Duration::from_millis(20);
    let first = WebSocket::builder(server.url("/flaky"))
        .reconnect(policy)
        .on_connect(move |ws| drop(tx.send(ws.clone())))
        .connect()
        .await
        .unwrap();
    let announced = report(&mut connections).await;
    assert_eq!(announced.id(), first.id());
    first.send("drop me");
    let second = report(&mut connections).await;
    assert_ne!(second.id(), first.id());
    assert_eq!(first.close_code(), Some(CloseCode::AWAY));
    let (echo_tx, mut echoes) = unbounded_channel();
    second.on_text(move |_, t| drop(echo_tx.send(t.to_string())));
    second.send("still there?");
    assert_eq!(report(&mut echoes).await, "still there?");
    // Closing from this side ends it: the reconnecting task stops (dropping its sender) with no
    // new connection.
    second.close().await;
    assert!(report_end(&mut connections).await);
}

/// Whether the channel ends (every sender dropped) without another message.
async fn report_end<T>(rx: &mut UnboundedReceiver<T>) -> bool {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("the channel ended in time")
        .is_none()
}

#[tokio::test]
async fn the_client_closes_with_1009_on_a_message_over_its_max_message_size() {
    let (tx, mut rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let tx = tx.clone();
        cfg.service(switchboard::websocket("/big", move |_, ws| {
            ws.send(vec![1u8; 2000]);
            let (ws, tx) = (ws.clone(), tx.clone());
            actix_web::rt::spawn(async move {
                let _ = tx.send(ws.closed().await);
            });
        }));
    });
    let ws = WebSocket::builder(server.url("/big"))
        .max_message_size(1000)
        .connect()
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, ws.closed()).await.unwrap(),
        CloseCode::TOO_BIG
    );
    assert_eq!(
        report(&mut rx).await,
        CloseCode::TOO_BIG,
        "the server saw the client's 1009"
    );
}

#[tokio::test]
async fn reconnection_gives_up_after_max_attempts() {
    // The first connection is upgraded and then closed by the server; every later attempt is
    // refused with a 503.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let request = read_head(&mut tcp).await;
            let answer = if n == 0 {
                let accept = switchboard::accept_key(header_value(&request, "sec-websocket-key").as_bytes());
                let mut answer = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").into_bytes();
                // A close frame, 1001.
                answer.extend_from_slice(&[0x88, 0x02, 0x03, 0xe9]);
                answer
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec()
            };
            let _ = tcp.write_all(&answer).await;
        }
    });
    let mut policy = Reconnect::default();
    policy.initial_delay = Duration::from_millis(5);
    policy.max_delay = Duration::from_millis(20);
    policy.max_attempts = Some(3);
    let (tx, mut ended) = unbounded_channel::<()>();
    let ws = WebSocket::builder(format!("ws://{addr}/"))
        .reconnect(policy)
        .on_connect(move |_| drop(tx.clone()))
        .connect()
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, ws.closed()).await.unwrap(),
        CloseCode::AWAY
    );
    // The reconnecting task holds the builder (and its on_connect, holding `tx`) until it gives
    // up: the channel ends then.
    assert!(report_end(&mut ended).await);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1 + 3);
}
