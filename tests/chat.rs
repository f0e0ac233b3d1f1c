//! The chat example's protocol, driven by tokio-tungstenite clients against the example process:
//! rooms, presence, messages, and an error answer for everything it refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::process::start_server;
use common::{next_message, Client};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn connect(addr: &str) -> Client {
    tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
        .await
        .unwrap()
        .0
}

async fn send(client: &mut Client, value: Value) {
    client.send(Message::text(value.to_string())).await.unwrap();
}

async fn receive(client: &mut Client) -> Value {
    match next_message(client).await {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a JSON text message, got {other:?}"),
    }
}

/// The next message of `kind`, skipping others (presence updates arrive between messages).
async fn receive_kind(client: &mut Client, kind: &str) -> Value {
    loop {
        let value = receive(client).await;
        if value["type"] == kind {
            return value;
        }
    }
}

#[tokio::test]
async fn two_users_share_a_room_see_each_others_messages_and_presence() {
    let (_server, addr) = start_server("chat", &[]).await;
    let mut ann = connect(&addr).await;
    let mut bob = connect(&addr).await;
    send(&mut ann, json!({"type": "join", "room": "lobby", "name": "ann"})).await;
    assert_eq!(
        receive(&mut ann).await,
        json!({"type": "presence", "room": "lobby", "members": ["ann"]})
    );
    send(&mut bob, json!({"type": "join", "room": "lobby", "name": "bob"})).await;
    let both = json!({"type": "presence", "room": "lobby", "members": ["ann", "bob"]});
    assert_eq!(receive(&mut ann).await, both);
    assert_eq!(receive(&mut bob).await, both);

    send(
        &mut ann,
        json!({"type": "message", "room": "lobby", "text": "hi bob ✓"}),
    )
    .await;
    let hi = json!({"type": "message", "room": "lobby", "from": "ann", "text": "hi bob ✓"});
    assert_eq!(receive(&mut bob).await, hi);
    assert_eq!(receive(&mut ann).await, hi, "the sender gets its own message too");

    send(&mut bob, json!({"type": "leave", "room": "lobby"})).await;
    assert_eq!(
        receive(&mut ann).await,
        json!({"type": "presence", "room": "lobby", "members": ["ann"]})
    );
    // A disconnect is a leave too.
    send(&mut bob, json!({"type": "join", "room": "lobby", "name": "bob"})).await;
    assert_eq!(
        receive_kind(&mut ann, "presence").await["members"],
        json!(["ann", "bob"])
    );
    drop(bob);
    assert_eq!(receive_kind(&mut ann, "presence").await["members"], json!(["ann"]));
}

#[tokio::test]
async fn everything_refused_gets_an_error_and_the_connection_goes_on() {
    let (_server, addr) = start_server("chat", &[]).await;
    let mut ann = connect(&addr).await;
    let mut other = connect(&addr).await;
    send(&mut other, json!({"type": "join", "room": "r", "name": "taken"})).await;
    receive_kind(&mut other, "presence").await;

    let long_text = "x".repeat(2001);
    let refused = [
        Message::text("{not json"),
        Message::text(json!({"type": "dance"}).to_string()),
        Message::text(json!({"type": "message", "room": "r", "text": "not joined"}).to_string()),
        Message::text(json!({"type": "join", "room": "r", "name": "  "}).to_string()),
        Message::text(json!({"type": "join", "room": "r", "name": "taken"}).to_string()),
        Message::text(json!({"type": "join", "room": "", "name": "ann"}).to_string()),
    ];
    for message in refused {
        ann.send(message.clone()).await.unwrap();
        let answer = receive(&mut ann).await;
        assert_eq!(answer["type"], "error", "{message:?} got {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    send(&mut ann, json!({"type": "join", "room": "r", "name": "ann"})).await;
    receive_kind(&mut ann, "presence").await;
    send(&mut ann, json!({"type": "message", "room": "r", "text": long_text})).await;
    assert_eq!(receive_kind(&mut ann, "error").await["type"], "error");
    // Still connected and working.
    send(&mut ann, json!({"type": "message", "room": "r", "text": "still here"})).await;
    assert_eq!(receive_kind(&mut ann, "message").await["text"], "still here");
    assert_eq!(receive_kind(&mut other, "message").await["text"], "still here");
}
