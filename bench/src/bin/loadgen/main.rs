//! A WebSocket load generator for any server with the `/echo` and `/broadcast` contract of
//! `examples/bench_server.rs`. Prints a progress bar on stderr for runs over 3 s, and one JSON
//! line of results on stdout.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin loadgen -- echo ws://127.0.0.1:9002/echo --connections 64 --in-flight 16 --size 32 --seconds 10
//! cargo run --release -p switchboard-bench --bin loadgen -- broadcast ws://127.0.0.1:9002/broadcast --subscribers 1000 --rate 200 --seconds 10
//! cargo run --release -p switchboard-bench --bin loadgen -- connections ws://127.0.0.1:9002/echo --count 10000 --pid 1234
//! ```
//!
//! Every echo is checked against what was sent; every broadcast delivery is counted, and what did
//! not arrive is reported as lost. `tcp://host:port` URLs run the echo scenario over raw TCP
//! against `raw_echo`, with the same bytes a masked WebSocket frame would carry.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod frames;

use clap::{Parser, Subcommand};
use frames::{FrameReader, Masks};
use futures_util::StreamExt;
use serde_json::json;
use switchboard::protocol::OpCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;

/// How long to wait, after the last broadcast, for deliveries still in flight.
const DRAIN: Duration = Duration::from_secs(5);
/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 256;

#[derive(Debug, Parser)]
#[command(about = "WebSocket load generator")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// C connections, each keeping W messages of S bytes in flight; every echo verified.
    Echo {
        url: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        #[arg(long, default_value_t = 32)]
        size: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Binary messages instead of text.
        #[arg(long)]
        binary: bool,
        /// Idle connections to open (and hold) before measuring.
        #[arg(long, default_value_t = 0)]
        idle: usize,
    },
    /// N subscribers on the broadcast URL, one publisher at a fixed rate (0: as fast as the server
    /// keeps up, with a window of in-flight messages).
    Broadcast {
        url: String,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        #[arg(long, default_value_t = 200)]
        rate: u64,
        #[arg(long, default_value_t = 16)]
        window: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Opens K idle connections; reports the connect rate and, given the server's PID, its
    /// resident memory per connection.
    Connections {
        url: String,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long)]
        pid: Option<u32>,
    },
}

/// An open WebSocket connection, after the handshake: frames are read and written by
/// [`frames`], not by tungstenite.
struct Conn {
    reader: FrameReader,
    write: OwnedWriteHalf,
    masks: Masks,
}

/// The read buffer for connections that receive small messages: about what one read brings.
const SMALL_READ_BUFFER: usize = 8 * 1024;

/// The largest read buffer, for large messages.
const LARGE_READ_BUFFER: usize = 256 * 1024;

/// A read buffer for about `bytes` arriving per read.
fn read_buffer_for(bytes: usize) -> usize {
    bytes.clamp(SMALL_READ_BUFFER, LARGE_READ_BUFFER)
}

/// Seeds for the connections' mask keys.
static SEEDS: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// Opens a connection: the handshake by tokio-tungstenite, then the bare socket.
///
/// The servers under test send nothing after their 101 until the client does, so no frame
/// is left in tungstenite's buffer when the socket is taken back.
async fn connect(url: &str, read_buffer: usize) -> Result<Conn, String> {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .map_err(|e| e.to_string())?;
    let MaybeTlsStream::Plain(tcp) = ws.into_inner() else {
        return Err("the load generator speaks plain ws:// only".into());
    };
    let (read, write) = tcp.into_split();
    let seed = SEEDS.fetch_add(0x6A09_E667_F3BC_C909, Ordering::Relaxed);
    Ok(Conn {
        reader: FrameReader::new(read, read_buffer, seed),
        write,
        masks: Masks::new(seed.rotate_left(32)),
    })
}

