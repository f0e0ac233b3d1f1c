#!/usr/bin/env bash
# The cross-node broadcast: one publisher on node A, 1,000 subscribers on node B, both
# examples/bench_server sharing a Redis; beside the same load on a single node. Then the same
# cross-node load with Redis killed and restarted in the middle: how long traffic stopped after
# Redis accepted connections again. Results in target/bench/cross-node.jsonl and a summary.
#
#   bench/cross-node.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds, 5 s per measurement)
#
# Every server process (node A, node B, Redis; or the single node) is pinned to core 0 and the
# load generator to core 1, so the load generator works alike in both cases and the cluster's
# extra work (node A, Redis, the hops) is charged to the server side. Needs redis-server
# (Debian's package).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
rounds=${1:-3}
seconds=${2:-5}
out=target/bench
mkdir -p "$out"
results="$out/cross-node.jsonl"
: > "$results"
raise_fd_limit

cargo build --release --features redis --example bench_server -p switchboard
cargo build --release -p switchboard-bench
bin=target/release

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=(); }
trap cleanup EXIT

redis_port=$(free_port)
start_redis() {
  taskset -c 0 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no > "$out/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_port "$redis_port"
}

node() { # CORE PORT [--redis URL]
  local core=$1 port=$2; shift 2
  taskset -c "$core" "$bin/examples/bench_server" --workers 1 --addr "127.0.0.1:$port" "$@" > "$out/node-$port.log" 2>&1 &
  pids+=("$!")
  wait_port "$port"
}

load() { # CASE ARGS...
  local case=$1 line; shift
  line=$(taskset -c 1 "$bin/loadgen" broadcast "$@" 2>/dev/null || true)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{\"error\":\"no output\"}"); d.update(case=sys.argv[2], round=int(sys.argv[3])); print(json.dumps(d))' \
    "$line" "$case" "$round" | tee -a "$results"
}

for round in $(seq "$rounds"); do
  for rate in 200 1000; do
    port=$(free_port)
    node 0 "$port"
    load "single-node-$rate" "ws://127.0.0.1:$port/broadcast" --subscribers 1000 --rate "$rate" --seconds "$seconds"
    cleanup

    start_redis
    a=$(free_port); b=$(free_port)
    node 0 "$a" --redis "redis://127.0.0.1:$redis_port"
    node 0 "$b" --redis "redis://127.0.0.1:$redis_port"
    load "cross-node-$rate" "ws://127.0.0.1:$b/broadcast" --publish-url "ws://127.0.0.1:$a/broadcast" \
      --subscribers 1000 --rate "$rate" --seconds "$seconds"
    cleanup
  done

  # Redis killed and restarted under load (1,000 messages/s): the longest stretch the first
  # subscriber went without a message ends when traffic resumed.
  start_redis
  a=$(free_port); b=$(free_port)
  node 0 "$a" --redis "redis://127.0.0.1:$redis_port"
  node 0 "$b" --redis "redis://127.0.0.1:$redis_port"
  restart_seconds=$((seconds < 4 ? 4 : seconds))
  (
    sleep 1.5
    kill -9 "$redis_pid"
    sleep 1
    date +%s%3N > "$out/redis-start.ms"
    taskset -c 0 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >> "$out/redis.log" 2>&1 &
    echo $! > "$out/redis.pid"
    wait_port "$redis_port"
    date +%s%3N > "$out/redis-ready.ms"
  ) &
  restarter=$!
  load "redis-restart-1000" "ws://127.0.0.1:$b/broadcast" --publish-url "ws://127.0.0.1:$a/broadcast" \
    --subscribers 1000 --rate 1000 --seconds "$restart_seconds"
  wait "$restarter"
  pids+=("$(cat "$out/redis.pid")")
  python3 - "$results" "$(cat "$out/redis-start.ms")" "$(cat "$out/redis-ready.ms")" "$round" <<'PY' | tee -a "$results"
import json, sys
results, start_ms, ready_ms, round_ = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
last = [json.loads(l) for l in open(results)][-1]
print(json.dumps({"case": "redis-restart-resume", "round": round_,
                  "redis_start_to_ready_ms": ready_ms - start_ms,
                  "resume_ms_after_redis_ready": last["longest_gap_end_unix_ms"] - ready_ms,
                  "longest_gap_ms": last["longest_gap_ms"], "lost": last["lost"]}))
PY
  cleanup
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs): return statistics.median(xs) if xs else float("nan")
print(f"\n{'case':<24}{'deliveries/s':>14}{'p50 ms':>9}{'p99 ms':>9}{'lost':>8}")
for case in ["single-node-200", "cross-node-200", "single-node-1000", "cross-node-1000", "redis-restart-1000"]:
    rs = [r for r in rows if r.get("case") == case and "latency" in r]
    if not rs: continue
    print(f"{case:<24}{med([r['deliveries_per_s'] for r in rs]):>14,.0f}"
          f"{med([r['latency']['p50_ms'] for r in rs]):>9.2f}{med([r['latency']['p99_ms'] for r in rs]):>9.2f}"
          f"{sum(r['lost'] for r in rs):>8}")
res = [r for r in rows if r.get("case") == "redis-restart-resume"]
if res:
    print("\nRedis restarted under load: traffic resumed "
          + ", ".join(f"{r['resume_ms_after_redis_ready']} ms" for r in res)
          + " after Redis accepted connections (it took "
          + ", ".join(f"{r['redis_start_to_ready_ms']} ms" for r in res)
          + " from its start to accepting; longest gaps "
          + ", ".join(f"{r['longest_gap_ms']:.0f} ms" for r in res) + ")")
PY
