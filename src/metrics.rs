//! `wssh server --metrics ADDR`: the server's counters, gauges and histograms (process-wide
//! atomics, updated by `server` and `listen`), and a small listener that serves them in
//! Prometheus' text format on `GET /metrics`. Labels come only from closed sets (`Why`, a
//! handful of statuses): never a target, a path or any other text a client chose.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a request was refused before it became a tunnel: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Malformed or not an upgrade (400), or a request head too large (431).
    BadRequest,
    /// Plain ws:// under `--tls-only`.
    TlsOnly,
    /// No or wrong credentials, or a client certificate CN not listed (401, 403).
    Auth,
    /// A path under `/_wssh/` that nothing serves (404).
    Reserved,
    /// A browser origin not allowed (403).
    Origin,
    /// `--max-tunnels` or `--max-per-ip` reached (503).
    Busy,
    /// No subprotocol the server speaks (400).
    Subprotocol,
    /// The path or token named a target the policy does not allow, or no known token (403, 400).
    Target,
    /// The target's name did not resolve (502), or a token lookup failed (503).
    Lookup,
    /// Cut by the listener without an answer: over `--max-pending-per-ip`, shed to make room
    /// (`--max-pending`), or out of time (`--handshake-timeout`).
    Pending,
}

const WHYS: [Why; 10] = [
    Why::BadRequest,
    Why::TlsOnly,
    Why::Auth,
    Why::Reserved,
    Why::Origin,
    Why::Busy,
    Why::Subprotocol,
    Why::Target,
    Why::Lookup,
    Why::Pending,
];

impl Why {
    fn label(self) -> &'static str {
        match self {
            Why::BadRequest => "bad_request",
            Why::TlsOnly => "tls_only",
            Why::Auth => "auth",
            Why::Reserved => "reserved",
            Why::Origin => "origin",
            Why::Busy => "busy",
            Why::Subprotocol => "subprotocol",
            Why::Target => "target",
            Why::Lookup => "lookup",
            Why::Pending => "pending",
        }
    }
}

/// The statuses a refusal can have (0: none, cut by the listener).
const STATUSES: [u16; 8] = [400, 401, 403, 404, 431, 502, 503, 0];

static TUNNELS_OPEN: AtomicU64 = AtomicU64::new(0);
static TUNNELS: AtomicU64 = AtomicU64::new(0);
static BYTES_UP: AtomicU64 = AtomicU64::new(0);
static BYTES_DOWN: AtomicU64 = AtomicU64::new(0);
static HANDSHAKING: AtomicU64 = AtomicU64::new(0);
static TARGET_FAILURES: AtomicU64 = AtomicU64::new(0);
static BY_STATUS: [AtomicU64; STATUSES.len()] = [const { AtomicU64::new(0) }; STATUSES.len()];
static BY_WHY: [AtomicU64; WHYS.len()] = [const { AtomicU64::new(0) }; WHYS.len()];

/// Upper bounds of the tunnel duration buckets, in seconds.
const DURATION_BUCKETS: [f64; 8] = [1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0];
/// Upper bounds of the handshake time buckets (accept to 101 sent), in seconds.
const HANDSHAKE_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0];

/// A histogram: a count per bucket (not cumulative; summed when written), the sum in
/// microseconds and the count of observations.
struct Histogram<const N: usize> {
    bounds: [f64; N],
    counts: [AtomicU64; N],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    const fn new(bounds: [f64; N]) -> Self {
        Histogram {
            bounds,
            counts: [const { AtomicU64::new(0) }; N],
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        family(out, name, "histogram", help);
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            out.push_str(&format!("{name}_bucket{{le=\"{b}\"}} {cumulative}\n"));
        }
        let count = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {count}\n"));
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!("{name}_sum {sum}\n{name}_count {count}\n"));
    }
}

static DURATION: Histogram<8> = Histogram::new(DURATION_BUCKETS);
static HANDSHAKE: Histogram<9> = Histogram::new(HANDSHAKE_BUCKETS);

