//! What a session actor gets with no code of its own, over 127.0.0.1: the protocol core
//! (reassembly, UTF-8, 1009, the close handshake), the keepalive, graceful shutdown (1001),
//! metrics, the bounded mailbox and its overflow rule, interception of hub messages, and
//! supervision after a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Handler, Message, StreamHandler, Supervised};
use actix_web::{web, HttpRequest};
use common::{client_frame, next_message, next_text, raw_connect, read_close, report, send_text, TestServer};
use switchboard::ws::{self, MailboxError, Overflow};
use switchboard::{Config, Hub};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// What a test actor reports of its life.
#[derive(Debug, PartialEq)]
enum Seen {
    Item(String),
    Started,
    Restarting,
    Stopped,
}

/// Echoes text, reports every item and its life; "boom" panics, "stop" stops it, "wait" makes
/// it wait on a future that never ends (its mailbox then fills).
struct Probe {
    seen: UnboundedSender<Seen>,
}

impl Actor for Probe {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        let _ = self.seen.send(Seen::Started);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let _ = self.seen.send(Seen::Stopped);
    }
}

impl Supervised for Probe {
    fn restarting(&mut self, _: &mut Self::Context) {
        let _ = self.seen.send(Seen::Restarting);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Probe {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let _ = self.seen.send(Seen::Item(format!("{msg:?}")));
        match msg {
            Ok(ws::Message::Text(text)) if &text == "boom" => panic!("the actor panics on purpose"),
            Ok(ws::Message::Text(text)) if &text == "stop" => ctx.stop(),
            Ok(ws::Message::Text(text)) if &text == "wait" => ctx.wait(actix::fut::wrap_future(std::future::pending())),
            Ok(ws::Message::Text(text)) if &text == "pause" => {
                ctx.wait(actix::fut::wrap_future(tokio::time::sleep(Duration::from_millis(300))));
            }
            Ok(ws::Message::Text(text)) if &text == "id" => ctx.text(ctx.id().as_u64().to_string()),
            Ok(ws::Message::Text(text)) if &text == "flood" => {
                for _ in 0..256 {
                    ctx.binary(vec![7u8; 64 << 10]);
                }
            }
            Ok(ws::Message::Text(text)) if &text == "intercept" => {
                ctx.intercept_broadcasts();
                ctx.text("intercepting");
            }
            Ok(ws::Message::Text(text)) => ctx.text(text),
            _ => {}
        }
    }
}

#[derive(Message)]
#[rtype(result = "usize")]
struct Count(usize);

impl Handler<Count> for Probe {
    type Result = usize;
    fn handle(&mut self, msg: Count, ctx: &mut Self::Context) -> usize {
        ctx.text(format!("count {}", msg.0));
        msg.0
    }
}

impl Handler<ws::Broadcast> for Probe {
    type Result = ();
    fn handle(&mut self, ws::Broadcast(message): ws::Broadcast, ctx: &mut Self::Context) {
        if let switchboard::Message::Text(text) = message {
            if !text.contains("secret") {
                ctx.text(text.to_uppercase());
            }
        }
    }
}

/// A server with `/probe` (not supervised) and `/supervised`, under `config`.
fn probe_server(config: Config) -> (TestServer, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let (a, b) = (tx.clone(), tx.clone());
        cfg.app_data(config.clone())
            .route(
                "/probe",
                web::get().to(move |req: HttpRequest, stream: web::Payload| {
                    let probe = Probe { seen: a.clone() };
                    async move { ws::start(probe, &req, stream) }
                }),
            )
            .route(
                "/supervised",
                web::get().to(move |req: HttpRequest, stream: web::Payload| {
                    let probe = Probe { seen: b.clone() };
                    async move { ws::WsResponseBuilder::new(probe, &req, stream).supervised().start() }
                }),
            );
    });
    (server, rx)
}

