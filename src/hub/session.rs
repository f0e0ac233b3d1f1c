//! What the supervisor knows of a session: its id, its route, and a sink to deliver into.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::message::Outgoing;
use crate::protocol::CloseFrame;

/// Bits of a [`SessionId`] that count sessions within a process: 8.6 billion before they wrap.
const COUNTER_BITS: u32 = 33;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;
/// Bits that name the process: 20, so that ids fit the 53 bits a JavaScript number holds exactly.
/// Two nodes draw the same number with odds of about n²/2²¹ (1 in 20,000 for ten nodes).
const NODE_BITS: u32 = 20;

/// A random number, from the standard library's random hasher keys, the clock and the process id.
pub(crate) fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map(|d| d.as_nanos()).unwrap_or_default());
    hasher.finish()
}

/// This process's node number, drawn at random on first use: non-zero, under 2²⁰.
pub(crate) fn process_node() -> u64 {
    static NODE: OnceLock<u64> = OnceLock::new();
    *NODE.get_or_init(|| random_u64() % ((1 << NODE_BITS) - 1) + 1)
}

/// A session's id, unique within the process and, with odds given at [`SessionId::next`],
/// across the nodes of a cluster.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// A fresh id, never handed out before in this process, and unlikely to be anywhere else.
    ///
    /// Its high bits are a number this process drew at random when it made its first id (its
    /// [`node`](Self::node)), so that ids stay unique across the nodes of a cluster and name the
    /// node a message for the session must go to. Ids stay below 2⁵³, so a browser reads them
    /// back exactly from JSON.
    pub fn next() -> SessionId {
        // Starts at 1 so that a zeroed id never names a real session.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(process_node() << COUNTER_BITS | (NEXT.fetch_add(1, Ordering::Relaxed) & COUNTER_MASK))
    }

    /// The number of the process that made this id: the same for every session of one process,
    /// and the name of its node's channel for direct messages when several nodes share a broker.
    pub fn node(self) -> u64 {
        self.0 >> COUNTER_BITS
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
