//! Several chat processes over one real Redis act as one chat: rooms, presence and direct
//! messages cross nodes; a node with no member in a room hears none of it; a killed node leaves
//! presence within its bound; Redis killed and restarted, traffic resumes and the gap is counted.
//!
//! Each test starts its own `redis-server` on a free loopback port and its own chat processes
//! (`examples/chat --redis`), or two servers in this process whose hubs share the Redis, driven
//! by tokio-tungstenite clients.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::chat::{self, receive, receive_kind, send};
use common::process::start_server;
use common::redis::Redis;
use common::{next_text, Client, Options, TestServer, PATIENCE};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

/// One chat process of the cluster.
struct Node {
    process: Child,
    addr: String,
}

/// Starts `count` chat processes sharing `redis`, with a presence TTL of `ttl` seconds.
async fn nodes(redis: &Redis, count: usize, ttl: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..count {
        let (process, addr) = start_server("chat", &["--redis", &redis.url(), "--presence-ttl", ttl]).await;
        nodes.push(Node { process, addr });
    }
    nodes
}

async fn connect(node: &Node) -> Client {
    chat::connect(&node.addr).await
}

/// Joins `room` as `name` and reads the presence state.
async fn join(client: &mut Client, room: &str, name: &str) {
    send(client, json!({"type": "join", "room": room, "name": name})).await;
    assert_eq!(receive_kind(client, "presence").await["room"], room);
}

/// Applies presence diffs until `client` sees exactly `members` in `room`; answers how long it took.
async fn await_members(client: &mut Client, room: &str, members: &[&str], seen: &mut BTreeSet<String>) -> Duration {
    let start = Instant::now();
    let want: BTreeSet<String> = members.iter().map(|m| m.to_string()).collect();
    while *seen != want {
        let diff = receive_kind(client, "presence_diff").await;
        assert_eq!(diff["room"], room);
        for name in diff["joins"].as_array().unwrap() {
            seen.insert(name.as_str().unwrap().to_owned());
        }
        for name in diff["leaves"].as_array().unwrap() {
            seen.remove(name.as_str().unwrap());
        }
    }
    start.elapsed()
}

