//! The echo scenario: connections keeping messages in flight, every echo verified.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::protocol::OpCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::conn::{connect, connect_many, read_buffer_for};
use crate::frames;
use crate::payloads::Payloads;
use crate::{percentiles, progress};

pub(crate) async fn echo(
    url: &str,
    connections: usize,
    in_flight: usize,
    size: usize,
    seconds: u64,
    binary: bool,
    idle: usize,
) -> Result<serde_json::Value, String> {
    let _idle = if idle > 0 {
        connect_many(url, idle, false).await?
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
    let mut conn = connect(url, read_buffer_for(in_flight * (size + 14)), false).await?;
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
