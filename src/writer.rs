//! The transport's writer, for server and client connections alike: it drains a connection's
//! outbound queue onto its socket, many frames per syscall and payloads by reference.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::task::Poll;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::outbound::OutboundStream;

/// At most this many queued chunks go into one vectored write.
const WRITE_BATCH: usize = 64;

/// Writes queued frames, many per syscall, until the queue ends; then shuts the write side.
///
/// A write the peer never reads is given up when the queue is aborted, which the connection
/// does `close_timeout` after it stops: the socket does not outlive its connection.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(mut write: W, mut frames: OutboundStream) {
    let mut chunks = Vec::with_capacity(WRITE_BATCH);
    let mut open = true;
    while open {
        let Some(Ok(first)) = frames.next().await else {
            break;
        };
        chunks.push(first);
        while chunks.len() < WRITE_BATCH {
            match poll_fn(|cx| Poll::Ready(frames.poll_next_unpin(cx))).await {
                Poll::Ready(Some(Ok(chunk))) => chunks.push(chunk),
                Poll::Ready(None) => {
                    open = false;
                    break;
                }
                Poll::Pending => break,
            }
        }
        chunks.retain(|chunk| !chunk.is_empty());
        tokio::select! {
            written = write_batch(&mut write, &mut chunks) => if let Err(error) = written {
                log::debug!("socket write failed: {error}");
                return;
            },
            () = poll_fn(|cx| frames.0.poll_aborted(cx)) => {
                log::debug!("the peer did not read what was written; dropping the socket");
                return;
            }
        }
        chunks.clear();
    }
    let _ = write.shutdown().await;
}

/// Writes every byte of `chunks` with vectored writes, then flushes (a TLS stream's last record).
async fn write_batch<W: AsyncWrite + Unpin>(write: &mut W, chunks: &mut [Bytes]) -> io::Result<()> {
    let mut start = 0;
    while let Some(rest) = chunks.get(start..).filter(|rest| !rest.is_empty()) {
        let mut written = if let [only] = rest {
            // One buffer: `send`, which skips writev's iovec handling in the kernel.
            write.write(only).await?
        } else {
            let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
            for (slice, chunk) in slices.iter_mut().zip(rest) {
                *slice = IoSlice::new(chunk);
            }
            let count = rest.len().min(WRITE_BATCH);
            write.write_vectored(slices.get(..count).unwrap_or_default()).await?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        for chunk in chunks.iter_mut().skip(start) {
            if written < chunk.len() {
                chunk.advance(written);
                break;
            }
            written -= chunk.len();
            start += 1;
        }
    }
    write.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::outbound::{FrameKind, Outbound};

    /// A bound against hangs, not a timing assertion.
    const PATIENCE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn frames_come_out_in_order_and_the_end_shuts_the_socket() {
        let (ours, mut peer) = tokio::io::duplex(64);
        let queue = Outbound::new(1 << 20);
        let writer = tokio::spawn(write_frames(ours, OutboundStream(queue.clone())));
        for part in [&b"one "[..], &[b'x'; 5000][..], b" two"] {
            queue.push(Bytes::copy_from_slice(part), FrameKind::Data).unwrap();
        }
        queue.finish();
        let mut received = Vec::new();
        tokio::time::timeout(PATIENCE, peer.read_to_end(&mut received))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(received.len(), 5008);
        assert!(received.starts_with(b"one x") && received.ends_with(b"x two"));
        tokio::time::timeout(PATIENCE, writer).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_write_the_peer_never_reads_ends_when_the_queue_is_aborted() {
        let (ours, _peer) = tokio::io::duplex(64);
        let queue = Outbound::new(1 << 20);
        let writer = tokio::spawn(write_frames(ours, OutboundStream(queue.clone())));
        queue.push(Bytes::from(vec![7u8; 10_000]), FrameKind::Data).unwrap();
        tokio::task::yield_now().await;
        queue.abort();
        tokio::time::timeout(PATIENCE, writer)
            .await
            .expect("the writer gives up")
            .unwrap();
    }
}
