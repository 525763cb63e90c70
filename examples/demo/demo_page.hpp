// The page served at "/": Start runs the chosen route with fetch(); Cancel aborts it with an
// AbortController, which makes the browser close (or reset) the connection — the server's
// token is cancelled and the access log says 499. While the request runs (and once it settled)
// the page polls /status?id= and shows the server's view: "cancelled after 3 of 10 steps
// (client_disconnected, 499)". The routes to choose from: /slow, and where built /sqlite (a
// long SQLite query), /postgres (pg_sleep, when the server has --postgres) and /fetch (an
// outgoing libcurl call to /slow, whose upstream request the page shows too). The server puts
// the <option>s in place of the ROUTE_OPTIONS comment. The page's own ?steps=&step_us= (default
// 10 and 1000000) are passed on to /slow and /fetch (and make /postgres's sleep as long), so
// tests can run it fast. Element ids #route, #start, #cancel, #status, #server and #upstream
// are stable: the browser test uses them.
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
  #server.cancelled, #upstream.cancelled { border-color: #d6682f; }
  #upstream { margin-top: .5rem; padding: .5rem .8rem; border-radius: .3rem; background: #f6f6f6;
              font-family: ui-monospace, monospace; border-left: .3rem solid #bbb; }
  #upstream.running { border-color: #2f6fd6; }
  #upstream.done { border-color: #2e9d4a; }
  select { font-size: 1rem; padding: .3rem; margin-right: .5rem; }
  progress { width: 100%; margin-top: 1rem; }
</style>
</head>
<body>
<h1>Cancel a request from the browser</h1>
<p><b>Start</b> calls the route you choose (<span id="plan"></span>). <b>Cancel</b> aborts the
<code>fetch</code> with an <code>AbortController</code>: the browser drops the connection, the
server's <code>CancellationToken</code> is cancelled and the handler stops at its next step, or
the query or outgoing call it is waiting for stops at once. Closing the tab or leaving the page
does the same. The last line is the server's view of the request, polled from
<code>/status</code>.</p>
<select id="route"><!--ROUTE_OPTIONS--></select><button id="start">Start</button><button id="cancel" disabled>Cancel</button>
<progress id="progress" value="0" max="1"></progress>
<div id="status">idle</div>
<div id="server">server: no request yet</div>
<div id="upstream" hidden></div>
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
const start = $('start'), cancel = $('cancel'), route = $('route'), upstreamLine = $('upstream');
const routes = {
  slow: { plan: () => steps + ' steps of ' + (stepUs / 1e6) + ' s',
          url: (id) => '/slow?id=' + id + '&steps=' + steps + '&step_us=' + stepUs },
  sqlite: { plan: () => 'a recursive SQLite query over 10^8 rows, in memory',
            url: (id) => '/sqlite?id=' + id },
  postgres: { plan: () => 'PostgreSQL: SELECT pg_sleep(' + (steps * stepUs / 1e6) + ')',
              url: (id) => '/postgres?id=' + id + '&ms=' + Math.round(steps * stepUs / 1000) },
  fetch: { plan: () => 'an outgoing call with libcurl to /slow, ' + steps + ' steps of ' + (stepUs / 1e6) + ' s',
           url: (id) => '/fetch?id=' + id + '&steps=' + steps + '&step_us=' + stepUs, upstream: true },
};
const chosen = () => routes[route.value] || routes.slow;
const showPlan = () => { $('plan').textContent = route.value + ': ' + chosen().plan(); };
route.onchange = showPlan;
showPlan();

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

// Asks the server about request `id` (and its upstream request `id`.up when `upstream`);
// returns the state of `id` ('error' if the poll failed).
async function poll(id, upstream) {
  const seq = ++asked;
  try {
    const ask = (which) => fetch('/status?id=' + which, { cache: 'no-store' }).then((r) => r.json());
    const [s, u] = await Promise.all([ask(id), upstream ? ask(id + '.up') : null]);
    if (id === current && seq > shown) {
      shown = seq;
      serverLine.textContent = describe(s);
      serverLine.className = s.state;
      progress.max = Math.max(s.total, 1);
      progress.value = s.steps;
      if (u) {
        upstreamLine.textContent = 'upstream ' + describe(u);
        upstreamLine.className = u.state;
      }
    }
    // With an upstream: ended only when both have (the upstream sees its client leave after us).
    const ended = (x) => x.state === 'done' || x.state === 'cancelled';
    return u && ended(s) && !ended(u) ? 'running' : s.state;
  } catch (e) {
    return 'error';
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

start.onclick = async () => {
  controller = new AbortController();
  const id = Date.now() * 1000 + (++counter);
  const target = chosen();
  upstreamLine.hidden = !target.upstream;
  upstreamLine.textContent = 'upstream server: asking...'; upstreamLine.className = '';
  const began = performance.now();
  const seconds = () => ((performance.now() - began) / 1000).toFixed(1) + ' s';
  current = id;
  start.disabled = true; cancel.disabled = false; route.disabled = true;
  progress.value = 0;
  statusLine.textContent = 'request ' + id + ' running...';
  serverLine.textContent = 'server: asking...'; serverLine.className = '';
  let settled = false;
  const ticker = setInterval(() => { if (!settled) statusLine.textContent = 'request ' + id + ' running... ' + seconds(); }, 100);
  // While the request runs: the server's view every 200 ms.
  const watching = (async () => { while (!settled) { await poll(id, target.upstream); await sleep(200); } })();
  try {
    const response = await fetch(target.url(id), { signal: controller.signal, cache: 'no-store' });
    const text = (await response.text()).trim();
    statusLine.textContent = 'request ' + id + ': ' + response.status + ' ' + text + ' (' + seconds() + ')';
  } catch (e) {
    statusLine.textContent = 'request ' + id + ': ' +
        (e.name === 'AbortError' ? 'cancelled by you after ' + seconds() : e.message);
  } finally {
    settled = true;
    clearInterval(ticker);
    start.disabled = false; cancel.disabled = true; route.disabled = false;
  }
  await watching;
  // Once more after it settled: the server needs a moment to see the disconnect and log it.
  for (let i = 0; i < 20 && current === id; ++i) {
    await sleep(i === 0 ? 50 : 200);
    const state = await poll(id, target.upstream);
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
