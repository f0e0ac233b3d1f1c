//! Hostile-peer measurements for issue 13: what a flooding or churning peer costs a server, in
//! memory and in other users' round trips. Prints one JSON line per run.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9001 &
//! cargo run --release -p switchboard-bench --bin hostile -- ping-flood ws://127.0.0.1:9001/echo --pings 3000000 --pid $!
//! cargo run --release --example chat -- --addr 127.0.0.1:8080 &
//! cargo run --release -p switchboard-bench --bin hostile -- presence ws://127.0.0.1:8080/chat --members 300 --pairs 300
//! cargo run --release -p switchboard-bench --bin hostile -- room-flood ws://127.0.0.1:8080/chat --joins 20000 --pid $!
//! cargo run --release --example echo -- --addr 127.0.0.1:9001 --compression shared --max-message-size 1048576 &
//! cargo run --release -p switchboard-bench --bin hostile -- deflate-bomb ws://127.0.0.1:9001/echo --pid $!
//! ```
//!
//! Every loop is bounded in count, and every wait in time.

#![allow(clippy::print_stdout, clippy::print_stderr)]
// Only `serde_json::Value` is indexed here, and its index answers `Null` for what is missing.
#![allow(clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard::protocol::{encode_frame, random_mask, OpCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The longest any single wait may take.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(about = "hostile-peer measurements")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// One connection sends PINGS pings of 125 bytes and never reads, while another echoes.
    PingFlood {
        url: String,
        #[arg(long, default_value_t = 3_000_000)]
        pings: usize,
        /// The server's PID, to read its memory.
        #[arg(long)]
        pid: u32,
    },
    /// MEMBERS chat users in one room; another connection leaves and rejoins it PAIRS times.
    Presence {
        url: String,
        #[arg(long, default_value_t = 300)]
        members: usize,
        #[arg(long, default_value_t = 300)]
        pairs: usize,
    },
    /// One chat connection joins JOINS rooms, then leaves; another user's round trip after it.
    RoomFlood {
        url: String,
        #[arg(long, default_value_t = 20_000)]
        joins: usize,
        #[arg(long)]
        pid: u32,
    },
    /// BOMBS connections, one after another, each send one compressed message that inflates to
    /// INFLATED_MIB MiB of zeros (about 16 KiB on the wire); another connection echoes meanwhile.
    /// Reports the close codes and the server's peak memory (VmHWM) against its memory before.
    DeflateBomb {
        url: String,
        #[arg(long, default_value_t = 16)]
        inflated_mib: usize,
        #[arg(long, default_value_t = 20)]
        bombs: usize,
        #[arg(long)]
        pid: u32,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let result = match Args::parse().scenario {
        Scenario::PingFlood { url, pings, pid } => ping_flood(&url, pings, pid).await?,
        Scenario::Presence { url, members, pairs } => presence(&url, members, pairs).await?,
        Scenario::RoomFlood { url, joins, pid } => room_flood(&url, joins, pid).await?,
        Scenario::DeflateBomb {
            url,
            inflated_mib,
            bombs,
            pid,
        } => deflate_bomb(&url, inflated_mib, bombs, pid).await?,
    };
    println!("{result}");
    Ok(())
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A memory figure of the server's /proc status (VmRSS, VmHWM: its peak), in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn connect(url: &str) -> Result<Client, Box<dyn std::error::Error>> {
    Ok(tokio_tungstenite::connect_async(url).await?.0)
}

/// A masked client frame.
fn frame(opcode: OpCode, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(&mut out, opcode, true, payload, Some(random_mask()));
    out
}

