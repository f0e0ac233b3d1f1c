//! What the supervisor knows of a session: its id, its route, and a sink to deliver into.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::message::Outgoing;
use crate::protocol::CloseFrame;

/// A session's id, unique within the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// A fresh id, never handed out before in this process.
    pub fn next() -> SessionId {
        // Starts at 1 so that a zeroed id never names a real session.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number, for logs and wire formats.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The id whose [`as_u64`](Self::as_u64) is `id`: read back from a URL or a message. It
    /// names a session only while one has it; ids are not secrets, so check what a peer may do
    /// with one.
    pub fn from_u64(id: u64) -> SessionId {
        SessionId(id)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a message could not be handed to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Undelivered {
    /// The session is closing or closed; the message was dropped.
    #[error("the session is closed")]
    Closed,
    /// The session's outbound queue is over its limit; the session is being closed.
    #[error("the session's outbound queue is full")]
    QueueFull,
}

/// Where the supervisor hands messages for one session.
///
/// The connection layer implements it by putting the message's frame on the session's bounded
/// outbound queue. `deliver` must not block: it is called from the supervisor's thread.
pub(crate) trait SessionSink: Send + Sync + 'static {
    /// Queues `message` for the session.
    ///
    /// # Errors
    ///
    /// [`Undelivered`] when the session can take no more; the supervisor counts it and moves on.
    fn deliver(&self, message: &Outgoing) -> Result<(), Undelivered>;

    /// Starts closing the session with `frame` (its code valid on the wire), after what is
    /// already queued.
    fn close(&self, frame: &CloseFrame);
}
