//! Connection counting for [`Config::max_connections`](crate::Config::max_connections).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::handshake::HandshakeRejection;

/// The open-connection count of one route, shared by every worker thread.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSlots {
    open: Arc<AtomicUsize>,
    max: Option<usize>,
}

impl ConnectionSlots {
    /// The counter of the route named `name`. actix-web builds the app once per worker, so the
    /// count is kept per route name for the whole process, not per mounted copy.
    pub(crate) fn for_route(name: &str, max: Option<usize>) -> ConnectionSlots {
        static COUNTS: OnceLock<Mutex<HashMap<String, Arc<AtomicUsize>>>> = OnceLock::new();
        let mut counts = COUNTS.get_or_init(Default::default).lock();
        let open = counts.entry(name.to_owned()).or_default().clone();
        ConnectionSlots { open, max }
    }

    /// A counter of its own, for `max` connections: a server's WebSockets
    /// ([`Server::max_websockets`](crate::Server::max_websockets)).
    pub(crate) fn new(max: Option<usize>) -> ConnectionSlots {
        ConnectionSlots {
            open: Arc::default(),
            max,
        }
    }

    /// Takes a slot, released when the returned guard drops.
    ///
    /// # Errors
    ///
    /// [`HandshakeRejection::TooManyConnections`] when the route is full.
    pub(crate) fn acquire(&self) -> Result<Slot, HandshakeRejection> {
        let previous = self.open.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.open.clone());
        match self.max {
            Some(max) if previous >= max => Err(HandshakeRejection::TooManyConnections),
            _ => Ok(slot),
        }
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One taken slot.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The slots an open connection holds: its route's (a `websocket` route's; a session actor's
/// route counts none) and, on `switchboard::Server`, the server's. Released when the connection
/// ends and its state drops them. Two fields, not a `Box<dyn Send>`: an idle connection then
/// holds no allocation for them (docs/benchmarks.md).
#[derive(Debug, Default)]
pub(crate) struct HeldSlots {
    _route: Option<Slot>,
    _server: Option<Slot>,
}

impl HeldSlots {
    /// A route's slot.
    pub(crate) fn route(slot: Slot) -> HeldSlots {
        HeldSlots {
            _route: Some(slot),
            _server: None,
        }
    }

    /// These and the server's slot.
    pub(crate) fn and_server(self, slot: Slot) -> HeldSlots {
        HeldSlots {
            _server: Some(slot),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_released() {
        let slots = ConnectionSlots::for_route("limits-test", Some(2));
        let a = slots.acquire().unwrap();
        let _b = slots.acquire().unwrap();
        assert_eq!(slots.acquire().unwrap_err(), HandshakeRejection::TooManyConnections);
        assert_eq!(slots.open(), 2);
        drop(a);
        assert!(slots.acquire().is_ok());
    }
}