/// The next report that is not the actor's view of a ping or pong.
async fn next_seen(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Seen {
    loop {
        match report(rx).await {
            Seen::Item(item) if item.starts_with("Ok(Ping") || item.starts_with("Ok(Pong") => continue,
            seen => return seen,
        }
    }
}

#[tokio::test]
async fn fragments_arrive_reassembled_bad_utf8_and_oversize_close_and_the_actor_hears_why() {
    let mut config = Config::default();
    config.max_message_size = 1 << 10;
    // The raw peer never answers our close: do not wait the default 5 s for it.
    config.close_timeout = Duration::from_millis(200);
    let (server, mut seen) = probe_server(config);

    let mut raw = raw_connect(&server, "/probe").await;
    assert_eq!(next_seen(&mut seen).await, Seen::Started);
    raw.write_all(&client_frame(0x01, b"hel")).await.unwrap(); // text, not final
    raw.write_all(&client_frame(0x00, b"lo ")).await.unwrap(); // continuation
    raw.write_all(&client_frame(0x80, "wörld".as_bytes())).await.unwrap(); // final
    assert_eq!(
        next_seen(&mut seen).await,
        Seen::Item("Ok(Text(\"hello wörld\"))".into())
    );
    raw.write_all(&client_frame(0x81, &[0xff, 0xfe])).await.unwrap();
    assert_eq!(read_close(&mut raw).await.map(|c| c.0), Some(1007));
    match next_seen(&mut seen).await {
        Seen::Item(item) => assert!(item.starts_with("Err(Io("), "{item}"),
        other => panic!("expected the error, got {other:?}"),
    }
    assert_eq!(next_seen(&mut seen).await, Seen::Stopped);

    let mut raw = raw_connect(&server, "/probe").await;
    assert_eq!(next_seen(&mut seen).await, Seen::Started);
    raw.write_all(&client_frame(0x82, &[0u8; 2 << 10])).await.unwrap();
    assert_eq!(read_close(&mut raw).await.map(|c| c.0), Some(1009));
    assert_eq!(next_seen(&mut seen).await, Seen::Item("Err(Overflow)".into()));
    assert_eq!(next_seen(&mut seen).await, Seen::Stopped);
    assert!(server.hub.metrics().snapshot().protocol_errors >= 2);
}

#[tokio::test]
async fn the_close_handshake_the_keepalive_and_a_stopping_actor_need_no_code() {
    let mut config = Config::default();
    config.ping_interval = Some(Duration::from_millis(50));
    config.pong_timeout = Duration::from_millis(100);
    let (server, mut seen) = probe_server(config);

    // The peer closes: the actor hears the close, the handshake completes, the actor stops.
    let mut client = server.connect("/probe").await;
    assert_eq!(next_seen(&mut seen).await, Seen::Started);
    client.close(None).await.unwrap();
    while futures_util::StreamExt::next(&mut client).await.is_some() {}
    assert_eq!(next_seen(&mut seen).await, Seen::Item("Ok(Close(None))".into()));
    assert_eq!(next_seen(&mut seen).await, Seen::Stopped);

    // The actor stops itself: the peer gets 1000.
    let mut client = server.connect("/probe").await;
    assert_eq!(next_seen(&mut seen).await, Seen::Started);
    send_text(&mut client, "stop").await;
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected 1000, got {other:?}"),
    }
    assert_eq!(next_seen(&mut seen).await, Seen::Item("Ok(Text(\"stop\"))".into()));
    assert_eq!(next_seen(&mut seen).await, Seen::Stopped);

    // A peer that never answers pings is dropped by the keepalive; the actor stops.
    let _silent = raw_connect(&server, "/probe").await;
    assert_eq!(next_seen(&mut seen).await, Seen::Started);
    assert_eq!(next_seen(&mut seen).await, Seen::Stopped);
    // Counted before the connection ended, so before the actor stopped.
    assert_eq!(server.hub.metrics().snapshot().keepalive_timeouts, 1);
}

