// The demo page (examples/demo/demo_page.hpp) in a real browser: Debian's headless
// Chromium driven by playwright-core. Starts the http_server binary with --events on an
// ephemeral port and checks, against the server's own event lines:
//   (a) Start, ~1 s, Cancel      → CANCELLED <id> reason=client_disconnected within 1 s of the
//                                   click, and the page shows the server's "cancelled" view;
//   (b) Start and wait           → 200 on the page, DONE <id> from the server;
//   (c) Start, then leave the page (about:blank) → CANCELLED <id>;
//   (d) /sqlite chosen, Start, Cancel → CANCELLED <id> reason=client_disconnected, the query
//       itself interrupted (CALL_ENDED <id> via=sqlite result=interrupted) within 1 s of the
//       click, and the page shows the server's "cancelled" view. Where the page offers no
//       /sqlite (a server built without SQLite) the scenario is not run and the whole test
//       reports itself SKIPPED (exit 77) if nothing failed, never passed.
// A screenshot of the page after (a) is saved in the artifact directory.
//
//   node demo.test.mjs <http_server binary> <artifact dir>
//   (or CTOKEN_HTTP_SERVER / CTOKEN_BROWSER_ARTIFACTS; CTOKEN_DOCS_SCREENSHOT=path copies the
//   screenshot there too, e.g. docs/demo-page.png)
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const serverPath = process.argv[2] || process.env.CTOKEN_HTTP_SERVER;
const artifactDir = process.argv[3] || process.env.CTOKEN_BROWSER_ARTIFACTS || '.';
if (!serverPath) {
  console.error('usage: node demo.test.mjs <http_server binary> [artifact dir]');
  process.exit(2);
}

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];
const CANCEL_BOUND_MS = 1000;  // "the server logs the cancellation within 1 s of the click"

const nowNs = () => process.hrtime.bigint();  // CLOCK_MONOTONIC on Linux: the server's event clock
const msSince = (ns) => Number(nowNs() - ns) / 1e6;

class Failure extends Error {}
function check(condition, message) {
  if (!condition) throw new Failure(message);
}

// ---- the server and its event lines ------------------------------------------------------------