impl Conn {
    /// Sends whatever pongs the reader owes, and `out`.
    async fn send(&mut self, out: &[u8]) -> Result<(), String> {
        if !self.reader.replies.is_empty() {
            self.write
                .write_all(&self.reader.replies)
                .await
                .map_err(|e| e.to_string())?;
            self.reader.replies.clear();
        }
        if !out.is_empty() {
            self.write.write_all(out).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Sends a close frame, ignoring failure.
    async fn close(mut self) {
        let mut out = Vec::new();
        frames::encode(OpCode::Close, 0, &mut self.masks, &mut out, |_| {});
        let _ = self.write.write_all(&out).await;
    }
}

/// Opens `count` connections, `CONNECT_CONCURRENCY` at a time.
async fn connect_many(url: &str, count: usize) -> Result<Vec<Conn>, String> {
    let results: Vec<Result<Conn, String>> =
        futures_util::stream::iter((0..count).map(|_| connect(url, SMALL_READ_BUFFER)))
            .buffer_unordered(CONNECT_CONCURRENCY)
            .collect()
            .await;
    results.into_iter().collect()
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            println!("{}", json!({ "error": error.to_string() }));
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        match args.scenario {
            Scenario::Echo {
                url,
                connections,
                in_flight,
                size,
                seconds,
                binary,
                idle,
            } => echo(&url, connections, in_flight, size, seconds, binary, idle).await,
            Scenario::Broadcast {
                url,
                subscribers,
                rate,
                window,
                seconds,
            } => broadcast(&url, subscribers, rate, window, seconds).await,
            Scenario::Connections { url, count, pid } => connections(&url, count, pid).await,
        }
    });
    match result {
        Ok(value) => println!("{value}"),
        Err(error) => {
            println!("{}", json!({ "error": error }));
            std::process::exit(1);
        }
    }
}

/// Shows progress on stderr, for runs longer than a few seconds.
fn progress(seconds: u64, done: Arc<AtomicU64>, unit: &'static str, stop: Arc<AtomicBool>) {
    if seconds <= 3 {
        return;
    }
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let elapsed = start.elapsed().as_secs_f64().min(seconds as f64);
            let filled = (elapsed / seconds as f64 * 30.0) as usize;
            let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r[{}{}] {elapsed:4.1}/{seconds} s {rate:>12.0} {unit}/s",
                "#".repeat(filled),
                ".".repeat(30 - filled)
            );
        }
        eprintln!();
    });
}

fn percentiles(mut micros: Vec<u32>) -> serde_json::Value {
    micros.sort_unstable();
    let at = |q: f64| {
        let index = ((micros.len() as f64 * q).ceil() as usize).saturating_sub(1);
        micros.get(index).copied().map_or(0.0, |us| f64::from(us) / 1000.0)
    };
    json!({ "p50_ms": at(0.50), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": at(1.0) })
}

/// The echo payloads: a message's first 16 bytes are its sequence number in hex and the rest is
/// filler, so each echo is checked byte for byte against what was sent without keeping a copy.
/// Made without formatting or per-check allocation: at half a million messages a second the load
/// generator's own cost per message decides what it can measure.
struct Payloads {
    filler: Vec<u8>,
}

/// The filler byte after each payload's sequence number.
const FILLER: u8 = b'x';

/// How much masked filler [`Payloads::write_masked`] builds per frame and then repeats: small
/// enough to build per frame at no cost worth measuring, large enough that a 64 KiB payload is a
/// few dozen copies from the first-level cache.
const MASKED_BLOCK: usize = 1024;

impl Payloads {
    fn new(size: usize) -> Payloads {
        Payloads {
            filler: vec![FILLER; size.max(16)],
        }
    }

    /// The payload length (at least 16 bytes).
    fn len(&self) -> usize {
        self.filler.len()
    }

    /// Appends payload `seq` to `out`.
    fn write(&self, seq: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.filler);
        if let Some(head) = out.get_mut(start..start + 16) {
            head.copy_from_slice(&hex16(seq));
        }
    }

    /// Appends payload `seq` masked with `key`, in one pass. The filler is one repeated byte, so
    /// masked it is the key's 4-byte pattern repeated (the 16-byte head keeps the pattern in
    /// step): written from a small block, with no copy of `filler` and no second masking pass
    /// over a 64 KiB payload. Against a fast server the load generator's core is the limit at
    /// 64 KiB (docs/benchmarks.md), so its cost per payload is part of what is measured.
    fn write_masked(&self, seq: u64, key: [u8; 4], out: &mut Vec<u8>) {
        out.reserve(self.len());
        out.extend(hex16(seq).iter().zip(key.iter().cycle()).map(|(byte, k)| byte ^ k));
        let mut left = self.len() - 16;
        let pattern = key.map(|k| FILLER ^ k);
        let mut block = [0u8; MASKED_BLOCK];
        // Only as much of the block as this payload uses: a 32-byte payload builds 16 bytes.
        let used = block
            .get_mut(..left.min(MASKED_BLOCK).next_multiple_of(4))
            .unwrap_or_default();
        for word in used.chunks_exact_mut(4) {
            word.copy_from_slice(&pattern);
        }
        while left > 0 {
            let n = left.min(MASKED_BLOCK);
            out.extend_from_slice(block.get(..n).unwrap_or_default());
            left -= n;
        }
    }

    /// Whether `data` is payload `seq`.
    fn matches(&self, seq: u64, data: &[u8]) -> bool {
        data.len() == self.len() && data.get(..16) == Some(&hex16(seq)[..]) && data.get(16..) == self.filler.get(16..)
    }
}

/// `seq` as 16 lowercase hex digits.
fn hex16(seq: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, digit) in out.iter_mut().enumerate() {
        let nibble = (seq >> (60 - 4 * i)) & 0xF;
        *digit = b"0123456789abcdef".get(nibble as usize).copied().unwrap_or(b'0');
    }
    out
}

