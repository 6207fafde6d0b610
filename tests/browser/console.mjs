// The wssh console (`wssh server --console`) in headless Chromium, on a phone-sized viewport,
// driven with the keyboard alone (Tab, typing, Enter, Space): each step below runs when its
// option is given.
//
//   node console.mjs PAGE_URL [--sshd HOST:PORT] [--http HOST:PORT] [--refused HOST:PORT]
//        [--dead HOST:PORT] [--echo] [--flood BYTES] [--timeout 60]
//   node console.mjs SERVER_ROOT_URL --embed --other-port PORT [--expect echo|refused]
//
// --sshd: connect, see the banner, send the client's banner as hex, see the binary reply in the
// text view (\xNN) and the hex view, disconnect. --http: `GET / HTTP/1.0` and an empty line bring
// the response and the close; then a request line and End of data do too. --refused: the reason
// is shown. --dead: an allowed target where nothing listens: the close code and reason.
// --echo: the fixed target (an echo server) echoes a line. --flood: the fixed target sends
// BYTES at once and closes: the page's longest pause, its bounded scrollback, the count.
// Always: no horizontal scrolling at 375x667, and no request to another origin.
// --embed: pages/embed.html from another origin (127.0.0.1:PORT) imports SERVER/_wssh/wssh.js
// and echoes through the fixed target; --expect refused: the import and a WebSocket both fail.
// Prints one JSON line; exit 0 only when ok.

import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { parseArgs, launch, record, until, conclude, watchdog, foreign, otherOrigin } from './lib.mjs';

const USAGE = `usage: node console.mjs PAGE_URL [--sshd H:P] [--http H:P] [--refused H:P] [--dead H:P] [--echo] [--flood N] [--timeout S]
       node console.mjs SERVER_ROOT_URL --embed --other-port PORT [--expect echo|refused]\n`;
const opts = parseArgs(process.argv.slice(2), USAGE);
const PAGES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pages');

const result = { step: 'launch' };
const dog = watchdog(Number(opts.timeout ?? 60), result);
let browser;
let error;
let other;
let page;

// Move the focus with Tab (Shift+Tab with `back`) until the element `id` has it: keys only.
async function tabTo(id, back = false) {
  for (let i = 0; i < 30; i++) {
    if (await page.evaluate(() => document.activeElement?.id) === id) return;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  }
  throw new Error(`Tab never reached #${id}`);
}
const text = (id) => page.evaluate((i) => document.getElementById(i).textContent, id);
const events = () => page.evaluate(() => Array.from(document.querySelectorAll('#log li'), (l) => l.textContent));
async function waitFor(what, id, test, seconds = 10) {
  return until(what, seconds, async () => test(await text(id)));
}
// Wider than the phone: content past its width, or (as a mobile browser does with wide
// content) a layout zoomed out beyond it.
const PHONE = { width: 375, height: 667 };
async function sideways() {
  return page.evaluate((w) => document.documentElement.scrollWidth > w || document.body.scrollWidth > w
    || window.innerWidth > w, PHONE.width);
}

// Type a target into the (focused) target field and connect with Enter.
async function connect(target) {
  await tabTo('target');
  await page.keyboard.press('Control+A');
  await page.keyboard.type(target);
  await page.keyboard.press('Enter');
}
async function line(s) {
  await tabTo('input');
  await page.keyboard.type(s);
  await page.keyboard.press('Enter');
}

async function sshd(target) {
  result.step = 'sshd';
  await connect(target);
  await waitFor('the tunnel to sshd to open', 'state', (t) => t.startsWith('open'));
  await waitFor('the sshd banner', 'out', (t) => t.startsWith('SSH-2.0-'));
  result.banner = (await text('out')).split('\n')[0];
  // Our banner, as hex bytes: sshd answers with its binary KEXINIT.
  await tabTo('hexin');
  const hex = Array.from(Buffer.from('SSH-2.0-wssh_console\r\n'), (b) => b.toString(16).padStart(2, '0')).join(' ');
  await page.keyboard.type(hex);
  await page.keyboard.press('Enter');
  result.escaped = await waitFor('binary bytes shown escaped', 'out', (t) => (t.match(/\\x[0-9a-f]{2}/g) || []).length > 10 && t);
  result.escaped = result.escaped.slice(0, 200);
  await tabTo('hex', true);
  await page.keyboard.press('Space');
  const dump = await waitFor('the hex view', 'out', (t) => t.startsWith('00000000  53 53 48 2d 32 2e 30 2d') && t);
  // SSH_MSG_KEXINIT (20, 0x14) follows the packet length and padding length.
  result.hex_kexinit = /^[0-9a-f]{8} .* 14 /m.test(dump);
  result.hex_first = dump.split('\n')[0];
  result.sideways_hex = await sideways();
  await page.keyboard.press('Space'); // back to text
  await tabTo('close');
  await page.keyboard.press('Enter');
  result.sshd_closed = await waitFor('the close', 'state', (t) => t.startsWith('closed') && t);
}

