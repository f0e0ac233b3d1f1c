//! The Redis thread: two fred clients, the loop that turns the hub's commands into pipelines, the
//! reader of subscribed channels, and the watcher of the connections.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, KeysInterface, PubsubInterface, SortedSetsInterface};
use fred::types::config::{Config as FredConfig, ReconnectPolicy};
use fred::types::{Builder, Value};
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{RedisConfig, RedisError};
use crate::hub::{BrokerCommand, Inbox};

/// Commands sent to Redis in one pipeline, at most: one write and one wait for many commands
/// when the hub is busy, and a bound on what one failed pipeline can lose.
const BATCH: usize = 512;
/// How often the connections' state is looked at, to tell the hub when Redis goes and comes back.
const WATCH_PERIOD: Duration = Duration::from_millis(50);
/// Messages fred buffers between the subscription connection and our reader (its default, 32,
/// lost messages in a burst of broadcasts). A lag is counted by the hub as missed messages.
const RECEIVE_BUFFER: usize = 8192;
/// A command that waits longer than this for Redis fails instead of hanging.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The two connections: commands, and subscriptions.
pub(super) struct Clients {
    client: Client,
    subscriber: SubscriberClient,
}

impl Clients {
    pub(super) fn new(config: &RedisConfig) -> Result<Clients, RedisError> {
        let fred_config = FredConfig::from_url(&config.url).map_err(|e| RedisError::InvalidUrl(e.to_string()))?;
        let delay = u32::try_from(config.reconnect_delay.as_millis()).unwrap_or(u32::MAX);
        let mut builder = Builder::from_config(fred_config);
        builder
            // Retry forever, at a constant pace: a Redis restart must not outlast the retries.
            .set_policy(ReconnectPolicy::new_constant(0, delay))
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                // One attempt per command: a publish retried after a dropped connection could
                // arrive twice, and delivery across nodes is at most once.
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
                p.broadcast_channel_capacity = RECEIVE_BUFFER;
            });
        let build = |e: fred::error::Error| RedisError::InvalidUrl(e.to_string());
        Ok(Clients {
            client: builder.build().map_err(build)?,
            subscriber: builder.build_subscriber_client().map_err(build)?,
        })
    }
}

/// Everything the Redis thread runs.
pub(super) struct Worker {
    clients: Clients,
    namespace: String,
    up: Arc<AtomicBool>,
    /// The channels the hub wants, so that they are subscribed again after an outage even when a
    /// subscription failed while Redis was away.
    wanted: Arc<Mutex<BTreeSet<String>>>,
}

impl Worker {
    pub(super) fn new(clients: Clients, namespace: String, up: Arc<AtomicBool>) -> Worker {
        Worker {
            clients,
            namespace,
            up,
            wanted: Arc::default(),
        }
    }

    /// Runs the worker on a current-thread tokio runtime: the body of the Redis thread.
    pub(super) fn run_on_own_runtime(
        self,
        commands: mpsc::Receiver<BrokerCommand>,
        inbox: oneshot::Receiver<Inbox>,
        ready: oneshot::Sender<Result<(), String>>,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        match runtime {
            Ok(runtime) => runtime.block_on(self.run(commands, inbox, ready)),
            Err(error) => {
                let _ = ready.send(Err(error.to_string()));
            }
        }
    }

    async fn run(
        self,
        commands: mpsc::Receiver<BrokerCommand>,
        inbox: oneshot::Receiver<Inbox>,
        ready: oneshot::Sender<Result<(), String>>,
    ) {
        let Clients { client, subscriber } = &self.clients;
        let connected = async {
            client.init().await?;
            subscriber.init().await
        };
        if let Err(error) = connected.await {
            let _ = ready.send(Err(error.to_string()));
            return;
        }
        self.up.store(true, Ordering::Relaxed);
        let _ = ready.send(Ok(()));
        let Ok(inbox) = inbox.await else { return };
        let _resubscriber = subscriber.manage_subscriptions();
        tokio::spawn(read(subscriber.message_rx(), inbox.clone(), self.namespace.clone()));
        tokio::spawn(watch(
            self.clients.client.clone(),
            self.clients.subscriber.clone(),
            self.up.clone(),
            self.wanted.clone(),
            inbox.clone(),
        ));
        self.serve(commands, &inbox).await;
        let _ = client.quit().await;
        let _ = subscriber.quit().await;
    }

