//! wssh: SSH (or any TCP) carried inside WebSocket, in one small synchronous binary.
//!
//! Codemap, in dependency order: `main` uses `cli` and the modes; the modes take their config
//! types from `cli`; otherwise each module uses only modules listed below it.
//! - `cli`: pico-args, raw arguments to a validated, immutable config (`help`: the texts);
//! - `forward`: `wssh connect` (local CONNECT proxy) and `wssh forward` (local port forward);
//! - `probe`: `wssh probe URL`, the path to a server walked one step at a time (DNS, TCP, the
//!   proxy, TLS and its certificates, the upgrade, the target, pings, silence, throughput),
//!   each reported (`probe::report`: human lines or JSON);
//! - `client`: `wssh client URL`, stdin/stdout to a WebSocket (the ProxyCommand), and the
//!   opening of a tunnel that every client-side mode uses;
//! - `server`: `wssh server`, sniff TLS, read requests (pages on the way), upgrade, route, dial;
//! - `wrap`: `wssh server -- PROGRAM`, the program behind the server: its process group,
//!   its guard, its end (`--wrap-mode`), and the port it may be given;
//! - `console`: `--console`, the embedded browser console, `wssh.js` and the check endpoint;
//! - `web`: `--web DIR`, static pages: pure path resolution, and files opened so that nothing
//!   outside DIR is ever read;
//! - `record`: `--record`, websockify's recording format (pure encoder) and the thread per
//!   recorded tunnel that writes it, fed through `bridge`'s observer hook;
//! - `auth`: who may open a tunnel (Basic credentials, client certificate CNs): pure parsing
//!   and constant-time checks; the credentials file; `wssh hash-password`;
//! - `bridge`: a local socket (TCP or Unix) to a tunnel, both directions, with the close rules,
//!   and an optional observer of the bytes at the local socket;
//! - `daemon`: `-D/--daemon` (detach after the bind) and `--pid-file`;
//! - `logfile`: `--log-file`, stderr to a file, reopened on SIGHUP;
//! - `syslog`: `--syslog`, log lines also to a syslog daemon, in websockify's format;
//! - `throughput`: `wssh server --probe`'s `/_wssh/probe` endpoint and the probe's side of it;
//! - `listen`: the accept loop, signals and shutdown of the listening modes;
//! - `proxy`: outgoing TCP (name lookup and connect within one deadline), direct or through an
//!   HTTP proxy (CONNECT), and which proxy applies;
//! - `metrics`: `--metrics`, the server's counters and histograms (atomics) and the listener
//!   that serves them in Prometheus' text format;
//! - `ws`: HTTP heads and the opening handshake, both sides, bounded; the subprotocol rule;
//! - `pump`: one tunnel's WebSocket shared by its two threads, keepalive, the readiness wait,
//!   how bytes travel in messages (binary, or base64 text);
//! - `wire`: the stream under tungstenite; reads and writes binary data frames itself, hands
//!   every other frame to tungstenite;
//! - `tls`: the client's connector and the server's acceptor, the plain-or-TLS `Stream`;
//! - `sendq` (Apple): the socket under Secure Transport, with a send queue of its own so that
//!   no byte stays inside Secure Transport;
//! - `wincert` (Windows): the server certificate's check against `--ca` roots, by CryptoAPI;
//! - `origin`: pure allow or deny of a browser's `Origin` (`--origin`, same origin with `--web`);
//! - `policy`: pure allow or deny of targets (`--allow`, `--hosts`, trusted proxies), and of
//!   the addresses an allowed name resolves to;
//! - `url`: pure parsing of ws/wss URLs, connect templates and base64;
//! - `websockify`: pure, websockify's command line translated into `wssh server`'s, and its
//!   start-up banner;
//! - `redact`: pure, what logs and errors may show of a URL or an HTTP head;
//! - `error`: the one error type.
//!
//! Invariants: no async runtime, two OS threads per tunnel (a third records it, if asked), each
//! sleeping in the kernel when idle; in client mode stdout carries tunnel bytes only (logs go
//! to stderr); the server dials only what the policy allows; payload is never logged, nor any
//! secret: URLs, proxy URLs and HTTP heads reach logs and error messages only through
//! `redact`; payload is recorded only when asked for (`--record`), and a recording never
//! blocks a tunnel.

pub mod auth;
pub mod bridge;
pub mod cli;
pub mod client;
pub mod console;
pub mod daemon;
pub mod error;
pub mod forward;
pub mod help;
pub mod listen;
pub mod logfile;
pub mod metrics;
pub mod origin;
pub mod policy;
pub mod probe;
pub mod proxy;
pub mod pump;
pub mod record;
pub mod redact;
#[cfg(any(target_vendor = "apple", test))]
pub mod sendq;
pub mod server;
pub mod syslog;
pub mod throughput;
pub mod tls;
pub mod tokens;
pub mod url;
pub mod web;
pub mod websockify;
#[cfg(windows)]
pub mod wincert;
pub mod wire;
pub mod wrap;
pub mod ws;

/// Print a failure as one `error: ...` line on stderr and give its exit code.
pub fn report(e: &error::Error) -> i32 {
    report_as(e, "wssh")
}

/// The same, pointing usage errors to `PROGRAM --help` (`websockify`, in its mode).
pub fn report_as(e: &error::Error, program: &str) -> i32 {
    eprintln!("error: {e}");
    match e {
        error::Error::Usage(_) => {
            eprintln!("see {program} --help");
            2
        }
        _ => 1,
    }
}