async fn ping_flood(url: &str, pings: usize, pid: u32) -> Result<Value, Box<dyn std::error::Error>> {
    let rest = url.strip_prefix("ws://").ok_or("a ws:// URL")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut flooder = TcpStream::connect(host).await?;
    let request = format!(
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    flooder.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 1024];
    let n = flooder.read(&mut head).await?;
    if !head.get(..n).unwrap_or_default().starts_with(b"HTTP/1.1 101") {
        return Err("the flooder was not upgraded".into());
    }
    let mut echoer = connect(url).await?;
    let before = rss_kib(pid);
    const PER_BATCH: usize = 1000;
    let batch: Vec<u8> = (0..PER_BATCH).flat_map(|_| frame(OpCode::Ping, &[b'p'; 125])).collect();
    let start = Instant::now();
    let flood = async {
        let mut sent = 0;
        while sent < pings {
            if flooder.write_all(&batch).await.is_err() {
                break;
            }
            sent += PER_BATCH;
        }
        sent
    };
    let peak = std::cell::Cell::new(before);
    let watch = async {
        let (mut echoes, mut slowest) = (0u64, Duration::ZERO);
        loop {
            peak.set(peak.get().max(rss_kib(pid)));
            let sent = Instant::now();
            echoer.send(Message::text("still here?")).await?;
            match tokio::time::timeout(PATIENCE, echoer.next()).await? {
                Some(Ok(Message::Text(_))) => echoes += 1,
                other => return Err(format!("the echoer got {other:?}").into()),
            }
            slowest = slowest.max(sent.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
            if echoes > 100_000 {
                return Ok::<_, Box<dyn std::error::Error>>((echoes, slowest));
            }
        }
    };
    let (sent, watched) = tokio::select! {
        sent = flood => (sent, None),
        result = watch => (0, Some(result)),
    };
    if let Some(Err(error)) = watched {
        return Err(error);
    }
    let seconds = start.elapsed().as_secs_f64();
    // One more look, and an echo after the flood.
    let peak = peak.get().max(rss_kib(pid));
    echoer.send(Message::text("after")).await?;
    let after_echo = matches!(
        tokio::time::timeout(PATIENCE, echoer.next()).await?,
        Some(Ok(Message::Text(_)))
    );
    Ok(json!({
        "scenario": "ping-flood", "pings_sent": sent, "seconds": seconds,
        "rss_before_kib": before, "rss_peak_kib": peak,
        "rss_growth_mib": (peak.saturating_sub(before)) as f64 / 1024.0,
        "echo_after_flood": after_echo,
    }))
}

async fn send(client: &mut Client, value: Value) -> Result<(), Box<dyn std::error::Error>> {
    Ok(client.send(Message::text(value.to_string())).await?)
}

/// The next JSON message.
async fn receive(client: &mut Client) -> Result<Value, Box<dyn std::error::Error>> {
    loop {
        match tokio::time::timeout(PATIENCE, client.next()).await? {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(_)) => continue,
            other => return Err(format!("connection ended: {other:?}").into()),
        }
    }
}

/// Joins `room` as `name` and waits for the room's state.
async fn join(client: &mut Client, room: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    send(client, json!({"type": "join", "room": room, "name": name})).await?;
    loop {
        let value = receive(client).await?;
        if value["type"] == "presence" {
            return Ok(());
        }
        if value["type"] == "error" {
            return Err(format!("{name} could not join: {value}").into());
        }
    }
}

async fn presence(url: &str, members: usize, pairs: usize) -> Result<Value, Box<dyn std::error::Error>> {
    let mut clients = Vec::with_capacity(members);
    for i in 0..members {
        let mut client = connect(url).await?;
        join(&mut client, "r", &format!("member-{i}")).await?;
        clients.push(client);
    }
    // Each member counts the presence bytes it receives until the closing message.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let (mut bytes, mut diffs) = (0usize, 0usize);
                loop {
                    match tokio::time::timeout(PATIENCE, client.next()).await {
                        Ok(Some(Ok(Message::Text(text)))) => {
                            if text.contains("\"text\":\"end of churn\"") {
                                return Some((bytes, diffs));
                            }
                            if text.contains("presence") {
                                bytes += text.len();
                                diffs += 1;
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => return None,
                    }
                }
            })
        })
        .collect();
    let mut churner = connect(url).await?;
    join(&mut churner, "r", "churner").await?;
    let (mut refused, start) = (0usize, Instant::now());
    for i in 0..pairs {
        send(&mut churner, json!({"type": "leave", "room": "r"})).await?;
        send(&mut churner, json!({"type": "join", "room": "r", "name": "churner"})).await?;
        refused += sync(&mut churner, &format!("sync {i}")).await?.0;
    }
    let seconds = start.elapsed().as_secs_f64();
    // The end mark goes to the room: the churner must be in it (its last join may have been
    // refused by the rate limit: wait for the limit, then join).
    for _ in 0..10 {
        if sync(&mut churner, "end of churn").await?.1 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        send(&mut churner, json!({"type": "join", "room": "r", "name": "churner"})).await?;
    }
    let mut counts = Vec::new();
    for reader in readers {
        counts.push(reader.await?);
    }
    let disconnected = counts.iter().filter(|c| c.is_none()).count();
    let counts: Vec<(usize, usize)> = counts.into_iter().flatten().collect();
    let most_bytes = counts.iter().map(|c| c.0).max().unwrap_or(0);
    let diffs = counts.iter().map(|c| c.1).max().unwrap_or(0);
    Ok(json!({
        "scenario": "presence", "members": members, "pairs": pairs, "seconds": seconds,
        "commands_refused": refused, "diffs_per_member": diffs,
        "most_presence_bytes_per_member": most_bytes,
        "bytes_per_member_per_pair": most_bytes as f64 / pairs as f64,
        "bytes_per_diff": if diffs > 0 { most_bytes as f64 / diffs as f64 } else { 0.0 },
        "members_disconnected": disconnected,
    }))
}

/// Sends `text` to room `r` and reads until it comes back (answers true) or is refused because
/// the sender is not in the room (false); counts the other refusals seen on the way.
async fn sync(client: &mut Client, text: &str) -> Result<(usize, bool), Box<dyn std::error::Error>> {
    send(client, json!({"type": "message", "room": "r", "text": text})).await?;
    let mut refused = 0;
    loop {
        let value = receive(client).await?;
        match value["type"].as_str() {
            Some("message") if value["text"] == text => return Ok((refused, true)),
            Some("error") if value["message"].as_str().is_some_and(|m| m.contains("before sending")) => {
                return Ok((refused, false))
            }
            Some("error") => refused += 1,
            _ => {}
        }
    }
}

