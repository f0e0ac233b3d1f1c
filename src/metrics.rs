//! Counters of the whole runtime, shared by every connection of a hub.
//!
//! Counting is a relaxed atomic add, so it stays on the hot path without locks; closes by code
//! take a short lock, once per connection.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// The live counters. Read a consistent-enough copy with [`Metrics::snapshot`], or Prometheus text
/// with [`Metrics::prometheus`].
#[derive(Debug, Default)]
pub struct Metrics {
    connections_total: AtomicU64,
    connections_closed: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    protocol_errors: AtomicU64,
    backpressure_closes: AtomicU64,
    keepalive_timeouts: AtomicU64,
    write_timeouts: AtomicU64,
    undelivered: [AtomicU64; DropReason::ALL.len()],
    hub_refusals: AtomicU64,
    mailbox_closes: AtomicU64,
    mailbox_drops: AtomicU64,
    actor_restarts: AtomicU64,
    compressions: AtomicU64,
    closes: Mutex<BTreeMap<u16, u64>>,
    broker: BrokerCounters,
}

/// The counters of traffic between nodes (see [`Hub::with_broker`](crate::Hub::with_broker)).
#[derive(Debug, Default)]
pub(crate) struct BrokerCounters {
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    missed: AtomicU64,
    invalid: AtomicU64,
}

impl BrokerCounters {
    pub(crate) fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dropped(&self, count: u64) {
        self.dropped.fetch_add(count, Ordering::Relaxed);
    }
    pub(crate) fn missed(&self, count: u64) {
        self.missed.fetch_add(count, Ordering::Relaxed);
    }
    pub(crate) fn invalid(&self) {
        self.invalid.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> BrokerSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BrokerSnapshot {
            published: get(&self.published),
            received: get(&self.received),
            dropped: get(&self.dropped),
            missed: get(&self.missed),
            invalid: get(&self.invalid),
        }
    }
}

/// Traffic between nodes, as this node counted it. All zero for a hub without a broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerSnapshot {
    /// Messages handed to the broker for other nodes (broadcasts, direct messages, presence).
    pub published: u64,
    /// Messages received from other nodes.
    pub received: u64,
    /// Messages for other nodes dropped because the broker could not carry them (its engine was
    /// unreachable or its queue full): the gap on the sending side.
    pub dropped: u64,
    /// Messages from other nodes that never arrived, told by their sequence numbers: the gap on
    /// the receiving side.
    pub missed: u64,
    /// Messages received that could not be read, dropped.
    pub invalid: u64,
}

/// Why a hub delivery did not reach a session's outbound queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The session was closing or closed.
    Closed,
    /// The session's outbound queue was over its limit (the session is closed with 1008).
    QueueFull,
    /// The worker thread that owns the session had too many broadcasts waiting for it.
    Backlog,
}

impl DropReason {
    /// Every reason, in the order of the counters.
    pub const ALL: [DropReason; 3] = [DropReason::Closed, DropReason::QueueFull, DropReason::Backlog];

