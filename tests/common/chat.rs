//! The chat example's protocol from a tokio-tungstenite client: JSON text messages.

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::{next_message, Client};

/// A client of the chat at `addr` (`HOST:PORT`).
pub async fn connect(addr: &str) -> Client {
    tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
        .await
        .unwrap()
        .0
}

pub async fn send(client: &mut Client, value: Value) {
    client.send(Message::text(value.to_string())).await.unwrap();
}

pub async fn receive(client: &mut Client) -> Value {
    match next_message(client).await {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a JSON text message, got {other:?}"),
    }
}

/// The next message of `kind`, skipping others (presence updates arrive between messages).
pub async fn receive_kind(client: &mut Client, kind: &str) -> Value {
    loop {
        let value = receive(client).await;
        if value["type"] == kind {
            return value;
        }
    }
}
