//! The broadcast scenario: subscribers on one URL, one publisher, every delivery counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::protocol::OpCode;
use tokio::io::AsyncWriteExt;

use crate::conn::{connect, connect_many, Conn, SMALL_READ_BUFFER};
use crate::frames;
use crate::{percentiles, progress};

/// How long to wait, after the last broadcast, for deliveries still in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// What a broadcast run does.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    /// Where the subscribers connect.
    pub(crate) url: &'a str,
    /// Where the publisher connects (another node's URL for the cross-node case).
    pub(crate) publish_url: &'a str,
    pub(crate) subscribers: usize,
    /// Messages per second; 0 for as fast as the server keeps up, `window` in flight.
    pub(crate) rate: u64,
    pub(crate) window: u64,
    pub(crate) seconds: u64,
    /// Every connection offers permessage-deflate and inflates what arrives compressed.
    pub(crate) deflate: bool,
    /// Publish JSON chat messages of about this many bytes (0: `"SEQ MICROS"`, a few bytes).
    pub(crate) json_size: usize,
}

pub(crate) async fn broadcast(plan: Plan<'_>) -> Result<serde_json::Value, String> {
    let Plan {
        url,
        publish_url,
        subscribers,
        rate,
        window,
        seconds,
        deflate,
        json_size,
    } = plan;
    let origin = Instant::now();
    let subs = connect_many(url, subscribers, deflate).await?;
    // The first subscriber's wire bytes and messages: what compression made of a message.
    let first_wire = Arc::new(parking_lot::Mutex::new((0u64, 0u64)));
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Each reader records into its own vector (an uncontended lock), so the readers can simply be
    // aborted after the drain, without a timer per message.
    let latency_sets: Vec<Arc<parking_lot::Mutex<Vec<u32>>>> = (0..subscribers).map(|_| Arc::default()).collect();
    let gap = Arc::new(parking_lot::Mutex::new(Gap::default()));
    let readers: Vec<_> = subs
        .into_iter()
        .zip(latency_sets.iter().cloned())
        .enumerate()
        .map(|(index, (mut conn, latencies))| {
            let received = received.clone();
            let gap = (index == 0).then(|| gap.clone());
            let first_wire = (index == 0).then(|| first_wire.clone());
            tokio::spawn(async move {
                loop {
                    let read = conn.reader.read(|opcode, data| {
                        if let Some(sent_us) = (opcode == OpCode::Text).then(|| sent_at_us(data)).flatten() {
                            let now_us = origin.elapsed().as_micros() as u64;
                            if let Some(gap) = &gap {
                                gap.lock().arrived(now_us);
                            }
                            let latency = now_us.saturating_sub(sent_us).min(u64::from(u32::MAX)) as u32;
                            latencies.lock().push(latency);
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(())
                    });
                    if read.await.is_err() || conn.send(&[]).await.is_err() {
                        break;
                    }
                    if let Some(wire) = &first_wire {
                        *wire.lock() = (conn.reader.wire_bytes, conn.reader.messages);
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
    } = connect(publish_url, SMALL_READ_BUFFER, deflate).await?;
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
        let sent_us = origin.elapsed().as_micros() as u64;
        let message = if json_size == 0 {
            format!("{sent} {sent_us}")
        } else {
            chat_message(sent, sent_us, json_size)
        };
        out.clear();
        frames::encode(OpCode::Text, message.len(), &mut masks, &mut out, |out| {
            out.extend_from_slice(message.as_bytes())
        });
        write.write_all(&out).await.map_err(|e| e.to_string())?;
        sent += 1;
    }
    let publishing = start.elapsed().as_secs_f64();
    let (wire_bytes, wire_messages) = *first_wire.lock();
    let message_bytes = if json_size == 0 {
        0
    } else {
        chat_message(0, 0, json_size).len()
    };
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
    let gap = *gap.lock();
    // When the longest gap ended, as Unix time, for a script that restarts Redis meanwhile.
    let now_unix_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let gap_end_unix_us = now_unix_us.saturating_sub(origin.elapsed().as_micros() as u64) + gap.end_us;
    Ok(json!({
        "scenario": "broadcast", "url": url, "subscribers": subscribers, "rate": rate, "window": window,
        "seconds": publishing, "published": sent, "deliveries": delivered,
        "deliveries_per_s": delivered as f64 / publishing, "lost": expected.saturating_sub(delivered),
        "latency": percentiles(latencies), "publisher_latency": percentiles(own_latencies),
        "longest_gap_ms": gap.longest_us as f64 / 1000.0, "longest_gap_end_unix_ms": gap_end_unix_us / 1000,
        "deflate": deflate, "message_bytes": message_bytes,
        "wire_bytes_per_message": wire_bytes as f64 / (wire_messages as f64).max(1.0),
    }))
}

/// The longest time the first subscriber went without a delivery, and when it ended (µs since
/// the run's origin): how long traffic stopped while a broker restarted.
#[derive(Debug, Default, Clone, Copy)]
struct Gap {
    last_us: Option<u64>,
    longest_us: u64,
    end_us: u64,
}

impl Gap {
    fn arrived(&mut self, now_us: u64) {
        if let Some(last) = self.last_us {
            if now_us - last > self.longest_us {
                self.longest_us = now_us - last;
                self.end_us = now_us;
            }
        }
        self.last_us = Some(now_us);
    }
}

/// The send time in a broadcast message, `"SEQ MICROS"` or a [`chat_message`].
fn sent_at_us(message: &[u8]) -> Option<u64> {
    if message.first() == Some(&b'{') {
        let at = message.windows(SENT_KEY.len()).position(|w| w == SENT_KEY)? + SENT_KEY.len();
        let digits = message.get(at..)?.iter().take_while(|b| b.is_ascii_digit()).count();
        return std::str::from_utf8(message.get(at..at + digits)?).ok()?.parse().ok();
    }
    let at = message.iter().position(|&b| b == b' ')?;
    std::str::from_utf8(message.get(at + 1..)?).ok()?.parse().ok()
}

/// Where a chat message's send time starts.
const SENT_KEY: &[u8] = b"\"sent_us\":";

/// Words for chat text: a message made of them compresses about as real chat lines do (a few
/// times over, less than repeated filler would).
const WORDS: [&str; 32] = [
    "the", "meeting", "is", "moved", "to", "three", "tomorrow", "can", "you", "send", "me", "latest", "draft",
    "please", "thanks", "sounds", "good", "I", "will", "review", "it", "tonight", "deploy", "went", "fine", "build",
    "failed", "again", "on", "main", "lunch", "anyone",
];

/// A JSON chat message of about `size` bytes, as a chat app broadcasts one: type, room, author,
/// sequence number, send time, and a text of words chosen from `seq`, so no two are alike.
pub(crate) fn chat_message(seq: u64, sent_us: u64, size: usize) -> String {
    let mut message = format!(
        "{{\"type\":\"message\",\"room\":\"general\",\"from\":\"user-{}\",\"seq\":{seq},\"sent_us\":{sent_us},\"text\":\"",
        seq % 97
    );
    let mut state = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while message.len() + 2 < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word = WORDS
            .get((state % WORDS.len() as u64) as usize)
            .copied()
            .unwrap_or("ok");
        message.push_str(word);
        message.push(' ');
    }
    message.truncate(size.saturating_sub(2).max(message.find("\"text\":\"").unwrap_or(0) + 8));
    message.push_str("\"}");
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_message_is_json_of_the_size_asked_with_its_send_time() {
        for size in [200, 1024, 4096] {
            let message = chat_message(42, 1_234_567, size);
            assert_eq!(message.len(), size);
            let value: serde_json::Value = serde_json::from_str(&message).expect("JSON");
            assert_eq!(value.get("seq").and_then(serde_json::Value::as_u64), Some(42));
            assert_eq!(sent_at_us(message.as_bytes()), Some(1_234_567));
        }
        assert_ne!(chat_message(1, 0, 1024).get(120..), chat_message(2, 0, 1024).get(120..));
        assert_eq!(sent_at_us(b"7 890"), Some(890));
    }
}
