//! The physical reference for the echo benchmark: a TCP server that sends back every byte it
//! receives, with no WebSocket framing at all. The load generator's `tcp://` URLs talk to it.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin raw_echo -- --addr 127.0.0.1:9005
//! ```

#![allow(clippy::print_stderr)]

use clap::Parser;
use tokio::io::BufReader;
use tokio::net::TcpListener;

/// Bytes read per call: large enough that a 64 KiB message does not take eight reads and eight
/// writes, as it did with `tokio::io::copy`'s 8 KiB buffer, which made this reference slower than
/// the WebSocket servers it is meant to bound.
const READ_BUFFER: usize = 256 * 1024;

/// Command-line flags.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9005")]
    addr: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    loop {
        let (mut tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let (read, mut write) = tcp.split();
            let mut read = BufReader::with_capacity(READ_BUFFER, read);
            let _ = tokio::io::copy_buf(&mut read, &mut write).await;
        });
    }
}