async fn echo(
    url: &str,
    connections: usize,
    in_flight: usize,
    size: usize,
    seconds: u64,
    binary: bool,
    idle: usize,
) -> Result<serde_json::Value, String> {
    let _idle = if idle > 0 {
        connect_many(url, idle).await?
    } else {
        Vec::new()
    };
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let raw = url.starts_with("tcp://");
    let start = Instant::now();
    progress(seconds, done.clone(), "msg", stop.clone());
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (url, done) = (url.to_owned(), done.clone());
            tokio::spawn(async move {
                if raw {
                    echo_raw(&url, in_flight, size, deadline, done).await
                } else {
                    echo_ws(&url, in_flight, size, binary, deadline, done).await
                }
            })
        })
        .collect();
    let mut rtts = Vec::new();
    let mut errors = 0u64;
    for task in tasks {
        match task.await {
            Ok(Ok(mut conn_rtts)) => rtts.append(&mut conn_rtts),
            Ok(Err(error)) => {
                errors += 1;
                eprintln!("connection error: {error}");
            }
            Err(_) => errors += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let messages = rtts.len() as f64;
    Ok(json!({
        "scenario": "echo", "url": url, "connections": connections, "in_flight": in_flight, "size": size,
        "binary": binary, "idle": idle, "seconds": elapsed, "messages": rtts.len(),
        "messages_per_s": messages / elapsed, "mb_per_s": messages * size as f64 / elapsed / 1e6,
        "rtt": percentiles(rtts), "errors": errors,
    }))
}

/// One echo connection: keeps `in_flight` messages outstanding until the deadline, checks each
/// echo against what was sent, and answers the round-trip times in microseconds.
async fn echo_ws(
    url: &str,
    in_flight: usize,
    size: usize,
    binary: bool,
    deadline: Instant,
    done: Arc<AtomicU64>,
) -> Result<Vec<u32>, String> {
    let mut conn = connect(url, read_buffer_for(in_flight * (size + 14))).await?;
    let payloads = Payloads::new(size);
    let opcode = if binary { OpCode::Binary } else { OpCode::Text };
    let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut seq = 0u64;
    let mut out = Vec::new();
    for _ in 0..in_flight {
        frames::encode_masked(opcode, payloads.len(), &mut conn.masks, &mut out, |out, key| {
            payloads.write_masked(seq, key, out)
        });
        pending.push_back((seq, Instant::now()));
        seq += 1;
    }
    let mut rtts = Vec::new();
    while !pending.is_empty() {
        conn.send(&out).await?;
        out.clear();
        let masks = &mut conn.masks;
        conn.reader
            .read(|_, data| {
                let (expected, sent_at) = pending.pop_front().ok_or("an echo of nothing sent")?;
                if !payloads.matches(expected, data) {
                    return Err(format!("echo {expected} does not match what was sent"));
                }
                let now = Instant::now();
                rtts.push(rtt_us(sent_at, now));
                done.fetch_add(1, Ordering::Relaxed);
                if now < deadline {
                    frames::encode_masked(opcode, payloads.len(), masks, &mut out, |out, key| {
                        payloads.write_masked(seq, key, out)
                    });
                    pending.push_back((seq, now));
                    seq += 1;
                }
                Ok(())
            })
            .await?;
    }
    conn.close().await;
    Ok(rtts)
}

/// The raw-TCP twin of [`echo_ws`]: each message is the bytes of a masked client frame of `size`
/// payload bytes, and the same bytes must come back. Reads and writes are batched as the
/// WebSocket path batches them.
async fn echo_raw(
    url: &str,
    in_flight: usize,
    size: usize,
    deadline: Instant,
    done: Arc<AtomicU64>,
) -> Result<Vec<u32>, String> {
    let addr = url.trim_start_matches("tcp://").trim_end_matches('/');
    let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let header = match size {
        0..=125 => 6,
        126..=65535 => 8,
        _ => 14,
    };
    let payloads = Payloads::new(size);
    let frame = |seq: u64, out: &mut Vec<u8>| {
        out.resize(out.len() + header, 0);
        payloads.write(seq, out);
    };
    let message_len = header + payloads.len();
    let (mut read, mut write) = tcp.split();
    let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut seq = 0u64;
    let mut out = Vec::new();
    for _ in 0..in_flight {
        frame(seq, &mut out);
        pending.push_back((seq, Instant::now()));
        seq += 1;
    }
    write.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(64 << 10);
    let mut rtts = Vec::new();
    let mut chunk = vec![0u8; (64 << 10).max(message_len)];
    while !pending.is_empty() {
        let n = read.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        out.clear();
        let mut consumed = 0;
        while buf.len() - consumed >= message_len {
            let Some((expected, sent_at)) = pending.pop_front() else {
                break;
            };
            let echoed = buf.get(consumed..consumed + message_len).unwrap_or_default();
            let (head, data) = echoed.split_at(header.min(echoed.len()));
            if head.iter().any(|&b| b != 0) || !payloads.matches(expected, data) {
                return Err(format!("echo {expected} does not match what was sent"));
            }
            consumed += message_len;
            let now = Instant::now();
            rtts.push(rtt_us(sent_at, now));
            done.fetch_add(1, Ordering::Relaxed);
            if now < deadline {
                frame(seq, &mut out);
                pending.push_back((seq, now));
                seq += 1;
            }
        }
        buf.drain(..consumed);
        if !out.is_empty() {
            write.write_all(&out).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(rtts)
}

/// Microseconds from `sent` to `now`, saturated to fit the histogram's `u32`.
fn rtt_us(sent: Instant, now: Instant) -> u32 {
    now.duration_since(sent).as_micros().min(u128::from(u32::MAX)) as u32
}

async fn broadcast(
    url: &str,
    subscribers: usize,
    rate: u64,
    window: u64,
    seconds: u64,
) -> Result<serde_json::Value, String> {
    let origin = Instant::now();
    let subs = connect_many(url, subscribers).await?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Each reader records into its own vector (an uncontended lock), so the readers can simply be
    // aborted after the drain, without a timer per message.
    let latency_sets: Vec<Arc<parking_lot::Mutex<Vec<u32>>>> = (0..subscribers).map(|_| Arc::default()).collect();
    let readers: Vec<_> = subs
        .into_iter()
        .zip(latency_sets.iter().cloned())
        .map(|(mut conn, latencies)| {
            let received = received.clone();
            tokio::spawn(async move {
                loop {
                    let read = conn.reader.read(|opcode, data| {
                        if let Some(sent_us) = (opcode == OpCode::Text).then(|| sent_at_us(data)).flatten() {
                            let now_us = origin.elapsed().as_micros() as u64;
                            let latency = now_us.saturating_sub(sent_us).min(u64::from(u32::MAX)) as u32;
                            latencies.lock().push(latency);
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(())
                    });
                    if read.await.is_err() || conn.send(&[]).await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    // The publisher's reader only counts its own messages; the servers under test do not ping.
    let Conn {
        reader: mut own,
        mut write,
        mut masks,
    } = connect(url, SMALL_READ_BUFFER).await?;
    let own_seen = Arc::new(AtomicU64::new(0));
    // Wakes the publisher when one of its own messages comes back: waiting by yielding in a
    // loop cost the load generator an `epoll_wait` per turn, 1.6 M in a 4 s run.
    let own_arrived = Arc::new(tokio::sync::Notify::new());
    let own_reader = {
        let own_seen = own_seen.clone();
        let own_arrived = own_arrived.clone();
        let stop = stop.clone();
        // The publisher's own copies are timed too: a server that serves the publisher ahead of
        // the other subscribers frees the flat-out window sooner, and gets more deliveries/s.
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let read = own.read(|opcode, data| {
                    if opcode == OpCode::Text {
                        if let Some(sent_us) = sent_at_us(data) {
                            let now_us = origin.elapsed().as_micros() as u64;
                            latencies.push(now_us.saturating_sub(sent_us).min(u64::from(u32::MAX)) as u32);
                        }
                        own_seen.fetch_add(1, Ordering::Relaxed);
                        own_arrived.notify_one();
                    }
                    Ok(())
                });
                if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(200), read).await {
                    break;
                }
            }
            latencies
        })
    };
    progress(seconds, received.clone(), "deliveries", stop.clone());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut sent = 0u64;
    let mut out = Vec::new();
    let mut interval = (rate > 0).then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64)));
    while Instant::now() < deadline {
        match interval.as_mut() {
            Some(interval) => {
                interval.tick().await;
            }
            None => {
                while sent.saturating_sub(own_seen.load(Ordering::Relaxed)) >= window && Instant::now() < deadline {
                    let _ = tokio::time::timeout_at(deadline.into(), own_arrived.notified()).await;
                }
            }
        }
        let message = format!("{sent} {}", origin.elapsed().as_micros());
        out.clear();
        frames::encode(OpCode::Text, message.len(), &mut masks, &mut out, |out| {
            out.extend_from_slice(message.as_bytes())
        });
        write.write_all(&out).await.map_err(|e| e.to_string())?;
        sent += 1;
    }
    let publishing = start.elapsed().as_secs_f64();
    let expected = sent * subscribers as u64;
    let drain_deadline = Instant::now() + DRAIN;
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    readers.iter().for_each(tokio::task::JoinHandle::abort);
    let mut latencies = Vec::new();
    for set in &latency_sets {
        latencies.append(&mut set.lock());
    }
    let own_latencies = own_reader.await.unwrap_or_default();
    let delivered = received.load(Ordering::Relaxed);
    Ok(json!({
        "scenario": "broadcast", "url": url, "subscribers": subscribers, "rate": rate, "window": window,
        "seconds": publishing, "published": sent, "deliveries": delivered,
        "deliveries_per_s": delivered as f64 / publishing, "lost": expected.saturating_sub(delivered),
        "latency": percentiles(latencies), "publisher_latency": percentiles(own_latencies),
    }))
}

/// The send time in a broadcast message `"SEQ MICROS"`.
fn sent_at_us(message: &[u8]) -> Option<u64> {
    let at = message.iter().position(|&b| b == b' ')?;
    std::str::from_utf8(message.get(at + 1..)?).ok()?.parse().ok()
}

/// The server's resident memory in bytes, from /proc.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

async fn connections(url: &str, count: usize, pid: Option<u32>) -> Result<serde_json::Value, String> {
    let before = pid.and_then(resident_bytes);
    let start = Instant::now();
    let held = connect_many(url, count).await?;
    let elapsed = start.elapsed().as_secs_f64();
    // Let the server settle its buffers before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = pid.and_then(resident_bytes);
    let per_connection = match (before, after) {
        (Some(before), Some(after)) => json!(after.saturating_sub(before) as f64 / count as f64),
        _ => json!(null),
    };
    drop(held);
    Ok(json!({
        "scenario": "connections", "url": url, "count": count, "seconds": elapsed,
        "connects_per_s": count as f64 / elapsed, "rss_before": before, "rss_after": after,
        "rss_per_connection": per_connection,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_sequence_number_and_check_every_byte() {
        assert_eq!(&hex16(0x1234_abcd), b"000000001234abcd");
        let payloads = Payloads::new(32);
        let mut sent = Vec::new();
        payloads.write(7, &mut sent);
        assert_eq!(sent.len(), 32);
        assert!(payloads.matches(7, &sent));
        assert!(!payloads.matches(8, &sent));
        let mut changed = sent.clone();
        if let Some(last) = changed.last_mut() {
            *last = b'y';
        }
        assert!(!payloads.matches(7, &changed));
        assert!(!payloads.matches(7, sent.get(..31).unwrap_or_default()));
        assert_eq!(Payloads::new(4).len(), 16);
    }

    #[test]
    fn a_payload_written_masked_unmasks_to_the_payload() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for size in [16, 17, 32, 1_040, 65_536, 70_001] {
            let payloads = Payloads::new(size);
            let mut masked = Vec::new();
            payloads.write_masked(0xfeed, key, &mut masked);
            assert_ne!(masked.get(16..20), Some(&b"xxxx"[..]), "size {size}: not masked");
            switchboard::protocol::apply_mask(&mut masked, key, 0);
            let mut plain = Vec::new();
            payloads.write(0xfeed, &mut plain);
            assert_eq!(masked, plain, "size {size}");
            assert!(payloads.matches(0xfeed, &masked), "size {size}");
        }
    }
}
