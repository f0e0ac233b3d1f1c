//! The supervisor's side of the broker: what it publishes for other nodes, what it does with what
//! they publish, and presence across nodes.
//!
//! Topics: `route:R` and `room:R` carry broadcasts (and a room's presence diffs), `user:U`
//! messages for a user, `node:N` messages for the sessions of process N ([`SessionId::node`]).
//! A node subscribes to a route, room or user topic only while it has a local session there, so a
//! node with no member in a room receives none of its traffic.
//!
//! Presence: each node puts its memberships in the broker with a lifetime of half the presence
//! TTL and refreshes them every quarter; after each refresh it asks for the live entries
//! of its rooms and reconciles its view of the other nodes' members, announcing the difference
//! as diffs to its local members. A node that dies stops refreshing, so its entries expire and
//! every other node announces its members' leaves within three quarters of the TTL (an entry
//! expires at most half a TTL after its node died, and is noticed within a quarter more): the
//! last quarter is margin for clocks and round trips, so the TTL is a bound, not an average.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{AsyncContext, Context, Handler, Message as ActixMessage};
use bytes::Bytes;

use super::broker::{Broker, BrokerCommand, BrokerError};
use super::envelope::{self, Body, Stamp};
use super::rooms::{Member, PresenceChange, PresenceEvent};
use super::session::{self, SessionId};
use super::supervisor::Supervisor;
use crate::message::Outgoing;

/// Hubs with a broker in this process. Their sessions share the process's node number, so with
/// two or more, a message for an unknown session of this process may be another hub's and goes
/// through the broker too (tests and multi-server processes run several).
static BROKERED_HUBS: AtomicUsize = AtomicUsize::new(0);

/// Topics whose publish sequence numbers a node remembers before it forgets them all and starts
/// a new epoch: a bound on the memory of a node that publishes to ever new users or rooms.
const MAX_SEQUENCED_TOPICS: usize = 65_536;

/// The broker side of a supervisor.
#[derive(Debug)]
pub(crate) struct Remote {
    broker: Arc<dyn Broker>,
    /// This hub's node number, random: envelopes it published come back to it and are skipped.
    node: u64,
    epoch: u32,
    /// The last sequence number published per topic.
    seqs: HashMap<String, u64>,
    /// Per subscribed topic, the last (epoch, seq) seen from each publishing node.
    seen: HashMap<String, HashMap<u64, (u32, u64)>>,
    subscribed: HashSet<String>,
    /// The other nodes' members of the rooms this node has members in.
    mirror: HashMap<String, BTreeMap<SessionId, Option<String>>>,
    /// Per room with a presence query on its way, the remote members a diff changed since.
    changed: HashMap<String, HashSet<SessionId>>,
    ttl: Duration,
    link_up: bool,
    /// The broker refused a command for a full queue, and has taken none since.
    backlogged: bool,
    /// Reconciling removes members only from then on: after the broker comes back, every node
    /// needs one refresh period to put its entries back before an absence means a leave.
    removals_from: Instant,
    dropped_while_down: u64,
}

impl Remote {
    pub(crate) fn new(broker: Arc<dyn Broker>) -> Remote {
        let ttl = broker.presence_ttl().max(Duration::from_millis(300));
        BROKERED_HUBS.fetch_add(1, Ordering::Relaxed);
        Remote {
            broker,
            node: session::random_u64(),
            epoch: 1,
            seqs: HashMap::new(),
            seen: HashMap::new(),
            subscribed: HashSet::new(),
            mirror: HashMap::new(),
            changed: HashMap::new(),
            ttl,
            link_up: true,
            backlogged: false,
            removals_from: Instant::now(),
            dropped_while_down: 0,
        }
    }

    /// How often presence is refreshed and reconciled.
    pub(crate) fn refresh_period(&self) -> Duration {
        self.ttl / 4
    }

    /// How long a presence entry lives unless refreshed: two refresh periods, so that one late
    /// refresh does not make a live member leave.
    fn entry_lifetime(&self) -> Duration {
        self.ttl / 2
    }

    /// A member's presence entry: `hub-node:session:user`.
    fn entry(&self, member: &Member) -> String {
        let user = member.user.as_deref().unwrap_or_default();
        format!("{:x}:{}:{user}", self.node, member.id.as_u64())
    }

