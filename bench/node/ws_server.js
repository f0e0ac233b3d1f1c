// Peer server for the benchmarks on Node.js's `ws`: `/echo` and `/broadcast`, the contract of
// switchboard's examples/bench_server.rs (`/broadcast` sends every text message it receives to
// every connection open on `/broadcast`, the sender included).
//
//   bench/node/install.sh            (once: npm ci of ws and bufferutil)
//   node bench/node/ws_server.js --addr 127.0.0.1:9004 [--deflate [--concurrency N]]
//
// Written as ws's own documentation and its users make it fast:
// - bufferutil is installed, which ws loads for masking and unmasking (its README: "can improve
//   performance"); UTF-8 is checked by Node's own `buffer.isUtf8`, as ws does on Node 18.14+.
// - Each socket is corked on its first write of a tick and uncorked at the end of the tick, so
//   that everything written to it in one tick (an echo of every message one read brought, or a
//   burst of broadcasts) goes out in one system call instead of one per message.
// - A broadcast sends the same Buffer to every client (ws frames it per client; without
//   compression that is a header and a copy-free write).
// - `--deflate` turns on permessage-deflate the way our shared mode works, for a like-for-like
//   comparison: no context takeover either way (no per-connection compressor kept between
//   messages), zlib's default level, and a threshold of 64 bytes as switchboard's. ws deflates
//   each message for each client (on Node's zlib thread pool, `concurrencyLimit` at a time); it
//   has no way to compress a broadcast once.
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

function flag(name) {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

const [host, port] = (flag('--addr') || '127.0.0.1:9004').split(':');
const deflate = process.argv.includes('--deflate');
// As examples/bench_server.rs: big enough for the multi-megabyte benchmark messages.
const MAX_MESSAGE = 64 << 20;

const perMessageDeflate = deflate
  ? {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      threshold: 64,
      concurrencyLimit: Number(flag('--concurrency') || 10),
    }
  : false;

const options = { noServer: true, maxPayload: MAX_MESSAGE, perMessageDeflate };
const echoServer = new WebSocketServer(options);
const broadcastServer = new WebSocketServer({ ...options, clientTracking: true });

// Sockets corked this tick, uncorked together at its end.
const corked = [];
function cork(ws) {
  const socket = ws._socket;
  if (socket.corkedThisTick) return;
  socket.corkedThisTick = true;
  socket.cork();
  if (corked.push(socket) === 1) process.nextTick(uncorkAll);
}
function uncorkAll() {
  for (const socket of corked) {
    socket.corkedThisTick = false;
    socket.uncork();
  }
  corked.length = 0;
}

echoServer.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    cork(ws);
    ws.send(data, { binary: isBinary });
  });
});

broadcastServer.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    for (const client of broadcastServer.clients) {
      if (client.readyState !== 1) continue;
      cork(client);
      client.send(data, { binary: false });
    }
  });
});

const server = http.createServer((req, res) => {
  res.writeHead(404).end();
});
server.on('upgrade', (req, socket, head) => {
  const path = (req.url || '').split('?')[0];
  const wss = path === '/echo' ? echoServer : path === '/broadcast' ? broadcastServer : null;
  if (!wss) {
    socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
    return;
  }
  socket.setNoDelay(true);
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
server.listen({ host, port: Number(port), backlog: 4096 });
process.on('SIGTERM', () => process.exit(0));
