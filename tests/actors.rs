//! Ports of typical actix-web-actors programs to `switchboard::ws`, each with only its `use` line
//! changed, driven over 127.0.0.1 by a third-party client (tokio-tungstenite): an echo actor, a
//! chat with a server actor, `Recipient`s and rooms, a heartbeat on `run_interval`,
//! `start_with_addr` followed by `Addr::do_send`, `WsResponseBuilder` with a subprotocol, and an
//! HTTP handler that sends a typed message to a session's actor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, StreamHandler,
};
use actix_web::{web, HttpRequest, HttpResponse};
use common::{next_message, next_text, report, send_text, TestServer};
use futures_util::{SinkExt, StreamExt};
use switchboard::{ws, Config, SessionId};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The echo actor of actix-web-actors' documentation, as written there.
struct Echo;

impl Actor for Echo {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Echo {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Ping(msg)) => ctx.pong(&msg),
            Ok(ws::Message::Text(text)) => ctx.text(text),
            Ok(ws::Message::Binary(bin)) => ctx.binary(bin),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            _ => ctx.stop(),
        }
    }
}

async fn echo_index(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    ws::start(Echo, &req, stream)
}

fn echo_server() -> TestServer {
    TestServer::start(|cfg, _| {
        cfg.route("/echo", web::get().to(echo_index));
    })
}

#[tokio::test]
async fn an_echo_actor_echoes_text_and_binary() {
    let server = echo_server();
    let mut client = server.connect("/echo").await;
    for text in ["hello", "", "héllo wörld ✓ 𝄞"] {
        send_text(&mut client, text).await;
        assert_eq!(next_text(&mut client).await, text);
    }
    let bytes: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    client.send(WsMessage::binary(bytes.clone())).await.unwrap();
    assert_eq!(next_message(&mut client).await, WsMessage::binary(bytes));
    let bye = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 4000.into(),
        reason: "bye".into(),
    };
    client.close(Some(bye)).await.unwrap();
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4000),
        other => panic!("expected the close echoed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_ping_gets_one_pong_though_the_actor_answers_it_too() {
    let server = echo_server();
    let mut client = server.connect("/echo").await;
    client.send(WsMessage::Ping("p1".into())).await.unwrap();
    client.send(WsMessage::Ping("p2".into())).await.unwrap();
    send_text(&mut client, "after").await;
    let mut pongs = Vec::new();
    loop {
        let next = tokio::time::timeout(common::PATIENCE, client.next()).await.unwrap();
        match next.unwrap().unwrap() {
            WsMessage::Pong(payload) => pongs.push(payload),
            WsMessage::Text(text) if text.as_str() == "after" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs, vec![bytes::Bytes::from("p1"), bytes::Bytes::from("p2")]);
}

// --- A chat with a server actor, `Recipient`s and rooms (actix's websocket-chat example). ---

#[derive(Message)]
#[rtype(result = "()")]
struct ChatLine(String);

#[derive(Message)]
#[rtype(result = "usize")]
struct Connect(Recipient<ChatLine>);

#[derive(Message)]
#[rtype(result = "()")]
struct Disconnect(usize);

#[derive(Message)]
#[rtype(result = "()")]
struct Say {
    id: usize,
    room: String,
    text: String,
}

#[derive(Message)]
#[rtype(result = "()")]
struct JoinRoom(usize, String);

#[derive(Default)]
struct ChatServer {
    sessions: HashMap<usize, Recipient<ChatLine>>,
    rooms: HashMap<String, HashSet<usize>>,
    next: usize,
}

impl Actor for ChatServer {
    type Context = Context<Self>;
}

impl Handler<Connect> for ChatServer {
    type Result = usize;
    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> usize {
        self.next += 1;
        self.sessions.insert(self.next, msg.0);
        self.next
    }
}

impl Handler<Disconnect> for ChatServer {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.sessions.remove(&msg.0);
        for members in self.rooms.values_mut() {
            members.remove(&msg.0);
        }
    }
}

impl Handler<JoinRoom> for ChatServer {
    type Result = ();
    fn handle(&mut self, JoinRoom(id, room): JoinRoom, _: &mut Context<Self>) {
        self.rooms.entry(room).or_default().insert(id);
    }
}

