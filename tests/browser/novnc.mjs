// noVNC's own page in headless Chromium, end to end: load it, reach "Connected", check pixels of
// the canvas, and of a screenshot of it, against what the caller drew on the X display (sample
// points and their colours), type into the page (and, given the X server's key log, wait until
// the keys got there), disconnect, and report whether that was clean. Every request the page
// made is recorded; one to another origin is a failure.
//
//   node novnc.mjs 'http://127.0.0.1:PORT/vnc.html?autoconnect=1' [--pixels 'X,Y=RRGGBB ...']
//        [--tolerance 24] [--type wssh] [--keylog XEV_LOG] [--shot FILE.png]
//        [--resolve NAME[,NAME]] [--timeout 45]
//
// Prints one JSON line: ok, failed (the reason, when not ok), status (noVNC's status text once
// connected), canvas (its size), pixels_checked, mismatches, screenshot (its size),
// screenshot_mismatches, typed, keys_seen, disconnect_status, clean, foreign, and last the
// lists websockets, requests and console. Exit 0 only when every step passed.

import { parseArgs, launch, record, foreign, originOf, until, xevKeys, conclude, watchdog } from './lib.mjs';

const USAGE = `usage: node novnc.mjs URL [--pixels 'X,Y=RRGGBB ...'] [--tolerance N] [--type TEXT]
       [--keylog XEV_LOG] [--shot FILE.png] [--resolve NAME[,NAME]] [--timeout SECONDS]\n`;
const opts = parseArgs(process.argv.slice(2), USAGE);
const url = opts._[0];
const tolerance = Number(opts.tolerance ?? 24);
const typed = String(opts.type ?? 'wssh');
if (!/^[a-z0-9]+$/.test(typed)) {
  process.stderr.write('--type takes lower-case letters and digits (their keysym names are themselves)\n');
  process.exit(2);
}
const pixels = String(opts.pixels ?? '').split(/[\s;]+/).filter(Boolean).map((p) => {
  const m = p.match(/^(\d+),(\d+)=([0-9a-fA-F]{6})$/);
  if (!m) {
    process.stderr.write(`bad --pixels entry ${p}: want X,Y=RRGGBB\n`);
    process.exit(2);
  }
  const c = parseInt(m[3], 16);
  return { x: +m[1], y: +m[2], want: [c >> 16, (c >> 8) & 255, c & 255] };
});

const result = { step: 'launch', url };
const dog = watchdog(Number(opts.timeout ?? 45), result);
let browser;
let error;
try {
  browser = await launch(opts.resolve);
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  const rec = record(context, page);
  Object.assign(result, { requests: rec.requests, websockets: rec.websockets, console: rec.console });

  result.step = 'load';
  await page.goto(url, { timeout: 15000, waitUntil: 'load' });

  // noVNC marks the document `noVNC_connected` and says "Connected (unencrypted) to NAME".
  result.step = 'connect';
  const status = () => page.evaluate(() => {
    const s = document.getElementById('noVNC_status');
    const html = document.documentElement.classList;
    return {
      text: s ? s.textContent : null,
      error: s ? s.classList.contains('noVNC_status_error') : false,
      connected: html.contains('noVNC_connected'),
      busy: html.contains('noVNC_connecting') || html.contains('noVNC_disconnecting'),
    };
  });
  try {
    const st = await until('noVNC connected', 15, async () => {
      const st = await status();
      if (st.error) throw new Error(`noVNC says: ${st.text}`);
      return st.connected && st.text && st.text.startsWith('Connected') && st;
    });
    result.status = st.text;
  } catch (e) {
    result.status = (await status()).text;
    throw e;
  }

  // The canvas's pixels (what noVNC drew from the framebuffer updates) against the caller's
  // pattern; the first update may still be on its way, so poll until they match.
  result.step = 'pixels';
  const canvas = page.locator('#noVNC_container canvas');
  const read = () => page.evaluate((pts) => {
    const c = document.querySelector('#noVNC_container canvas');
    const ctx = c.getContext('2d');
    return { w: c.width, h: c.height, px: pts.map((p) => Array.from(ctx.getImageData(p.x, p.y, 1, 1).data.slice(0, 3))) };
  }, pixels);
  const off = (got, want) => Math.max(...got.map((v, i) => Math.abs(v - want[i])));
  let last;
  try {
    await until('canvas pixels to match', 10, async () => {
      last = await read();
      return last.px.every((got, i) => off(got, pixels[i].want) <= tolerance);
    });
  } finally {
    result.canvas = last ? [last.w, last.h] : null;
    result.pixels_checked = pixels.length;
    result.mismatches = last ? pixels.flatMap((p, i) => (off(last.px[i], p.want) <= tolerance ? [] :
      [`${p.x},${p.y}: got ${last.px[i].map((v) => v.toString(16).padStart(2, '0')).join('')}`])) : [];
  }

  // The same points on a screenshot of the canvas as Chromium displays it (nothing over it,
  // scale 1): the PNG is decoded by the page itself, into a canvas of its own.
  result.step = 'screenshot';
  const png = await canvas.screenshot({ timeout: 5000, ...(opts.shot ? { path: opts.shot } : {}) });
  const shot = await page.evaluate(async ({ b64, pts }) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = new OffscreenCanvas(img.naturalWidth, img.naturalHeight);
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    return { w: c.width, h: c.height, px: pts.map((p) => Array.from(ctx.getImageData(p.x, p.y, 1, 1).data.slice(0, 3))) };
  }, { b64: png.toString('base64'), pts: pixels });
  result.screenshot = [shot.w, shot.h];
  result.screenshot_mismatches = pixels.flatMap((p, i) => (off(shot.px[i], p.want) <= tolerance ? [] :
    [`${p.x},${p.y}: got ${shot.px[i].map((v) => v.toString(16).padStart(2, '0')).join('')}`]));
  if (result.screenshot_mismatches.length) throw new Error('the screenshot does not show the pattern');

  // Keys: click into the remote screen (noVNC also focuses it on connect) and type.
  result.step = 'keys';
  const box = await canvas.boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.keyboard.type(typed, { delay: 40 });
  result.typed = typed;
  if (opts.keylog) {
    try {
      await until('typed keys in the X server\'s key log', 10, async () => xevKeys(opts.keylog).join('').includes(typed));
    } finally {
      result.keys_seen = xevKeys(opts.keylog).join(' ');
    }
  }

  // Disconnect through noVNC's own button; a clean end says "Disconnected", anything else is
  // noVNC's error ("Something went wrong, connection is closed").
  result.step = 'disconnect';
  await page.evaluate(() => document.getElementById('noVNC_disconnect_button').click());
  const end = await until('noVNC disconnected', 10, async () => {
    const st = await status();
    return !st.connected && !st.busy && st.text && !st.text.startsWith('Connected') && st;
  });
  result.disconnect_status = end.text;
  result.clean = end.text === 'Disconnected' && !end.error;
  if (!result.clean) throw new Error(`unclean disconnect: ${end.text}`);

  result.step = 'origins';
  result.foreign = foreign(rec, originOf(url));
  if (result.foreign.length) throw new Error(`requests to another origin: ${result.foreign.join(' ')}`);
  result.step = 'done';
} catch (e) {
  error = e;
}
await conclude(result, error, dog, browser);
