//! The broker seam: how a hub reaches the hubs of other nodes.
//!
//! A hub on its own is one node, and everything stays in the process: that is the default, with
//! nothing to install. Give it a [`Broker`] ([`Hub::with_broker`](crate::Hub::with_broker)) and
//! it becomes one node of several: route and room broadcasts, messages to a session or a user on
//! another node, and presence cross between them. switchboard ships one for Redis
//! (`switchboard::redis`, behind the `redis` cargo feature); another engine fits behind the same
//! trait.
//!
//! The hub speaks to a broker in [`BrokerCommand`]s, which must not block (the hub's supervisor
//! sends them from its own thread), and the broker answers through the [`Inbox`] it was given:
//! what arrived on a topic, a room's presence entries, whether it can reach its engine.
//!
//! What a broker promises is what pub/sub engines give: delivery at most once, in the order one
//! node published on one topic. docs/scaling.md says what the hub builds on that.

use std::fmt;
use std::time::Duration;

use actix::Addr;
use bytes::Bytes;

use super::remote::{BrokerLink, Delivered, PresenceSnapshot, RemoteDropped};
use super::supervisor::Supervisor;

/// How long a node's presence entries live without a refresh, unless the broker says otherwise:
/// a node that dies leaves the presence of the others within this bound.
pub const DEFAULT_PRESENCE_TTL: Duration = Duration::from_secs(15);

/// Carries messages and presence between the hubs of several nodes.
///
/// # Contract
///
/// - [`send`](Broker::send) never blocks: it queues the command or refuses it at once.
/// - A message published on a topic reaches, at most once, the other nodes subscribed to it,
///   in the order each node published it ([`Inbox::received`]).
/// - Presence entries put with a time to live are answered by a query until they expire.
/// - [`Inbox::link`] is called when the engine becomes unreachable and when it is back; after it
///   is back, the broker has subscribed again to every topic the hub subscribed to.
pub trait Broker: Send + Sync + fmt::Debug + 'static {
    /// Called once, when the hub starts: what the broker receives goes to `inbox`.
    fn start(&self, inbox: Inbox);

    /// Queues `command`.
    ///
    /// # Errors
    ///
    /// [`BrokerError`] when the command cannot be carried now; the hub counts a refused publish
    /// as a remote delivery dropped, and goes on.
    fn send(&self, command: BrokerCommand) -> Result<(), BrokerError>;

    /// How long presence entries live without a refresh: the bound on how long a dead node's
    /// members stay present on the others. The hub refreshes its entries four times per bound.
    fn presence_ttl(&self) -> Duration {
        DEFAULT_PRESENCE_TTL
    }
}

/// What the hub asks of its broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerCommand {
    /// Send `payload` to the nodes subscribed to `topic`.
    Publish {
        /// The topic, such as `room:lobby` (the broker may add a namespace of its own).
        topic: String,
        /// An encoded envelope, opaque to the broker.
        payload: Bytes,
    },
    /// Start receiving what is published on a topic.
    Subscribe(String),
    /// Stop receiving what is published on a topic.
    Unsubscribe(String),
    /// Put or refresh presence entries, each `(room, entry)`, to live for `ttl`.
    PresencePut {
        /// The entries: a room and an opaque member entry.
        entries: Vec<(String, String)>,
        /// How long they live unless put again.
        ttl: Duration,
    },
    /// Remove one presence entry.
    PresenceRemove {
        /// The room.
        room: String,
        /// The entry, as it was put.
        entry: String,
    },
    /// Ask for a room's live presence entries: the answer comes through [`Inbox::presence`].
    PresenceQuery(String),
}

/// Why a broker refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The engine cannot be reached now; the broker is reconnecting by itself.
    #[error("the broker cannot reach its engine")]
    Unreachable,
    /// The broker's own queue is full: the engine is slower than the hub's traffic.
    #[error("the broker's queue is full")]
    Backlog,
}

/// Where a broker hands what it receives: a bounded way into the hub's supervisor.
///
/// Every method returns at once. When the supervisor's mailbox is full, a received message is
/// dropped and counted as missed ([`MetricsSnapshot::broker`](crate::MetricsSnapshot::broker)).
#[derive(Clone)]
pub struct Inbox {
    supervisor: Addr<Supervisor>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

impl Inbox {
    pub(crate) fn new(supervisor: Addr<Supervisor>) -> Inbox {
        Inbox { supervisor }
    }

    /// `payload` arrived on `topic` (without any namespace the broker added).
    pub fn received(&self, topic: &str, payload: Bytes) {
        let delivered = Delivered {
            topic: topic.to_owned(),
            payload,
        };
        if self.supervisor.try_send(delivered).is_err() {
            // Counted by the supervisor's gap detection when the next message on the topic
            // arrives; nothing else can be done here without blocking the broker.
            log::debug!("supervisor busy: a message on {topic} was dropped");
        }
    }

    /// The live presence entries of `room`, answering a [`BrokerCommand::PresenceQuery`].
    pub fn presence(&self, room: &str, entries: Vec<String>) {
        let snapshot = PresenceSnapshot {
            room: room.to_owned(),
            entries,
        };
        let _ = self.supervisor.try_send(snapshot);
    }

    /// The engine became unreachable (`false`) or reachable again (`true`).
    pub fn link(&self, up: bool) {
        self.supervisor.do_send(BrokerLink(up));
    }

    /// `count` commands the broker had taken were dropped before reaching the engine (it went
    /// away with them queued).
    pub fn dropped(&self, count: u64) {
        self.supervisor.do_send(RemoteDropped(count));
    }
}
