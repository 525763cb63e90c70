// The page served at "/": Start runs /slow with fetch(); Cancel aborts it with an
// AbortController, which makes the browser close (or reset) the connection — the server's
// token is cancelled and the access log says 499.
#ifndef CTOKEN_EXAMPLE_HTTP_DEMO_PAGE_HPP
#define CTOKEN_EXAMPLE_HTTP_DEMO_PAGE_HPP

#include <string_view>

namespace http {

inline std::string_view demo_page() noexcept {
  return R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ctoken: cancel on disconnect</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; line-height: 1.5; }
  button { font-size: 1rem; padding: .4rem 1.2rem; margin-right: .5rem; }
  #status { margin-top: 1rem; font-weight: 600; }
  code { background: #f3f3f3; padding: 0 .2rem; }
</style>
</head>
<body>
<h1>Cancel a request from the browser</h1>
<p><b>Start</b> calls <code>/slow</code> (ten one-second steps). <b>Cancel</b> aborts the
<code>fetch</code> with an <code>AbortController</code>: the browser drops the connection, the
server's <code>CancellationToken</code> is cancelled and the handler stops at its next step.</p>
<button id="start">Start</button><button id="cancel" disabled>Cancel</button>
<div id="status">idle</div>
<script>
let controller = null;
let counter = 0;
const status = document.getElementById('status');
const start = document.getElementById('start');
const cancel = document.getElementById('cancel');
start.onclick = async () => {
  controller = new AbortController();
  const id = Date.now() * 1000 + (++counter);
  start.disabled = true; cancel.disabled = false;
  status.textContent = 'request ' + id + ' running...';
  try {
    const response = await fetch('/slow?id=' + id + '&steps=10&step_us=1000000', { signal: controller.signal });
    status.textContent = 'request ' + id + ': ' + response.status + ' ' + (await response.text());
  } catch (e) {
    status.textContent = 'request ' + id + ': ' + (e.name === 'AbortError' ? 'cancelled by you' : e.message);
  } finally {
    start.disabled = false; cancel.disabled = true;
  }
};
cancel.onclick = () => controller && controller.abort();
</script>
</body>
</html>
)html";
}

}  // namespace http

#endif
