//! The connections scenario: idle connections held open, the server's memory read from /proc.

use std::time::{Duration, Instant};

use serde_json::json;

use switchboard::protocol::OpCode;

use crate::conn::{connect_many, Conn};
use crate::frames;

/// The server's resident memory in bytes, from /proc.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

pub(crate) async fn connections(
    url: &str,
    count: usize,
    pid: Option<u32>,
    offer_deflate: bool,
    active: bool,
    settle: Duration,
) -> Result<serde_json::Value, String> {
    let before = pid.and_then(resident_bytes);
    let start = Instant::now();
    // Held open until the memory is read.
    let mut held = connect_many(url, count, offer_deflate).await?;
    let elapsed = start.elapsed().as_secs_f64();
    if active {
        exchange_one_message(&mut held, offer_deflate).await?;
    }
    // Let the server settle its buffers before reading its memory.
    tokio::time::sleep(settle).await;
    let after = pid.and_then(resident_bytes);
    let per_connection = match (before, after) {
        (Some(before), Some(after)) => json!(after.saturating_sub(before) as f64 / count as f64),
        _ => json!(null),
    };
    drop(held);
    Ok(json!({
        "scenario": "connections", "url": url, "count": count, "seconds": elapsed,
        "connects_per_s": count as f64 / elapsed, "rss_before": before, "rss_after": after,
        "rss_per_connection": per_connection, "offer_deflate": offer_deflate, "active": active,
    }))
}

/// Each connection sends one 1 KiB chat message (compressed, with `deflate`) and reads its echo:
/// the server has then made whatever a connection keeps once it has compressed and inflated.
async fn exchange_one_message(held: &mut [Conn], deflate: bool) -> Result<(), String> {
    let message = crate::broadcast::chat_message(1, 0, 1024);
    let payload = if deflate {
        switchboard_bench::deflate_message(message.as_bytes(), flate2::Compression::default())
            .map_err(|e| e.to_string())?
    } else {
        message.clone().into_bytes()
    };
    for conn in held.iter_mut() {
        let mut out = Vec::new();
        frames::encode(OpCode::Text, payload.len(), &mut conn.masks, &mut out, |out| {
            out.extend_from_slice(&payload)
        });
        if deflate {
            if let Some(first) = out.first_mut() {
                *first |= RSV1;
            }
        }
        conn.send(&out).await?;
        let mut echoed = false;
        while !echoed {
            let read = conn.reader.read(|_, data| {
                echoed = data == message.as_bytes();
                Ok(())
            });
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .map_err(|_| "no echo within 10 s".to_string())??;
        }
    }
    Ok(())
}

/// RSV1: the frame starts a compressed message.
const RSV1: u8 = 0x40;
