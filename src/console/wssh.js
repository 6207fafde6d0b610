// wssh.js: tunnels to TCP services through a wssh server, from a web page (an ES module,
// served by `wssh server --console` at /_wssh/wssh.js). The project's protocol: bytes travel in
// binary messages, an empty binary message is the end of data, close codes say how it ended.
// URLs are built from where this module was loaded, so it works under any path prefix.

// The server's root: this module lives at ROOT/_wssh/wssh.js.
export const root = new URL('../', import.meta.url);

// What the server's close codes mean (its reason, when it gives one, says more).
export const CLOSE_CODES = {
  1000: 'closed normally',
  1001: 'the server is shutting down',
  1002: 'protocol error',
  1003: 'a text message was sent (binary only)',
  1006: 'the connection was lost, or refused before it opened',
  1007: 'invalid data',
  1008: 'too many control frames',
  1009: 'message too big',
  1011: 'the target is unreachable or failed',
};

// A close code and reason in words: "1011 dial 10.0.0.5:22: connection refused".
export function describeClose(code, reason) {
  return `${code} ${reason || CLOSE_CODES[code] || 'closed'}`;
}

// The tunnel path for a target: "" is the server's fixed target, a path (/?token=T) is used
// as it is, anything else is HOST:PORT and goes to /ssh/HOST:PORT.
export function pathFor(target) {
  if (!target) return '/';
  if (target.startsWith('/')) return target;
  const safe = encodeURIComponent(target).replace(/%3A/gi, ':').replace(/%5B/gi, '[').replace(/%5D/gi, ']');
  return `/ssh/${safe}`;
}

// The ws:// or wss:// URL of a tunnel path.
export function tunnelURL(path = '/', base = root) {
  const u = new URL(path.replace(/^\//, ''), base);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

// Would a tunnel on this path be allowed? {allowed: true} or {allowed: false, status, reason}.
// (A browser hides a refused handshake's status from the page: this asks the server first.)
export async function check(path = '/', base = root) {
  const u = new URL('_wssh/check', base);
  u.searchParams.set('path', path);
  const r = await fetch(u, { cache: 'no-store' });
  if (!r.ok) return { allowed: false, status: r.status, reason: (await r.text()).trim() || `HTTP ${r.status}` };
  return r.json();
}

// One tunnel. Set onopen(), ondata(Uint8Array), onend() (the target's end of data, if the
// server says so) and onclose({code, reason, message}); send(bytes or string), end(), close().
export class Tunnel {
  constructor(path = '/', base = root) {
    this.sent = 0;
    this.received = 0;
    this.ws = new WebSocket(tunnelURL(path, base), ['binary']);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = () => this.onopen?.();
    this.ws.onmessage = (e) => {
      if (typeof e.data === 'string') return;
      const bytes = new Uint8Array(e.data);
      if (bytes.length === 0) return this.onend?.();
      this.received += bytes.length;
      this.ondata?.(bytes);
    };
    this.ws.onclose = (e) => this.onclose?.({ code: e.code, reason: e.reason, message: describeClose(e.code, e.reason) });
  }

  send(data) {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    if (bytes.length === 0) return; // an empty message would mean the end of data
    this.ws.send(bytes);
    this.sent += bytes.length;
  }

  // End of data: the target's socket is shut for writing, its reply still comes back.
  end() {
    this.ws.send(new Uint8Array(0));
  }

  close() {
    this.ws.close(1000);
  }
}
