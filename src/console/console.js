// The wssh console's behaviour: asks the server whether the target is allowed (and shows why
// not), opens the tunnel through wssh.js, shows what comes back as escaped text or hex, sends
// lines (with the chosen ending) and hex bytes, end of data, close. The scrollback is bounded,
// and drawn at most every 50 ms and never more than a quarter of the time (a draw that took
// T waits 3T for the next), so a chatty target cannot freeze the tab.

import { Tunnel, check, pathFor } from '../wssh.js';

const $ = (id) => document.getElementById(id);
const KEEP = 32 * 1024; // bytes of scrollback
const EVENTS = 50;
const ENDINGS = { crlf: '\r\n', lf: '\n', none: '' };

let tunnel = null;
let last = null; // the latest tunnel, open or not, for the counts
let received = new Uint8Array(0);
let dropped = 0; // bytes scrolled out, for the hex view's offsets
let timer = null;

function event(text) {
  $('state').textContent = text;
  const li = document.createElement('li');
  li.textContent = text;
  $('log').append(li);
  while ($('log').children.length > EVENTS) $('log').firstChild.remove();
}

function counts() {
  const t = last || { sent: 0, received: 0 };
  $('counts').textContent = `sent ${t.sent} bytes, received ${t.received} bytes`;
}

const hx = (b) => b.toString(16).padStart(2, '0');

// The UTF-8 character at b[i]: [code point, length], or null (no exceptions: they are slow).
function utf8At(b, i) {
  const c = b[i];
  let n;
  let cp;
  let min;
  if (c >= 0xc2 && c <= 0xdf) [n, cp, min] = [2, c & 0x1f, 0x80];
  else if (c >= 0xe0 && c <= 0xef) [n, cp, min] = [3, c & 0x0f, 0x800];
  else if (c >= 0xf0 && c <= 0xf4) [n, cp, min] = [4, c & 0x07, 0x10000];
  else return null;
  if (i + n > b.length) return null;
  for (let k = 1; k < n; k++) {
    const d = b[i + k];
    if ((d & 0xc0) !== 0x80) return null;
    cp = (cp << 6) | (d & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
  return [cp, n];
}

// Text, with control bytes and bytes that are not UTF-8 shown as \xNN; CRLF and LF end lines.
function text(b) {
  const parts = [];
  for (let i = 0; i < b.length;) {
    const c = b[i];
    if (c === 0x0d && b[i + 1] === 0x0a) {
      i += 1;
    } else if (c === 0x0a || c === 0x09 || (c >= 0x20 && c < 0x7f)) {
      parts.push(String.fromCharCode(c));
      i += 1;
    } else {
      const u = c >= 0x80 ? utf8At(b, i) : null;
      if (u && u[0] >= 0xa0) {
        parts.push(String.fromCodePoint(u[0]));
        i += u[1];
      } else {
        parts.push(`\\x${hx(c)}`);
        i += 1;
      }
    }
  }
  return parts.join('');
}

// 16 bytes a line: offset, hex, and the printable ASCII.
function hexdump(b) {
  const lines = [];
  for (let i = 0; i < b.length; i += 16) {
    const row = b.subarray(i, i + 16);
    const ascii = Array.from(row, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.')).join('');
    lines.push(`${(dropped + i).toString(16).padStart(8, '0')}  ${Array.from(row, hx).join(' ').padEnd(47)}  ${ascii}`);
  }
  return lines.join('\n');
}

let pause = 50; // ms between draws: at least 50, and three times the last draw's own time

function draw() {
  const t0 = performance.now();
  timer = null;
  const out = $('out');
  out.textContent = $('hex').checked ? hexdump(received) : text(received);
  out.scrollTop = out.scrollHeight;
  counts();
  pause = Math.max(50, 3 * (performance.now() - t0));
}

function later() {
  if (!timer) timer = setTimeout(draw, pause);
}

function append(bytes) {
  const all = new Uint8Array(received.length + bytes.length);
  all.set(received);
  all.set(bytes, received.length);
  const cut = Math.max(0, all.length - KEEP);
  dropped += cut;
  received = all.subarray(cut);
  later();
}

function opened(on) {
  for (const id of ['input', 'send', 'hexin', 'sendhex', 'eof', 'close']) $(id).disabled = !on;
  for (const id of ['target', 'open']) $(id).disabled = on;
}

$('connect').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (tunnel) return;
  const target = $('target').value.trim();
  const name = target || "the server's own target";
  const path = pathFor(target);
  $('open').disabled = true;
  event(`checking ${name}`);
  let verdict;
  try {
    verdict = await check(path);
  } catch (err) {
    verdict = { allowed: false, reason: `the server did not answer the check (${err.message})` };
  }
  if (!verdict.allowed) {
    $('open').disabled = false;
    event(`refused: ${verdict.reason}`);
    return;
  }
  event(`connecting to ${name}`);
  const t = new Tunnel(path);
  tunnel = t;
  last = t;
  received = new Uint8Array(0);
  dropped = 0;
  draw();
  t.onopen = () => {
    opened(true);
    event(`open: ${name}`);
    $('input').focus();
  };
  t.ondata = append;
  t.onend = () => event('end of data from the target');
  t.onclose = (c) => {
    if (tunnel === t) tunnel = null;
    draw();
    opened(false);
    $('open').disabled = false;
    event(`closed: ${c.message} (sent ${t.sent} bytes, received ${t.received} bytes)`);
    $('target').focus();
  };
});

$('close').addEventListener('click', () => {
  if (!tunnel) return;
  event('disconnecting');
  tunnel.close();
});

$('line').addEventListener('submit', (e) => {
  e.preventDefault();
  if (!tunnel) return;
  tunnel.send($('input').value + ENDINGS[$('eol').value]);
  $('input').value = '';
  counts();
});

$('raw').addEventListener('submit', (e) => {
  e.preventDefault();
  if (!tunnel) return;
  const digits = $('hexin').value.replace(/0x|[\s,:]/gi, '');
  if (!/^([0-9a-f]{2})*$/i.test(digits)) {
    event('not hex: give pairs of hex digits, such as 0d 0a');
    return;
  }
  tunnel.send(Uint8Array.from(digits.match(/../g) || [], (h) => parseInt(h, 16)));
  $('hexin').value = '';
  counts();
});

$('eof').addEventListener('click', () => {
  if (!tunnel) return;
  tunnel.end();
  for (const id of ['input', 'send', 'hexin', 'sendhex', 'eof']) $(id).disabled = true;
  event('end of data sent');
  $('close').focus();
});

$('hex').addEventListener('change', draw);
$('clear').addEventListener('click', () => {
  dropped += received.length;
  received = new Uint8Array(0);
  draw();
});
