//! The transport's writer, for server and client connections alike: it drains a connection's
//! outbound queue onto its socket, many frames per syscall and payloads by reference. On the
//! owned server transport the reader also writes through, between reads ([`write_through`]).

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::outbound::{Outbound, OutboundStream};

/// At most this many queued chunks go into one vectored write.
const WRITE_BATCH: usize = 64;

/// Writes queued frames, many per syscall, until the queue ends; then shuts the write side.
///
/// A write the peer never reads is given up when the queue is aborted, which the connection
/// does `close_timeout` after it stops: the socket does not outlive its connection. One that
/// moves no byte for `timeout` is given up too, and `on_timeout` runs: the peer stopped reading.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(
    mut write: W,
    mut frames: OutboundStream,
    timeout: Option<Duration>,
    on_timeout: impl FnOnce(),
) {
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
            written = write_batch(&mut write, &mut chunks, timeout) => match written {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                    frames.0.abort();
                    on_timeout();
                    return;
                }
                Err(error) => {
                    log::debug!("socket write failed: {error}");
                    return;
                }
            },
            () = poll_fn(|cx| frames.0.poll_aborted(cx)) => {
                log::debug!("the peer did not read what was written; dropping the socket");
                return;
            }
        }
        chunks.clear();
        frames.0.release();
    }
    let _ = write.shutdown().await;
}

/// Writes every byte of `chunks` with vectored writes, then flushes (a TLS stream's last record).
/// A write or flush that moves nothing for `timeout` fails with `TimedOut`.
async fn write_batch<W: AsyncWrite + Unpin>(
    write: &mut W,
    chunks: &mut [Bytes],
    timeout: Option<Duration>,
) -> io::Result<()> {
    let mut start = 0;
    while let Some(rest) = chunks.get(start..).filter(|rest| !rest.is_empty()) {
        let written = if let [only] = rest {
            // One buffer: `send`, which skips writev's iovec handling in the kernel.
            within(timeout, write.write(only)).await?
        } else {
            let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
            within(timeout, write.write_vectored(io_slices(rest, &mut slices))).await?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        start += advance(chunks.get_mut(start..).unwrap_or_default(), written);
    }
    within(timeout, write.flush()).await
}

/// `io` bounded by `timeout`. A write that completes at once never touches a timer; one that has
/// to wait gets a boxed one, so that every idle connection's writer does not carry a timer inline.
async fn within<T>(timeout: Option<Duration>, io: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    let mut io = std::pin::pin!(io);
    if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(io.as_mut().poll(cx))).await {
        return done;
    }
    let Some(limit) = timeout else {
        return io.await;
    };
    let mut timer = Box::pin(tokio::time::sleep(limit));
    poll_fn(|cx| match io.as_mut().poll(cx) {
        Poll::Ready(done) => Poll::Ready(done),
        Poll::Pending => timer.as_mut().poll(cx).map(|()| Err(io::ErrorKind::TimedOut.into())),
    })
    .await
}

/// Writes what `outbound` holds now, as far as `socket` takes it without waiting, and hands the
/// rest back to the queue for the writer task. The reader calls it between reads, so that what
/// the connection answered to one read goes out while its bytes are still in the CPU's cache:
/// through the writer task, every other connection's read came first (docs/architecture.md,
/// "Write-through"). `chunks` is scratch space, empty between calls.
///
/// Errors are left to the writer task, which meets them on its next write.
pub(crate) fn write_through(socket: &TcpStream, outbound: &Outbound, chunks: &mut Vec<Bytes>) {
    if !outbound.take_now(WRITE_BATCH, chunks) {
        return;
    }
    let mut start = 0;
    while let Some(rest) = chunks.get(start..).filter(|rest| !rest.is_empty()) {
        let written = if let [only] = rest {
            socket.try_write(only)
        } else {
            let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
            socket.try_write_vectored(io_slices(rest, &mut slices))
        };
        match written {
            Ok(written) if written > 0 => {
                start += advance(chunks.get_mut(start..).unwrap_or_default(), written);
            }
            _ => break,
        }
    }
    outbound.put_back(chunks.drain(..).skip(start));
}

