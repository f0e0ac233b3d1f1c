//! A WebSocket load generator for any server with the `/echo` and `/broadcast` contract of
//! `examples/bench_server.rs`. Prints a progress bar on stderr for runs over 3 s, and one JSON
//! line of results on stdout.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin loadgen -- echo ws://127.0.0.1:9002/echo --connections 64 --in-flight 16 --size 32 --seconds 10
//! cargo run --release -p switchboard-bench --bin loadgen -- broadcast ws://127.0.0.1:9002/broadcast --subscribers 1000 --rate 200 --seconds 10
//! cargo run --release -p switchboard-bench --bin loadgen -- broadcast ws://127.0.0.1:9002/broadcast --rate 0 --json-size 1024 --deflate
//! cargo run --release -p switchboard-bench --bin loadgen -- connections ws://127.0.0.1:9002/echo --count 10000 --pid 1234
//! ```
//!
//! Every echo is checked against what was sent; every broadcast delivery is counted, and what did
//! not arrive is reported as lost. `tcp://host:port` URLs run the echo scenario over raw TCP
//! against `raw_echo`, with the same bytes a masked WebSocket frame would carry.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod broadcast;
mod conn;
mod connections;
mod echo;
mod frames;
mod payloads;

use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "WebSocket load generator")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// C connections, each keeping W messages of S bytes in flight; every echo verified.
    Echo {
        url: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        #[arg(long, default_value_t = 32)]
        size: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Binary messages instead of text.
        #[arg(long)]
        binary: bool,
        /// Idle connections to open (and hold) before measuring.
        #[arg(long, default_value_t = 0)]
        idle: usize,
    },
    /// N subscribers on the broadcast URL, one publisher at a fixed rate (0: as fast as the server
    /// keeps up, with a window of in-flight messages).
    Broadcast {
        url: String,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        #[arg(long, default_value_t = 200)]
        rate: u64,
        #[arg(long, default_value_t = 16)]
        window: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Publish through this URL instead (another node of a cluster, for the cross-node case).
        #[arg(long)]
        publish_url: Option<String>,
        /// Offer permessage-deflate on every connection and inflate what arrives compressed.
        #[arg(long)]
        deflate: bool,
        /// Publish JSON chat messages of this many bytes instead of `"SEQ MICROS"`.
        #[arg(long, default_value_t = 0)]
        json_size: usize,
    },
    /// Opens K idle connections; reports the connect rate and, given the server's PID, its
    /// resident memory per connection.
    Connections {
        url: String,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long)]
        pid: Option<u32>,
        /// Offer permessage-deflate, as a browser does: the server's memory with compression
        /// negotiated.
        #[arg(long)]
        offer_deflate: bool,
        /// Each connection first exchanges one 1 KiB message (compressed, with --offer-deflate):
        /// the memory of a connection that has been used, not only opened.
        #[arg(long)]
        active: bool,
        /// How long to wait before reading the server's memory, in ms (longer than two keepalive
        /// intervals to see what an idle dedicated connection gives back).
        #[arg(long, default_value_t = 500)]
        settle_ms: u64,
    },
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            println!("{}", json!({ "error": error.to_string() }));
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        match args.scenario {
            Scenario::Echo {
                url,
                connections,
                in_flight,
                size,
                seconds,
                binary,
                idle,
            } => echo::echo(&url, connections, in_flight, size, seconds, binary, idle).await,
            Scenario::Broadcast {
                url,
                subscribers,
                rate,
                window,
                seconds,
                publish_url,
                deflate,
                json_size,
            } => {
                let plan = broadcast::Plan {
                    url: &url,
                    publish_url: publish_url.as_deref().unwrap_or(&url),
                    subscribers,
                    rate,
                    window,
                    seconds,
                    deflate,
                    json_size,
                };
                broadcast::broadcast(plan).await
            }
            Scenario::Connections {
                url,
                count,
                pid,
                offer_deflate,
                active,
                settle_ms,
            } => {
                let settle = Duration::from_millis(settle_ms);
                connections::connections(&url, count, pid, offer_deflate, active, settle).await
            }
        }
    });
    match result {
        Ok(value) => println!("{value}"),
        Err(error) => {
            println!("{}", json!({ "error": error }));
            std::process::exit(1);
        }
    }
}

/// Shows progress on stderr, for runs longer than a few seconds.
fn progress(seconds: u64, done: Arc<AtomicU64>, unit: &'static str, stop: Arc<AtomicBool>) {
    if seconds <= 3 {
        return;
    }
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let elapsed = start.elapsed().as_secs_f64().min(seconds as f64);
            let filled = (elapsed / seconds as f64 * 30.0) as usize;
            let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r[{}{}] {elapsed:4.1}/{seconds} s {rate:>12.0} {unit}/s",
                "#".repeat(filled),
                ".".repeat(30 - filled)
            );
        }
        eprintln!();
    });
}

fn percentiles(mut micros: Vec<u32>) -> serde_json::Value {
    micros.sort_unstable();
    let at = |q: f64| {
        let index = ((micros.len() as f64 * q).ceil() as usize).saturating_sub(1);
        micros.get(index).copied().map_or(0.0, |us| f64::from(us) / 1000.0)
    };
    json!({ "p50_ms": at(0.50), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": at(1.0) })
}