class Server {
  constructor(path) {
    this.events = [];    // { kind, id, fields, line, at (ns, when this process read it) }
    this.waiters = [];
    this.log = [];
    this.child = spawn(path, ['--events', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    createInterface({ input: this.child.stdout }).on('line', (line) => this.add(line));
    createInterface({ input: this.child.stderr }).on('line', (line) => this.log.push(line));
  }

  add(line) {
    const [kind, id, ...rest] = line.split(' ');
    const fields = {};
    for (const part of rest) {
      const eq = part.indexOf('=');
      if (eq > 0) fields[part.slice(0, eq)] = part.slice(eq + 1);
    }
    const event = { kind, id, fields, line, at: nowNs() };
    this.events.push(event);
    this.waiters = this.waiters.filter((w) => !w.test(event));
  }

  // The first event (already read or still to come) that satisfies `predicate`.
  waitFor(predicate, timeoutMs, what) {
    const seen = this.events.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Failure(`no ${what} from the server within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        test: (event) => {
          if (!predicate(event)) return false;
          clearTimeout(timer);
          resolve(event);
          return true;
        },
      });
    });
  }

  end(id, timeoutMs = 5000) {
    return this.waitFor((e) => e.id === id && (e.kind === 'CANCELLED' || e.kind === 'DONE'), timeoutMs,
                        `CANCELLED or DONE ${id}`);
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10000);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

// ---- the page ------------------------------------------------------------------------------------

// Clicks Start and returns the request id the page shows in #status ("request <id> running...").
async function start(page) {
  await page.click('#start');
  await page.waitForFunction(() => /request \d+/.test(document.querySelector('#status').textContent), null,
                             { timeout: 5000 });
  return (await page.textContent('#status')).match(/request (\d+)/)[1];
}

async function serverLineContains(page, text, timeoutMs = 5000) {
  try {
    await page.waitForFunction((t) => document.querySelector('#server').textContent.includes(t), text,
                               { timeout: timeoutMs });
  } catch {
    throw new Failure(`#server never showed "${text}" (it shows "${await page.textContent('#server')}")`);
  }
}

// ---- the scenarios -------------------------------------------------------------------------------

async function cancelScenario(page, server, base) {
  await page.goto(`${base}/`);
  const id = await start(page);
  await server.waitFor((e) => e.kind === 'START' && e.id === id, 5000, `START ${id}`);
  await page.waitForTimeout(1000);
  const clicked = nowNs();
  await page.click('#cancel');
  const end = await server.end(id);
  const arrivedMs = Number(end.at - clicked) / 1e6;
  const signalMs = Number(BigInt(end.fields.signal_ns ?? '0') - clicked) / 1e6;
  check(end.kind === 'CANCELLED', `expected CANCELLED ${id}, got: ${end.line}`);
  check(end.fields.reason === 'client_disconnected', `expected reason=client_disconnected, got: ${end.line}`);
  check(arrivedMs <= CANCEL_BOUND_MS, `CANCELLED ${id} came ${arrivedMs.toFixed(1)} ms after the click (bound ${CANCEL_BOUND_MS})`);
  await serverLineContains(page, 'cancelled after');
  await serverLineContains(page, 'client_disconnected, 499');
  const status = await page.textContent('#status');
  check(status.includes('cancelled by you'), `#status: "${status}"`);
  mkdirSync(artifactDir, { recursive: true });
  const shot = join(artifactDir, 'demo-page.png');
  await page.screenshot({ path: shot });
  if (process.env.CTOKEN_DOCS_SCREENSHOT) copyFileSync(shot, process.env.CTOKEN_DOCS_SCREENSHOT);
  return `id ${id}: click → token cancelled ${signalMs.toFixed(1)} ms, → CANCELLED line read ${arrivedMs.toFixed(1)} ms; ` +
         `page: "${await page.textContent('#server')}"; screenshot ${shot}`;
}

async function waitScenario(page, server, base) {
  await page.goto(`${base}/?steps=3&step_us=200000`);
  const began = nowNs();
  const id = await start(page);
  try {
    await page.waitForFunction(() => / 200 /.test(document.querySelector('#status').textContent), null,
                               { timeout: 5000 });
  } catch {
    throw new Failure(`#status never showed 200 (it shows "${await page.textContent('#status')}")`);
  }
  const end = await server.end(id);
  check(end.kind === 'DONE' && end.fields.steps === '3', `expected DONE ${id} steps=3, got: ${end.line}`);
  await serverLineContains(page, 'done 3 of 3 steps (200)');
  return `id ${id}: 200 after ${msSince(began).toFixed(0)} ms; page: "${await page.textContent('#status')}"`;
}

async function databaseScenario(page, server, base) {
  await page.goto(`${base}/`);
  const offered = await page.$$eval('#route option', (options) => options.map((o) => o.value));
  if (!offered.includes('sqlite')) return 'SKIPPED: the server was built without SQLite (no /sqlite on the page)';
  await page.selectOption('#route', 'sqlite');
  const id = await start(page);
  await server.waitFor((e) => e.kind === 'START' && e.id === id, 5000, `START ${id}`);
  await page.waitForTimeout(500);
  const clicked = nowNs();
  await page.click('#cancel');
  const end = await server.end(id);
  const call = await server.waitFor((e) => e.kind === 'CALL_ENDED' && e.id === id, 5000, `CALL_ENDED ${id}`);
  const queryMs = Number(BigInt(call.line.split(' ')[2]) - clicked) / 1e6;
  check(end.kind === 'CANCELLED', `expected CANCELLED ${id}, got: ${end.line}`);
  check(end.fields.reason === 'client_disconnected', `expected reason=client_disconnected, got: ${end.line}`);
  check(call.fields.via === 'sqlite' && call.fields.result === 'interrupted',
        `expected the SQLite query interrupted, got: ${call.line}`);
  check(queryMs >= 0 && queryMs <= CANCEL_BOUND_MS,
        `the query ended ${queryMs.toFixed(1)} ms after the click (bound ${CANCEL_BOUND_MS})`);
  await serverLineContains(page, 'cancelled after 0 of 1 steps');
  await serverLineContains(page, 'client_disconnected, 499');
  return `id ${id}: click → SQLite query interrupted ${queryMs.toFixed(1)} ms later; ` +
         `page: "${await page.textContent('#server')}"`;
}

async function leaveScenario(page, server, base) {
  await page.goto(`${base}/`);
  const id = await start(page);
  await server.waitFor((e) => e.kind === 'START' && e.id === id, 5000, `START ${id}`);
  await page.waitForTimeout(500);
  const left = nowNs();
  await page.goto('about:blank');
  const end = await server.end(id);
  const arrivedMs = Number(end.at - left) / 1e6;
  check(end.kind === 'CANCELLED', `expected CANCELLED ${id}, got: ${end.line}`);
  check(['client_disconnected', 'connection_reset'].includes(end.fields.reason),
        `expected a disconnect reason, got: ${end.line}`);
  check(arrivedMs <= CANCEL_BOUND_MS, `CANCELLED ${id} came ${arrivedMs.toFixed(1)} ms after leaving the page`);
  return `id ${id}: left the page → CANCELLED (${end.fields.reason}, steps=${end.fields.steps}) ` +
         `${arrivedMs.toFixed(1)} ms later`;
}

// ---- main ---------------------------------------------------------------------------------------

const began = nowNs();
const server = new Server(serverPath);
const profile = mkdtempSync(join(tmpdir(), 'ctoken-chromium-'));
let context = null;
let failed = 0;
const skipped = [];
const watchdog = setTimeout(() => {
  console.error('FAIL: the browser test took more than 90 s');
  process.exit(1);
}, 90000);
try {
  const ready = await server.waitFor((e) => e.kind === 'READY', 10000, 'READY');
  const base = `http://127.0.0.1:${ready.id}`;
  const launched = nowNs();
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 860, height: 460 },
  });
  console.log(`server ${base}, Chromium ${context.browser()?.version() ?? ''} started in ${msSince(launched).toFixed(0)} ms`);
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  for (const [name, scenario] of [
    ['(a) Start, Cancel after 1 s', cancelScenario],
    ['(b) Start and wait', waitScenario],
    ['(c) Start, leave the page', leaveScenario],
    ['(d) /sqlite, Start, Cancel after 0.5 s', databaseScenario],
  ]) {
    const t = nowNs();
    try {
      const detail = await scenario(page, server, base);
      if (detail.startsWith('SKIPPED')) skipped.push(`${name}: ${detail.slice('SKIPPED: '.length)}`);
      console.log(`${detail.startsWith('SKIPPED') ? 'skip' : 'ok  '} ${name} (${msSince(t).toFixed(0)} ms): ${detail}`);
    } catch (e) {
      ++failed;
      console.log(`FAIL ${name} (${msSince(t).toFixed(0)} ms): ${e instanceof Failure ? e.message : e.stack}`);
    }
  }
  if (pageErrors.length > 0) {
    ++failed;
    console.log(`FAIL the page threw: ${pageErrors.join('; ')}`);
  }
} catch (e) {
  ++failed;
  console.log(`FAIL ${e instanceof Failure ? e.message : e.stack}`);
} finally {
  if (context) await context.close().catch(() => {});
  const exit = await server.stop();
  rmSync(profile, { recursive: true, force: true });
  if (exit.code !== 0) {
    ++failed;
    console.log(`FAIL http_server exited with ${exit.code ?? exit.signal} after SIGTERM`);
  }
  clearTimeout(watchdog);
}
if (failed > 0) {
  console.log('\nthe server\'s events:\n  ' + server.events.map((e) => e.line).join('\n  '));
  console.log('its access log:\n  ' + server.log.join('\n  '));
}
if (failed === 0 && skipped.length > 0) {
  console.log(`SKIPPED: browser demo page test: ${skipped.join('; ')} (the other scenarios passed)`);
  process.exit(77);
}
console.log(`${failed === 0 ? 'PASS' : 'FAIL'}: browser demo page test, ${msSince(began).toFixed(0)} ms`);
process.exit(failed === 0 ? 0 : 1);