    /// A presence entry of another hub, read back.
    fn parse_entry(&self, entry: &str) -> Option<Member> {
        let mut parts = entry.splitn(3, ':');
        let node = u64::from_str_radix(parts.next()?, 16).ok()?;
        let id = parts.next()?.parse().ok()?;
        let user = parts.next()?;
        (node != self.node).then(|| Member {
            id: SessionId::from_u64(id),
            user: (!user.is_empty()).then(|| user.to_owned()),
        })
    }
}

pub(crate) fn route_topic(route: &str) -> String {
    format!("route:{route}")
}
pub(crate) fn room_topic(room: &str) -> String {
    format!("room:{room}")
}
pub(crate) fn user_topic(user: &str) -> String {
    format!("user:{user}")
}
fn node_topic(node: u64) -> String {
    format!("node:{node:x}")
}

impl Supervisor {
    /// Subscribes to this process's topic and starts refreshing presence.
    pub(crate) fn start_remote(&mut self, ctx: &mut Context<Self>) {
        let Some(remote) = &self.remote else { return };
        let period = remote.refresh_period();
        self.remote_subscribe(node_topic(session::process_node()));
        ctx.run_interval(period, |act, _| act.refresh_presence());
    }

    /// Sends a command to the broker, counting and logging (once per outage or per backlog) what
    /// it refuses.
    fn command_broker(&mut self, command: BrokerCommand) {
        let Some(remote) = &mut self.remote else { return };
        let publish = matches!(command, BrokerCommand::Publish { .. });
        let sent = remote.broker.send(command);
        if publish {
            match sent {
                Ok(()) => self.metrics.broker().published(),
                Err(_) => {
                    self.metrics.broker().dropped(1);
                    remote.dropped_while_down += 1;
                }
            }
        }
        match sent {
            Ok(()) if remote.backlogged => {
                remote.backlogged = false;
                log::info!("the broker keeps up again");
            }
            Ok(()) => {}
            Err(BrokerError::Backlog) if !remote.backlogged => {
                remote.backlogged = true;
                log::warn!("the broker's queue is full: deliveries to other nodes are dropped and counted");
            }
            Err(BrokerError::Unreachable) if remote.link_up => {
                remote.link_up = false;
                log::warn!(
                    "broker unreachable: deliveries to other nodes are dropped and counted until it \
                     is back; local deliveries go on"
                );
            }
            Err(_) => {}
        }
    }

    /// Publishes `body` on `topic`, stamped with this node's next sequence number there.
    pub(crate) fn publish(&mut self, topic: String, body: &Body) {
        let Some(remote) = &mut self.remote else { return };
        if remote.seqs.len() >= MAX_SEQUENCED_TOPICS && !remote.seqs.contains_key(&topic) {
            remote.seqs.clear();
            remote.epoch = remote.epoch.wrapping_add(1);
        }
        let seq = remote.seqs.entry(topic.clone()).or_default();
        *seq += 1;
        let stamp = Stamp {
            origin: remote.node,
            epoch: remote.epoch,
            seq: *seq,
        };
        let payload = envelope::encode(stamp, body);
        self.command_broker(BrokerCommand::Publish { topic, payload });
    }

    /// Publishes a broadcast for the other nodes' sessions of a route, room or user.
    pub(crate) fn publish_message(&mut self, topic: String, message: &Outgoing, except: Option<SessionId>) {
        if self.remote.is_some() {
            let message = message.message().clone();
            self.publish(topic, &Body::Broadcast { except, message });
        }
    }

    /// Sends `message` to session `id` of another process, if a broker can reach it. Answers
    /// whether it was handed to the broker.
    pub(crate) fn send_remote(&mut self, id: SessionId, message: &Outgoing) -> bool {
        let ours = id.node() == session::process_node() && BROKERED_HUBS.load(Ordering::Relaxed) < 2;
        if self.remote.is_none() || ours {
            return false;
        }
        let message = message.message().clone();
        self.publish(node_topic(id.node()), &Body::ToSession { id, message });
        true
    }

    pub(crate) fn remote_subscribe(&mut self, topic: String) {
        let Some(remote) = &mut self.remote else { return };
        if remote.subscribed.insert(topic.clone()) {
            self.command_broker(BrokerCommand::Subscribe(topic));
        }
    }

    pub(crate) fn remote_unsubscribe(&mut self, topic: &str) {
        let Some(remote) = &mut self.remote else { return };
        if remote.subscribed.remove(topic) {
            remote.seen.remove(topic);
            self.command_broker(BrokerCommand::Unsubscribe(topic.to_owned()));
        }
    }

