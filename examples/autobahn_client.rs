//! The Autobahn|Testsuite client loop: runs every case of a fuzzing server against switchboard's
//! client, echoing each message back, then asks the server to write its reports.
//!
//! Run it through the suite's script (it starts the fuzzing server on port 9011):
//!
//! ```text
//! cargo build --release --example autobahn_client
//! ../shared/tools/autobahn/test-client.sh 9011 'target/release/examples/autobahn_client ws://127.0.0.1:9011'
//! ```
//!
//! `--compression shared` (or `dedicated`, `dedicated:W:M`) after the URL offers
//! permessage-deflate, for the suite's sections 12 and 13.

use std::time::Duration;

use switchboard::{Compression, Config, WebSocket};

/// The agent name the reports are filed under (test-client.sh summarizes this one).
const AGENT: &str = "client-under-test";

/// Case 9.* sends messages up to 16 MiB; leave room above that.
const MAX_MESSAGE: usize = 64 << 20;

/// A bound on each case, so one stuck case cannot hang the run.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

#[actix_web::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "ws://127.0.0.1:9011".to_string());
    let compression = match args.iter().position(|a| a == "--compression") {
        Some(at) => match args.get(at + 1).map(|m| m.parse::<Compression>()) {
            Some(Ok(compression)) => compression,
            Some(Err(error)) => return log::error!("{error}"),
            None => return log::error!("--compression needs a mode"),
        },
        None => Compression::Off,
    };
    let count = case_count(&base).await;
    log::info!("running {count} cases against {base} (compression {compression:?})");
    for case in 1..=count {
        run_case(&format!("{base}/runCase?case={case}&agent={AGENT}"), compression).await;
    }
    run_case(&format!("{base}/updateReports?agent={AGENT}"), Compression::Off).await;
}

/// The first text message of `/getCaseCount` is the number of cases.
async fn case_count(base: &str) -> u32 {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let connected = WebSocket::builder(format!("{base}/getCaseCount"))
        .on_connect(move |ws| {
            let tx = std::sync::Mutex::new(tx.lock().ok().and_then(|mut t| t.take()));
            ws.on_text(move |_, text| {
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(text.parse::<u32>().unwrap_or(0));
                }
            });
        })
        .connect()
        .await;
    match connected {
        Ok(_ws) => rx.await.unwrap_or(0),
        Err(error) => {
            log::error!("cannot reach the fuzzing server: {error}");
            0
        }
    }
}

/// Connects to `url`, echoes everything until the server closes.
async fn run_case(url: &str, compression: Compression) {
    let mut config = Config::default();
    config.compression = compression;
    config.max_message_size = MAX_MESSAGE;
    config.max_frame_size = MAX_MESSAGE;
    config.max_outbound_queue = 4 * MAX_MESSAGE;
    config.ping_interval = None; // unsolicited pings would be part of what the cases check
    let connected = WebSocket::builder(url)
        .config(config)
        .on_connect(|ws| {
            ws.on_text(|ws, text| {
                ws.send(text);
            });
            ws.on_binary(|ws, bytes| {
                ws.send(bytes);
            });
        })
        .connect()
        .await;
    match connected {
        Ok(ws) => {
            if tokio::time::timeout(CASE_TIMEOUT, ws.closed()).await.is_err() {
                log::warn!("{url}: no close within {CASE_TIMEOUT:?}; moving on");
                drop(ws.close_with(switchboard::CloseCode::AWAY, "case timeout"));
            }
        }
        Err(error) => log::warn!("{url}: {error}"),
    }
}
