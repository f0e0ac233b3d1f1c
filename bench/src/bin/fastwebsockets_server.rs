//! Peer server for the benchmarks, on fastwebsockets 0.10 and hyper 1: `/echo` and `/broadcast`,
//! the same contract as switchboard's `examples/bench_server.rs`.
//!
//! Written as fastwebsockets' users make it fast:
//! - a one-thread tokio runtime, and each connection's task `unconstrained` (no cooperative
//!   yield every 128 operations), as the crate's own echo examples run;
//! - writes are batched. `write_frame` writes each frame straight to its stream, a system call per
//!   frame, so the echo's stream is a [`FlushBeforeWait`]: frames go into a write buffer, and the
//!   buffer is flushed when a read would wait (nothing more is ready) or when it is full. A
//!   `now_or_never` on `read_frame` is not an option: it is not cancel-safe (it consumes a frame's
//!   header before it waits for the payload). A broadcast subscriber is split in two halves; its
//!   writer task writes everything queued into a buffered half and flushes once.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin fastwebsockets_server -- --addr 127.0.0.1:9007
//! ```

#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use clap::Parser;
use fastwebsockets::{upgrade, FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Command-line flags.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9007")]
    addr: String,
    /// Runtime worker threads: 1 runs tokio's current-thread runtime.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// The write buffer: a 64 KiB echo's frame (header and payload) fits with room for small ones.
const WRITE_BUFFER: usize = 80 << 10;

/// The largest message taken, as the other peers.
const MAX_MESSAGE: usize = 64 << 20;

/// A frame for a subscriber's writer: a broadcast's text, or a pong or close its reader owes.
type Outgoing = (OpCode, Bytes);

/// Every `/broadcast` connection's outbox, by connection number.
#[derive(Default)]
struct Subscribers {
    outboxes: Mutex<HashMap<u64, mpsc::UnboundedSender<Outgoing>>>,
    ids: AtomicU64,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let runtime = if args.workers <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let listener = TcpListener::bind(&args.addr).await?;
        eprintln!("listening on {}", listener.local_addr()?);
        let subscribers = Arc::new(Subscribers::default());
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let subscribers = subscribers.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| upgrade_request(request, subscribers.clone()));
                let connection = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades();
                let _ = connection.await;
            });
        }
    })
}

async fn upgrade_request(
    mut request: Request<Incoming>,
    subscribers: Arc<Subscribers>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let path = request.uri().path().to_owned();
    if !upgrade::is_upgrade_request(&request) || !matches!(path.as_str(), "/echo" | "/broadcast") {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let (response, upgrading) = upgrade::upgrade(&mut request)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        let Ok(ws) = upgrading.await else { return };
        let result = if path == "/echo" {
            echo(ws.into_inner()).await
        } else {
            broadcast(ws, subscribers).await
        };
        if let Err(error) = result {
            log_unexpected(&error);
        }
    }));
    Ok(response)
}

/// The upgraded connection, as hyper hands it over.
type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

async fn echo(stream: Upgraded) -> Result<(), WebSocketError> {
    let stream = FlushBeforeWait(BufWriter::with_capacity(WRITE_BUFFER, stream));
    let mut ws = fastwebsockets::WebSocket::after_handshake(stream, fastwebsockets::Role::Server);
    ws.set_max_message_size(MAX_MESSAGE);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn broadcast(
    ws: fastwebsockets::WebSocket<Upgraded>,
    subscribers: Arc<Subscribers>,
) -> Result<(), WebSocketError> {
    let (read, mut write) = ws.split(|stream| {
        let (read, write) = tokio::io::split(stream);
        (read, BufWriter::with_capacity(WRITE_BUFFER, write))
    });
    let mut read = FragmentCollectorRead::new(read);
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let id = subscribers.ids.fetch_add(1, Ordering::Relaxed);
    subscribers.outboxes.lock().insert(id, tx.clone());
    let writer = tokio::spawn(tokio::task::unconstrained(async move {
        while let Some((opcode, payload)) = rx.recv().await {
            write
                .write_frame(Frame::new(true, opcode, None, Payload::Borrowed(&payload)))
                .await?;
            while let Ok((opcode, payload)) = rx.try_recv() {
                write
                    .write_frame(Frame::new(true, opcode, None, Payload::Borrowed(&payload)))
                    .await?;
            }
            write.flush().await?;
        }
        Ok::<_, WebSocketError>(())
    }));
    // A ping's pong and a close's echo go through the writer, which alone owns the write half.
    let mut obligated = |frame: Frame<'_>| {
        let sent = tx.send((frame.opcode, Bytes::copy_from_slice(&frame.payload)));
        async move { sent.map_err(|_| WebSocketError::ConnectionClosed) }
    };
    let result = loop {
        match read.read_frame(&mut obligated).await {
            Ok(frame) if frame.opcode == OpCode::Text => {
                let text = (OpCode::Text, Bytes::copy_from_slice(&frame.payload));
                for outbox in subscribers.outboxes.lock().values() {
                    let _ = outbox.send(text.clone());
                }
            }
            Ok(frame) if frame.opcode == OpCode::Close => break Ok(()),
            Ok(_) => {}
            Err(error) => break Err(error),
        }
    };
    subscribers.outboxes.lock().remove(&id);
    if result.is_ok() {
        // The close's echo is queued: let the writer send it and end when the outbox closes.
        drop(tx);
        let _ = writer.await;
    } else {
        writer.abort();
    }
    result
}

fn log_unexpected(error: &WebSocketError) {
    if !matches!(
        error,
        WebSocketError::UnexpectedEOF | WebSocketError::ConnectionClosed | WebSocketError::IoError(_)
    ) {
        eprintln!("connection ended: {error}");
    }
}

/// A buffered stream that flushes its writes before a read waits: while frames keep arriving,
/// their answers gather in the buffer; when nothing more is ready to read, they go out in one
/// write. The batching the other peers do by hand, done under fastwebsockets' frame API.
struct FlushBeforeWait<S>(BufWriter<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for FlushBeforeWait<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let inner = Pin::new(&mut self.0);
        match inner.poll_read(cx, buf) {
            Poll::Pending => {
                // Nothing to read: send what was written. If the socket is full, the flush waits
                // for it to drain and this task is woken by whichever comes first.
                ready!(Pin::new(&mut self.0).poll_flush(cx))?;
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FlushBeforeWait<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
