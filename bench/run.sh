#!/usr/bin/env bash
# Runs the benchmark scenarios against switchboard and its peers, alternately, for several rounds;
# the server is pinned to core 0 and the load generator to core 1. Results: one JSON line per run
# in target/bench/results.jsonl, then medians and ratios (bench/summarize.py).
#
#   bench/run.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds, 5 s per measurement)
#
# To run part of it, name the servers and a case pattern (an extended regex), for example:
#   SERVERS="switchboard tungstenite" CASES='^echo-64k$' bench/run.sh 3 5
# To compare with an earlier build of the benchmark server (before and after a change), point
# BASELINE_BIN at its binary and name the server `baseline`:
#   BASELINE_BIN=/tmp/base/target/release/examples/bench_server SERVERS="switchboard baseline" bench/run.sh 5 5
# Every Rust binary is built with the workspace's `release-lto` profile (fat LTO, one codegen
# unit); build the baseline the same way, which for a commit older than that profile is
# `CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 cargo build --release
# --example bench_server`. PROFILE=release measures the plain release profile.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
rounds=${1:-3}
seconds=${2:-5}
out=target/bench
mkdir -p "$out"
results="$out/results.jsonl"
servers=${SERVERS:-raw-tcp switchboard switchboard-actor fastwebsockets tungstenite actix-ws actix-actors node-ws}
cases=${CASES:-.}
: > "$results"
raise_fd_limit

profile=${PROFILE:-release-lto}
cargo build --profile "$profile" --example bench_server -p switchboard
cargo build --profile "$profile" -p switchboard-bench
if [[ " $servers " == *" node-ws "* ]]; then bench/node/install.sh; fi
bin=target/$profile

server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
}
trap stop_server EXIT

start_server() {
  local name=$1 port=$2
  local command
  case $name in
    switchboard | switchboard-actor) command=("$bin/examples/bench_server" --workers 1) ;;
    baseline) command=("${BASELINE_BIN:?set BASELINE_BIN to an earlier bench_server}" --workers 1) ;;
    tungstenite) command=("$bin/tungstenite_server" --workers 1) ;;
    fastwebsockets) command=("$bin/fastwebsockets_server" --workers 1) ;;
    actix-ws) command=("$bin/actix_ws_server" --workers 1) ;;
    actix-actors) command=("$bin/actix_actors_server" --workers 1) ;;
    raw-tcp) command=("$bin/raw_echo") ;;
    node-ws) command=(node bench/node/ws_server.js) ;;
  esac
  taskset -c 0 "${command[@]}" --addr "127.0.0.1:$port" > "$out/$name.log" 2>&1 &
  server_pid=$!
  wait_port "$port" || { echo "$name did not start"; return 1; }
}

# Runs the load generator; tags its JSON line with the server, round and a case name.
load() {
  local server=$1 round=$2 case=$3; shift 3
  [[ $case =~ $cases ]] || return 0
  local line
  line=$(taskset -c 1 "$bin/loadgen" "$@" 2>/dev/null || true)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{\"error\":\"no output\"}"); d.update(server=sys.argv[2], round=int(sys.argv[3]), case=sys.argv[4]); print(json.dumps(d))' \
    "$line" "$server" "$round" "$case" | tee -a "$results"
}

for round in $(seq "$rounds"); do
  for server in $servers; do
    port=$(free_port)
    start_server "$server" "$port"
    if [ "$server" = raw-tcp ]; then
      load "$server" "$round" echo-32 echo "tcp://127.0.0.1:$port" --connections 64 --in-flight 16 --size 32 --seconds "$seconds"
      load "$server" "$round" echo-64k echo "tcp://127.0.0.1:$port" --connections 64 --in-flight 16 --size 65536 --seconds "$seconds"
      stop_server
      continue
    fi
    ws="ws://127.0.0.1:$port"
    # switchboard-actor: the same server's session-actor routes.
    echo_path=/echo broadcast_path=/broadcast
    if [ "$server" = switchboard-actor ]; then echo_path=/actor-echo broadcast_path=/actor-broadcast; fi
    # Cases that open or close thousands of connections go last, so that tearing them down does
    # not overlap another measurement.
    load "$server" "$round" echo-32 echo "$ws$echo_path" --connections 64 --in-flight 16 --size 32 --seconds "$seconds"
    load "$server" "$round" echo-64k echo "$ws$echo_path" --connections 64 --in-flight 16 --size 65536 --binary --seconds "$seconds"
    load "$server" "$round" echo-32-idle-100 echo "$ws$echo_path" --connections 64 --in-flight 16 --size 32 --idle 100 --seconds "$seconds"
    load "$server" "$round" broadcast-1k-200 broadcast "$ws$broadcast_path" --subscribers 1000 --rate 200 --seconds "$seconds"
    load "$server" "$round" broadcast-1k-max broadcast "$ws$broadcast_path" --subscribers 1000 --rate 0 --window 16 --seconds "$seconds"
    load "$server" "$round" broadcast-10k-200 broadcast "$ws$broadcast_path" --subscribers 10000 --rate 200 --seconds "$seconds"
    load "$server" "$round" echo-32-idle-10k echo "$ws$echo_path" --connections 64 --in-flight 16 --size 32 --idle 10000 --seconds "$seconds"
    stop_server
    # Memory per connection, on a fresh server.
    if [[ connections-10k =~ $cases ]]; then
      start_server "$server" "$port"
      load "$server" "$round" connections-10k connections "$ws$echo_path" --count 10000 --pid "$server_pid"
      stop_server
    fi
  done
done
python3 bench/summarize.py "$results"