/// A request answered with `status` (0: cut without an answer) for reason `why`.
pub fn refused(status: u16, why: Why) {
    let i = STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len() - 1);
    BY_STATUS[i].fetch_add(1, Ordering::Relaxed);
    let w = WHYS.iter().position(|w| *w == why).unwrap_or(0);
    BY_WHY[w].fetch_add(1, Ordering::Relaxed);
}

/// The server could not connect to an admitted tunnel's target (it closed the tunnel 1011).
pub fn target_failed() {
    TARGET_FAILURES.fetch_add(1, Ordering::Relaxed);
}

/// Connections in their TLS or HTTP handshake now (the listener's pending ones).
pub fn set_handshaking(n: usize) {
    HANDSHAKING.store(n as u64, Ordering::Relaxed);
}

/// A handshake that ended with the 101 answer, `took` after the accept.
pub fn handshake_done(took: Duration) {
    HANDSHAKE.observe(took);
}

/// An open tunnel (its target dialled), counted until dropped.
pub struct Open(Instant);

impl Open {
    pub fn start() -> Open {
        TUNNELS.fetch_add(1, Ordering::Relaxed);
        TUNNELS_OPEN.fetch_add(1, Ordering::Relaxed);
        Open(Instant::now())
    }

    /// The tunnel ended having carried `up` bytes to the target and `down` to the client.
    pub fn end(self, up: u64, down: u64) {
        BYTES_UP.fetch_add(up, Ordering::Relaxed);
        BYTES_DOWN.fetch_add(down, Ordering::Relaxed);
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        TUNNELS_OPEN.fetch_sub(1, Ordering::Relaxed);
        DURATION.observe(self.0.elapsed());
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
    family(out, name, kind, help);
    out.push_str(&format!("{name} {v}\n"));
}

/// Everything, in Prometheus' text format (version 0.0.4).
pub fn render() -> String {
    let mut o = String::new();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let version = env!("CARGO_PKG_VERSION");
    family(
        &mut o,
        "wssh_build_info",
        "gauge",
        "wssh's version; always 1",
    );
    o.push_str(&format!("wssh_build_info{{version=\"{version}\"}} 1\n"));
    let open = get(&TUNNELS_OPEN);
    one(
        &mut o,
        "wssh_tunnels_open",
        "gauge",
        "Tunnels open now",
        open,
    );
    let n = get(&TUNNELS);
    one(&mut o, "wssh_tunnels_total", "counter", "Tunnels opened", n);
    let pending = get(&HANDSHAKING);
    one(
        &mut o,
        "wssh_connections_handshaking",
        "gauge",
        "Connections in their TLS or HTTP handshake now",
        pending,
    );
    family(
        &mut o,
        "wssh_bytes_total",
        "counter",
        "Tunnel bytes, counted when each tunnel ends: up is to targets, down to clients",
    );
    o.push_str(&format!(
        "wssh_bytes_total{{direction=\"up\"}} {}\n",
        get(&BYTES_UP)
    ));
    o.push_str(&format!(
        "wssh_bytes_total{{direction=\"down\"}} {}\n",
        get(&BYTES_DOWN)
    ));
    family(
        &mut o,
        "wssh_refusals_total",
        "counter",
        "Requests refused before a tunnel, by HTTP status (none: cut without an answer)",
    );
    for (s, c) in STATUSES.iter().zip(&BY_STATUS) {
        let s = match s {
            0 => "none".to_string(),
            s => s.to_string(),
        };
        o.push_str(&format!(
            "wssh_refusals_total{{status=\"{s}\"}} {}\n",
            get(c)
        ));
    }
    family(
        &mut o,
        "wssh_refusals_by_reason_total",
        "counter",
        "Requests refused before a tunnel, by reason",
    );
    for (w, c) in WHYS.iter().zip(&BY_WHY) {
        o.push_str(&format!(
            "wssh_refusals_by_reason_total{{reason=\"{}\"}} {}\n",
            w.label(),
            get(c)
        ));
    }
    one(
        &mut o,
        "wssh_target_connect_failures_total",
        "counter",
        "Tunnels whose target could not be connected to (closed 1011)",
        get(&TARGET_FAILURES),
    );
    DURATION.write(
        &mut o,
        "wssh_tunnel_duration_seconds",
        "How long tunnels lasted",
    );
    HANDSHAKE.write(
        &mut o,
        "wssh_handshake_seconds",
        "From accept to the 101 answer",
    );
    process(&mut o);
    o
}

/// The standard `process_*` figures, from /proc (Linux only).
#[cfg(target_os = "linux")]
fn process(o: &mut String) {
    // SAFETY: sysconf and getrlimit only read system values into locals.
    let (tick, page, max_fds) = unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        (
            libc::sysconf(libc::_SC_CLK_TCK) as f64,
            libc::sysconf(libc::_SC_PAGESIZE) as f64,
            lim.rlim_cur,
        )
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name in parentheses, which may hold spaces.
    let f: Vec<&str> = stat
        .rfind(')')
        .map_or(vec![], |i| stat[i + 2..].split(' ').collect());
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    if let (Some(u), Some(s)) = (num(11), num(12)) {
        one(
            o,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time",
            (u + s) / tick,
        );
    }
    if let Some(v) = num(20) {
        one(
            o,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size",
            v,
        );
    }
    if let Some(r) = num(21) {
        one(
            o,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size",
            r * page,
        );
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(b), Some(start)) = (boot, num(19)) {
        one(
            o,
            "process_start_time_seconds",
            "gauge",
            "Start time since the Unix epoch",
            b + start / tick,
        );
    }
    if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
        one(
            o,
            "process_open_fds",
            "gauge",
            "Open file descriptors",
            d.count(),
        );
    }
    one(
        o,
        "process_max_fds",
        "gauge",
        "Limit on open file descriptors",
        max_fds,
    );
}

