#!/usr/bin/env bash
# Installs the Node.js benchmark peer's packages (ws, bufferutil) from package-lock.json, with the
# machine's own Node.js and npm. bench/run.sh and bench/deflate.sh call it when they are missing.
set -euo pipefail
cd "$(dirname "$0")"
command -v node > /dev/null || { echo "Node.js is needed for the ws peer (Debian: apt-get install nodejs npm)"; exit 1; }
[ -d node_modules/ws ] || npm ci --no-audit --no-fund