#[tokio::test]
async fn hub_messages_reach_the_peer_and_an_actor_may_rewrite_them_per_recipient() {
    let (server, mut seen) = probe_server(Config::default());
    let mut plain = server.connect("/probe").await;
    let mut rewriting = server.connect("/probe").await;
    send_text(&mut rewriting, "intercept").await;
    assert_eq!(next_text(&mut rewriting).await, "intercepting");
    drop(seen.try_recv());

    assert_eq!(server.hub.broadcast("/probe", "hello").await, Ok(2));
    assert_eq!(next_text(&mut plain).await, "hello");
    assert_eq!(next_text(&mut rewriting).await, "HELLO");
    server.hub.broadcast("/probe", "a secret").await.unwrap();
    server.hub.broadcast("/probe", "public").await.unwrap();
    assert_eq!(next_text(&mut plain).await, "a secret");
    assert_eq!(next_text(&mut plain).await, "public");
    assert_eq!(next_text(&mut rewriting).await, "PUBLIC", "the secret was filtered");

    // send_to reaches a session by id, through the actor when it intercepts.
    send_text(&mut plain, "id").await;
    let id: u64 = next_text(&mut plain).await.parse().unwrap();
    let id = switchboard::SessionId::from_u64(id);
    server.hub.send_to(id, "direct").await.unwrap();
    assert_eq!(next_text(&mut plain).await, "direct");
}

#[tokio::test]
async fn a_full_mailbox_closes_with_1008_unless_the_message_is_droppable() {
    let mut config = Config::default();
    config.mailbox_capacity = 4;
    let (server, mut seen) = probe_server(config);
    let hub: Hub = server.hub.clone();

    let mut client = server.connect("/probe").await;
    send_text(&mut client, "id").await;
    let id = switchboard::SessionId::from_u64(next_text(&mut client).await.parse().unwrap());
    let addr = hub.addr::<Probe>(id).expect("the session's actor is in the hub");
    assert_eq!(addr.send(Count(7)).await.ok(), Some(7));
    assert_eq!(next_text(&mut client).await, "count 7");

    send_text(&mut client, "wait").await;
    loop {
        if next_seen(&mut seen).await == Seen::Item("Ok(Text(\"wait\"))".into()) {
            break;
        }
    }
    for i in 0..4 {
        addr.do_send(Count(i)).unwrap();
    }
    // Droppable messages past the bound are dropped, the session stays open.
    assert!(matches!(
        addr.do_send_droppable(Count(10), Overflow::DropNewest),
        Err(MailboxError::Dropped(Count(10)))
    ));
    addr.do_send_droppable(Count(11), Overflow::DropOldest).unwrap();
    assert_eq!(hub.metrics().snapshot().mailbox_drops, 2);
    // One that may not be lost closes the session with 1008 and comes back.
    assert!(matches!(addr.do_send(Count(12)), Err(MailboxError::Full(Count(12)))));
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => {
            assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1008, "mailbox full"));
        }
        other => panic!("expected 1008, got {other:?}"),
    }
    assert_eq!(hub.metrics().snapshot().mailbox_closes, 1);
    while futures_util::StreamExt::next(&mut client).await.is_some() {}
    loop {
        if next_seen(&mut seen).await == Seen::Stopped {
            break;
        }
    }
    // The session ended before its actor stopped: nothing more is queued for it.
    assert!(matches!(addr.do_send(Count(0)), Err(MailboxError::Closed(_))));
    assert!(hub.addr::<Probe>(id).is_none(), "the hub forgot the ended session");
}

