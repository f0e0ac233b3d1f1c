//! An interactive WebSocket client, in the spirit of wscat and websocat: each line typed on stdin
//! is sent, each message received is printed (binary as hex), and the close code and reason are
//! printed when the connection ends.
//!
//! Run it against the echo example:
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:9001 &
//! cargo run --example client -- ws://127.0.0.1:9001/echo
//! cargo run --example client -- --binary --header 'Authorization: Bearer t' --subprotocol chat.v1 ws://127.0.0.1:9001/echo
//! ```

// A command-line tool: stdout and stderr are its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::BufRead;
use std::process::ExitCode;

use clap::Parser;
use switchboard::{CloseCode, WebSocket};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(about = "Interactive WebSocket client")]
struct Args {
    /// The ws:// or wss:// URL to connect to.
    url: String,
    /// A request header, as `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// A subprotocol to offer (repeatable, preferred first).
    #[arg(long = "subprotocol")]
    subprotocols: Vec<String>,
    /// Send each line as a binary message instead of text.
    #[arg(long)]
    binary: bool,
}

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let mut builder = WebSocket::builder(&args.url)
        .protocols(args.subprotocols.clone())
        .on_connect(|ws| {
            ws.on_text(|_, text| println!("< {text}"));
            ws.on_binary(|_, bytes| println!("< [{} bytes] {}", bytes.len(), hex(&bytes)));
        });
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            eprintln!("error: --header takes `Name: value`, got {header:?}");
            return ExitCode::from(2);
        };
        builder = builder.header(name.trim(), value.trim());
    }
    let ws = match builder.connect().await {
        Ok(ws) => ws,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "connected to {}{}",
        args.url,
        ws.protocol().map(|p| format!(" (subprotocol {p})")).unwrap_or_default()
    );
    spawn_stdin_sender(ws.clone(), args.binary);
    let code = ws.closed().await;
    let reason = ws.close_reason().unwrap_or_default();
    eprintln!("closed: {code} {reason}");
    if code == CloseCode::NORMAL || code == CloseCode::AWAY {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Reads stdin on its own thread (it blocks) and sends each line, waiting for each to be written
/// so a closed socket stops it; closes with 1000 at the end of input.
fn spawn_stdin_sender(ws: WebSocket, binary: bool) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
            return;
        };
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let sent = if binary {
                ws.send(line.into_bytes())
            } else {
                ws.send(line)
            };
            if let Err(error) = runtime.block_on(sent) {
                eprintln!("not sent: {error}");
                return;
            }
        }
        drop(ws.close());
    });
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}
