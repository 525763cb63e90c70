// The page served at "/": Start runs /slow with fetch(); Cancel aborts it with an
// AbortController, which makes the browser close (or reset) the connection — the server's
// token is cancelled and the access log says 499. While the request runs (and once it settled)
// the page polls /status?id= and shows the server's view: "cancelled after 3 of 10 steps
// (client_disconnected, 499)". The page's own ?steps=&step_us= (default 10 and 1000000) are
// passed on to /slow, so tests can run it fast. Element ids #start, #cancel, #status and
// #server are stable: the browser test uses them.
#ifndef CTOKEN_EXAMPLE_DEMO_DEMO_PAGE_HPP
#define CTOKEN_EXAMPLE_DEMO_DEMO_PAGE_HPP

#include <string_view>

namespace demo {

inline std::string_view demo_page() noexcept {
  return R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ctoken: cancel on disconnect</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
  button { font-size: 1rem; padding: .4rem 1.2rem; margin-right: .5rem; }
  code { background: #f3f3f3; padding: 0 .2rem; }
  #status, #server { margin-top: 1rem; padding: .5rem .8rem; border-radius: .3rem; background: #f6f6f6; }
  #status { font-weight: 600; }
  #server { font-family: ui-monospace, monospace; border-left: .3rem solid #bbb; }
  #server.running { border-color: #2f6fd6; }
  #server.done { border-color: #2e9d4a; }
  #server.cancelled { border-color: #d6682f; }
  progress { width: 100%; margin-top: 1rem; }
</style>
</head>
<body>
<h1>Cancel a request from the browser</h1>
<p><b>Start</b> calls <code>/slow</code> (<span id="plan"></span>). <b>Cancel</b> aborts the
<code>fetch</code> with an <code>AbortController</code>: the browser drops the connection, the
server's <code>CancellationToken</code> is cancelled and the handler stops at its next step.
Closing the tab or leaving the page does the same. The last line is the server's view of the
request, polled from <code>/status</code>.</p>
<button id="start">Start</button><button id="cancel" disabled>Cancel</button>
<progress id="progress" value="0" max="1"></progress>
<div id="status">idle</div>
<div id="server">server: no request yet</div>
<script>
const params = new URLSearchParams(location.search);
const param = (name, fallback) => {
  const v = Number.parseInt(params.get(name), 10);
  return Number.isFinite(v) && v >= 0 ? v : fallback;
};
const steps = param('steps', 10);
const stepUs = param('step_us', 1000000);
const $ = (id) => document.getElementById(id);
const statusLine = $('status'), serverLine = $('server'), progress = $('progress');
const start = $('start'), cancel = $('cancel');
$('plan').textContent = steps + ' steps of ' + (stepUs / 1e6) + ' s';
progress.max = Math.max(steps, 1);

let controller = null;
let counter = 0;
let current = 0;   // the request the server line is about
let shown = 0;     // sequence number of the /status answer on screen (late answers are dropped)
let asked = 0;

function describe(s) {
  const of = s.total ? ' of ' + s.total : '';
  switch (s.state) {
    case 'running': return 'server: running, ' + s.steps + of + ' steps done';
    case 'cancelled': return 'server: cancelled after ' + s.steps + of + ' steps (' + s.reason + ', ' + s.status + ')';
    case 'done': return 'server: done ' + s.steps + of + ' steps (' + s.status + ')';
    default: return 'server: no record of request ' + s.id + ' yet';
  }
}

// Asks the server about request `id`; returns its state ('error' if the poll failed).
async function poll(id) {
  const seq = ++asked;
  try {
    const response = await fetch('/status?id=' + id, { cache: 'no-store' });
    const s = await response.json();
    if (id === current && seq > shown) {
      shown = seq;
      serverLine.textContent = describe(s);
      serverLine.className = s.state;
      progress.value = s.steps;
    }
    return s.state;
  } catch (e) {
    return 'error';
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

start.onclick = async () => {
  controller = new AbortController();
  const id = Date.now() * 1000 + (++counter);
  const began = performance.now();
  const seconds = () => ((performance.now() - began) / 1000).toFixed(1) + ' s';
  current = id;
  start.disabled = true; cancel.disabled = false;
  progress.value = 0;
  statusLine.textContent = 'request ' + id + ' running...';
  serverLine.textContent = 'server: asking...'; serverLine.className = '';
  let settled = false;
  const ticker = setInterval(() => { if (!settled) statusLine.textContent = 'request ' + id + ' running... ' + seconds(); }, 100);
  // While the request runs: the server's view every 200 ms.
  const watching = (async () => { while (!settled) { await poll(id); await sleep(200); } })();
  try {
    const response = await fetch('/slow?id=' + id + '&steps=' + steps + '&step_us=' + stepUs,
                                 { signal: controller.signal, cache: 'no-store' });
    const text = (await response.text()).trim();
    statusLine.textContent = 'request ' + id + ': ' + response.status + ' ' + text + ' (' + seconds() + ')';
  } catch (e) {
    statusLine.textContent = 'request ' + id + ': ' +
        (e.name === 'AbortError' ? 'cancelled by you after ' + seconds() : e.message);
  } finally {
    settled = true;
    clearInterval(ticker);
    start.disabled = false; cancel.disabled = true;
  }
  await watching;
  // Once more after it settled: the server needs a moment to see the disconnect and log it.
  for (let i = 0; i < 20 && current === id; ++i) {
    await sleep(i === 0 ? 50 : 200);
    const state = await poll(id);
    if (state === 'done' || state === 'cancelled') break;
  }
};
cancel.onclick = () => controller && controller.abort();
</script>
</body>
</html>
)html";
}

}  // namespace demo

#endif