/// A counter of the node's `/metrics`.
async fn counter(node: &Node, name: &str) -> u64 {
    let mut stream = tokio::net::TcpStream::connect(&node.addr).await.unwrap();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        node.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut body = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    let line = body
        .lines()
        .find(|l| l.starts_with(&format!("switchboard_{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {body}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn rooms_presence_and_direct_messages_cross_three_nodes() {
    let redis = Redis::start().await;
    let nodes = nodes(&redis, 3, "15").await;
    let (mut ann, mut bob, mut cy) = (
        connect(&nodes[0]).await,
        connect(&nodes[1]).await,
        connect(&nodes[2]).await,
    );
    let (mut ann_sees, mut bob_sees, mut cy_sees) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    join(&mut ann, "lobby", "ann").await;
    join(&mut bob, "lobby", "bob").await;
    join(&mut cy, "lobby", "cy").await;
    let everyone = ["ann", "bob", "cy"];
    await_members(&mut ann, "lobby", &everyone, &mut ann_sees).await;
    await_members(&mut bob, "lobby", &everyone, &mut bob_sees).await;
    await_members(&mut cy, "lobby", &everyone, &mut cy_sees).await;

    send(
        &mut ann,
        json!({"type": "message", "room": "lobby", "text": "hello from node 0"}),
    )
    .await;
    for client in [&mut ann, &mut bob, &mut cy] {
        let message = receive_kind(client, "message").await;
        assert_eq!(
            (message["from"].as_str(), message["text"].as_str()),
            (Some("ann"), Some("hello from node 0"))
        );
    }

    // A direct message from node 2 to ann on node 0; bob, on node 1, gets nothing of it.
    send(&mut cy, json!({"type": "direct", "to": "ann", "text": "psst"})).await;
    let direct = receive_kind(&mut ann, "direct").await;
    assert_eq!(
        direct,
        json!({"type": "direct", "from": "cy", "to": "ann", "text": "psst"})
    );
    assert_eq!(
        receive_kind(&mut cy, "direct").await,
        direct,
        "the sender gets its copy"
    );
    send(
        &mut bob,
        json!({"type": "message", "room": "lobby", "text": "after the secret"}),
    )
    .await;
    let next = receive(&mut bob).await;
    assert_eq!(
        (next["type"].as_str(), next["text"].as_str()),
        (Some("message"), Some("after the secret"))
    );

    // cy leaves by disconnecting: both other nodes announce it.
    drop(cy);
    await_members(&mut ann, "lobby", &["ann", "bob"], &mut ann_sees).await;
    await_members(&mut bob, "lobby", &["ann", "bob"], &mut bob_sees).await;
}

#[tokio::test]
async fn a_node_with_no_member_in_a_room_receives_none_of_its_messages() {
    let redis = Redis::start().await;
    let nodes = nodes(&redis, 3, "15").await;
    let (mut ann, mut bob, mut cy) = (
        connect(&nodes[0]).await,
        connect(&nodes[1]).await,
        connect(&nodes[2]).await,
    );
    join(&mut ann, "red", "ann").await;
    join(&mut bob, "red", "bob").await;
    join(&mut cy, "blue", "cy").await;
    await_members(&mut ann, "red", &["ann", "bob"], &mut BTreeSet::new()).await;
    let before = [
        counter(&nodes[1], "broker_received_total").await,
        counter(&nodes[2], "broker_received_total").await,
    ];

    const MESSAGES: usize = 50;
    for i in 0..MESSAGES {
        send(
            &mut ann,
            json!({"type": "message", "room": "red", "text": format!("red {i}")}),
        )
        .await;
    }
    for i in 0..MESSAGES {
        assert_eq!(
            receive_kind(&mut bob, "message").await["text"],
            format!("red {i}"),
            "in order"
        );
    }
    let after = [
        counter(&nodes[1], "broker_received_total").await,
        counter(&nodes[2], "broker_received_total").await,
    ];
    assert!(
        after[0] - before[0] >= MESSAGES as u64,
        "node 1 received them: {before:?} → {after:?}"
    );
    assert_eq!(
        after[1], before[1],
        "node 2, with no member in red, received nothing: {before:?} → {after:?}"
    );
    // And cy, on that node, got none of red's messages: its next message is its own in blue.
    send(&mut cy, json!({"type": "message", "room": "blue", "text": "only blue"})).await;
    assert_eq!(receive_kind(&mut cy, "message").await["text"], "only blue");
}

#[tokio::test]
async fn a_killed_node_leaves_presence_within_the_bound() {
    const TTL: Duration = Duration::from_secs(3);
    let redis = Redis::start().await;
    let mut nodes = nodes(&redis, 2, "3").await;
    let (mut ann, mut bob) = (connect(&nodes[0]).await, connect(&nodes[1]).await);
    let mut ann_sees = BTreeSet::new();
    join(&mut ann, "lobby", "ann").await;
    join(&mut bob, "lobby", "bob").await;
    await_members(&mut ann, "lobby", &["ann", "bob"], &mut ann_sees).await;

    nodes[1].process.start_kill().unwrap(); // SIGKILL: no close, no leave published
    let took = await_members(&mut ann, "lobby", &["ann"], &mut ann_sees).await;
    // The bound is the TTL; the margin covers process scheduling on a loaded machine.
    assert!(
        took <= TTL + Duration::from_secs(2),
        "bob left after {took:?}, bound {TTL:?}"
    );
    drop(bob);
}

#[tokio::test]
async fn redis_killed_and_restarted_traffic_resumes_and_the_gap_is_counted() {
    let mut redis = Redis::start().await;
    let nodes = nodes(&redis, 2, "15").await;
    let (mut ann, mut bob) = (connect(&nodes[0]).await, connect(&nodes[1]).await);
    join(&mut ann, "lobby", "ann").await;
    join(&mut bob, "lobby", "bob").await;
    await_members(&mut ann, "lobby", &["ann", "bob"], &mut BTreeSet::new()).await;
    // Node 1 hears from node 0 on the room before the outage, so a gap has a start to count from.
    send(&mut ann, json!({"type": "message", "room": "lobby", "text": "before"})).await;
    assert_eq!(receive_kind(&mut bob, "message").await["text"], "before");
    assert_eq!(receive_kind(&mut ann, "message").await["text"], "before");

    redis.kill().await;
    // Local delivery goes on while Redis is away; what was meant for node 1 is dropped, counted.
    let mut sent = 0;
    while counter(&nodes[0], "broker_dropped_total").await == 0 {
        assert!(sent < 100, "node 0 never counted a dropped message");
        sent += 1;
        send(
            &mut ann,
            json!({"type": "message", "room": "lobby", "text": format!("during {sent}")}),
        )
        .await;
        assert_eq!(
            receive_kind(&mut ann, "message").await["text"],
            format!("during {sent}")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    redis.restart().await;
    // Traffic resumes with no restart of either node.
    let deadline = Instant::now() + PATIENCE;
    let mut after = 0;
    let resumed = loop {
        assert!(Instant::now() < deadline, "traffic never resumed after Redis came back");
        after += 1;
        send(
            &mut ann,
            json!({"type": "message", "room": "lobby", "text": format!("after {after}")}),
        )
        .await;
        let got = tokio::time::timeout(Duration::from_millis(200), receive_kind(&mut bob, "message")).await;
        if let Ok(message) = got {
            let text = message["text"].as_str().unwrap().to_owned();
            if text.starts_with("after") {
                break text;
            }
        }
    };
    assert!(resumed.starts_with("after"));
    let (dropped, missed) = (
        counter(&nodes[0], "broker_dropped_total").await,
        counter(&nodes[1], "broker_missed_total").await,
    );
    assert!(dropped > 0, "the sender counted its gap");
    assert!(missed > 0, "the receiver counted its gap, from the sequence numbers");
}

/// A server in this process whose hub is a node over `redis`, with one route that tells each
/// session its id.
fn node_in_process(redis: &Redis) -> TestServer {
    let options = Options {
        redis: Some(redis.url()),
        ..Options::default()
    };
    TestServer::spawn(options, |cfg, _| {
        cfg.service(switchboard::websocket("/feed", |_, ws| {
            ws.send(ws.id().as_u64().to_string());
        }));
    })
}

async fn connect_feed(server: &TestServer) -> (Client, switchboard::SessionId) {
    let mut client = server.connect("/feed").await;
    let id = next_text(&mut client).await.parse().unwrap();
    (client, switchboard::SessionId::from_u64(id))
}

/// Sends with `send` until `client` receives `text` (subscriptions are made asynchronously, so
/// the first messages may go before the other node listens); answers how many sends it took.
async fn until_received<F, Fut>(client: &mut Client, text: &str, mut send: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for attempt in 1..=50 {
        send().await;
        let got = tokio::time::timeout(Duration::from_millis(200), next_text(client)).await;
        if got.as_deref() == Ok(text) {
            return attempt;
        }
    }
    panic!("{text} never arrived");
}

/// The next text that is not `skip` (late copies of a message repeated by `until_received`).
async fn next_other_than(client: &mut Client, skip: &str) -> String {
    loop {
        let text = next_text(client).await;
        if text != skip {
            return text;
        }
    }
}

#[tokio::test]
async fn hub_broadcasts_and_sends_reach_sessions_of_another_node() {
    let redis = Redis::start().await;
    let (one, two) = (node_in_process(&redis), node_in_process(&redis));
    let (mut ann, ann_id) = connect_feed(&one).await;
    let (mut bob, bob_id) = connect_feed(&two).await;

    // A route broadcast from node one reaches node two's session (and its own).
    let hub = one.hub.clone();
    until_received(&mut bob, "to the route", || {
        let hub = hub.clone();
        async move {
            assert_eq!(hub.broadcast("/feed", "to the route").await, Ok(1), "one local session");
        }
    })
    .await;
    while next_text(&mut ann).await != "to the route" {}

    // A message to one session, by id, from the other node.
    assert_eq!(one.hub.send_to(bob_id, "to bob alone").await, Ok(()));
    assert_eq!(next_other_than(&mut bob, "to the route").await, "to bob alone");

    // A message to a user whose session is on the other node.
    one.hub.set_user(ann_id, "ann").await.unwrap();
    let hub = two.hub.clone();
    until_received(&mut ann, "to ann", || {
        let hub = hub.clone();
        async move {
            assert_eq!(
                hub.send_to_user("ann", "to ann").await,
                Ok(0),
                "no local session of ann"
            );
        }
    })
    .await;
    let counted = two.hub.metrics().snapshot().broker;
    assert!(counted.published >= 1 && counted.received >= 1, "{counted:?}");
}