    /// The first local member joined `room`: subscribe to it, and ask who is there on other
    /// nodes (they are announced to the local members as joins when the answer comes).
    pub(crate) fn room_opened(&mut self, room: &str) {
        self.remote_subscribe(room_topic(room));
        if let Some(remote) = &mut self.remote {
            remote.changed.insert(room.to_owned(), HashSet::new());
            self.command_broker(BrokerCommand::PresenceQuery(room.to_owned()));
        }
    }

    /// The last local member left `room`: stop hearing it and forget its remote members.
    pub(crate) fn room_closed(&mut self, room: &str) {
        self.remote_unsubscribe(&room_topic(room));
        if let Some(remote) = &mut self.remote {
            remote.mirror.remove(room);
            remote.changed.remove(room);
        }
    }

    /// A local member joined or left `room`: tell the other nodes, and the presence store.
    pub(crate) fn publish_presence(&mut self, room: &str, change: PresenceChange, member: Member) {
        let Some(remote) = &self.remote else { return };
        let entry = remote.entry(&member);
        let command = match change {
            PresenceChange::Joined => BrokerCommand::PresencePut {
                entries: vec![(room.to_owned(), entry)],
                ttl: remote.entry_lifetime(),
            },
            PresenceChange::Left => BrokerCommand::PresenceRemove {
                room: room.to_owned(),
                entry,
            },
        };
        self.command_broker(command);
        self.publish(room_topic(room), &Body::Presence { change, member });
    }

    /// The other nodes' members of `room`, as this node knows them.
    pub(crate) fn remote_members(&self, room: &str) -> impl Iterator<Item = Member> + '_ {
        let mirror = self.remote.as_ref().and_then(|r| r.mirror.get(room));
        mirror.into_iter().flatten().map(|(id, user)| Member {
            id: *id,
            user: user.clone(),
        })
    }

    /// Puts every local membership again, then asks for each room's live entries.
    fn refresh_presence(&mut self) {
        let Some(remote) = &self.remote else { return };
        let mut entries = Vec::new();
        for (room, ids) in &self.rooms.members {
            for id in ids {
                let member = self.member(*id);
                entries.push((room.clone(), remote.entry(&member)));
            }
        }
        let ttl = remote.entry_lifetime();
        if !entries.is_empty() {
            self.command_broker(BrokerCommand::PresencePut { entries, ttl });
        }
        let rooms: Vec<String> = self.rooms.members.keys().cloned().collect();
        for room in rooms {
            if let Some(remote) = &mut self.remote {
                remote.changed.insert(room.clone(), HashSet::new());
            }
            self.command_broker(BrokerCommand::PresenceQuery(room));
        }
    }

    /// A remote member joined or left: update the mirror and tell the local members.
    fn remote_presence(&mut self, room: &str, change: PresenceChange, member: Member) {
        let Some(remote) = &mut self.remote else { return };
        if let Some(changed) = remote.changed.get_mut(room) {
            changed.insert(member.id);
        }
        let mirror = remote.mirror.entry(room.to_owned()).or_default();
        let news = match change {
            PresenceChange::Joined => mirror.insert(member.id, member.user.clone()).is_none(),
            PresenceChange::Left => mirror.remove(&member.id).is_some(),
        };
        if news {
            let room = room.to_owned();
            self.announce(&PresenceEvent { room, change, member });
        }
    }

    /// Brings the mirror of `room` in line with the broker's live entries.
    fn reconcile(&mut self, room: &str, entries: &[String]) {
        let Some(remote) = &mut self.remote else { return };
        let Some(changed) = remote.changed.remove(room) else {
            return;
        };
        if !self.rooms.members.contains_key(room) {
            return;
        }
        let live: BTreeMap<SessionId, Option<String>> = entries
            .iter()
            .filter_map(|e| remote.parse_entry(e))
            .map(|m| (m.id, m.user))
            .collect();
        let mirror = remote.mirror.entry(room.to_owned()).or_default();
        let mut events = Vec::new();
        for (id, user) in &live {
            if !mirror.contains_key(id) && !changed.contains(id) {
                events.push((
                    PresenceChange::Joined,
                    Member {
                        id: *id,
                        user: user.clone(),
                    },
                ));
            }
        }
        if Instant::now() >= remote.removals_from {
            for (id, user) in mirror.iter() {
                if !live.contains_key(id) && !changed.contains(id) {
                    events.push((
                        PresenceChange::Left,
                        Member {
                            id: *id,
                            user: user.clone(),
                        },
                    ));
                }
            }
        }
        for (change, member) in events {
            self.remote_presence(room, change, member);
        }
    }

    /// An envelope arrived on `topic`: check its sequence, then deliver it locally.
    fn received(&mut self, topic: &str, payload: Bytes) {
        let Some(remote) = &mut self.remote else { return };
        if !remote.subscribed.contains(topic) {
            return;
        }
        let (stamp, body) = match envelope::decode(payload) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.metrics.broker().invalid();
                log::warn!("malformed message on {topic} dropped: {error}");
                return;
            }
        };
        if stamp.origin == remote.node {
            return;
        }
        let seen = remote.seen.entry(topic.to_owned()).or_default();
        match seen.get_mut(&stamp.origin) {
            Some(last) if last.0 == stamp.epoch => {
                if stamp.seq > last.1.saturating_add(1) {
                    self.metrics.broker().missed(stamp.seq - last.1 - 1);
                }
                last.1 = last.1.max(stamp.seq);
            }
            // The first message heard from this node on this topic, or a new epoch: no gap.
            _ => {
                seen.insert(stamp.origin, (stamp.epoch, stamp.seq));
            }
        }
        self.metrics.broker().received();
        self.dispatch(topic, body);
    }

    fn dispatch(&mut self, topic: &str, body: Body) {
        let (kind, name) = topic.split_once(':').unwrap_or((topic, ""));
        match (kind, body) {
            ("route", Body::Broadcast { except, message }) => {
                self.broadcast_local(name, &Outgoing::new(message), except);
            }
            ("room", Body::Broadcast { except, message }) => {
                self.deliver_to_room(name, &Outgoing::new(message), except);
            }
            ("room", Body::Presence { change, member }) => self.remote_presence(name, change, member),
            ("user", Body::Broadcast { message, .. }) => {
                self.deliver_to_user(name, &Outgoing::new(message));
            }
            ("node", Body::ToSession { id, message }) => {
                let _ = self.deliver(id, &Outgoing::new(message));
            }
            (_, body) => log::warn!("unexpected message on {topic} dropped: {body:?}"),
        }
    }
}

