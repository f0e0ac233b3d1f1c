//! The Redis broker: several switchboard nodes act as one over a Redis server (7 or later).
//!
//! Available with the `redis` cargo feature. Each node connects to the same Redis and starts its
//! hub with the broker; nothing else changes in the application:
//!
//! ```no_run
//! use switchboard::redis::{RedisBroker, RedisConfig};
//! use switchboard::Hub;
//!
//! # async fn node() -> Result<(), switchboard::redis::RedisError> {
//! let broker = RedisBroker::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let hub = Hub::with_broker(broker);
//! // Rooms, presence, broadcasts and direct messages now reach the other nodes' sessions.
//! # Ok(()) }
//! ```
//!
//! Messages go over Redis pub/sub (one channel per route, room, user and node, subscribed only
//! while the node has local sessions there); presence lives in one sorted set per room, scored by
//! each entry's expiry time. The client is [fred](https://docs.rs/fred): two connections (one for
//! commands, one for subscriptions) that reconnect and resubscribe by themselves. It runs on a
//! thread of its own, so Redis's latency never holds up the hub. docs/scaling.md says what
//! happens while Redis is away.

mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::hub::{Broker, BrokerCommand, BrokerError, Inbox, DEFAULT_PRESENCE_TTL};

/// How long [`RedisBroker::connect`] waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a node reaches Redis. Start from [`RedisConfig::new`] and change what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server, as `redis://[user:password@]host:port[/db]`. No default.
    pub url: String,
    /// The prefix of every channel and key this broker uses. Default `switchboard`. Change it to
    /// run several applications (or test runs) on one Redis without hearing each other.
    pub namespace: String,
    /// How long a node's presence entries live unless it refreshes them: the bound within which
    /// a node that died leaves the presence of the others. Default
    /// [`DEFAULT_PRESENCE_TTL`] (15 s). Shorter means quicker leaves and more refresh traffic
    /// (four refreshes per TTL, one command per room).
    pub presence_ttl: Duration,
    /// The pause between attempts to reconnect when Redis went away. Default 100 ms, so traffic
    /// resumes within about that much of Redis accepting connections again.
    pub reconnect_delay: Duration,
    /// Commands that may wait for Redis before [`Broker::send`] refuses more (counted as dropped).
    /// Default 16,384: several seconds of a busy node's traffic, a few megabytes at most.
    pub max_queued: usize,
}

impl RedisConfig {
    /// The defaults, with the server at `url`.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            namespace: "switchboard".into(),
            presence_ttl: DEFAULT_PRESENCE_TTL,
            reconnect_delay: Duration::from_millis(100),
            max_queued: 16_384,
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL is not a Redis URL fred understands.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// Redis did not accept the first connection in time; check that it runs and the URL.
    #[error("cannot connect to Redis: {0}")]
    Connect(String),
}

/// A [`Broker`] over Redis pub/sub and sorted sets. Make it with [`RedisBroker::connect`], give it
/// to [`Hub::with_broker`](crate::Hub::with_broker).
#[derive(Debug)]
pub struct RedisBroker {
    presence_ttl: Duration,
    commands: mpsc::Sender<BrokerCommand>,
    inbox: Mutex<Option<oneshot::Sender<Inbox>>>,
    /// Both connections are up: publishing makes sense.
    up: Arc<AtomicBool>,
}

impl RedisBroker {
    /// Connects to Redis on a thread of its own and waits for the first connection.
    ///
    /// # Errors
    ///
    /// [`RedisError::InvalidUrl`], or [`RedisError::Connect`] when Redis does not answer within
    /// 5 s. Once connected, a lost connection is never an error: the broker reconnects by itself.
    pub async fn connect(config: RedisConfig) -> Result<RedisBroker, RedisError> {
        let clients = worker::Clients::new(&config)?;
        let (commands, queue) = mpsc::channel(config.max_queued.max(1));
        let (inbox_tx, inbox_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let up = Arc::new(AtomicBool::new(false));
        let worker = worker::Worker::new(clients, config.namespace.clone(), up.clone());
        std::thread::Builder::new()
            .name("switchboard-redis".into())
            .spawn(move || worker.run_on_own_runtime(queue, inbox_rx, ready_tx))
            .map_err(|e| RedisError::Connect(e.to_string()))?;
        match tokio::time::timeout(CONNECT_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => return Err(RedisError::Connect(error)),
            Ok(Err(_)) => return Err(RedisError::Connect("the Redis thread stopped".into())),
            Err(_) => {
                return Err(RedisError::Connect(format!(
                    "no answer from {} in {CONNECT_TIMEOUT:?}",
                    config.url
                )))
            }
        }
        Ok(RedisBroker {
            presence_ttl: config.presence_ttl,
            commands,
            inbox: Mutex::new(Some(inbox_tx)),
            up,
        })
    }
}

impl Broker for RedisBroker {
    fn start(&self, inbox: Inbox) {
        if let Some(sender) = self.inbox.lock().take() {
            let _ = sender.send(inbox);
        }
    }

    fn send(&self, command: BrokerCommand) -> Result<(), BrokerError> {
        // Subscriptions are remembered while Redis is away and made when it is back; the rest
        // would only be late, so it is refused.
        let remembered = matches!(command, BrokerCommand::Subscribe(_) | BrokerCommand::Unsubscribe(_));
        if !remembered && !self.up.load(Ordering::Relaxed) {
            return Err(BrokerError::Unreachable);
        }
        self.commands.try_send(command).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => BrokerError::Backlog,
            mpsc::error::TrySendError::Closed(_) => BrokerError::Unreachable,
        })
    }

    fn presence_ttl(&self) -> Duration {
        self.presence_ttl
    }
}
