//! How long a chat node that dies stays present on the other nodes (issue 16). Joins `lobby` as
//! `watcher` on node A and as `victim` on node B, waits until A shows both, kills node B with
//! SIGKILL (no close frame, no leave published), and times the leave diff A announces. Prints
//! one JSON line. `bench/node-death.sh` starts Redis and the nodes and runs it.
//!
//! ```text
//! cargo run --release -p switchboard-bench --bin node_death -- ws://A/chat ws://B/chat --pid PID_OF_B
//! ```

#![allow(clippy::print_stdout)]
#![allow(clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The longest any wait may take: past the largest presence bound anyone would measure.
const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(about = "time a dead node's leave")]
struct Args {
    /// The chat WebSocket of the node that survives.
    survivor: String,
    /// The chat WebSocket of the node that is killed.
    victim: String,
    /// The process id of the node that is killed.
    #[arg(long)]
    pid: u32,
}

async fn join(url: &str, name: &str) -> Result<Client, String> {
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
    let join = json!({"type": "join", "room": "lobby", "name": name}).to_string();
    client.send(Message::text(join)).await.map_err(|e| e.to_string())?;
    Ok(client)
}

/// Reads presence diffs until `name` joined (`true`) or left (`false`).
async fn await_diff(client: &mut Client, name: &str, joined: bool) -> Result<(), String> {
    let key = if joined { "joins" } else { "leaves" };
    loop {
        let message = tokio::time::timeout(PATIENCE, client.next())
            .await
            .map_err(|_| format!("no {key} of {name} within {PATIENCE:?}"))?
            .ok_or("the survivor closed")?
            .map_err(|e| e.to_string())?;
        let Message::Text(text) = message else { continue };
        let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let names = value[key].as_array().cloned().unwrap_or_default();
        if value["type"] == "presence_diff" && names.iter().any(|n| n == name) {
            return Ok(());
        }
    }
}

async fn run(args: Args) -> Result<Value, String> {
    let mut watcher = join(&args.survivor, "watcher").await?;
    let _victim = join(&args.victim, "victim").await?;
    await_diff(&mut watcher, "victim", true).await?;
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &args.pid.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("kill -KILL {} failed", args.pid));
    }
    await_diff(&mut watcher, "victim", false).await?;
    Ok(json!({ "scenario": "node-death", "left_after_s": killed.elapsed().as_secs_f64() }))
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(error) => Err(error.to_string()),
    };
    match result {
        Ok(value) => println!("{value}"),
        Err(error) => {
            println!("{}", json!({ "error": error }));
            std::process::exit(1);
        }
    }
}
