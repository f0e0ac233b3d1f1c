//! The callbacks a handler registers on a socket, and running them so a panic stays contained.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::message::Text;
use bytes::Bytes;

use crate::socket::WebSocket;

/// A callback taking the socket and one value. Boxed, not shared: a closure that captures
/// nothing (an echo's) then allocates nothing, where an `Arc` holds its counts in an allocation
/// of its own (idle memory per connection, docs/benchmarks.md).
pub(crate) type Callback<T> = Box<dyn Fn(&WebSocket, T) + Send + Sync>;

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

/// Runs the callback in `slot` of `socket`'s callbacks with `value`, turning a panic into an
/// error so that only this connection suffers for it.
///
/// The callback is taken out of the lock while it runs (it may register callbacks itself, or
/// another thread may), then put back unless another was registered meanwhile: callbacks run
/// only on the connection's own task, so nothing else needs it in the meantime.
pub(crate) fn call<T>(
    socket: &WebSocket,
    slot: fn(&mut Callbacks) -> &mut Option<Callback<T>>,
    value: T,
) -> Result<(), Panicked> {
    let callbacks = &socket.shared.callbacks;
    let Some(callback) = slot(&mut callbacks.lock()).take() else {
        return Ok(());
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| callback(socket, value))).map_err(panicked);
    let mut guard = callbacks.lock();
    let place = slot(&mut guard);
    if place.is_none() {
        *place = Some(callback);
    }
    outcome
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
