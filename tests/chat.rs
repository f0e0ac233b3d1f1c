//! The chat example's protocol, driven by tokio-tungstenite clients against the example process:
//! rooms, presence state and diffs, messages, names, origins, limits, and an error answer for
//! everything it refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::chat::{connect, receive, receive_kind, send};
use common::process::start_server;
use common::Client;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn diff(room: &str, joins: &[&str], leaves: &[&str]) -> Value {
    json!({"type": "presence_diff", "room": room, "joins": joins, "leaves": leaves})
}

#[tokio::test]
async fn two_users_share_a_room_see_each_others_messages_and_presence_diffs() {
    let (_server, addr) = start_server("chat", &[]).await;
    let mut ann = connect(&addr).await;
    let mut bob = connect(&addr).await;
    send(&mut ann, json!({"type": "join", "room": "lobby", "name": "ann"})).await;
    assert_eq!(
        receive(&mut ann).await,
        json!({"type": "presence", "room": "lobby", "members": ["ann"]}),
        "the joiner gets the whole list once"
    );
    assert_eq!(receive(&mut ann).await, diff("lobby", &["ann"], &[]));
    send(&mut bob, json!({"type": "join", "room": "lobby", "name": "bob"})).await;
    assert_eq!(
        receive(&mut bob).await,
        json!({"type": "presence", "room": "lobby", "members": ["ann", "bob"]})
    );
    assert_eq!(receive(&mut bob).await, diff("lobby", &["bob"], &[]));
    assert_eq!(
        receive(&mut ann).await,
        diff("lobby", &["bob"], &[]),
        "members get a diff only"
    );

    send(
        &mut ann,
        json!({"type": "message", "room": "lobby", "text": "hi bob ✓"}),
    )
    .await;
    let hi = json!({"type": "message", "room": "lobby", "from": "ann", "text": "hi bob ✓"});
    assert_eq!(receive(&mut bob).await, hi);
    assert_eq!(receive(&mut ann).await, hi, "the sender gets its own message too");

    send(&mut bob, json!({"type": "leave", "room": "lobby"})).await;
    assert_eq!(receive(&mut ann).await, diff("lobby", &[], &["bob"]));
    // A disconnect is a leave too.
    send(&mut bob, json!({"type": "join", "room": "lobby", "name": "bob"})).await;
    assert_eq!(
        receive_kind(&mut ann, "presence_diff").await,
        diff("lobby", &["bob"], &[])
    );
    drop(bob);
    assert_eq!(
        receive_kind(&mut ann, "presence_diff").await,
        diff("lobby", &[], &["bob"])
    );
}

/// The error text the server answers `message` with.
async fn refusal(client: &mut Client, message: Value) -> String {
    send(client, message).await;
    let answer = receive_kind(client, "error").await;
    answer["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn names_that_look_alike_are_one_name_and_deceptive_ones_are_refused() {
    let (_server, addr) = start_server("chat", &[]).await;
    let mut bob = connect(&addr).await;
    send(&mut bob, json!({"type": "join", "room": "r", "name": "Bob"})).await;
    receive_kind(&mut bob, "presence").await;
    let mut other = connect(&addr).await;
    for taken in ["bob", "BOB", " bob "] {
        let why = refusal(&mut other, json!({"type": "join", "room": "r", "name": taken})).await;
        assert!(why.contains("taken"), "{taken:?}: {why}");
    }
    for deceptive in ["bob\u{200b}", "\u{202e}boB", "b\u{0007}ob"] {
        let why = refusal(&mut other, json!({"type": "join", "room": "r", "name": deceptive})).await;
        assert!(why.contains("character"), "{deceptive:?}: {why}");
    }
    // Composed and decomposed forms are one name too.
    send(&mut other, json!({"type": "join", "room": "r", "name": "Jos\u{e9}"})).await;
    receive_kind(&mut other, "presence").await;
    let mut third = connect(&addr).await;
    let why = refusal(&mut third, json!({"type": "join", "room": "r", "name": "jose\u{301}"})).await;
    assert!(why.contains("taken"), "{why}");
    // Bob's name is free once Bob has gone.
    drop(bob);
    receive_kind(&mut other, "presence_diff").await;
    send(&mut third, json!({"type": "join", "room": "r", "name": "bob"})).await;
    assert_eq!(receive(&mut third).await["type"], "presence");
}

#[tokio::test]
async fn only_pages_of_the_same_host_or_allowed_origins_may_connect() {
    let (_server, addr) = start_server("chat", &["--allowed-origin", "https://ok.example"]).await;
    let status = |origin: Option<String>| {
        let addr = addr.clone();
        async move {
            let mut request = format!("ws://{addr}/chat").into_client_request().unwrap();
            if let Some(origin) = origin {
                request.headers_mut().insert("origin", origin.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok((_, response)) => response.status().as_u16(),
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
                Err(error) => panic!("{error}"),
            }
        }
    };
    assert_eq!(status(Some(format!("http://{addr}"))).await, 101, "the page's own host");
    assert_eq!(status(Some("https://ok.example".into())).await, 101, "allowed");
    assert_eq!(status(None).await, 101, "not a browser");
    assert_eq!(status(Some("https://evil.example".into())).await, 403);
    assert_eq!(status(Some("null".into())).await, 403);
}

#[tokio::test]
async fn joins_and_leaves_are_rate_limited_and_rooms_capped() {
    let (_server, addr) = start_server("chat", &[]).await;
    let mut ann = connect(&addr).await;
    // The burst: ten rooms, the cap as well.
    for room in 0..10 {
        send(
            &mut ann,
            json!({"type": "join", "room": room.to_string(), "name": "ann"}),
        )
        .await;
        receive_kind(&mut ann, "presence").await;
    }
    let why = refusal(&mut ann, json!({"type": "join", "room": "one more", "name": "ann"})).await;
    assert!(why.contains("too many joins"), "{why}");
    // After the bucket refills (two a second), the cap answers.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let why = refusal(&mut ann, json!({"type": "join", "room": "one more", "name": "ann"})).await;
    assert!(why.contains("10 rooms"), "{why}");
    // Still connected and working.
    send(&mut ann, json!({"type": "message", "room": "0", "text": "still here"})).await;
    assert_eq!(receive_kind(&mut ann, "message").await["text"], "still here");
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