async function http(target) {
  result.step = 'http';
  await connect(target);
  await waitFor('the tunnel to the HTTP server to open', 'state', (t) => t.startsWith('open'));
  await line('GET / HTTP/1.0');
  await page.keyboard.press('Enter'); // the empty line
  result.http_status = await waitFor('the HTTP response', 'out', (t) => t.startsWith('HTTP/1.0 200') && t.split('\n')[0]);
  result.http_closed = await waitFor('the close after the response', 'state', (t) => t.startsWith('closed') && t);
  // Again, ending the request with End of data instead of the empty line.
  result.step = 'http, end of data';
  await connect(target);
  await waitFor('the second tunnel to open', 'state', (t) => t.startsWith('open'));
  await line('GET / HTTP/1.0');
  await tabTo('eof');
  await page.keyboard.press('Enter');
  result.eof_status = await waitFor('the response after end of data', 'out', (t) => t.startsWith('HTTP/1.0 200') && t.split('\n')[0]);
  result.eof_closed = await waitFor('the close', 'state', (t) => t.startsWith('closed') && t);
  result.counts = await text('counts');
}

async function refused(target) {
  result.step = 'refused';
  await connect(target);
  result.refused = await waitFor('the refusal', 'state', (t) => t.startsWith('refused') && t);
}

async function dead(target) {
  result.step = 'dead';
  await connect(target);
  result.dead = await waitFor('the close from the server', 'state', (t) => t.startsWith('closed') && t);
}

async function echo() {
  result.step = 'echo';
  await connect('');
  await waitFor('the tunnel to open', 'state', (t) => t.startsWith('open'));
  await line('hello-through-the-console');
  result.echoed = await waitFor('the echo', 'out', (t) => t.includes('hello-through-the-console') && t.trim());
}

async function flood(bytes) {
  result.step = 'flood';
  // The page's own longest pause: the gap between ticks of a 10 ms timer (the time the
  // DevTools protocol takes to carry the frames to this script does not count).
  await page.evaluate(() => {
    window.longestPause = 0;
    let last = performance.now();
    setInterval(() => {
      const now = performance.now();
      window.longestPause = Math.max(window.longestPause, now - last - 10);
      last = now;
    }, 10);
  });
  await connect('');
  await waitFor('the flood to end', 'state', (t) => t.startsWith('closed'), 30);
  result.flood_pause_ms = Math.round(await page.evaluate(() => window.longestPause));
  result.flood_counts = await text('counts');
  result.flood_shown = (await text('out')).length;
  if (!result.flood_counts.endsWith(`received ${bytes} bytes`)) result.failed = 'flood: not every byte was counted';
}

async function embed() {
  result.step = 'embed';
  other = await otherOrigin(PAGES, Number(opts['other-port']));
  const url = new URL(`http://127.0.0.1:${other.address().port}/embed.html`);
  url.searchParams.set('server', opts._[0]);
  result.url = url.href;
  await page.goto(url.href, { timeout: 10000, waitUntil: 'load' });
  const r = await until('the embedding page to finish', 20, () => page.evaluate(() => window.embedResult));
  Object.assign(result, r);
  const want = opts.expect ?? 'echo';
  if (want === 'echo' && !(r.imported && r.verdict?.allowed && r.echoed === 'hello-embed\n')) {
    result.failed = 'embed: no echo through the imported module';
  }
  if (want === 'refused' && (r.imported || r.ws_opened)) {
    result.failed = 'embed: a page of another origin imported the module or opened a tunnel';
  }
}

try {
  browser = await launch();
  const context = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
  page = await context.newPage();
  const rec = record(context, page);
  result.console = rec.console;
  result.requests = rec.requests;
  result.websockets = rec.websockets;
  if (opts.embed) {
    await embed();
  } else {
    result.step = 'load';
    await page.goto(opts._[0], { timeout: 10000, waitUntil: 'load' });
    await until('the console script to load', 5, () => page.evaluate(() => document.activeElement?.id === 'target'));
    result.sideways_empty = await sideways();
    if (opts.sshd) await sshd(opts.sshd);
    if (opts.http) await http(opts.http);
    if (opts.refused) await refused(opts.refused);
    if (opts.dead) await dead(opts.dead);
    if (opts.echo) await echo();
    if (opts.flood) await flood(opts.flood);
    result.events = await events();
    result.sideways = await sideways();
    result.foreign = foreign(rec, new URL(opts._[0]).origin);
    result.step = 'done';
    if (result.sideways || result.sideways_empty || result.sideways_hex) result.failed = 'the page scrolls sideways';
    if (result.foreign.length) result.failed = 'requests to another origin';
  }
} catch (e) {
  error = e;
}
await conclude(result, error, dog, browser, other);
