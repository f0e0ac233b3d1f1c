//! The load generator against third-party servers (the tokio-tungstenite and fastwebsockets peers,
//! Node's `ws`): its own framing must pass every echo check and lose no broadcast, or its figures
//! mean nothing; and a peer that answered wrongly would be caught here before a benchmark ran.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A peer server on a port of its choosing, killed on drop.
struct Peer {
    child: Child,
    addr: String,
}

impl Peer {
    /// Starts one of the Rust peers (a binary of this package) on port 0.
    fn start(binary: &str) -> Peer {
        let mut child = Command::new(binary)
            .args(["--addr", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a peer server");
        let stderr = child.stderr.take().expect("stderr");
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line).expect("read its address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .expect("a listening line")
            .to_owned();
        Peer { child, addr }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn loadgen(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("run loadgen");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "loadgen failed: {stdout}");
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

/// One second of broadcasts at `rate` (0: flat out) to 20 subscribers of `url`.
fn broadcast_to_20(url: &str, rate: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "broadcast",
        url,
        "--subscribers",
        "20",
        "--rate",
        rate,
        "--seconds",
        "1",
    ];
    args.extend_from_slice(extra);
    loadgen(&args)
}

/// Something was published, and each of `subscribers` got all of it.
fn assert_every_subscriber_got_everything(result: &serde_json::Value, subscribers: u64) {
    let published = result["published"].as_u64().unwrap_or(0);
    assert!(published > 0, "{result}");
    assert_eq!(result["lost"], 0, "{result}");
    assert_eq!(result["deliveries"].as_u64(), Some(published * subscribers), "{result}");
}

/// The Rust peers the benchmark runs.
const RUST_PEERS: [&str; 2] = [
    env!("CARGO_BIN_EXE_tungstenite_server"),
    env!("CARGO_BIN_EXE_fastwebsockets_server"),
];

#[test]
fn echoes_are_checked_and_counted_for_small_and_large_messages() {
    for binary in RUST_PEERS {
        echoes_are_checked_and_counted(binary);
    }
}

fn echoes_are_checked_and_counted(binary: &str) {
    let peer = Peer::start(binary);
    let url = format!("ws://{}/echo", peer.addr);
    for (size, binary) in [("32", false), ("70000", true)] {
        let mut args = vec![
            "echo",
            &url,
            "--connections",
            "4",
            "--in-flight",
            "4",
            "--size",
            size,
            "--seconds",
            "1",
        ];
        if binary {
            args.push("--binary");
        }
        let result = loadgen(&args);
        assert_eq!(result["errors"], 0, "{result}");
        assert!(result["messages"].as_u64().unwrap_or(0) > 0, "{result}");
    }
}

#[test]
fn every_broadcast_is_delivered_to_every_subscriber() {
    for binary in RUST_PEERS {
        let peer = Peer::start(binary);
        let url = format!("ws://{}/broadcast", peer.addr);
        for rate in ["100", "0"] {
            let result = broadcast_to_20(&url, rate, &[]);
            assert_every_subscriber_got_everything(&result, 20);
        }
    }
}

/// Node's ws (bench/node, installed by its script) on a free port, killed on drop.
fn start_node_ws(extra: &[&str]) -> (Peer, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/node");
    let install = Command::new(format!("{root}/install.sh"))
        .status()
        .expect("run bench/node/install.sh");
    assert!(
        install.success(),
        "bench/node/install.sh failed (it needs Node.js and npm)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new("node")
        .arg(format!("{root}/ws_server.js"))
        .args(["--addr", &addr])
        .args(extra)
        .spawn()
        .expect("start node");
    let peer = Peer {
        child,
        addr: addr.clone(),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "node ws did not listen on {addr}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (peer, addr)
}

#[test]
fn compressed_broadcasts_from_a_third_party_server_are_inflated_and_counted() {
    let (_peer, addr) = start_node_ws(&["--deflate"]);
    let url = format!("ws://{addr}/broadcast");
    let result = broadcast_to_20(&url, "50", &["--json-size", "1024", "--deflate"]);
    assert_every_subscriber_got_everything(&result, 20);
    // Compressed on the wire: chat text shrinks to well under half.
    let wire = result["wire_bytes_per_message"].as_f64().unwrap_or(0.0);
    assert!(wire > 0.0 && wire < 512.0, "{result}");
}
