//! Peer server for the benchmarks, on tokio-tungstenite: `/echo` and `/broadcast`, the same
//! contract as switchboard's `examples/bench_server.rs`.
//!
//! Written as tungstenite's users make it fast:
//! - writes are batched: the echo feeds every message that is already read (`now_or_never` on the
//!   stream: tungstenite parses all the frames one read brought) and flushes once when nothing more
//!   is ready, and a broadcast subscriber's writer feeds everything queued before flushing; a
//!   `send` per message would flush, one system call per message;
//! - a 32 KiB read buffer instead of the 128 KiB default: tungstenite clears its free read buffer
//!   before each read, so a smaller one costs less on small messages.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin tungstenite_server -- --addr 127.0.0.1:9003
//! ```

#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::Parser;
use futures_util::{FutureExt, SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Command-line flags.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9003")]
    addr: String,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// tungstenite's read buffer: it is cleared before each read, so smaller beats its 128 KiB default
/// on small messages, and 32 KiB still takes a 64 KiB message in two reads.
const READ_BUFFER: usize = 32 << 10;

/// Every `/broadcast` connection's outbox, by connection number.
type Subscribers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&args.addr).await?;
        eprintln!("listening on {}", listener.local_addr()?);
        let subscribers = Subscribers::default();
        let ids = Arc::new(AtomicU64::new(0));
        loop {
            let (tcp, _) = listener.accept().await?;
            let (subscribers, id) = (subscribers.clone(), ids.fetch_add(1, Ordering::Relaxed));
            tokio::spawn(serve(tcp, subscribers, id));
        }
    })
}

// The callback's error type is set by tungstenite.
#[allow(clippy::result_large_err)]
async fn serve(tcp: TcpStream, subscribers: Subscribers, id: u64) {
    let _ = tcp.set_nodelay(true);
    let mut path = String::new();
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_owned();
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    if path == "/broadcast" {
        let (tx, mut rx) = mpsc::unbounded_channel();
        subscribers.lock().insert(id, tx);
        let writer = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if sink.feed(message).await.is_err() {
                    break;
                }
                while let Ok(more) = rx.try_recv() {
                    if sink.feed(more).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
        });
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(_) = message {
                for outbox in subscribers.lock().values() {
                    let _ = outbox.send(message.clone());
                }
            }
        }
        subscribers.lock().remove(&id);
        writer.abort();
    } else {
        // Every message already read is fed, then one flush.
        while let Some(Ok(first)) = stream.next().await {
            let mut next = Some(first);
            while let Some(message) = next.take() {
                if matches!(message, Message::Text(_) | Message::Binary(_)) && sink.feed(message).await.is_err() {
                    return;
                }
                match stream.next().now_or_never() {
                    Some(Some(Ok(message))) => next = Some(message),
                    Some(Some(Err(_)) | None) => {
                        let _ = sink.flush().await;
                        return;
                    }
                    None => {}
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
    }
}
