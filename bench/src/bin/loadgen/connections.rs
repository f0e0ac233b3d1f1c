//! The connections scenario: idle connections held open, the server's memory read from /proc.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::conn::connect_many;

/// The server's resident memory in bytes, from /proc.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

pub(crate) async fn connections(url: &str, count: usize, pid: Option<u32>) -> Result<serde_json::Value, String> {
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