impl Handler<Say> for ChatServer {
    type Result = ();
    fn handle(&mut self, msg: Say, _: &mut Context<Self>) {
        for member in self.rooms.get(&msg.room).into_iter().flatten() {
            if *member != msg.id {
                if let Some(recipient) = self.sessions.get(member) {
                    recipient.do_send(ChatLine(msg.text.clone()));
                }
            }
        }
    }
}

struct ChatSession {
    id: usize,
    server: Addr<ChatServer>,
}

impl Actor for ChatSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let connect = self.server.send(Connect(ctx.address().recipient()));
        ctx.wait(
            actix::fut::wrap_future(connect).map(|id, act: &mut ChatSession, ctx: &mut Self::Context| match id {
                Ok(id) => act.id = id,
                Err(_) => ctx.stop(),
            }),
        );
    }

    fn stopping(&mut self, _: &mut Self::Context) -> actix::Running {
        self.server.do_send(Disconnect(self.id));
        actix::Running::Stop
    }
}

impl Handler<ChatLine> for ChatSession {
    type Result = ();
    fn handle(&mut self, msg: ChatLine, ctx: &mut Self::Context) {
        ctx.text(msg.0);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ChatSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let Ok(ws::Message::Text(text)) = msg else { return };
        if let Some(room) = text.strip_prefix("/join ") {
            // Our server actor's room, and the hub's room of the same name.
            self.server.do_send(JoinRoom(self.id, room.to_owned()));
            ctx.join(room);
            ctx.text(format!("joined {room}"));
        } else if let Some((room, line)) = text.split_once(": ") {
            self.server.do_send(Say {
                id: self.id,
                room: room.to_owned(),
                text: line.to_owned(),
            });
        }
    }
}

#[tokio::test]
async fn a_chat_with_a_server_actor_recipients_and_rooms() {
    let server = TestServer::start(|cfg, _| {
        let chat = ChatServer::default().start();
        cfg.app_data(web::Data::new(chat)).route(
            "/chat",
            web::get().to(
                |req: HttpRequest, stream: web::Payload, chat: web::Data<Addr<ChatServer>>| async move {
                    let session = ChatSession {
                        id: 0,
                        server: chat.get_ref().clone(),
                    };
                    ws::start(session, &req, stream)
                },
            ),
        );
    });
    let mut alice = server.connect("/chat").await;
    let mut bob = server.connect("/chat").await;
    let mut carol = server.connect("/chat").await;
    for (client, room) in [(&mut alice, "rust"), (&mut bob, "rust"), (&mut carol, "go")] {
        send_text(client, &format!("/join {room}")).await;
        assert_eq!(next_text(client).await, format!("joined {room}"));
    }
    send_text(&mut alice, "rust: hello rustaceans").await;
    assert_eq!(next_text(&mut bob).await, "hello rustaceans");
    // The hub's room of the same name reaches the members' peers with no code in the actor.
    let sent = server.hub.broadcast_room("rust", "from the hub", None).await.unwrap();
    assert_eq!(sent, 2);
    assert_eq!(next_text(&mut alice).await, "from the hub");
    assert_eq!(next_text(&mut bob).await, "from the hub");
    send_text(&mut carol, "go: gophers?").await;
    send_text(&mut bob, "rust: bye").await;
    assert_eq!(next_text(&mut alice).await, "bye");
}

// --- A heartbeat on `run_interval` (actix's examples), with the core's keepalive off. ---

struct Heartbeat {
    last_pong: Instant,
    pongs: UnboundedSender<()>,
}

impl Actor for Heartbeat {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_millis(20), |act, ctx| {
            if Instant::now().duration_since(act.last_pong) > Duration::from_secs(10) {
                ctx.stop();
                return;
            }
            ctx.ping(b"hb");
        });
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Heartbeat {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {
        if let Ok(ws::Message::Pong(payload)) = msg {
            assert_eq!(&payload[..], b"hb");
            self.last_pong = Instant::now();
            let _ = self.pongs.send(());
        }
    }
}

