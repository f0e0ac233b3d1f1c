//! The callbacks a handler registers on a socket, and running them so a panic stays contained.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::message::Text;
use bytes::Bytes;

use crate::socket::WebSocket;

/// A callback taking the socket and one value.
pub(crate) type Callback<T> = Arc<dyn Fn(&WebSocket, T) + Send + Sync>;

/// Every callback of one socket. Each is optional: an unset one ignores its event.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub(crate) text: Option<Callback<Text>>,
    pub(crate) binary: Option<Callback<Bytes>>,
    pub(crate) ping: Option<Callback<Bytes>>,
    pub(crate) pong: Option<Callback<Bytes>>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("text", &self.text.is_some())
            .field("binary", &self.binary.is_some())
            .field("ping", &self.ping.is_some())
            .field("pong", &self.pong.is_some())
            .finish()
    }
}

/// A user callback panicked; the message says what it panicked with.
#[derive(Debug)]
pub(crate) struct Panicked(pub(crate) String);

/// Runs `callback` with `value`, turning a panic into an error so that only this connection
/// suffers for it.
pub(crate) fn call<T>(callback: Option<Callback<T>>, socket: &WebSocket, value: T) -> Result<(), Panicked> {
    let Some(callback) = callback else { return Ok(()) };
    catch_unwind(AssertUnwindSafe(|| callback(socket, value))).map_err(panicked)
}

/// What a caught panic says.
pub(crate) fn panicked(payload: Box<dyn std::any::Any + Send>) -> Panicked {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_string());
    Panicked(message)
}
