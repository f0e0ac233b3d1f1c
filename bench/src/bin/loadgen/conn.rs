//! Connections to the server under test: the handshake by tokio-tungstenite (or, offering
//! permessage-deflate, which tungstenite does not speak, our own), then frames read and written by
//! [`crate::frames`] on the bare socket.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use switchboard::protocol::OpCode;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_tungstenite::MaybeTlsStream;

use crate::frames::{self, FrameReader, Masks};

/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 256;

/// An open WebSocket connection, after the handshake: frames are read and written by
/// [`frames`], not by tungstenite.
pub(crate) struct Conn {
    pub(crate) reader: FrameReader,
    pub(crate) write: OwnedWriteHalf,
    pub(crate) masks: Masks,
}

/// The read buffer for connections that receive small messages: about what one read brings.
pub(crate) const SMALL_READ_BUFFER: usize = 8 * 1024;

/// The largest read buffer, for large messages.
const LARGE_READ_BUFFER: usize = 256 * 1024;

/// A read buffer for about `bytes` arriving per read.
pub(crate) fn read_buffer_for(bytes: usize) -> usize {
    bytes.clamp(SMALL_READ_BUFFER, LARGE_READ_BUFFER)
}

/// Seeds for the connections' mask keys.
static SEEDS: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// Opens a connection: the handshake by tokio-tungstenite, or with `deflate` our own offering
/// permessage-deflate as Chromium does; then the bare socket.
///
/// The servers under test send nothing after their 101 until the client does, so no frame
/// is left in tungstenite's buffer when the socket is taken back.
pub(crate) async fn connect(url: &str, read_buffer: usize, deflate: bool) -> Result<Conn, String> {
    let tcp = if deflate {
        // Chromium's offer.
        switchboard_bench::connect_offering_deflate(url, "permessage-deflate; client_max_window_bits").await?
    } else {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(|e| e.to_string())?;
        let MaybeTlsStream::Plain(tcp) = ws.into_inner() else {
            return Err("the load generator speaks plain ws:// only".into());
        };
        tcp
    };
    let (read, write) = tcp.into_split();
    let seed = SEEDS.fetch_add(0x6A09_E667_F3BC_C909, Ordering::Relaxed);
    let mut reader = FrameReader::new(read, read_buffer, seed);
    if deflate {
        reader.inflate_messages();
    }
    Ok(Conn {
        reader,
        write,
        masks: Masks::new(seed.rotate_left(32)),
    })
}

impl Conn {
    /// Sends whatever pongs the reader owes, and `out`.
    pub(crate) async fn send(&mut self, out: &[u8]) -> Result<(), String> {
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
    pub(crate) async fn close(mut self) {
        let mut out = Vec::new();
        frames::encode(OpCode::Close, 0, &mut self.masks, &mut out, |_| {});
        let _ = self.write.write_all(&out).await;
    }
}

/// Opens `count` connections, `CONNECT_CONCURRENCY` at a time.
pub(crate) async fn connect_many(url: &str, count: usize, deflate: bool) -> Result<Vec<Conn>, String> {
    let results: Vec<Result<Conn, String>> =
        futures_util::stream::iter((0..count).map(|_| connect(url, SMALL_READ_BUFFER, deflate)))
            .buffer_unordered(CONNECT_CONCURRENCY)
            .collect()
            .await;
    results.into_iter().collect()
}
