// Shared by the browser scripts: argument parsing, Debian's Chromium launched headless with the
// flags this machine needs, a record of every request a page makes, bounded waits, and the one
// JSON line each script prints. Nothing here waits without a deadline.

import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// `--name value` pairs and positionals; `--flag` alone is `true`.
export function parseArgs(argv, usage) {
  const opts = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      opts._.push(a);
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      opts[a.slice(2)] = argv[++i];
    } else {
      opts[a.slice(2)] = true;
    }
  }
  if (opts.help || opts._.length !== 1) {
    process.stderr.write(usage);
    process.exit(2);
  }
  return opts;
}

// The result line: everything the caller asserts on, `ok` and `failed` first, the long lists
// (requests, console) last. Exit 0 only when ok.
export function finish(result) {
  const { requests, websockets, console: log, ...rest } = result;
  const line = { ok: !result.failed, failed: result.failed, ...rest, websockets, requests, console: log };
  process.stdout.write(JSON.stringify(line) + '\n');
  process.exit(result.failed ? 1 : 0);
}

// The end of every run: the step that failed (if one did) with the first line of its error, the
// watchdog stopped, the browser and a server of another origin (when started) closed, the
// result line printed.
export async function conclude(result, error, dog, browser, other) {
  if (error) result.failed = `${result.step}: ${error.message.split('\n')[0]}`;
  clearTimeout(dog);
  if (browser) await browser.close().catch(() => {});
  if (other) other.close();
  finish(result);
}

// The whole run is bounded: past `seconds`, print what was learnt so far and exit 1 (Playwright
// kills the browser it launched when this process exits).
export function watchdog(seconds, result) {
  return setTimeout(() => finish({ ...result, failed: `timed out after ${seconds} s at step "${result.step}"` }),
    seconds * 1000);
}

// Headless Chromium in a fresh profile (Playwright makes and removes a temporary one), with the
// background networking that this closed machine would refuse turned off. `resolve` maps host
// names to loopback inside the browser only (`MAP name 127.0.0.1`), for pages under other names;
// `secure` lists such origins that are to count as secure contexts (SubtleCrypto needs one).
export async function launch(resolve, secure = []) {
  const args = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions'];
  if (resolve) {
    const rules = String(resolve).split(',').map((n) => `MAP ${n} 127.0.0.1`).join(', ');
    args.push(`--host-resolver-rules=${rules}`);
  }
  if (secure.length) args.push(`--unsafely-treat-insecure-origin-as-secure=${secure.join(',')}`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, chromiumSandbox: false, args, timeout: 15000 });
}

// Record every request the page (and its workers) makes, WebSockets included, and the console.
export function record(context, page) {
  const rec = { requests: [], websockets: [], console: [] };
  context.on('request', (r) => rec.requests.push(r.url()));
  page.on('websocket', (ws) => rec.websockets.push(ws.url()));
  page.on('console', (m) => rec.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => rec.console.push(`pageerror: ${e.message}`));
  return rec;
}

// host:port of a URL, with ws/wss folded into http/https: what "same origin" compares.
export function originOf(url) {
  const u = new URL(url);
  const scheme = { 'ws:': 'http:', 'wss:': 'https:' }[u.protocol] || u.protocol;
  return `${scheme}//${u.host}`;
}

// Requests (and WebSockets) that went anywhere but `origin`; data: and blob: URLs stay local.
export function foreign(rec, origin) {
  return [...rec.requests, ...rec.websockets]
    .filter((u) => !u.startsWith('data:') && !u.startsWith('blob:'))
    .filter((u) => originOf(u) !== origin);
}

// Poll `probe` (async, returns a truthy value when done) every `every` ms, at most `seconds`.
export async function until(what, seconds, probe, every = 100) {
  const end = Date.now() + seconds * 1000;
  let last;
  while (Date.now() < end) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`${what}: not within ${seconds} s`);
}

// Keysym names of the KeyPress events in an `xev -event keyboard` log, in order.
export function xevKeys(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const keys = [];
  for (const block of text.split(/\n(?=\S)/)) {
    if (!block.startsWith('KeyPress')) continue;
    const m = block.match(/\(keysym 0x[0-9a-f]+, ([^)]+)\)/);
    if (m) keys.push(m[1]);
  }
  return keys;
}

// A static server for the files in `dir` (by base name) on 127.0.0.1:PORT (0: any): a page's
// "other origin".
export function otherOrigin(dir, port = 0) {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript' };
  const srv = http.createServer(async (req, res) => {
    const name = path.basename(new URL(req.url, 'http://x').pathname);
    try {
      const body = await readFile(path.join(dir, name));
      res.writeHead(200, { 'Content-Type': types[path.extname(name)] || 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => srv.listen(port, '127.0.0.1', () => resolve(srv)));
}
