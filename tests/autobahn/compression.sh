#!/usr/bin/env bash
# The whole of Autobahn's permessage-deflate sections (12.* and 13.*, 216 cases) against the
# echo example and the autobahn_client example, strict, in the shared and dedicated modes.
# The fuzzer is slow on these (up to 20 s a case), so it is not part of .ci/run, which runs 36 of
# them; this takes about an hour, two suites at a time.
#
#   tests/autobahn/compression.sh [MODES...]     (default: shared dedicated)
#   CASES='["12.1.1"]' tests/autobahn/compression.sh shared     (a quick check of the script)
#
# Reports in target/autobahn/{server,client}-MODE-full; a summary line per suite at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
shared="${SWITCHBOARD_SHARED:-$(cd .. && pwd)/shared}"
[ -d "$shared" ] || shared=/work/shared
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(shared dedicated)
cases=${CASES:-'["12.*","13.*"]'}
cargo build --release --example echo --example autobahn_client
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for mode in "${modes[@]}"; do
  port=$(free_port)
  target/release/examples/echo --addr "127.0.0.1:$port" --compression "$mode" > "target/echo-$mode.log" 2>&1 &
  pids+=("$!")
  sleep 0.5
  AUTOBAHN_STRICT=1 bash "$shared/tools/autobahn/test-server.sh" "ws://127.0.0.1:$port/echo" \
    "target/autobahn/server-$mode-full" "$cases" > "target/autobahn-server-$mode-full.log" 2>&1 &
  server_suite=$!
  client_port=$(free_port)
  AUTOBAHN_STRICT=1 bash "$shared/tools/autobahn/test-client.sh" "$client_port" \
    "target/release/examples/autobahn_client ws://127.0.0.1:$client_port --compression $mode" \
    "target/autobahn/client-$mode-full" "$cases" > "target/autobahn-client-$mode-full.log" 2>&1 || true
  wait "$server_suite" || true
  echo "server, $mode: $(tail -n 1 "target/autobahn-server-$mode-full.log")"
  echo "client, $mode: $(tail -n 1 "target/autobahn-client-$mode-full.log")"
done
