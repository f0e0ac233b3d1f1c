use std::sync::Arc;

use parking_lot::Mutex;

use crate::hub::{Hub, HubError, SessionId, SessionSink, Undelivered};
use crate::message::{Message, Outgoing};
use crate::protocol::CloseFrame;

/// A session that records what it is given, or refuses everything once closed.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<Message>>,
    closed: bool,
}

impl SessionSink for Recorder {
    fn deliver(&self, message: &Outgoing) -> Result<(), Undelivered> {
        if self.closed {
            return Err(Undelivered::Closed);
        }
        self.got.lock().push(message.message().clone());
        Ok(())
    }

    fn close(&self, frame: &CloseFrame) {
        self.got.lock().push(Message::from(format!("closed {}", frame.code.0)));
    }
}

fn join(hub: &Hub, route: &str, sink: &Arc<Recorder>) -> SessionId {
    let id = SessionId::next();
    hub.connect(id, route, sink.clone(), 100).unwrap();
    id
}

#[actix_rt::test]
async fn broadcast_reaches_a_route_except_one_and_counts() {
    let hub = Hub::start();
    let (a, b, c) = (
        Arc::new(Recorder::default()),
        Arc::new(Recorder::default()),
        Arc::new(Recorder::default()),
    );
    let a_id = join(&hub, "/chat", &a);
    join(&hub, "/chat", &b);
    join(&hub, "/other", &c);
    assert_eq!(hub.broadcast("/chat", "all").await, Ok(2));
    assert_eq!(hub.broadcast_except("/chat", "not a", a_id).await, Ok(1));
    assert_eq!(a.got.lock().len(), 1);
    assert_eq!(b.got.lock().len(), 2);
    assert!(c.got.lock().is_empty());
    assert_eq!(hub.broadcast("/nowhere", "x").await, Ok(0));
}

#[actix_rt::test]
async fn send_to_reports_gone_and_refusing_sessions() {
    let hub = Hub::start();
    let open = Arc::new(Recorder::default());
    let closed = Arc::new(Recorder {
        closed: true,
        ..Recorder::default()
    });
    let open_id = join(&hub, "/r", &open);
    let closed_id = join(&hub, "/r", &closed);
    assert_eq!(hub.send_to(open_id, "hi").await, Ok(()));
    assert_eq!(
        hub.send_to(closed_id, "hi").await,
        Err(HubError::Undelivered(closed_id, Undelivered::Closed))
    );
    assert_eq!(hub.undelivered().await, Ok(1));
    hub.disconnect(open_id);
    assert_eq!(hub.send_to(open_id, "hi").await, Err(HubError::NoSuchSession(open_id)));
    assert_eq!(hub.sessions("/r").await, Ok(vec![closed_id]));
}

#[actix_rt::test]
async fn routes_are_known_from_registration_even_without_sessions() {
    let hub = Hub::start();
    hub.register_route("/b");
    join(&hub, "/a", &Arc::new(Recorder::default()));
    assert_eq!(hub.routes().await, Ok(vec!["/a".to_string(), "/b".to_string()]));
}

#[actix_rt::test]
async fn close_all_reaches_every_session() {
    let hub = Hub::start();
    let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    join(&hub, "/x", &a);
    join(&hub, "/y", &b);
    assert_eq!(hub.close_all(1001, "bye").await, Ok(2));
    assert_eq!(a.got.lock().as_slice(), &[Message::from("closed 1001")]);
    assert_eq!(b.got.lock().len(), 1);
}

#[actix_rt::test]
async fn rooms_reach_their_members_and_forget_disconnected_ones() {
    let hub = Hub::start();
    let (a, b, c) = (
        Arc::new(Recorder::default()),
        Arc::new(Recorder::default()),
        Arc::new(Recorder::default()),
    );
    let (a_id, b_id, c_id) = (
        join(&hub, "/chat", &a),
        join(&hub, "/chat", &b),
        join(&hub, "/chat", &c),
    );
    hub.join(a_id, "lobby").await.unwrap();
    hub.join(a_id, "games").await.unwrap();
    let members = hub.join(b_id, "lobby").await.unwrap();
    assert_eq!(members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a_id, b_id]);
    hub.join(c_id, "games").await.unwrap();
    assert_eq!(hub.broadcast_room("lobby", "hi lobby", Some(a_id)).await, Ok(1));
    assert_eq!(hub.broadcast_room("games", "hi games", None).await, Ok(2));
    assert_eq!(a.got.lock().len(), 1);
    assert_eq!(b.got.lock().as_slice(), &[Message::from("hi lobby")]);
    hub.disconnect(a_id);
    assert_eq!(hub.members("lobby").await.unwrap().len(), 1);
    assert_eq!(
        hub.members("games")
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        vec![c_id]
    );
    assert_eq!(hub.leave(b_id, "lobby").await, Ok(true));
    assert_eq!(hub.leave(b_id, "lobby").await, Ok(false));
    assert!(hub.members("lobby").await.unwrap().is_empty());
}

