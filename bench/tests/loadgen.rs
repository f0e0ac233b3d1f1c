//! The load generator against a third-party server (the tokio-tungstenite peer): its own framing
//! must pass every echo check and lose no broadcast, or its figures mean nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A peer server on a port of its choosing, killed on drop.
struct Peer {
    child: Child,
    addr: String,
}

impl Peer {
    fn start() -> Peer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tungstenite_server"))
            .args(["--addr", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tungstenite_server");
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

#[test]
fn echoes_are_checked_and_counted_for_small_and_large_messages() {
    let peer = Peer::start();
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
    let peer = Peer::start();
    let url = format!("ws://{}/broadcast", peer.addr);
    let result = loadgen(&[
        "broadcast",
        &url,
        "--subscribers",
        "20",
        "--rate",
        "100",
        "--seconds",
        "1",
    ]);
    let published = result["published"].as_u64().unwrap_or(0);
    assert!(published > 0, "{result}");
    assert_eq!(result["lost"], 0, "{result}");
    assert_eq!(result["deliveries"].as_u64(), Some(published * 20), "{result}");
}
