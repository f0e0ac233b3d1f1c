//! permessage-deflate (RFC 7692) over real sockets: negotiation, compressed frames both ways,
//! the limits on inflation, RSV1 where it may not be, our client against our server in both
//! modes, and a broadcast deflated once for all its shared-mode recipients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::{client_frame, read_close_code, read_head, upgrade_request, TestServer, PATIENCE};
use flate2::write::{DeflateDecoder, DeflateEncoder};
use switchboard::{Compression, Config, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// `payload` as a permessage-deflate message body: raw deflate, sync flush, tail removed.
fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(payload).unwrap();
    encoder.flush().unwrap();
    let mut out = encoder.get_ref().clone();
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - 4);
    out
}

fn inflate(body: &[u8]) -> Vec<u8> {
    let mut decoder = DeflateDecoder::new(Vec::new());
    decoder.write_all(body).unwrap();
    decoder.write_all(&TAIL).unwrap();
    decoder.flush().unwrap();
    decoder.get_ref().clone()
}

/// A server frame: its first byte and its payload.
async fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    let len = match head[1] & 0x7f {
        126 => u64::from(stream.read_u16().await.unwrap()),
        127 => stream.read_u64().await.unwrap(),
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

fn server(compression: Compression, max_message_size: usize) -> TestServer {
    TestServer::start(move |cfg, _| {
        let mut config = Config::default();
        config.compression = compression;
        config.max_message_size = max_message_size;
        config.max_frame_size = max_message_size;
        cfg.service(switchboard::websocket("/echo", common::echo).config(config));
    })
}

/// Connects to `/echo` with `offer` as the extensions header; answers the stream and the
/// response head, lowercased.
async fn connect_offering(server: &TestServer, offer: &str) -> (TcpStream, String) {
    connect_to(server, "/echo", offer).await
}

/// As [`connect_offering`], to `path`.
async fn connect_to(server: &TestServer, path: &str, offer: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let extra = format!("Sec-WebSocket-Extensions: {offer}\r\n");
    stream
        .write_all(upgrade_request(path, &extra).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (stream, head.to_ascii_lowercase())
}

fn json(bytes: usize) -> String {
    let mut text = String::from("{\"type\":\"message\",\"room\":\"lobby\",\"text\":\"");
    while text.len() < bytes {
        text.push_str("the quick brown fox jumps over the lazy dog ");
    }
    text + "\"}"
}

#[tokio::test]
async fn a_browser_offer_is_answered_and_compressed_messages_go_both_ways() {
    let server = server(Compression::Shared, 1 << 20);
    let (mut stream, head) = connect_offering(&server, "permessage-deflate; client_max_window_bits").await;
    assert!(
        head.contains(
            "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        ),
        "{head}"
    );
    let message = json(1000);
    stream
        .write_all(&client_frame(0xC1, &deflate(message.as_bytes())))
        .await
        .unwrap();
    let (first, body) = read_frame(&mut stream).await;
    assert_eq!(first, 0xC1, "FIN, RSV1, text: the echo is compressed too");
    assert!(
        body.len() < message.len() / 4,
        "{} bytes for {}",
        body.len(),
        message.len()
    );
    assert_eq!(inflate(&body), message.as_bytes());
    // Under the threshold (64 bytes), a message goes as it is.
    stream.write_all(&client_frame(0x81, b"hi")).await.unwrap();
    assert_eq!(read_frame(&mut stream).await, (0x81, b"hi".to_vec()));
    // A compressed message in two fragments: RSV1 on the first only.
    let body = deflate(message.as_bytes());
    let (a, b) = body.split_at(body.len() / 2);
    stream.write_all(&client_frame(0x41, a)).await.unwrap();
    stream.write_all(&client_frame(0x80, b)).await.unwrap();
    let (first, echoed) = read_frame(&mut stream).await;
    assert_eq!((first, inflate(&echoed)), (0xC1, message.into_bytes()));
}

#[tokio::test]
async fn without_compression_on_the_offer_is_declined_and_rsv1_fails_the_connection() {
    let server = server(Compression::Off, 1 << 20);
    let (mut stream, head) = connect_offering(&server, "permessage-deflate").await;
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
    stream.write_all(&client_frame(0xC1, &deflate(b"hello"))).await.unwrap();
    assert_eq!(read_close_code(&mut stream).await, Some(1002));
}

#[tokio::test]
async fn rsv1_on_a_continuation_or_a_control_frame_fails_with_1002() {
    let server = server(Compression::Shared, 1 << 20);
    for frames in [
        vec![client_frame(0x01, b"part"), client_frame(0xC0, b"rest")],
        vec![client_frame(0xC9, b"ping")],
    ] {
        let (mut stream, _) = connect_offering(&server, "permessage-deflate").await;
        for frame in frames {
            stream.write_all(&frame).await.unwrap();
        }
        assert_eq!(read_close_code(&mut stream).await, Some(1002));
    }
}

#[tokio::test]
async fn a_compression_bomb_closes_with_1009_and_garbage_with_1007() {
    let server = server(
        Compression::Dedicated {
            window_bits: 15,
            mem_level: 8,
        },
        1 << 20,
    );
    let bomb = deflate(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let (mut stream, _) = connect_offering(&server, "permessage-deflate").await;
    stream.write_all(&client_frame(0xC2, &bomb)).await.unwrap();
    assert_eq!(read_close_code(&mut stream).await, Some(1009));
    let (mut stream, _) = connect_offering(&server, "permessage-deflate").await;
    stream.write_all(&client_frame(0xC2, &[0xff; 32])).await.unwrap();
    assert_eq!(read_close_code(&mut stream).await, Some(1007));
}

#[tokio::test]
async fn our_client_and_server_agree_and_round_trip_in_both_modes() {
    for mode in [
        Compression::Shared,
        Compression::Dedicated {
            window_bits: 12,
            mem_level: 5,
        },
    ] {
        let server = server(mode, 1 << 20);
        let mut config = Config::default();
        config.compression = mode;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ws = WebSocket::builder(server.url("/echo"))
            .config(config)
            .on_connect(move |ws| {
                let tx = tx.clone();
                ws.on_text(move |_, text| {
                    let _ = tx.send(text.to_string());
                });
            })
            .connect()
            .await
            .unwrap();
        for i in 0..50 {
            let message = format!("{i} {}", json(300 + i * 40));
            ws.send(message.clone()).await.unwrap();
            assert_eq!(common::report(&mut rx).await, message, "{mode:?}");
        }
        let deflated = server.hub.metrics().snapshot().compressions;
        assert!(deflated >= 50, "{mode:?}: the server compressed {deflated} messages");
    }
}

#[tokio::test]
async fn a_broadcast_is_deflated_once_for_all_shared_mode_recipients() {
    const MEMBERS: usize = 20;
    let server = TestServer::start(|cfg, _| {
        let mut config = Config::default();
        config.compression = Compression::Shared;
        cfg.service(switchboard::websocket("/room", |_, _| {}).config(config));
    });
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        members.push(connect_room(&server).await);
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.hub.sessions("/room").await.unwrap().len() < MEMBERS {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let message = json(1024);
    assert_eq!(server.hub.broadcast("/room", message.clone()).await, Ok(MEMBERS));
    for stream in &mut members {
        let (first, body) = read_frame(stream).await;
        assert_eq!((first, inflate(&body)), (0xC1, message.clone().into_bytes()));
    }
    assert_eq!(
        server.hub.metrics().snapshot().compressions,
        1,
        "one deflate call for {MEMBERS}"
    );
}

/// Inflates messages with context takeover, as a peer that keeps its window does.
fn inflate_keeping_window(inflater: &mut flate2::Decompress, body: &[u8]) -> Vec<u8> {
    let mut input = body.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(1 << 16);
    inflater
        .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .unwrap();
    out
}

/// The next frame that is not a ping.
async fn read_skipping_pings(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    loop {
        let frame = read_frame(stream).await;
        if frame.0 != 0x89 {
            return frame;
        }
    }
}

#[tokio::test]
async fn a_dedicated_compressor_unused_for_a_keepalive_interval_is_released() {
    let server = TestServer::start(|cfg, _| {
        let mut config = Config::default();
        config.compression = Compression::Dedicated {
            window_bits: 15,
            mem_level: 8,
        };
        config.ping_interval = Some(Duration::from_millis(100));
        cfg.service(switchboard::websocket("/echo", common::echo).config(config));
    });
    let (mut stream, head) = connect_offering(&server, "permessage-deflate").await;
    assert!(!head.contains("server_no_context_takeover"), "{head}");
    let mut inflater = flate2::Decompress::new(false);
    // Numbers from an LCG: text that compresses little on its own, to nearly nothing when it
    // repeats within the window.
    let mut seed = 7u32;
    let message: String = (0..300)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            format!("{} ", seed >> 16)
        })
        .collect();
    let mut sizes = Vec::new();
    for pause in [false, false, true] {
        if pause {
            // Two keepalive pings: the first sees the compressor used, the second releases it.
            for _ in 0..2 {
                assert_eq!(read_frame(&mut stream).await.0, 0x89);
            }
        }
        stream.write_all(&client_frame(0x81, message.as_bytes())).await.unwrap();
        let (first, body) = read_skipping_pings(&mut stream).await;
        assert_eq!(first, 0xC1);
        assert_eq!(inflate_keeping_window(&mut inflater, &body), message.as_bytes());
        sizes.push(body.len());
    }
    // The second refers to the first (a few bytes); after the pause a new compressor starts from
    // an empty window, and the peer, keeping its window, still inflates it.
    assert!(sizes[1] * 4 < sizes[0], "{sizes:?}");
    assert!(sizes[2] > sizes[1] * 4, "{sizes:?}");
}

#[tokio::test]
async fn peers_asking_for_other_windows_cost_one_deflate_call_per_window() {
    let server = TestServer::start(|cfg, _| {
        let mut config = Config::default();
        config.compression = Compression::Shared;
        cfg.service(switchboard::websocket("/room", |_, _| {}).config(config));
    });
    // Three windows among six members: 15 (none asked), 10 and 9.
    let offers = ["", "; server_max_window_bits=10", "; server_max_window_bits=9"];
    let mut members = Vec::new();
    for offer in offers.iter().chain(offers.iter()) {
        members.push(connect_room_offering(&server, offer).await);
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.hub.sessions("/room").await.unwrap().len() < members.len() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let message = json(1024);
    for _ in 0..2 {
        assert_eq!(server.hub.broadcast("/room", message.clone()).await, Ok(6));
    }
    for stream in &mut members {
        for _ in 0..2 {
            let (first, body) = read_frame(stream).await;
            assert_eq!((first, inflate(&body)), (0xC1, message.clone().into_bytes()));
        }
    }
    assert_eq!(
        server.hub.metrics().snapshot().compressions,
        6,
        "two broadcasts, three windows"
    );
}

/// An actor that answers each text twice: compressed as usual, then with the per-message
/// opt-out of its socket.
struct SecretKeeper;

impl actix::Actor for SecretKeeper {
    type Context = switchboard::ws::WebsocketContext<Self>;
}

impl actix::StreamHandler<Result<switchboard::ws::Message, switchboard::ws::ProtocolError>> for SecretKeeper {
    fn handle(
        &mut self,
        msg: Result<switchboard::ws::Message, switchboard::ws::ProtocolError>,
        ctx: &mut Self::Context,
    ) {
        if let Ok(switchboard::ws::Message::Text(text)) = msg {
            ctx.text(text.clone());
            drop(ctx.socket().send_uncompressed(text.to_string()));
        }
    }
}

#[tokio::test]
async fn send_uncompressed_opts_one_message_out_for_callbacks_and_actors() {
    let server = TestServer::start(|cfg, _| {
        let mut config = Config::default();
        config.compression = Compression::Shared;
        cfg.service(
            switchboard::websocket("/echo", |_, ws| {
                ws.on_text(|ws, text| {
                    drop(ws.send(text.clone()));
                    drop(ws.send_uncompressed(text));
                });
            })
            .config(config.clone()),
        )
        .app_data(config)
        .route(
            "/actor",
            actix_web::web::get().to(
                |req: actix_web::HttpRequest, stream: actix_web::web::Payload| async move {
                    switchboard::ws::start(SecretKeeper, &req, stream)
                },
            ),
        );
    });
    let message = json(500);
    for path in ["/echo", "/actor"] {
        let (mut stream, head) = connect_to(&server, path, "permessage-deflate").await;
        assert!(head.contains("permessage-deflate"), "{path}: {head}");
        stream.write_all(&client_frame(0x81, message.as_bytes())).await.unwrap();
        let (first, body) = read_frame(&mut stream).await;
        assert_eq!((first, inflate(&body)), (0xC1, message.clone().into_bytes()), "{path}");
        assert_eq!(
            read_frame(&mut stream).await,
            (0x81, message.clone().into_bytes()),
            "{path}"
        );
    }
}

async fn connect_room(server: &TestServer) -> TcpStream {
    connect_room_offering(server, "; client_max_window_bits").await
}

/// Joins `/room` offering permessage-deflate with `params` after it.
async fn connect_room_offering(server: &TestServer, params: &str) -> TcpStream {
    let (stream, head) = connect_to(server, "/room", &format!("permessage-deflate{params}")).await;
    assert!(head.contains("permessage-deflate"), "{head}");
    stream
}