/// Fills `slices` with the first chunks and answers the part filled.
fn io_slices<'a, 's>(chunks: &'a [Bytes], slices: &'s mut [IoSlice<'a>; WRITE_BATCH]) -> &'s [IoSlice<'a>] {
    for (slice, chunk) in slices.iter_mut().zip(chunks) {
        *slice = IoSlice::new(chunk);
    }
    slices.get(..chunks.len().min(WRITE_BATCH)).unwrap_or_default()
}

/// Counts `written` bytes off the front of `chunks`: answers how many chunks are done, and
/// advances the first one not done past its written part.
fn advance(chunks: &mut [Bytes], mut written: usize) -> usize {
    let mut done = 0;
    for chunk in chunks {
        if written < chunk.len() {
            chunk.advance(written);
            break;
        }
        written -= chunk.len();
        done += 1;
    }
    done
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
        let writer = tokio::spawn(write_frames(ours, OutboundStream(queue.clone()), None, || {}));
        for part in [&b"one "[..], &[b'x'; 5000][..], b" two"] {
            queue.push(Bytes::copy_from_slice(part), FrameKind::Data).unwrap();
        }
        let received = finish_and_read_all(&queue, writer, &mut peer).await;
        assert_eq!(received.len(), 5008);
        assert!(received.starts_with(b"one x") && received.ends_with(b"x two"));
    }

    /// Ends the queue and answers every byte the peer gets before the writer shuts the socket,
    /// once the writer is done.
    async fn finish_and_read_all(
        queue: &Outbound,
        writer: tokio::task::JoinHandle<()>,
        peer: &mut (impl tokio::io::AsyncRead + Unpin),
    ) -> Vec<u8> {
        queue.finish();
        let mut received = Vec::new();
        tokio::time::timeout(PATIENCE, peer.read_to_end(&mut received))
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(PATIENCE, writer).await.unwrap().unwrap();
        received
    }

    #[tokio::test]
    async fn a_write_through_the_socket_cannot_finish_leaves_the_rest_to_the_writer_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        let queue = Outbound::new(64 << 20);
        // 16 MiB in one write-through's worth of chunks, which the peer does not read yet: more
        // than the socket's buffers take.
        const FRAME: usize = 256 << 10;
        for i in 0..WRITE_BATCH {
            queue.push(Bytes::from(vec![i as u8; FRAME]), FrameKind::Data).unwrap();
        }
        let mut scratch = Vec::new();
        write_through(&ours, &queue, &mut scratch);
        assert!(scratch.is_empty());
        assert_eq!(queue.queued_bytes(), 0, "all taken");
        queue
            .push(Bytes::from(vec![WRITE_BATCH as u8; FRAME]), FrameKind::Data)
            .unwrap();
        assert!(
            !queue.take_now(1, &mut scratch),
            "the socket did not take it all: the rest waits"
        );
        let writer = tokio::spawn(write_frames(ours, OutboundStream(queue.clone()), None, || {}));
        let received = finish_and_read_all(&queue, writer, &mut peer).await;
        assert_eq!(received.len(), (WRITE_BATCH + 1) * FRAME);
        for (i, part) in received.chunks(FRAME).enumerate() {
            assert!(part.iter().all(|&b| usize::from(b) == i), "frame {i} out of place");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_moves_nothing_for_the_write_timeout_gives_up() {
        let (ours, _peer) = tokio::io::duplex(64);
        let queue = Outbound::new(1 << 20);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let timeout = Some(Duration::from_secs(30));
        let writer = tokio::spawn(write_frames(ours, OutboundStream(queue.clone()), timeout, move || {
            let _ = tx.send(());
        }));
        queue.push(Bytes::from(vec![7u8; 10_000]), FrameKind::Data).unwrap();
        // The paused clock jumps to the deadline once every task waits: no real time passes.
        rx.await.expect("on_timeout ran");
        writer.await.unwrap();
        assert_eq!(queue.queued_bytes(), 0, "the queue was aborted");
        assert!(queue.push(Bytes::from_static(b"x"), FrameKind::Data).is_err());
    }

    #[tokio::test]
    async fn a_write_the_peer_never_reads_ends_when_the_queue_is_aborted() {
        let (ours, _peer) = tokio::io::duplex(64);
        let queue = Outbound::new(1 << 20);
        let writer = tokio::spawn(write_frames(ours, OutboundStream(queue.clone()), None, || {}));
        queue.push(Bytes::from(vec![7u8; 10_000]), FrameKind::Data).unwrap();
        tokio::task::yield_now().await;
        queue.abort();
        tokio::time::timeout(PATIENCE, writer)
            .await
            .expect("the writer gives up")
            .unwrap();
    }
}
