#!/usr/bin/env bash
# How long the members of a chat node killed with SIGKILL stay present on another node: two
# examples/chat processes share a Redis; bench/src/bin/node_death joins one member on each,
# kills node B and times the leave node A announces. Several rounds, each with a fresh node B.
#
#   bench/node-death.sh [ROUNDS] [PRESENCE_TTL_SECONDS]     (defaults: 3 rounds, 15 s, the default bound)
#
# Needs redis-server (Debian's package). Results in target/bench/node-death.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
rounds=${1:-3}
ttl=${2:-15}
out=target/bench
mkdir -p "$out"
results="$out/node-death.jsonl"
: > "$results"
cargo build --release --features redis --example chat -p switchboard
cargo build --release -p switchboard-bench --bin node_death
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no > "$out/redis.log" 2>&1 &
pids+=("$!")
wait_port "$redis_port"
chat() { # PORT
  RUST_LOG=warn target/release/examples/chat --addr "127.0.0.1:$1" --redis "redis://127.0.0.1:$redis_port" \
    --presence-ttl "$ttl" > "$out/chat-$1.log" 2>&1 &
  pids+=("$!")
  wait_port "$1"
}
a=$(free_port)
chat "$a"
for round in $(seq "$rounds"); do
  b=$(free_port)
  chat "$b"
  line=$(target/release/node_death "ws://127.0.0.1:$a/chat" "ws://127.0.0.1:$b/chat" --pid "${pids[-1]}" || true)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(round=int(sys.argv[2]), bound_s=float(sys.argv[3])); print(json.dumps(d))' \
    "$line" "$round" "$ttl" | tee -a "$results"
done