#[tokio::test]
async fn a_hand_written_heartbeat_on_run_interval_still_works() {
    let (tx, mut rx) = unbounded_channel();
    let server = TestServer::start(move |cfg, _| {
        let mut config = Config::default();
        config.ping_interval = None;
        let tx = tx.clone();
        cfg.app_data(config).route(
            "/hb",
            web::get().to(move |req: HttpRequest, stream: web::Payload| {
                let actor = Heartbeat {
                    last_pong: Instant::now(),
                    pongs: tx.clone(),
                };
                async move { ws::start(actor, &req, stream) }
            }),
        );
    });
    let mut client = server.connect("/hb").await;
    // tungstenite answers each ping as it reads the next frame: the reader keeps reading.
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = client.next().await {
            assert_eq!(message, WsMessage::Ping("hb".into()));
        }
    });
    for _ in 0..3 {
        report(&mut rx).await;
    }
    reader.abort();
}

// --- `start_with_addr`, then `Addr::do_send` and an HTTP handler with a typed message. ---

#[derive(Message, Clone)]
#[rtype(result = "()")]
struct Notify(String);

struct Notified;

impl Actor for Notified {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Notified {
    fn handle(&mut self, _: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {}
}

impl Handler<Notify> for Notified {
    type Result = ();
    fn handle(&mut self, msg: Notify, ctx: &mut Self::Context) {
        ctx.text(format!("notice: {}", msg.0));
    }
}

#[derive(Default)]
struct Sessions(std::sync::Mutex<Vec<Addr<Notified>>>);

#[tokio::test]
async fn start_with_addr_then_do_send_and_an_http_handler_with_a_typed_message() {
    let server = TestServer::start(|cfg, _| {
        let sessions = web::Data::new(Sessions::default());
        cfg.app_data(sessions)
            .route(
                "/notified",
                web::get().to(
                    |req: HttpRequest, stream: web::Payload, sessions: web::Data<Sessions>| async move {
                        let (addr, response) = ws::WsResponseBuilder::new(Notified, &req, stream).start_with_addr()?;
                        addr.do_send(Notify("welcome".into()));
                        sessions.0.lock().unwrap().push(addr);
                        Ok::<_, actix_web::Error>(response)
                    },
                ),
            )
            .route(
                "/tell/{id}",
                web::post().to(|req: HttpRequest, path: web::Path<u64>, body: String| async move {
                    let hub = req.app_data::<switchboard::Hub>().unwrap().clone();
                    let id = SessionId::from_u64(path.into_inner());
                    match hub.addr::<Notified>(id) {
                        Some(addr) => match addr.send(Notify(body)).await {
                            Ok(()) => HttpResponse::Ok().body("told"),
                            Err(error) => HttpResponse::Gone().body(error.to_string()),
                        },
                        None => HttpResponse::NotFound().body("no such session"),
                    }
                }),
            );
    });
    let mut client = server.connect("/notified").await;
    assert_eq!(next_text(&mut client).await, "notice: welcome");
    let id = server.hub.sessions("/notified").await.unwrap()[0];
    let told = http_post(&server, &format!("/tell/{}", id.as_u64()), "from HTTP").await;
    assert!(told.starts_with("HTTP/1.1 200"), "{told}");
    assert_eq!(next_text(&mut client).await, "notice: from HTTP");
    let missing = http_post(&server, "/tell/999999", "nobody").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

/// A minimal HTTP/1.1 POST over a raw socket; answers the response head and body.
async fn http_post(server: &TestServer, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(common::PATIENCE, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

#[tokio::test]
async fn ws_response_builder_agrees_a_subprotocol() {
    let server = TestServer::start(|cfg, _| {
        cfg.route(
            "/proto",
            web::get().to(|req: HttpRequest, stream: web::Payload| async move {
                ws::WsResponseBuilder::new(Echo, &req, stream)
                    .protocols(&["chat.v2", "chat.v1"])
                    .frame_size(1 << 10)
                    .start()
            }),
        );
    });
    let mut request = server.url("/proto").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat.v1, chat.v2".parse().unwrap());
    let (mut client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "chat.v2");
    send_text(&mut client, "over v2").await;
    assert_eq!(next_text(&mut client).await, "over v2");
    // The frame size given to the builder holds: 2 KiB in one frame closes with 1009.
    send_text(&mut client, &"x".repeat(2 << 10)).await;
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected 1009, got {other:?}"),
    }
}