#[tokio::test]
async fn a_panic_restarts_a_supervised_actor_within_its_budget_then_closes_with_1011() {
    let mut config = Config::default();
    config.max_restarts = 2;
    let (server, mut seen) = probe_server(config);
    let mut bystander = server.connect("/probe").await;
    assert_eq!(next_seen(&mut seen).await, Seen::Started);

    let mut client = server.connect("/supervised").await;
    assert_eq!(next_seen(&mut seen).await, Seen::Started);
    for _ in 0..2 {
        send_text(&mut client, "boom").await;
        assert_eq!(next_seen(&mut seen).await, Seen::Item("Ok(Text(\"boom\"))".into()));
        assert_eq!(next_seen(&mut seen).await, Seen::Restarting);
        assert_eq!(next_seen(&mut seen).await, Seen::Started);
        send_text(&mut client, "still here").await;
        assert_eq!(next_text(&mut client).await, "still here");
        assert_eq!(
            next_seen(&mut seen).await,
            Seen::Item("Ok(Text(\"still here\"))".into())
        );
    }
    assert_eq!(server.hub.metrics().snapshot().actor_restarts, 2);
    send_text(&mut client, "boom").await;
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("expected 1011 past the budget, got {other:?}"),
    }

    // Not supervised: the first panic closes with 1011. The other session never noticed.
    let mut client = server.connect("/probe").await;
    send_text(&mut client, "boom").await;
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("expected 1011, got {other:?}"),
    }
    send_text(&mut bystander, "unaffected").await;
    assert_eq!(next_text(&mut bystander).await, "unaffected");
}

#[tokio::test]
async fn graceful_shutdown_closes_session_actors_with_1001() {
    let (server, mut seen) = probe_server(Config::default());
    let mut client = server.connect("/probe").await;
    assert_eq!(next_seen(&mut seen).await, Seen::Started);
    send_text(&mut client, "hi").await;
    assert_eq!(next_text(&mut client).await, "hi");
    let before = server.hub.metrics().snapshot();
    assert!(before.messages_in >= 1 && before.connections_open == 1, "{before:?}");
    let (hub, handle) = (server.hub.clone(), server.handle.clone());
    let shutdown =
        tokio::spawn(async move { switchboard::shutdown::graceful(&hub, &handle, Duration::from_secs(5)).await });
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected 1001, got {other:?}"),
    }
    while futures_util::StreamExt::next(&mut client).await.is_some() {}
    assert_eq!(
        tokio::time::timeout(common::PATIENCE, shutdown).await.unwrap().unwrap(),
        1
    );
    loop {
        if next_seen(&mut seen).await == Seen::Stopped {
            break;
        }
    }
}

#[tokio::test]
async fn an_actor_writing_to_a_peer_that_does_not_read_meets_the_bounded_queue() {
    let mut config = Config::default();
    config.max_outbound_queue = 1 << 20;
    config.close_timeout = Duration::from_millis(200);
    config.write_timeout = Some(Duration::from_millis(200));
    let (server, mut seen) = probe_server(config);
    let mut raw = raw_connect(&server, "/probe").await;
    assert_eq!(next_seen(&mut seen).await, Seen::Started);
    // 16 MiB asked for, never read: the queue stops at 1 MiB and the session is closed (1008).
    raw.write_all(&client_frame(0x81, b"flood")).await.unwrap();
    assert_eq!(next_seen(&mut seen).await, Seen::Item("Ok(Text(\"flood\"))".into()));
    assert_eq!(next_seen(&mut seen).await, Seen::Stopped);
    // Counted when the queue overflowed, before the connection ended.
    let metrics = server.hub.metrics().snapshot();
    assert_eq!(metrics.backpressure_closes, 1, "{metrics:?}");
    // What reaches the peer is bounded by the queue (and the socket buffers), not 16 MiB.
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let read = tokio::time::timeout(common::PATIENCE, tokio::io::AsyncReadExt::read(&mut raw, &mut buf)).await;
        match read.expect("the server ends the connection") {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received < 8 << 20, "{received} bytes reached the peer");
}

#[tokio::test]
async fn messages_that_arrive_while_the_actor_waits_are_held_back_and_none_is_lost() {
    let (server, _seen) = probe_server(Config::default());
    let mut client = server.connect("/probe").await;
    // While the actor waits, its inbox fills (32) and the connection stops reading; what was
    // read but not handed over waits in the connection's state, and goes first afterwards.
    send_text(&mut client, "pause").await;
    for i in 0..200 {
        send_text(&mut client, &format!("m{i}")).await;
    }
    for i in 0..200 {
        assert_eq!(next_text(&mut client).await, format!("m{i}"));
    }
}
