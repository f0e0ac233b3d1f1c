//! The supervisor's side of the broker, against a broker that records commands and a hand-fed
//! inbox: no Redis, no sockets.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::hub::envelope::{self, Body, Stamp};
use crate::hub::{
    Broker, BrokerCommand, BrokerError, Hub, Inbox, Member, PresenceChange, SessionId, SessionSink, Undelivered,
};
use crate::message::{Message, Outgoing};
use crate::protocol::CloseFrame;

#[derive(Debug, Default)]
struct Recording {
    commands: Mutex<Vec<BrokerCommand>>,
    inbox: Mutex<Option<Inbox>>,
}

/// A broker that records what it is asked and hands out its inbox.
#[derive(Debug, Clone, Default)]
struct TestBroker(Arc<Recording>);

impl Broker for TestBroker {
    fn start(&self, inbox: Inbox) {
        *self.0.inbox.lock() = Some(inbox);
    }
    fn send(&self, command: BrokerCommand) -> Result<(), BrokerError> {
        self.0.commands.lock().push(command);
        Ok(())
    }
    fn presence_ttl(&self) -> Duration {
        Duration::from_millis(300)
    }
}

impl TestBroker {
    fn inbox(&self) -> Inbox {
        self.0.inbox.lock().clone().unwrap()
    }
    fn take(&self) -> Vec<BrokerCommand> {
        std::mem::take(&mut *self.0.commands.lock())
    }
}

#[derive(Default)]
struct Sink(Mutex<Vec<Message>>);

impl SessionSink for Sink {
    fn deliver(&self, message: &Outgoing) -> Result<(), Undelivered> {
        self.0.lock().push(message.message().clone());
        Ok(())
    }
    fn close(&self, _: &CloseFrame) {}
}

fn connect(hub: &Hub, route: &str) -> (SessionId, Arc<Sink>) {
    let (id, sink) = (SessionId::next(), Arc::new(Sink::default()));
    hub.connect(id, route, sink.clone(), 10).unwrap();
    (id, sink)
}

fn envelope(origin: u64, seq: u64, body: &Body) -> bytes::Bytes {
    envelope::encode(Stamp { origin, epoch: 1, seq }, body)
}

fn subscriptions(commands: &[BrokerCommand]) -> Vec<String> {
    commands
        .iter()
        .filter_map(|c| match c {
            BrokerCommand::Subscribe(t) => Some(format!("+{t}")),
            BrokerCommand::Unsubscribe(t) => Some(format!("-{t}")),
            _ => None,
        })
        .collect()
}

#[actix_rt::test]
async fn topics_are_subscribed_only_while_a_local_session_is_there() {
    let broker = TestBroker::default();
    let hub = Hub::with_broker(broker.clone());
    let (id, _sink) = connect(&hub, "/chat");
    hub.join(id, "lobby").await.unwrap();
    hub.set_user(id, "ann").await.unwrap();
    let node = format!("+node:{:x}", id.node());
    assert_eq!(
        subscriptions(&broker.take()),
        [node, "+route:/chat".into(), "+room:lobby".into(), "+user:ann".into()]
    );

    assert_eq!(hub.broadcast_room("lobby", "hi", None).await, Ok(1));
    let published: Vec<_> = broker
        .take()
        .into_iter()
        .filter_map(|c| match c {
            BrokerCommand::Publish { topic, payload } => Some((topic, envelope::decode(payload).unwrap().1)),
            _ => None,
        })
        .collect();
    let body = Body::Broadcast {
        except: None,
        message: Message::from("hi"),
    };
    assert_eq!(
        published,
        [("room:lobby".to_owned(), body)],
        "one envelope, whatever the members"
    );

    hub.leave(id, "lobby").await.unwrap();
    hub.disconnect(id);
    hub.routes().await.unwrap();
    let left = broker.take();
    assert_eq!(subscriptions(&left), ["-room:lobby", "-user:ann", "-route:/chat"]);
    assert!(left
        .iter()
        .any(|c| matches!(c, BrokerCommand::PresenceRemove { room, .. } if room == "lobby")));
}

#[actix_rt::test]
async fn remote_messages_reach_local_sessions_and_gaps_are_counted() {
    let broker = TestBroker::default();
    let hub = Hub::with_broker(broker.clone());
    let (id, sink) = connect(&hub, "/chat");
    hub.join(id, "lobby").await.unwrap();
    let inbox = broker.inbox();
    let say = |text: &str| Body::Broadcast {
        except: None,
        message: Message::from(text),
    };
    inbox.received("room:lobby", envelope(7, 1, &say("one")));
    inbox.received("room:lobby", envelope(7, 4, &say("four")));
    inbox.received("room:lobby", bytes::Bytes::from_static(b"garbage"));
    inbox.received("room:elsewhere", envelope(7, 1, &say("not subscribed")));
    let direct = Body::ToSession {
        id,
        message: Message::from("direct"),
    };
    inbox.received(&format!("node:{:x}", id.node()), envelope(8, 1, &direct));
    hub.routes().await.unwrap();
    let got: Vec<String> = sink.0.lock().iter().map(|m| format!("{m:?}")).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    let broker_counts = hub.metrics().snapshot().broker;
    assert_eq!(
        (broker_counts.received, broker_counts.missed, broker_counts.invalid),
        (3, 2, 1)
    );
}

#[actix_rt::test]
async fn presence_of_other_nodes_is_reconciled_into_diffs() {
    let broker = TestBroker::default();
    let hub = Hub::with_broker(broker.clone());
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    hub.on_presence(move |event| {
        seen.lock().push((event.change, event.member.clone()));
        None
    });
    let (id, _sink) = connect(&hub, "/chat");
    hub.join(id, "lobby").await.unwrap();
    // The room's first local member: a query went out; its answer names a member elsewhere.
    assert!(broker.take().contains(&BrokerCommand::PresenceQuery("lobby".into())));
    let inbox = broker.inbox();
    inbox.presence("lobby", vec!["abc:123:zed".into(), "bad entry".into()]);
    let zed = Member {
        id: SessionId::from_u64(123),
        user: Some("zed".into()),
    };
    let members = hub.members("lobby").await.unwrap();
    assert!(members.contains(&zed), "{members:?}");
    // zed's entries expire: the next refresh's answer lacks it, and it leaves.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !broker.take().contains(&BrokerCommand::PresenceQuery("lobby".into())) {
        assert!(std::time::Instant::now() < deadline, "no refresh");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    inbox.presence("lobby", vec![]);
    hub.routes().await.unwrap();
    let events = events.lock().clone();
    let remote: Vec<_> = events.into_iter().filter(|(_, m)| m.id == zed.id).collect();
    assert_eq!(
        remote,
        [(PresenceChange::Joined, zed.clone()), (PresenceChange::Left, zed)]
    );
}