#[cfg(not(target_os = "linux"))]
fn process(_o: &mut String) {}

/// `--metrics` as given: `PORT` (on 127.0.0.1) or `HOST:PORT`.
pub fn parse_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Some(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    std::net::ToSocketAddrs::to_socket_addrs(s).ok()?.next()
}

/// Bind the metrics listener (before `-D` detaches, so that an error is seen).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, crate::error::Error> {
    TcpListener::bind(addr)
        .map_err(|e| crate::error::Error::io(format!("metrics: listen on {addr}"), e))
}

/// Serve the metrics on a thread of its own (started after `-D`: a fork keeps no threads),
/// one scrape at a time, each with a 2 s deadline; says `metrics on ADDR`.
pub fn serve(l: TcpListener) -> Result<(), crate::error::Error> {
    if let Ok(local) = l.local_addr() {
        log::info!("metrics on {local}");
    }
    std::thread::Builder::new()
        .name("metrics".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                if let Err(e) = answer(s) {
                    log::debug!("metrics: {e}");
                }
            }
        })
        .map_err(|e| crate::error::Error::io("start the metrics thread", e))?;
    Ok(())
}

/// Answer one scrape: `GET /metrics` gets them, anything else 404.
fn answer(mut s: TcpStream) -> std::io::Result<()> {
    let deadline = Some(Duration::from_secs(2));
    s.set_read_timeout(deadline)?;
    s.set_write_timeout(deadline)?;
    let wants = match crate::ws::read_head(&mut s) {
        Ok((head, _)) => crate::ws::parse_request(&head).ok().filter(|r| {
            matches!(r.method.as_str(), "GET" | "HEAD")
                && r.target.split('?').next() == Some("/metrics")
        }),
        Err(_) => return Ok(()),
    };
    let Some(req) = wants else {
        return crate::ws::refuse(&mut s, 404, "Not Found", "try /metrics");
    };
    let body = render();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    if req.method == "GET" {
        s.write_all(body.as_bytes())?;
    }
    s.flush()
}
