//! Typed JSON messages: [`WebSocket::send_json`] and [`WebSocket::on_json`].

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::socket::{SendFuture, WebSocket};

impl WebSocket {
    /// Sends `value` as a JSON text message.
    ///
    /// # Errors
    ///
    /// [`serde_json::Error`] when `value` cannot be serialized (a map with non-string keys, a
    /// failing `Serialize` impl); nothing is sent then. The returned future fails as
    /// [`send`](WebSocket::send)'s does.
    pub fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<SendFuture, serde_json::Error> {
        Ok(self.send(serde_json::to_string(value)?))
    }

    /// Calls `callback` with every text message parsed as JSON into `T`, or with the parse error
    /// for one that is not: reply with an error message or close, as your protocol says; the
    /// connection goes on either way. It replaces any [`on_text`](WebSocket::on_text) callback.
    pub fn on_json<T, F>(&self, callback: F)
    where
        T: DeserializeOwned,
        F: Fn(&WebSocket, Result<T, serde_json::Error>) + Send + Sync + 'static,
    {
        self.on_text(move |ws, text| callback(ws, serde_json::from_str(&text)));
    }
}
