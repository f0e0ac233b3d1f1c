//! The connections scenario: idle connections held open, the server's memory read from /proc.

use std::time::{Duration, Instant};

use serde_json::json;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn::connect_many;

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
) -> Result<serde_json::Value, String> {
    let before = pid.and_then(resident_bytes);
    let start = Instant::now();
    // Held open until the memory is read; one of the two stays empty.
    let (held, held_offering) = if offer_deflate {
        (Vec::new(), connect_many_offering_deflate(url, count).await?)
    } else {
        (connect_many(url, count).await?, Vec::new())
    };
    let elapsed = start.elapsed().as_secs_f64();
    // Let the server settle its buffers before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = pid.and_then(resident_bytes);
    let per_connection = match (before, after) {
        (Some(before), Some(after)) => json!(after.saturating_sub(before) as f64 / count as f64),
        _ => json!(null),
    };
    drop((held, held_offering));
    Ok(json!({
        "scenario": "connections", "url": url, "count": count, "seconds": elapsed,
        "connects_per_s": count as f64 / elapsed, "rss_before": before, "rss_after": after,
        "rss_per_connection": per_connection, "offer_deflate": offer_deflate,
    }))
}

/// Idle connections whose handshake offers permessage-deflate as Chromium does; answers the
/// raw streams (nothing is read or written after the handshake).
async fn connect_many_offering_deflate(url: &str, count: usize) -> Result<Vec<tokio::net::TcpStream>, String> {
    let connect = |_| async move {
        let (addr, path) = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split_once('/'))
            .ok_or("a ws://HOST:PORT/PATH URL")?;
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let head = format!(
            "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        let mut byte = [0u8; 1];
        while !response.ends_with(b"\r\n\r\n") {
            let read = stream.read(&mut byte).await.map_err(|e| e.to_string())?;
            if read == 0 {
                return Err("closed during the handshake".to_string());
            }
            response.extend_from_slice(&byte);
        }
        let head = String::from_utf8_lossy(&response).to_ascii_lowercase();
        if !head.starts_with("http/1.1 101") || !head.contains("permessage-deflate") {
            return Err(format!("compression was not negotiated: {head}"));
        }
        Ok::<_, String>(stream)
    };
    let results: Vec<Result<tokio::net::TcpStream, String>> = futures_util::stream::iter((0..count).map(connect))
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect()
}
