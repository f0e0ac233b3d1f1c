//! Hostile peers against shared limits, from the report of issue 13: presence churn that must
//! cost members small diffs, a session's room cap, the server's connection cap, and handshake and
//! close nits that get a clear answer. Each test asserts a bound, never a duration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{client_frame, echo, next_text, raw_connect, read_close, send_text, Options, TestServer, PATIENCE};
use futures_util::StreamExt;
use switchboard::{Config, Hub, HubError, Message, PresenceChange};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A presence route: `join` and `leave` move the session in and out of room `r` and answer `ok`;
/// `done` is broadcast to the room. Presence goes out as the chat example sends it.
fn presence_room(cfg: &mut actix_web::web::ServiceConfig, hub: &Hub) {
    hub.on_presence_state(|room, members| Some(Message::from(format!("{room}: {} present", members.len()))));
    hub.on_presence(|event| {
        let verb = if event.change == PresenceChange::Joined {
            "joins"
        } else {
            "leaves"
        };
        Some(Message::from(format!(
            r#"{{"type":"presence_diff","room":"{}","{verb}":["user-{}"]}}"#,
            event.room,
            event.member.id.as_u64()
        )))
    });
    let hub = hub.clone();
    cfg.service(switchboard::websocket("/room", move |_, ws| {
        let hub = hub.clone();
        ws.on_text(move |ws, text| {
            let (hub, ws) = (hub.clone(), ws.clone());
            actix_web::rt::spawn(async move {
                let reply = match text.as_str() {
                    "join" => hub.join(ws.id(), "r").await.map(|_| ()),
                    "leave" => hub.leave(ws.id(), "r").await.map(|_| ()),
                    "done" => hub.broadcast_room("r", "done", None).await.map(|_| ()),
                    room => hub.join(ws.id(), room).await.map(|_| ()),
                };
                ws.send(match reply {
                    Ok(()) => "ok".to_owned(),
                    Err(HubError::TooManyRooms { max, .. }) => format!("full {max}"),
                    Err(error) => format!("error {error}"),
                });
            });
        });
    }));
}

/// Reads text messages until `ok` (or another answer to a command) and returns it.
async fn answer(client: &mut common::Client) -> String {
    loop {
        let text = next_text(client).await;
        if text == "ok" || text.starts_with("full") || text.starts_with("error") {
            return text;
        }
    }
}

#[tokio::test]
async fn presence_churn_sends_members_small_diffs_not_the_member_list() {
    const MEMBERS: usize = 50;
    const PAIRS: usize = 30;
    let server = TestServer::start(presence_room);
    let mut readers = Vec::new();
    for _ in 0..MEMBERS {
        let mut member = server.connect("/room").await;
        send_text(&mut member, "join").await;
        answer(&mut member).await;
        readers.push(tokio::spawn(async move {
            // Bytes received from here on, until the room's `done`.
            let mut bytes = 0;
            loop {
                match tokio::time::timeout(PATIENCE, member.next()).await.unwrap() {
                    Some(Ok(WsMessage::Text(text))) if text.as_str() == "done" => return Some(bytes),
                    Some(Ok(WsMessage::Text(text))) => bytes += text.len(),
                    Some(Ok(_)) => {}
                    _ => return None,
                }
            }
        }));
    }
    let mut churner = server.connect("/room").await;
    for _ in 0..PAIRS {
        for command in ["join", "leave"] {
            send_text(&mut churner, command).await;
            assert_eq!(answer(&mut churner).await, "ok");
        }
    }
    send_text(&mut churner, "join").await;
    answer(&mut churner).await;
    send_text(&mut churner, "done").await;
    for reader in readers {
        let bytes = reader.await.unwrap().expect("the member stayed connected");
        assert!(
            bytes <= PAIRS * 1024,
            "a member got {bytes} bytes for {PAIRS} join/leave pairs"
        );
        assert!(bytes >= PAIRS * 2 * 40, "a member missed diffs: {bytes} bytes");
    }
}

