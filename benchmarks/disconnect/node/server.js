'use strict';
// Reference server of the disconnect-detection benchmark: Node.js's http module, nothing else.
//
// Every request waits until its client leaves. Since Node 16, req's 'close' fires as soon as
// the (empty) request body has been consumed, so it cannot say "client gone"; res's 'close'
// can: it fires when the connection closes, and !res.writableEnded means the response was not
// finished, i.e. the client left first. Lines on stdout, as the ctoken example server's --events
// (CLOCK_MONOTONIC nanoseconds: process.hrtime.bigint() is CLOCK_MONOTONIC on Linux):
//
//   VERSION <node version>
//   READY <port>
//   START <id> <ns>
//   CANCELLED <id> <ns> reason=close
//
// <id> is the ?id= parameter (or a counter). Run: node server.js --port 0
const fs = require('fs');
const http = require('http');

// One whole line with one synchronous write(2).
function emit(line) {
  fs.writeSync(1, line + '\n');
}

let port = 0;
for (let i = 2; i < process.argv.length; ++i) {
  if (process.argv[i] === '--port' && i + 1 < process.argv.length) {
    port = Number(process.argv[++i]);
  } else {
    process.stderr.write('usage: node server.js [--port N]\n');
    process.exit(2);
  }
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('server.js: --port needs a number in [0, 65535]\n');
  process.exit(2);
}

let nextId = 0;
function requestId(url) {
  const match = /[?&]id=(\d+)/.exec(url);
  return match ? match[1] : String(++nextId);
}

// No timeouts (0 disables requestTimeout and headersTimeout): only the client's close ends a
// request.
const server = http.createServer({ requestTimeout: 0, headersTimeout: 0 }, (req, res) => {
  const id = requestId(req.url);
  emit(`START ${id} ${process.hrtime.bigint()}`);
  res.on('close', () => {
    const ns = process.hrtime.bigint(); // first: the detection time
    if (!res.writableEnded) emit(`CANCELLED ${id} ${ns} reason=close`);
  });
});
server.timeout = 0;
server.keepAliveTimeout = 0;

server.listen(port, '127.0.0.1', () => {
  emit(`VERSION ${process.version}`);
  emit(`READY ${server.address().port}`);
});
