//! One actor source, compiled twice: against actix-web-actors 4.3's `ws` and against
//! `switchboard::ws`, the `use` line being the only difference (a macro takes the module path).
//! Both are served on actix-web's `HttpServer` with `web::Payload`, as actix-web-actors requires,
//! and driven by the same tokio-tungstenite client code: what the application sees is the same.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{next_message, next_text, send_text, TestServer};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A typical actix-web-actors program: an echo actor with a typed message, `start_with_addr`,
/// `WsResponseBuilder` with a subprotocol, and the usual ping and close handling.
macro_rules! program {
    ($name:ident, $ws:path) => {
        mod $name {
            use actix::{Actor, ActorContext, AsyncContext, Handler, Message, StreamHandler};
            use actix_web::{web, Error, HttpRequest, HttpResponse};
            use $ws as ws;

            pub(crate) struct Echo {
                pub(crate) greeting: &'static str,
            }

            impl Actor for Echo {
                type Context = ws::WebsocketContext<Self>;

                fn started(&mut self, ctx: &mut Self::Context) {
                    ctx.text(self.greeting);
                    // A typed message to itself, through its address.
                    ctx.address().do_send(Shout("started".into()));
                }
            }

            #[derive(Message)]
            #[rtype(result = "()")]
            pub(crate) struct Shout(pub(crate) String);

            impl Handler<Shout> for Echo {
                type Result = ();
                fn handle(&mut self, msg: Shout, ctx: &mut Self::Context) {
                    ctx.text(msg.0.to_uppercase());
                }
            }

            impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Echo {
                fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
                    match msg {
                        Ok(ws::Message::Ping(msg)) => ctx.pong(&msg),
                        Ok(ws::Message::Text(text)) if &text == "bye" => {
                            ctx.close(Some(ws::CloseReason {
                                code: ws::CloseCode::Normal,
                                description: Some("bye".into()),
                            }));
                            ctx.stop();
                        }
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

            pub(crate) async fn index(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, Error> {
                let (addr, response) = ws::WsResponseBuilder::new(Echo { greeting: "hello" }, &req, stream)
                    .protocols(&["echo.v1"])
                    .start_with_addr()?;
                addr.do_send(Shout("from the handler".into()));
                Ok(response)
            }

            pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
                cfg.route("/ws", web::get().to(index));
            }
        }
    };
}

program!(on_actix_web_actors, actix_web_actors::ws);
program!(on_switchboard, switchboard::ws);

/// What the application sees, whichever library runs the actor.
async fn transcript(server: &TestServer) -> Vec<String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.url("/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "echo.v1".parse().unwrap());
    let (mut client, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut seen = vec![format!(
        "protocol {:?}",
        response.headers().get("Sec-WebSocket-Protocol")
    )];
    for _ in 0..3 {
        seen.push(next_text(&mut client).await);
    }
    // The greeting comes first; the two shouts may come in either order (two senders).
    seen[2..].sort();
    send_text(&mut client, "echo me").await;
    seen.push(next_text(&mut client).await);
    client.send(WsMessage::binary(vec![1u8, 2, 3])).await.unwrap();
    seen.push(format!("{:?}", next_message(&mut client).await));
    client.send(WsMessage::Ping("p".into())).await.unwrap();
    send_text(&mut client, "after ping").await;
    loop {
        let next = tokio::time::timeout(common::PATIENCE, futures_util::StreamExt::next(&mut client))
            .await
            .unwrap();
        match next.unwrap().unwrap() {
            WsMessage::Pong(payload) => seen.push(format!("pong {payload:?}")),
            WsMessage::Text(text) => {
                seen.push(text.to_string());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    send_text(&mut client, "bye").await;
    match next_message(&mut client).await {
        WsMessage::Close(Some(frame)) => seen.push(format!("close {} {}", u16::from(frame.code), frame.reason)),
        other => seen.push(format!("{other:?}")),
    }
    seen
}

#[tokio::test]
async fn the_same_actor_behaves_the_same_on_actix_web_actors_and_on_switchboard() {
    let theirs = TestServer::start(|cfg, _| on_actix_web_actors::configure(cfg));
    let ours = TestServer::start(|cfg, _| on_switchboard::configure(cfg));
    let expected = transcript(&theirs).await;
    assert_eq!(
        expected,
        [
            "protocol Some(\"echo.v1\")",
            "hello",
            "FROM THE HANDLER",
            "STARTED",
            "echo me",
            "Binary(b\"\\x01\\x02\\x03\")",
            "pong b\"p\"",
            "after ping",
            "close 1000 bye",
        ]
    );
    assert_eq!(transcript(&ours).await, expected);
    // switchboard::Server too.
    let owned = TestServer::start_owned(|cfg, _| on_switchboard::configure(cfg));
    assert_eq!(transcript(&owned).await, expected);
}