#[actix_rt::test]
async fn the_joiner_gets_the_state_and_every_member_gets_diffs() {
    use crate::hub::rooms::PresenceChange;
    let hub = Hub::start();
    hub.on_presence(|event| {
        let verb = if event.change == PresenceChange::Joined {
            "joined"
        } else {
            "left"
        };
        Some(Message::from(format!(
            "{} {verb}",
            event.member.user.clone().unwrap_or_default()
        )))
    });
    hub.on_presence_state(|room, members| {
        let names: Vec<String> = members.iter().map(|m| m.user.clone().unwrap_or_default()).collect();
        Some(Message::from(format!("{room}: {}", names.join(","))))
    });
    let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let (a_id, b_id) = (join(&hub, "/chat", &a), join(&hub, "/chat", &b));
    assert_eq!(hub.claim_user(a_id, "ann").await, Ok(true));
    assert_eq!(hub.claim_user(b_id, "ann").await, Ok(false));
    assert_eq!(hub.claim_user(b_id, "bob").await, Ok(true));
    hub.join(a_id, "r").await.unwrap();
    hub.join(b_id, "r").await.unwrap();
    hub.disconnect(b_id);
    assert_eq!(hub.members("r").await.unwrap().len(), 1);
    let seen: Vec<Message> = a.got.lock().clone();
    assert_eq!(
        seen,
        vec![
            Message::from("r: ann"),
            Message::from("ann joined"),
            Message::from("bob joined"),
            Message::from("bob left")
        ]
    );
    assert_eq!(
        b.got.lock().clone(),
        vec![Message::from("r: ann,bob"), Message::from("bob joined")],
        "bob's state lists both, then its own join's diff"
    );
    // bob's name is free again once bob is gone.
    let c = Arc::new(Recorder::default());
    let c_id = join(&hub, "/chat", &c);
    assert_eq!(hub.claim_user(c_id, "bob").await, Ok(true));
}

#[actix_rt::test]
async fn a_session_is_in_at_most_its_cap_of_rooms() {
    let hub = Hub::start();
    let sink = Arc::new(Recorder::default());
    let id = SessionId::next();
    hub.connect(id, "/chat", sink, 3).unwrap();
    for room in ["a", "b", "c"] {
        hub.join(id, room).await.unwrap();
    }
    assert_eq!(
        hub.join(id, "a").await.map(|m| m.len()),
        Ok(1),
        "rejoining is not a new room"
    );
    assert_eq!(hub.join(id, "d").await, Err(HubError::TooManyRooms { id, max: 3 }));
    assert_eq!(hub.leave(id, "a").await, Ok(true));
    assert!(hub.join(id, "d").await.is_ok());
}

#[actix_rt::test]
async fn the_leaves_of_a_disconnect_are_announced_in_slices_with_other_messages_between() {
    use crate::hub::rooms::LEAVE_SLICE;
    let hub = Hub::start();
    hub.on_presence(|event| Some(Message::from(format!("left {}", event.room))));
    let rooms = 3 * LEAVE_SLICE + 1;
    let leaver = SessionId::next();
    hub.connect(leaver, "/chat", Arc::new(Recorder::default()), rooms)
        .unwrap();
    let watcher = Arc::new(Recorder::default());
    let watcher_id = join(&hub, "/chat", &watcher);
    for room in 0..rooms {
        hub.join(leaver, &room.to_string()).await.unwrap();
        hub.join(watcher_id, &room.to_string()).await.unwrap();
    }
    watcher.got.lock().clear();
    hub.disconnect(leaver);
    // Sent right after the disconnect: handled before the last slices of its leaves.
    hub.send_to(watcher_id, "between").await.unwrap();
    let _ = hub.members("0").await;
    // Every leave is announced in the end, in room order.
    let mut got = Vec::new();
    for _ in 0..100 {
        got = watcher.got.lock().clone();
        if got.len() == rooms + 1 {
            break;
        }
        let _ = hub.members("0").await;
    }
    assert_eq!(got.len(), rooms + 1, "{got:?}");
    let at = got.iter().position(|m| *m == Message::from("between")).unwrap();
    assert!(
        at >= LEAVE_SLICE && at < rooms,
        "the direct message came at {at} of {}",
        got.len()
    );
}

#[actix_rt::test]
async fn a_user_key_reaches_all_its_sessions() {
    let hub = Hub::start();
    let (phone, laptop, other) = (
        Arc::new(Recorder::default()),
        Arc::new(Recorder::default()),
        Arc::new(Recorder::default()),
    );
    for (sink, user) in [(&phone, "ann"), (&laptop, "ann"), (&other, "bob")] {
        let id = join(&hub, "/chat", sink);
        hub.set_user(id, user).await.unwrap();
    }
    assert_eq!(hub.send_to_user("ann", "for ann").await, Ok(2));
    assert_eq!(hub.send_to_user("nobody", "lost").await, Ok(0));
    assert!(other.got.lock().is_empty());
}

#[test]
fn the_global_hub_works_without_an_actix_system() {
    let hub = Hub::global();
    let sink = Arc::new(Recorder::default());
    let id = join(&hub, "/global-test", &sink);
    let runtime = tokio_runtime();
    assert_eq!(runtime.block_on(hub.send_to(id, "x")), Ok(()));
    assert_eq!(sink.got.lock().len(), 1);
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}