    /// The reason's name in metrics (`closed`, `queue_full`, `backlog`).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Closed => "closed",
            DropReason::QueueFull => "queue_full",
            DropReason::Backlog => "backlog",
        }
    }

    fn index(self) -> usize {
        match self {
            DropReason::Closed => 0,
            DropReason::QueueFull => 1,
            DropReason::Backlog => 2,
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Connections open now.
    pub connections_open: u64,
    /// Connections opened since start.
    pub connections_total: u64,
    /// Text and binary messages received.
    pub messages_in: u64,
    /// Text and binary messages queued for sending.
    pub messages_out: u64,
    /// Payload bytes received in text and binary messages.
    pub bytes_in: u64,
    /// Frame bytes queued for sending (headers included).
    pub bytes_out: u64,
    /// Connections failed for breaking RFC 6455 or a size limit.
    pub protocol_errors: u64,
    /// Connections closed because their outbound queue passed its limit.
    pub backpressure_closes: u64,
    /// Connections dropped because the peer did not answer a keepalive ping in time.
    pub keepalive_timeouts: u64,
    /// Connections aborted because their socket accepted no byte for `write_timeout`.
    pub write_timeouts: u64,
    /// Hub deliveries dropped, by reason.
    pub undelivered: BTreeMap<DropReason, u64>,
    /// Hub calls refused because the supervisor's mailbox was full (`try_` methods, upgrades).
    pub hub_refusals: u64,
    /// Session actors closed with 1008 because a message found their bounded mailbox full.
    pub mailbox_closes: u64,
    /// Droppable messages dropped because a session actor's bounded mailbox was full.
    pub mailbox_drops: u64,
    /// Session actors restarted after a panic (supervised actors, within their budget).
    pub actor_restarts: u64,
    /// Messages deflated (permessage-deflate): one per broadcast in the shared mode, whatever
    /// the number of recipients.
    pub compressions: u64,
    /// Closed connections by close code.
    pub closes: BTreeMap<u16, u64>,
    /// Traffic between nodes.
    pub broker: BrokerSnapshot,
}

impl Metrics {
    /// A connection opened.
    pub(crate) fn connection_opened(&self) {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed with `code`.
    pub(crate) fn connection_closed(&self, code: u16) {
        self.connections_closed.fetch_add(1, Ordering::Relaxed);
        *self.closes.lock().entry(code).or_default() += 1;
    }

    /// `messages` messages of `bytes` payload bytes in all arrived.
    pub(crate) fn messages_in(&self, messages: u64, bytes: u64) {
        self.messages_in.fetch_add(messages, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A message encoded as `bytes` frame bytes was queued.
    pub(crate) fn message_out(&self, bytes: usize) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A connection was failed for a protocol error.
    pub(crate) fn protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed for backpressure.
    pub(crate) fn backpressure_close(&self) {
        self.backpressure_closes.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was dropped for not answering a keepalive ping.
    pub(crate) fn keepalive_timeout(&self) {
        self.keepalive_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was aborted because its socket accepted nothing for `write_timeout`.
    pub(crate) fn write_timeout(&self) {
        self.write_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// `count` hub deliveries were dropped for `reason`.
    pub(crate) fn undelivered(&self, reason: DropReason, count: u64) {
        if let Some(counter) = self.undelivered.get(reason.index()) {
            counter.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// A hub call was refused because the supervisor's mailbox was full.
    pub(crate) fn hub_refusal(&self) {
        self.hub_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// A session actor's bounded mailbox was full for a message that may not be dropped.
    pub(crate) fn mailbox_close(&self) {
        self.mailbox_closes.fetch_add(1, Ordering::Relaxed);
    }

    /// A droppable message was dropped at a full session-actor mailbox.
    pub(crate) fn mailbox_drop(&self) {
        self.mailbox_drops.fetch_add(1, Ordering::Relaxed);
    }

    /// A message was deflated.
    pub(crate) fn compressed(&self) {
        self.compressions.fetch_add(1, Ordering::Relaxed);
    }

    /// A session actor was restarted after a panic.
    pub(crate) fn actor_restart(&self) {
        self.actor_restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let total = get(&self.connections_total);
        MetricsSnapshot {
            connections_open: total.saturating_sub(get(&self.connections_closed)),
            connections_total: total,
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            protocol_errors: get(&self.protocol_errors),
            backpressure_closes: get(&self.backpressure_closes),
            keepalive_timeouts: get(&self.keepalive_timeouts),
            write_timeouts: get(&self.write_timeouts),
            undelivered: DropReason::ALL
                .iter()
                .map(|reason| (*reason, self.undelivered.get(reason.index()).map_or(0, get)))
                .collect(),
            hub_refusals: get(&self.hub_refusals),
            mailbox_closes: get(&self.mailbox_closes),
            mailbox_drops: get(&self.mailbox_drops),
            actor_restarts: get(&self.actor_restarts),
            compressions: get(&self.compressions),
            closes: self.closes.lock().clone(),
            broker: self.broker.snapshot(),
        }
    }

    /// The counters of traffic between nodes, for the hub to count into.
    pub(crate) fn broker(&self) -> &BrokerCounters {
        &self.broker
    }

    /// The counters in the Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP switchboard_{name} {help}\n# TYPE switchboard_{name} {kind}"
            );
            let _ = writeln!(out, "switchboard_{name} {value}");
        };
        metric(
            "connections_open",
            "gauge",
            "WebSocket connections open now.",
            s.connections_open,
        );
        metric(
            "connections_total",
            "counter",
            "WebSocket connections opened.",
            s.connections_total,
        );
        metric("messages_in_total", "counter", "Messages received.", s.messages_in);
        metric(
            "messages_out_total",
            "counter",
            "Messages queued for sending.",
            s.messages_out,
        );
        metric(
            "bytes_in_total",
            "counter",
            "Message payload bytes received.",
            s.bytes_in,
        );
        metric(
            "bytes_out_total",
            "counter",
            "Frame bytes queued for sending.",
            s.bytes_out,
        );
        metric(
            "protocol_errors_total",
            "counter",
            "Connections failed for a protocol error.",
            s.protocol_errors,
        );
        metric(
            "backpressure_closes_total",
            "counter",
            "Connections closed for a full queue.",
            s.backpressure_closes,
        );
        metric(
            "keepalive_timeouts_total",
            "counter",
            "Connections dropped for not answering a keepalive ping.",
            s.keepalive_timeouts,
        );
        metric(
            "write_timeouts_total",
            "counter",
            "Connections aborted because their socket accepted nothing for write_timeout.",
            s.write_timeouts,
        );
        metric(
            "hub_refusals_total",
            "counter",
            "Hub calls refused because the supervisor's mailbox was full.",
            s.hub_refusals,
        );
        metric(
            "mailbox_closes_total",
            "counter",
            "Session actors closed because their bounded mailbox was full.",
            s.mailbox_closes,
        );
        metric(
            "mailbox_drops_total",
            "counter",
            "Droppable messages dropped at a full session-actor mailbox.",
            s.mailbox_drops,
        );
        metric(
            "actor_restarts_total",
            "counter",
            "Session actors restarted after a panic.",
            s.actor_restarts,
        );
        metric(
            "compressions_total",
            "counter",
            "Messages deflated (permessage-deflate).",
            s.compressions,
        );
        let b = s.broker;
        metric(
            "broker_published_total",
            "counter",
            "Messages published for other nodes.",
            b.published,
        );
        metric(
            "broker_received_total",
            "counter",
            "Messages received from other nodes.",
            b.received,
        );
        metric(
            "broker_dropped_total",
            "counter",
            "Messages for other nodes the broker could not carry.",
            b.dropped,
        );
        metric(
            "broker_missed_total",
            "counter",
            "Messages from other nodes that never arrived (sequence gaps).",
            b.missed,
        );
        metric(
            "broker_invalid_total",
            "counter",
            "Messages from other nodes that could not be read.",
            b.invalid,
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_undelivered_total Hub deliveries dropped, by reason."
        );
        let _ = writeln!(out, "# TYPE switchboard_undelivered_total counter");
        for (reason, count) in &s.undelivered {
            let _ = writeln!(
                out,
                "switchboard_undelivered_total{{reason=\"{}\"}} {count}",
                reason.as_str()
            );
        }
        let _ = writeln!(out, "# HELP switchboard_closes_total Closed connections by close code.");
        let _ = writeln!(out, "# TYPE switchboard_closes_total counter");
        for (code, count) in &s.closes {
            let _ = writeln!(out, "switchboard_closes_total{{code=\"{code}\"}} {count}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_render_as_prometheus_text() {
        let m = Metrics::default();
        m.connection_opened();
        m.connection_opened();
        m.messages_in(1, 5);
        m.message_out(7);
        m.connection_closed(1000);
        m.undelivered(DropReason::Backlog, 3);
        let s = m.snapshot();
        assert_eq!(s.undelivered.get(&DropReason::Backlog), Some(&3));
        assert_eq!(s.undelivered.get(&DropReason::Closed), Some(&0));
        assert_eq!(
            (s.connections_open, s.connections_total, s.bytes_in, s.bytes_out),
            (1, 2, 5, 7)
        );
        let text = m.prometheus();
        assert!(text.contains("switchboard_connections_open 1\n"), "{text}");
        assert!(text.contains("switchboard_closes_total{code=\"1000\"} 1\n"), "{text}");
        assert!(
            text.contains("switchboard_undelivered_total{reason=\"backlog\"} 3\n"),
            "{text}"
        );
    }
}
