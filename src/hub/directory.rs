//! The session actors a hub knows by id, so any code holding the [`Hub`](super::Hub) can reach
//! one with a typed message ([`Hub::addr`](super::Hub::addr)).

use std::any::Any;
use std::collections::HashMap;

use parking_lot::Mutex;

use super::SessionId;

/// Each session actor's bounded address, type-erased; an entry lives as long as its session.
/// One lock, taken when a session actor starts, ends, or is looked up: not on any message path.
#[derive(Default)]
pub(crate) struct Directory {
    actors: Mutex<HashMap<SessionId, Box<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("actors", &self.actors.lock().len())
            .finish()
    }
}

impl Directory {
    pub(crate) fn insert(&self, id: SessionId, addr: Box<dyn Any + Send + Sync>) {
        self.actors.lock().insert(id, addr);
    }

    pub(crate) fn remove(&self, id: SessionId) {
        self.actors.lock().remove(&id);
    }

    /// The address of `id` if it is a `T`.
    pub(crate) fn get<T: Clone + 'static>(&self, id: SessionId) -> Option<T> {
        self.actors.lock().get(&id)?.downcast_ref::<T>().cloned()
    }
}
