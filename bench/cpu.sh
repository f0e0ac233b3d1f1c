#!/usr/bin/env bash
# Server CPU per message: runs one server pinned to core 0 and one load generator run pinned to
# core 1, and divides the server's user and system CPU time (from /proc/PID/stat) by the messages
# (or broadcast deliveries) the load generator counted. Steadier than messages/s on a noisy
# machine, and it splits our own code (user) from the kernel's socket work (sys). The load
# generator's own CPU per message is printed too: when it, not the server, is the limit, a server
# that costs its client less wins.
#
#   bench/cpu.sh SERVER [SERVER ARGS...] -- LOADGEN ARGS (with PORT where the port goes)
#   bench/cpu.sh target/release/examples/bench_server --workers 1 -- \
#       echo ws://127.0.0.1:PORT/echo --connections 64 --in-flight 16 --size 32 --seconds 4
#
# Build first: cargo build --release --example bench_server && cargo build --release -p switchboard-bench
# (the load generator is taken from target/$PROFILE, release unless PROFILE says otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server=()
while [ "$1" != "--" ]; do server+=("$1"); shift; done
shift
taskset -c 0 "${server[@]}" --addr "127.0.0.1:$port" > /dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  python3 -c 'import time; time.sleep(0.1)'
done
cpu() { awk '{print $14, $15}' "/proc/$pid/stat"; }
before=$(cpu)
times=$(mktemp)
result=$(taskset -c 1 /usr/bin/time -f "%U %S" -o "$times" "target/${PROFILE:-release}/loadgen" "${@//PORT/$port}" 2>/dev/null)
after=$(cpu)
python3 - "$result" $before $after $(cat "$times") <<'PY'
import json, os, sys
d = json.loads(sys.argv[1])
u0, s0, u1, s1 = map(int, sys.argv[2:6])
lu, ls = map(float, sys.argv[6:8])
tick = os.sysconf("SC_CLK_TCK")
n = d.get("messages") or d.get("deliveries")
rate = d.get("messages_per_s") or d.get("deliveries_per_s")
print(json.dumps({"per_s": round(rate), "user_us": round((u1 - u0) / tick * 1e6 / n, 3),
                  "sys_us": round((s1 - s0) / tick * 1e6 / n, 3),
                  "loadgen_user_us": round(lu * 1e6 / n, 3), "loadgen_sys_us": round(ls * 1e6 / n, 3)}))
PY
