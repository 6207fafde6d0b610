// The echo page (pages/echo.html) in headless Chromium: it sends 1 MiB of random bytes through a
// WebSocket to an echo target and compares the SHA-256 of what came back. Served by the server
// under test (same origin), or, with --other-origin, by a small static server of this script's
// own on another loopback port while the WebSocket still goes to the server under test.
//
//   node echo.mjs 'http://127.0.0.1:PORT/echo.html?path=/echo' [--other-origin]
//        [--expect echo|refused] [--resolve NAME[,NAME]] [--credentials USER:PASS] [--timeout 30]
//
// --expect echo (default): ok when the hashes match. --expect refused: ok when the WebSocket
// never opens. Browsers hide a refused handshake's status from the page, so `handshake` reports
// what Chromium itself logged about it (e.g. "Unexpected response code: 403"); the caller
// confirms the status with a request of its own. --credentials: the browser context answers
// HTTP Basic challenges with them (Playwright's httpCredentials), as a user typing them into the
// browser's prompt would. Prints one JSON line; exit 0 only when ok.

import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { parseArgs, launch, record, until, conclude, watchdog, otherOrigin } from './lib.mjs';

const USAGE = `usage: node echo.mjs PAGE_URL [--other-origin] [--expect echo|refused] [--resolve NAME[,NAME]]
       [--credentials USER:PASS] [--timeout SECONDS]\n`;
const opts = parseArgs(process.argv.slice(2), USAGE);
const expect = opts.expect ?? 'echo';
if (!['echo', 'refused'].includes(expect)) {
  process.stderr.write(USAGE);
  process.exit(2);
}
const PAGES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pages');

// Context options answering Basic challenges with USER:PASS (the first colon splits).
function credentials(userPass) {
  if (!userPass) return {};
  const at = String(userPass).indexOf(':');
  return { httpCredentials: { username: userPass.slice(0, at), password: userPass.slice(at + 1) } };
}

const result = { step: 'launch', expect };
const dog = watchdog(Number(opts.timeout ?? 30), result);
let browser;
let error;
let other;
try {
  // Where the page comes from, and where its WebSocket goes.
  const under = new URL(opts._[0]);
  let page_url = under;
  if (opts['other-origin']) {
    other = await otherOrigin(PAGES);
    page_url = new URL(under.pathname + under.search, `http://127.0.0.1:${other.address().port}`);
    const ws = new URL(under.searchParams.get('path') || '/echo', under);
    ws.protocol = under.protocol === 'https:' ? 'wss:' : 'ws:';
    page_url.searchParams.set('ws', ws.href);
  }
  result.url = page_url.href;

  browser = await launch(opts.resolve, opts.resolve ? [page_url.origin] : []);
  const context = await browser.newContext(credentials(opts.credentials));
  const page = await context.newPage();
  const rec = record(context, page);
  result.console = rec.console;
  result.requests = rec.requests;
  // What Chromium says about the WebSocket handshake (the page itself only sees "error").
  result.handshake = null;
  page.on('websocket', (ws) => ws.on('socketerror', (e) => { result.handshake = String(e); }));

  result.step = 'load';
  await page.goto(page_url.href, { timeout: 10000, waitUntil: 'load' });
  result.step = 'echo';
  const r = await until('the echo page to finish', 20, () => page.evaluate(() => window.echoResult));
  Object.assign(result, r);
  if (!result.handshake) {
    // Chromium logs a refused handshake to the console as well.
    const line = rec.console.find((l) => l.includes('WebSocket connection to'));
    if (line) result.handshake = line.replace(/^error: /, '');
  }
  result.step = 'done';
  if (expect === 'echo' && !r.match) {
    result.failed = `echo: hashes differ or the socket closed (${r.received} of ${r.bytes} bytes back, close ${r.close_code})`;
  }
  if (expect === 'refused' && r.opened) {
    result.failed = `refused: the WebSocket opened (${r.received} bytes back)`;
  }
} catch (e) {
  error = e;
}
await conclude(result, error, dog, browser, other);