/// An envelope the broker received.
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
pub(crate) struct Delivered {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
}

impl Handler<Delivered> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: Delivered, _: &mut Context<Self>) {
        self.received(&msg.topic, msg.payload);
    }
}

/// A room's live presence entries, answering a query.
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
pub(crate) struct PresenceSnapshot {
    pub(crate) room: String,
    pub(crate) entries: Vec<String>,
}

impl Handler<PresenceSnapshot> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: PresenceSnapshot, _: &mut Context<Self>) {
        self.reconcile(&msg.room, &msg.entries);
    }
}

/// The broker lost (`false`) or regained (`true`) its engine.
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
pub(crate) struct BrokerLink(pub(crate) bool);

impl Handler<BrokerLink> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: BrokerLink, ctx: &mut Context<Self>) {
        let Some(remote) = &mut self.remote else { return };
        match (remote.link_up, msg.0) {
            (true, false) => {
                remote.link_up = false;
                log::warn!(
                    "broker unreachable: deliveries to other nodes are dropped and counted until it \
                     is back; local deliveries go on"
                );
            }
            (false, true) => {
                remote.link_up = true;
                remote.removals_from = Instant::now() + remote.refresh_period();
                let dropped = std::mem::take(&mut remote.dropped_while_down);
                log::info!("broker reachable again; {dropped} deliveries to other nodes were dropped meanwhile");
                // The engine may have restarted empty: put presence back now, not at the next tick.
                ctx.notify(RefreshNow);
            }
            _ => {}
        }
    }
}

/// Refreshes presence at once.
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
struct RefreshNow;

impl Handler<RefreshNow> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: RefreshNow, _: &mut Context<Self>) {
        self.refresh_presence();
    }
}

/// Commands the broker had taken and lost.
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
pub(crate) struct RemoteDropped(pub(crate) u64);

impl Handler<RemoteDropped> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: RemoteDropped, _: &mut Context<Self>) {
        self.metrics.broker().dropped(msg.0);
        if let Some(remote) = &mut self.remote {
            remote.dropped_while_down += msg.0;
        }
    }
}

#[cfg(test)]
mod tests;
