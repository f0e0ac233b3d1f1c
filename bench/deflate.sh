#!/usr/bin/env bash
# permessage-deflate on a chat-style broadcast: 1 KiB JSON chat messages to 1,000 subscribers,
# every connection offering permessage-deflate as Chromium does and inflating what arrives.
# switchboard in the shared mode against Node's ws with perMessageDeflate (bench/node), and
# switchboard with compression off as the cost of compressing; flat out (16 messages in flight)
# and at 10 messages a second (10,000 deliveries/s, which every server here keeps up with). Per run: deliveries/s, p99, the
# server's CPU time per 1,000 deliveries (from /proc), bytes on the wire per message, and for
# switchboard its deflate calls per broadcast (`switchboard_compressions_total` over messages
# published). Results in target/bench/deflate.jsonl and a summary.
#
#   bench/deflate.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds, 5 s per measurement)
#
# The server is pinned to core 0 and the load generator to core 1, as in bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
rounds=${1:-3}
seconds=${2:-5}
out=target/bench
mkdir -p "$out"
results="$out/deflate.jsonl"
: > "$results"
raise_fd_limit

cargo build --release --example bench_server -p switchboard
cargo build --release -p switchboard-bench
bench/node/install.sh
bin=target/release
# CPU time (user + system) of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
compressions() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^switchboard_compressions_total/ {print $2}'; }

server_pid=
stop_server() { [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }; server_pid=; }
trap stop_server EXIT

start_server() { # NAME PORT
  case $1 in
    switchboard-off) command=("$bin/examples/bench_server" --workers 1 --compression off) ;;
    switchboard-shared) command=("$bin/examples/bench_server" --workers 1 --compression shared) ;;
    # ws deflates per recipient on Node's zlib thread pool; 100 calls at a time measured faster
    # than its default of 10 here (13.6k against 10.2k deliveries/s to 100 subscribers).
    node-ws) command=(node bench/node/ws_server.js --deflate --concurrency 100) ;;
  esac
  taskset -c 0 "${command[@]}" --addr "127.0.0.1:$2" > "$out/deflate-$1.log" 2>&1 &
  server_pid=$!
  wait_port "$2"
}

load() { # SERVER CASE PORT ARGS...
  local server=$1 case=$2 port=$3 line ticks_before ticks_after deflated_before=0 deflated_after=0
  shift 3
  [[ $server == switchboard-* ]] && deflated_before=$(compressions "$port")
  ticks_before=$(cpu_ticks "$server_pid")
  line=$(taskset -c 1 "$bin/loadgen" broadcast "ws://127.0.0.1:$port/broadcast" "$@" 2>/dev/null || true)
  ticks_after=$(cpu_ticks "$server_pid")
  [[ $server == switchboard-* ]] && deflated_after=$(compressions "$port")
  python3 - "$line" "$server" "$case" "$round" "$((ticks_after - ticks_before))" "$(getconf CLK_TCK)" \
    "$((deflated_after - deflated_before))" <<'PY' | tee -a "$results"
import json, sys
line, server, case, round_, ticks, hz, deflated = sys.argv[1:]
d = json.loads(line or '{"error": "no output"}')
d.update(server=server, case=case, round=int(round_))
if "deliveries" in d:
    d["server_cpu_ms_per_1k_deliveries"] = int(ticks) / int(hz) * 1000 / max(d["deliveries"], 1) * 1000
    if server.startswith("switchboard"):
        d["deflate_calls_per_broadcast"] = int(deflated) / max(d["published"], 1)
print(json.dumps(d))
PY
}

for round in $(seq "$rounds"); do
  for server in switchboard-shared node-ws switchboard-off; do
    port=$(free_port)
    start_server "$server" "$port"
    deflate=(--deflate)
    [ "$server" = switchboard-off ] && deflate=()
    load "$server" json-1k-max "$port" --subscribers 1000 --rate 0 --window 16 --json-size 1024 "${deflate[@]}" --seconds "$seconds"
    load "$server" json-1k-10 "$port" --subscribers 1000 --rate 10 --json-size 1024 "${deflate[@]}" --seconds "$seconds"
    stop_server
  done
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(xs): return statistics.median(xs) if xs else float("nan")
print(f"\n{'case':<13}{'server':<20}{'deliveries/s':>14}{'p99 ms':>9}{'lost':>7}{'CPU ms/1k':>11}{'wire B':>8}{'deflates':>10}")
for case in ["json-1k-max", "json-1k-10"]:
    for server in ["switchboard-shared", "node-ws", "switchboard-off"]:
        rs = [r for r in rows if r.get("case") == case and r.get("server") == server and "latency" in r]
        if not rs: continue
        deflates = [r["deflate_calls_per_broadcast"] for r in rs if "deflate_calls_per_broadcast" in r]
        print(f"{case:<13}{server:<20}{med([r['deliveries_per_s'] for r in rs]):>14,.0f}"
              f"{med([r['latency']['p99_ms'] for r in rs]):>9.1f}{sum(r['lost'] for r in rs):>7}"
              f"{med([r['server_cpu_ms_per_1k_deliveries'] for r in rs]):>11.2f}"
              f"{med([r['wire_bytes_per_message'] for r in rs]):>8.0f}"
              + (f"{med(deflates):>10.3f}" if deflates else f"{'-':>10}"))
PY