    /// Takes the hub's commands in batches until the broker is dropped.
    async fn serve(&self, mut commands: mpsc::Receiver<BrokerCommand>, inbox: &Inbox) {
        let mut batch = Vec::with_capacity(BATCH);
        while commands.recv_many(&mut batch, BATCH).await > 0 {
            self.execute(std::mem::take(&mut batch), inbox).await;
        }
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}:{topic}", self.namespace)
    }

    fn presence_key(&self, room: &str) -> String {
        format!("{}:presence:{room}", self.namespace)
    }

    async fn execute(&self, batch: Vec<BrokerCommand>, inbox: &Inbox) {
        let publishes = batch
            .iter()
            .filter(|c| matches!(c, BrokerCommand::Publish { .. }))
            .count() as u64;
        let pipeline = self.clients.client.pipeline();
        let (mut subscribe, mut unsubscribe, mut queries) = (Vec::new(), Vec::new(), Vec::new());
        let mut is_publish = Vec::with_capacity(batch.len());
        for command in batch {
            match command {
                BrokerCommand::Publish { topic, payload } => {
                    let _: Result<(), _> = pipeline.publish(self.channel(&topic), payload).await;
                    is_publish.push(true);
                }
                BrokerCommand::Subscribe(topic) => subscribe.push(self.channel(&topic)),
                BrokerCommand::Unsubscribe(topic) => unsubscribe.push(self.channel(&topic)),
                BrokerCommand::PresencePut { entries, ttl } => {
                    for (key, members) in self.group_by_key(entries, ttl) {
                        let _: Result<(), _> = pipeline.zadd(&key, None, None, false, false, members).await;
                        // The set outlives its entries by a margin, then goes: rooms whose every
                        // node died leave nothing behind.
                        let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).saturating_mul(2) + 1;
                        let _: Result<(), _> = pipeline.expire(&key, seconds, None).await;
                        is_publish.extend([false, false]);
                    }
                }
                BrokerCommand::PresenceRemove { room, entry } => {
                    let _: Result<(), _> = pipeline.zrem(self.presence_key(&room), entry).await;
                    is_publish.push(false);
                }
                BrokerCommand::PresenceQuery(room) => queries.push(room),
            }
        }
        self.update_subscriptions(subscribe, unsubscribe).await;
        if !is_publish.is_empty() {
            let results = pipeline.try_all::<Value>().await;
            let failed = results
                .iter()
                .zip(&is_publish)
                .filter(|(result, publish)| **publish && result.is_err())
                .count() as u64;
            if failed > 0 {
                log::debug!("{failed} of {publishes} publishes to Redis failed");
                inbox.dropped(failed);
            }
        }
        for room in queries {
            tokio::spawn(query(
                self.clients.client.clone(),
                self.presence_key(&room),
                room,
                inbox.clone(),
            ));
        }
    }

    /// Presence entries grouped by their room's sorted set, scored with their expiry (ms).
    fn group_by_key(&self, entries: Vec<(String, String)>, ttl: Duration) -> BTreeMap<String, Vec<(f64, String)>> {
        let expiry = now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)) as f64;
        let mut keys: BTreeMap<String, Vec<(f64, String)>> = BTreeMap::new();
        for (room, entry) in entries {
            keys.entry(self.presence_key(&room)).or_default().push((expiry, entry));
        }
        keys
    }

    async fn update_subscriptions(&self, subscribe: Vec<String>, unsubscribe: Vec<String>) {
        {
            let mut wanted = self.wanted.lock();
            wanted.extend(subscribe.iter().cloned());
            unsubscribe.iter().for_each(|c| {
                wanted.remove(c);
            });
        }
        let subscriber = &self.clients.subscriber;
        if !subscribe.is_empty() {
            if let Err(error) = subscriber.subscribe(subscribe).await {
                log::debug!("subscribe failed (retried when Redis is back): {error}");
            }
        }
        if !unsubscribe.is_empty() {
            if let Err(error) = subscriber.unsubscribe(unsubscribe).await {
                log::debug!("unsubscribe failed: {error}");
            }
        }
    }
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Answers a presence query: drops the room's expired entries, then hands the live ones to the hub.
async fn query(client: Client, key: String, room: String, inbox: Inbox) {
    let now = now_ms();
    let _: Result<Value, _> = client.zremrangebyscore(&key, "-inf", now).await;
    match client
        .zrangebyscore::<Vec<String>, _, _, _>(&key, now, "+inf", false, None)
        .await
    {
        Ok(entries) => inbox.presence(&room, entries),
        Err(error) => log::debug!("presence query for {room} failed: {error}"),
    }
}

/// Hands every message of a subscribed channel to the hub, without the namespace.
async fn read(mut messages: broadcast::Receiver<fred::types::Message>, inbox: Inbox, namespace: String) {
    let prefix = format!("{namespace}:");
    loop {
        match messages.recv().await {
            Ok(message) => {
                let Some(topic) = message.channel.strip_prefix(prefix.as_str()) else {
                    continue;
                };
                let payload = message.value.into_bytes().unwrap_or_else(Bytes::new);
                inbox.received(topic, payload);
            }
            Err(broadcast::error::RecvError::Lagged(count)) => {
                log::warn!("{count} messages from Redis dropped: the hub fell behind (counted as missed)");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Tells the hub when Redis goes away and comes back, and subscribes again to every wanted channel
/// when it is back (fred resubscribes to those it had; this covers subscriptions made meanwhile).
async fn watch(
    client: Client,
    subscriber: SubscriberClient,
    up: Arc<AtomicBool>,
    wanted: Arc<Mutex<BTreeSet<String>>>,
    inbox: Inbox,
) {
    let mut interval = tokio::time::interval(WATCH_PERIOD);
    let mut was_up = true;
    loop {
        interval.tick().await;
        let now_up = client.is_connected() && subscriber.is_connected();
        if now_up == was_up {
            continue;
        }
        if now_up {
            let channels: Vec<String> = wanted.lock().iter().cloned().collect();
            if !channels.is_empty() {
                if let Err(error) = subscriber.subscribe(channels).await {
                    log::warn!("resubscribing after reconnecting to Redis failed: {error}");
                    continue;
                }
            }
            log::info!("Redis reachable again");
        } else {
            log::warn!("Redis unreachable; reconnecting every few hundred milliseconds");
        }
        was_up = now_up;
        up.store(now_up, Ordering::Relaxed);
        inbox.link(now_up);
    }
}