#[tokio::test]
async fn a_session_joins_at_most_its_cap_of_rooms_and_leaving_them_all_stalls_no_one() {
    let mut config = Config::default();
    config.max_rooms = 20;
    let server = TestServer::start(move |cfg, hub| presence_room_with(cfg, hub, config.clone()));
    let mut joiner = server.connect("/room").await;
    let (mut joined, mut refused) = (0, 0);
    for room in 0..30 {
        send_text(&mut joiner, &format!("room-{room}")).await;
        match answer(&mut joiner).await.as_str() {
            "ok" => joined += 1,
            "full 20" => refused += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!((joined, refused), (20, 10));
    let mut other = server.connect("/echo").await;
    joiner.close(None).await.unwrap();
    while joiner.next().await.is_some() {}
    send_text(&mut other, "round trip").await;
    assert_eq!(next_text(&mut other).await, "round trip");
}

/// [`presence_room`] with `config` on `/room`, and an echo route.
fn presence_room_with(cfg: &mut actix_web::web::ServiceConfig, hub: &Hub, config: Config) {
    let hub = hub.clone();
    cfg.service(switchboard::websocket("/echo", echo)).service(
        switchboard::websocket("/room", move |_, ws| {
            let hub = hub.clone();
            ws.on_text(move |ws, text| {
                let (hub, ws) = (hub.clone(), ws.clone());
                actix_web::rt::spawn(async move {
                    let reply = match hub.join(ws.id(), text.as_str()).await {
                        Ok(_) => "ok".to_owned(),
                        Err(HubError::TooManyRooms { max, .. }) => format!("full {max}"),
                        Err(error) => format!("error {error}"),
                    };
                    ws.send(reply);
                });
            });
        })
        .config(config),
    );
}

#[tokio::test]
async fn server_max_websockets_holds_for_each_connections_whole_life() {
    const MAX: usize = 3;
    let options = Options {
        owned: true,
        max_websockets: Some(MAX),
        ..Options::default()
    };
    let server = TestServer::spawn(options, |cfg, _| {
        cfg.service(switchboard::websocket("/a", echo))
            .service(switchboard::websocket("/b", echo));
    });
    // Over two routes: the limit is the server's.
    let mut open = Vec::new();
    for path in ["/a", "/b", "/a"] {
        let mut client = server.connect(path).await;
        send_text(&mut client, "here").await;
        assert_eq!(next_text(&mut client).await, "here");
        open.push(client);
    }
    for path in ["/a", "/b"] {
        let refused = server.raw_request(&common::upgrade_request(path, "")).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    }
    assert_eq!(
        server.hub.sessions("/a").await.unwrap().len(),
        2,
        "a refused upgrade left the hub"
    );
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    // The slot frees when the first connection's actor stops, just after its socket closes.
    common::upgrade_once_a_slot_frees(&server, "/b").await;
}

#[tokio::test]
async fn handshake_and_close_nits_get_clear_answers() {
    let server = TestServer::start(|cfg, _| {
        cfg.service(switchboard::websocket("/echo", echo));
    });
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let duplicate = common::upgrade_request("/echo", key);
    let head = server.raw_request(&duplicate).await;
    assert!(head.starts_with("HTTP/1.1 400"), "a second key: {head}");

    let old = common::upgrade_request("/echo", "").replacen("HTTP/1.1", "HTTP/1.0", 1);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(old.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.0 400"),
        "{answer}"
    );
    assert!(answer.contains("HTTP/1.1 or later"), "the body says why: {answer}");

    let mut peer = raw_connect(&server, "/echo").await;
    peer.write_all(&client_frame(0x88, &1004u16.to_be_bytes()))
        .await
        .unwrap();
    let (code, reason) = read_close(&mut peer).await.unwrap();
    assert_eq!(code, 1002);
    assert_eq!(reason, "invalid close code 1004");
}