async fn room_flood(url: &str, joins: usize, pid: u32) -> Result<Value, Box<dyn std::error::Error>> {
    let mut probe = connect(url).await?;
    join(&mut probe, "lobby", "probe").await?;
    let before = rss_kib(pid);
    let mut flooder = connect(url).await?;
    let (mut joined, mut refused, mut peak) = (0usize, 0usize, before);
    // In batches, each answered in full (a room's state, or an error) before the next: the
    // server refuses what its inbox cannot hold, and every refusal is an answer too.
    const BATCH: usize = 1000;
    for first in (0..joins).step_by(BATCH) {
        let batch = BATCH.min(joins - first);
        for room in first..first + batch {
            send(
                &mut flooder,
                json!({"type": "join", "room": format!("r{room}"), "name": "flooder"}),
            )
            .await?;
        }
        let mut answers = 0;
        while answers < batch {
            match receive(&mut flooder).await?["type"].as_str() {
                Some("presence") => joined += 1,
                Some("error") => refused += 1,
                _ => continue,
            }
            answers += 1;
        }
        peak = peak.max(rss_kib(pid));
    }
    flooder.close(None).await?;
    while let Ok(Some(_)) = tokio::time::timeout(PATIENCE, flooder.next()).await {}
    // Right after it leaves: the probe's round trip through the hub.
    let sent = Instant::now();
    send(&mut probe, json!({"type": "message", "room": "lobby", "text": "ping"})).await?;
    loop {
        let value = receive(&mut probe).await?;
        if value["type"] == "message" {
            break;
        }
    }
    let round_trip = sent.elapsed();
    Ok(json!({
        "scenario": "room-flood", "joins": joins, "joined": joined, "refused": refused,
        "rss_before_kib": before, "rss_peak_kib": peak,
        "rss_growth_mib": (peak.saturating_sub(before)) as f64 / 1024.0,
        "round_trip_after_ms": round_trip.as_secs_f64() * 1e3,
    }))
}

/// The close code the server ends the connection with, reading past anything else it sends.
async fn close_code(stream: &mut TcpStream) -> Result<u16, Box<dyn std::error::Error>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await??;
        if read == 0 {
            return Err("closed without a close frame".into());
        }
        buf.extend_from_slice(chunk.get(..read).unwrap_or_default());
        // Frames from the server are unmasked with short payloads here (a close is at most 125).
        while buf.len() >= 2 {
            let len = usize::from(buf[1] & 0x7f);
            if len > 125 || buf.len() < 2 + len {
                break;
            }
            if buf[0] & 0x0f == 0x8 {
                return Ok(buf.get(2..4).map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])));
            }
            buf.drain(..2 + len);
        }
    }
}

async fn deflate_bomb(
    url: &str,
    inflated_mib: usize,
    bombs: usize,
    pid: u32,
) -> Result<Value, Box<dyn std::error::Error>> {
    let body = switchboard_bench::deflate_message(&vec![0u8; inflated_mib << 20], flate2::Compression::best())?;
    let bomb = frame_with_first_byte(0xC2, &body);
    let mut echoer = connect(url).await?;
    echoer.send(Message::text("warm up")).await?;
    tokio::time::timeout(PATIENCE, echoer.next()).await?;
    // Resets the server's peak (VmHWM) to its present memory where the kernel allows it
    // (`clear_refs` 5, Linux 4.0+), so that the peak after is the bombs' own.
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let (before, peak_before) = (rss_kib(pid), status_kib(pid, "VmHWM:"));
    let mut codes = Vec::new();
    let start = Instant::now();
    for _ in 0..bombs {
        let mut stream = switchboard_bench::connect_offering_deflate(url, "permessage-deflate").await?;
        stream.write_all(&bomb).await?;
        codes.push(close_code(&mut stream).await?);
        echoer.send(Message::text("still here?")).await?;
        match tokio::time::timeout(PATIENCE, echoer.next()).await? {
            Some(Ok(Message::Text(_))) => {}
            other => return Err(format!("the echoer got {other:?}").into()),
        }
    }
    let peak = status_kib(pid, "VmHWM:");
    Ok(json!({
        "scenario": "deflate-bomb", "bombs": bombs, "inflated_mib": inflated_mib,
        "wire_bytes_per_bomb": bomb.len(), "close_codes": codes, "seconds": start.elapsed().as_secs_f64(),
        "rss_before_kib": before, "peak_reset": reset, "peak_before_kib": peak_before, "peak_after_kib": peak,
        "rss_after_kib": rss_kib(pid),
        "peak_growth_over_rss_before_mib": peak.saturating_sub(before) as f64 / 1024.0,
        "echoes_answered": bombs,
    }))
}

/// A masked client frame with the first byte given (FIN, RSV and opcode bits).
fn frame_with_first_byte(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = frame(OpCode::Binary, payload).to_vec();
    if let Some(byte) = out.first_mut() {
        *byte = first;
    }
    out
}
