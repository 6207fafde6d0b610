//! `wssh probe URL`: walk the path to a wssh server one step at a time (which proxy, DNS, TCP,
//! the proxy's CONNECT, TLS, the upgrade, the target, ping round trips, then optionally how
//! long silence lasts) and say for each what was found, stopping at the first failure with
//! what to do about it. It opens its own connection with the client's options; nothing it
//! prints holds a secret (`report` scrubs them). Exit 0 only when every step passed.

mod idle;
pub mod report;
mod tls;

use crate::cli::Dialer;
use crate::proxy::{self, ProxyUrl};
use crate::throughput;
use crate::tls::Stream;
use crate::url::WsUrl;
use crate::ws;
use report::{printable, Report, Step, Verdict};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

use ws::{QUIET, QUIET_HEADER};

/// How long the target step waits for the target's first bytes (or the server's close).
const TARGET_WAIT: Duration = Duration::from_secs(2);
/// Pings whose round trips are measured.
const PINGS: usize = 5;

pub struct ProbeConfig {
    pub url: WsUrl,
    pub dialer: Dialer,
    /// `--ca` files and the client certificate's (chain, key) files, for the TLS details.
    pub ca: Vec<String>,
    pub identity: Option<(String, String)>,
    pub insecure: bool,
    pub json: bool,
    /// `--idle S`: hold the tunnel silent this long and report whether the path cuts it.
    pub idle: Option<Duration>,
    /// `--bytes N`: then N bytes each way to the server's `/_wssh/probe` (`--probe`).
    pub bytes: Option<u64>,
}

/// Walk the path, print each step; the exit code (0: every step passed).
pub fn run(cfg: ProbeConfig) -> i32 {
    let mut secrets: Vec<String> = cfg
        .dialer
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map_or(h.as_str(), |(_, v)| v)
                .trim()
                .to_string()
        })
        .collect();
    secrets.extend(cfg.dialer.password.clone());
    secrets.extend(cfg.url.userinfo.iter().flat_map(|u| {
        let pass = u.split_once(':').map(|(_, p)| p.to_string());
        pass.into_iter().chain([u.clone()])
    }));
    for p in [
        &cfg.dialer.proxies.explicit,
        &cfg.dialer.proxies.https,
        &cfg.dialer.proxies.http,
    ] {
        if let Some(a) = p.as_ref().and_then(|p| p.auth.as_ref()) {
            secrets.push(a.clone());
            secrets.extend(a.split_once(':').map(|(_, pw)| pw.to_string()));
        }
    }
    let mut r = Report {
        json: cfg.json,
        secrets,
        failed: false,
    };
    let t = Instant::now();
    walk(&cfg, &mut r);
    let (verdict, detail, code) = match r.failed {
        false => (Verdict::Pass, "every step passed", 0),
        true => (Verdict::Fail, "a step failed (see above)", 1),
    };
    let target = crate::redact::url(&format!(
        "{}://{}{}",
        if cfg.url.tls { "wss" } else { "ws" },
        cfg.url.authority(),
        cfg.url.path
    ));
    let end = Step::new("summary", verdict, Some(t), format!("{target}: {detail}"));
    // The summary is not a step of its own: it does not change the outcome.
    r.emit(end);
    code
}

/// The steps, in order; returns at the first failure (already reported).
fn walk(cfg: &ProbeConfig, r: &mut Report) -> Option<()> {
    let url = &cfg.url;
    let d = &cfg.dialer;
    let proxy = d.proxies.for_url(url);
    r.emit(Step::new("proxy", Verdict::Info, None, d.proxies.why(url)));
    let (host, port) = match proxy {
        Some(p) => (p.host.clone(), p.port),
        None => (url.host.clone(), url.port),
    };
    let addrs = check(r, dns(&host, port, d.connect_timeout))?;
    let mut tcp = check(
        r,
        connect(&addrs, &host, port, proxy.is_some(), d.connect_timeout),
    )?;
    let setup = |e: io::Error| Step::new("tcp", Verdict::Fail, None, format!("socket set-up: {e}"));
    let timeouts = tcp
        .set_read_timeout(Some(d.connect_timeout))
        .and_then(|()| tcp.set_write_timeout(Some(d.connect_timeout)));
    check(r, timeouts.or_step(setup))?;
    if let Some(p) = proxy {
        check(r, connect_step(&mut tcp, p, &url.authority()))?;
    }
    let mut stream = match url.tls {
        true => check(r, tls::step(cfg, tcp).map(|(s, step)| (s, Some(step))))?,
        false => Stream::Plain(tcp),
    };
    let (up, quiet) = check(r, upgrade(cfg, &mut stream))?;
    let mut websocket = crate::pump::websocket(stream, up, Role::Client);
    check(r, target(&mut websocket))?;
    check(r, pings(&mut websocket))?;
    if let Some(idle) = cfg.idle {
        check(r, idle::step(&mut websocket, idle, quiet))?;
    }
    let _ = websocket.close(None);
    let _ = websocket.flush();
    drop(websocket);
    if let Some(n) = cfg.bytes {
        check(r, throughput(cfg, n))?;
    }
    Some(())
}

/// `--bytes N`: a second tunnel, to the server's probe endpoint, N bytes each way.
fn throughput(cfg: &ProbeConfig, n: u64) -> Outcome<()> {
    let t = Instant::now();
    let url = WsUrl {
        path: throughput::PATH.into(),
        ..cfg.url.clone()
    };
    let fail = |detail: String| Step::new("bytes", Verdict::Fail, Some(t), detail);
    let tunnel = crate::client::open_tunnel(&url, &cfg.dialer).map_err(|e| {
        let step = fail(e.to_string());
        match e {
            crate::error::Error::Refused { code: 404, .. } => step.hint(
                "the server does not offer the throughput endpoint: start it with wssh server --probe",
            ),
            _ => step,
        }
    })?;
    let m = throughput::measure(&tunnel, n).map_err(fail)?;
    tunnel.finish();
    let rate = |bytes: u64, secs: f64| bytes as f64 / secs.max(1e-6) / 1e6;
    let detail = format!(
        "up {:.1} MB/s ({} bytes in {:.2} s), down {:.1} MB/s ({} bytes in {:.2} s)",
        rate(m.up, m.up_secs),
        m.up,
        m.up_secs,
        rate(m.down, m.down_secs),
        m.down,
        m.down_secs
    );
    Ok(((), Some(Step::new("bytes", Verdict::Pass, Some(t), detail))))
}

/// A step's outcome: a value to go on with and the step to print (if any), or the failed step.
type Outcome<T> = Result<(T, Option<Step>), Step>;

/// Report a step's outcome: `Ok((value, step))` passes it on, `Err(step)` ends the walk. A
/// step given as `None` is not printed (already said, or nothing to say).
fn check<T>(r: &mut Report, outcome: Outcome<T>) -> Option<T> {
    match outcome {
        Ok((v, step)) => {
            if let Some(s) = step {
                r.emit(s);
            }
            Some(v)
        }
        Err(s) => {
            r.emit(s);
            None
        }
    }
}

/// An I/O result as a step's outcome: nothing to print when it worked.
trait OrStep<T> {
    fn or_step(self, f: impl FnOnce(io::Error) -> Step) -> Outcome<T>;
}

impl<T> OrStep<T> for io::Result<T> {
    fn or_step(self, f: impl FnOnce(io::Error) -> Step) -> Outcome<T> {
        match self {
            Ok(v) => Ok((v, None)),
            Err(e) => Err(f(e)),
        }
    }
}

/// The addresses of `host`, IPv4 and IPv6 apart; the resolver's answers told apart.
fn dns(host: &str, port: u16, timeout: Duration) -> Outcome<Vec<SocketAddr>> {
    let t = Instant::now();
    if host.parse::<std::net::IpAddr>().is_ok() {
        let a = proxy::resolve(host, port, t + timeout).unwrap_or_default();
        let step = Step::new(
            "dns",
            Verdict::Pass,
            Some(t),
            format!("{host} is an address: no lookup"),
        );
        return Ok((a, Some(step)));
    }
    match proxy::resolve(host, port, t + timeout) {
        Ok(addrs) => {
            let list = |v6: bool| {
                let a: Vec<String> = addrs
                    .iter()
                    .filter(|a| a.is_ipv6() == v6)
                    .map(|a| a.ip().to_string())
                    .collect();
                match a.is_empty() {
                    true => "none".to_string(),
                    false => a.join(" "),
                }
            };
            let detail = format!("{host}: IPv4 {}; IPv6 {}", list(false), list(true));
            Ok((
                addrs,
                Some(Step::new("dns", Verdict::Pass, Some(t), detail)),
            ))
        }
        Err(e) => {
            let msg = e.to_string();
            let (what, hint) = if e.kind() == io::ErrorKind::TimedOut {
                ("no answer in time", "the resolver did not answer: check /etc/resolv.conf, the network, or a VPN's DNS")
            } else if msg.contains("Temporary failure") || msg.contains("try again") {
                ("no answer from the resolver (temporary failure): this machine may have no working DNS", "check the network and /etc/resolv.conf; try again")
            } else if msg.contains("not known")
                || msg.contains("No address")
                || msg.contains("no address")
                || msg.contains("nodename nor servname")
            {
                ("no such name", "check the spelling of the host in the URL")
            } else {
                (
                    "lookup failed",
                    "check the resolver's configuration (/etc/resolv.conf, nsswitch.conf)",
                )
            };
            let detail = format!("{host}: {what} ({msg})");
            Err(Step::new("dns", Verdict::Fail, Some(t), detail).hint(hint))
        }
    }
}

/// Connect to each address in turn (each one timed); keep the first that answers.
fn connect(
    addrs: &[SocketAddr],
    host: &str,
    port: u16,
    via_proxy: bool,
    timeout: Duration,
) -> Outcome<TcpStream> {
    let t = Instant::now();
    let mut lines = Vec::new();
    let mut first = None;
    let mut last = None;
    for a in addrs {
        let ta = Instant::now();
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                let ms = ta.elapsed().as_secs_f64() * 1000.0;
                lines.push(format!("{a}: connected in {ms:.1} ms"));
                if first.is_none() {
                    let _ = s.set_nodelay(true);
                    first = Some((*a, s));
                }
            }
            Err(e) => {
                lines.push(format!("{a}: {}", tcp_error(&e)));
                last = Some(e);
            }
        }
    }
    let what = if via_proxy { "the proxy" } else { "the server" };
    match first {
        Some((a, s)) => {
            let detail = format!("{what} at {a}");
            Ok((
                s,
                Some(Step::new("tcp", Verdict::Pass, Some(t), detail).lines(lines)),
            ))
        }
        None => {
            let kind = last.map(|e| e.kind());
            let hint = match kind {
                Some(io::ErrorKind::ConnectionRefused) => format!(
                    "nothing listens on port {port} at {host}: is {what} running, on this port?"
                ),
                Some(io::ErrorKind::TimedOut) => {
                    "no answer at all: a firewall drops the packets, or the host is down".into()
                }
                _ => "no route to the host: check the network (and VPN)".into(),
            };
            let detail = format!("cannot connect to {what} ({host} port {port})");
            Err(Step::new("tcp", Verdict::Fail, Some(t), detail)
                .lines(lines)
                .hint(hint))
        }
    }
}

/// `connection refused`, `timed out` and `unreachable` in plain words.
fn tcp_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused (nothing listening)".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out (no answer)".into(),
        io::ErrorKind::HostUnreachable => "host unreachable".into(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".into(),
        _ => e.to_string(),
    }
}

/// CONNECT through the proxy, and its answer in full: status, the scheme it asks for.
fn connect_step(tcp: &mut TcpStream, p: &ProxyUrl, authority: &str) -> Outcome<()> {
    let t = Instant::now();
    let fail = |detail: String| Step::new("connect", Verdict::Fail, Some(t), detail);
    let (res, rest) = proxy::ask(tcp, p, authority).map_err(|e| fail(e.to_string()))?;
    let answered = format!("CONNECT {authority}: {} {}", res.code, res.reason);
    let hop = hop_headers(&res.headers);
    match proxy::judge(p, authority, &res, &rest) {
        Ok(()) => Ok((
            (),
            Some(Step::new("connect", Verdict::Pass, Some(t), answered).lines(hop)),
        )),
        Err(e) => {
            let asks = ["proxy-authenticate", "www-authenticate"]
                .iter()
                .find_map(|h| ws::header(&res.headers, h))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string());
            let mut detail = answered;
            if let Some(scheme) = asks {
                detail += &format!(" (asks for {scheme} authentication)");
            }
            let hint = match res.code {
                401 | 407 if p.auth.is_some() => "wrong credentials for the proxy: check the user and password in --proxy or https_proxy".to_string(),
                401 | 407 => "the proxy needs credentials: --proxy http://USER:PASS@host:port (or in https_proxy)".to_string(),
                403 => "the proxy refuses this destination (its allow-list, or the port: many allow only 443)".to_string(),
                502..=504 => "the proxy could not reach the server: a firewall beyond it, or the server is down".to_string(),
                _ => e.to_string(),
            };
            let credentials = match (res.code, p.auth.is_some()) {
                (401 | 407, true) => "; credentials rejected",
                (401 | 407, false) => "; credentials missing",
                _ => "",
            };
            Err(fail(format!("{detail}{credentials}")).lines(hop).hint(hint))
        }
    }
}

/// `Server`, `Via` and other headers that say who answered.
fn hop_headers(headers: &[(String, String)]) -> Vec<String> {
    const HOP: &[&str] = &[
        "server",
        "via",
        "x-cache",
        "x-served-by",
        "cf-ray",
        "x-powered-by",
        "proxy-agent",
    ];
    headers
        .iter()
        .filter(|(n, _)| HOP.contains(&n.as_str()))
        .map(|(n, v)| format!("{n}: {v}"))
        .collect()
}

/// The upgrade request and the server's answer: 101 (with the subprotocol and whether it
/// agreed to stay quiet), or what answered instead.
fn upgrade(cfg: &ProbeConfig, s: &mut Stream) -> Outcome<(Vec<u8>, bool)> {
    let t = Instant::now();
    let d = &cfg.dialer;
    let fail = |detail: String| Step::new("upgrade", Verdict::Fail, Some(t), detail);
    let userinfo = match (&d.password, &cfg.url.userinfo) {
        (Some(p), Some(user)) => Some(format!("{user}:{p}")),
        _ => cfg.url.userinfo.clone(),
    };
    let url = WsUrl {
        userinfo,
        ..cfg.url.clone()
    };
    let mut headers = d.headers.clone();
    if cfg.idle.is_some() {
        headers.push(format!("X-Wssh-Probe: {QUIET}"));
    }
    let up = match ws::client_upgrade(s, &url, &headers) {
        Ok(up) => up,
        Err(e) => {
            let msg = e.to_string();
            let mut step = fail(msg.clone());
            if let Some(m) = crate::tls::client_cert_alert(&url.authority(), &msg) {
                step = fail(m);
            } else if !url.tls && speaks_tls(cfg) {
                step =
                    fail(format!("{msg}: this port speaks TLS")).hint("use wss:// for this port");
            }
            return Err(step);
        }
    };
    let hop = hop_headers(&up.res.headers);
    if up.res.code != 101 {
        let said = ws::refusal(&up.res, &up.rest, s, &up.secrets);
        let hint = match up.res.code {
            200 | 404 | 405 | 426 => "an HTTP server answered, not a WebSocket endpoint: a wrong path, or a proxy (nginx) in front that does not pass Upgrade and Connection (see the README's nginx section)",
            301 | 302 | 303 | 307 | 308 => "a redirect: use the URL in Location (with ws:// or wss://)",
            400 if said.contains("TLS") || said.contains("HTTPS") => "this port wants TLS: use wss://",
            400 => "the server refused the request as malformed",
            401 => "the server wants credentials: wss://USER@host/ with WSSH_PASSWORD or --password-file (or they were wrong)",
            403 => "refused: an Origin, a client certificate, or a target the server does not allow",
            502 | 504 => "a proxy in front (nginx) could not reach wssh server behind it",
            503 => "the server is at its tunnel limit (--max-tunnels, --max-per-ip)",
            _ => "see the server's log",
        };
        return Err(fail(said).lines(hop).hint(hint));
    }
    if let Err(e) = ws::check_switch(&up) {
        return Err(fail(e.to_string()).lines(hop));
    }
    let proto = ws::header(&up.res.headers, "sec-websocket-protocol").unwrap_or("none");
    let quiet = ws::header(&up.res.headers, QUIET_HEADER) == Some(QUIET);
    let detail = format!("101 {}; subprotocol {proto}", up.res.reason);
    Ok((
        (up.rest, quiet),
        Some(Step::new("upgrade", Verdict::Pass, Some(t), detail).lines(hop)),
    ))
}

/// Does the URL's port complete a TLS handshake (certificate not checked)? For a ws:// URL
/// whose upgrade went wrong: then the user wanted wss://.
fn speaks_tls(cfg: &ProbeConfig) -> bool {
    let d = &cfg.dialer;
    let tcp = match d.proxies.for_url(&cfg.url) {
        Some(p) => proxy::connect(p, &cfg.url.authority(), d.connect_timeout),
        None => proxy::dial(&cfg.url.authority(), d.connect_timeout),
    };
    let Ok(tcp) = tcp else { return false };
    let _ = tcp.set_read_timeout(Some(d.connect_timeout));
    let c = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build();
    c.is_ok_and(|c| c.connect(&cfg.url.host, tcp).is_ok())
}

/// The target's first bytes (an SSH banner is named), or the server's close when it could not
/// reach the target.
fn target(ws: &mut WebSocket<Stream>) -> Outcome<()> {
    let t = Instant::now();
    let _ = ws.get_ref().tcp().set_read_timeout(Some(TARGET_WAIT));
    let fail = |detail: String| Step::new("target", Verdict::Fail, Some(t), detail);
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) if !b.is_empty() => {
                let step = Step::new("target", Verdict::Pass, Some(t), first_bytes(&b));
                return Ok(((), Some(step)));
            }
            Ok(Message::Binary(_)) => {
                let step = Step::new(
                    "target",
                    Verdict::Pass,
                    Some(t),
                    "the target sent nothing and ended its side".into(),
                );
                return Ok(((), Some(step)));
            }
            Ok(Message::Close(f)) => {
                let (code, why) = f.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                });
                let hint = match code {
                    1011 => "the server could not reach its target: check that the target runs, and the server's --target, --allow or --hosts",
                    1008 => "the server's policy closed the tunnel",
                    _ => "see the server's log",
                };
                return Err(fail(format!("the server closed the tunnel: {code} {why}")).hint(hint));
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let detail = format!("no bytes and no close in {} s: the target is connected and waits for the client to speak first", TARGET_WAIT.as_secs());
                return Ok((
                    (),
                    Some(Step::new("target", Verdict::Pass, Some(t), detail)),
                ));
            }
            Err(e) => return Err(fail(format!("the connection ended: {e}"))),
        }
    }
}

/// A target's first bytes in words: an SSH banner's line named as one, anything else shown
/// printable (at most 80 characters).
pub fn first_bytes(b: &[u8]) -> String {
    match b.starts_with(b"SSH-") {
        true => {
            let line = b.split(|c| *c == b'\n').next().unwrap_or(b);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            format!("an SSH server: {}", printable(line, 200))
        }
        false => format!("first bytes: {}", printable(b, 80)),
    }
}

/// Round trips of `PINGS` pings: min, median, max.
fn pings(ws: &mut WebSocket<Stream>) -> Outcome<()> {
    let t = Instant::now();
    let _ = ws
        .get_ref()
        .tcp()
        .set_read_timeout(Some(Duration::from_secs(5)));
    let mut rtts = Vec::new();
    for i in 0..PINGS {
        let sent = Instant::now();
        let payload = vec![b'p', i as u8];
        if let Err(e) = ws.send(Message::Ping(payload.clone().into())) {
            return Err(Step::new(
                "ping",
                Verdict::Fail,
                Some(t),
                format!("sending a ping: {e}"),
            ));
        }
        loop {
            match ws.read() {
                Ok(Message::Pong(p)) if p[..] == payload[..] => break,
                Ok(Message::Close(f)) => {
                    let why = f.map_or(String::new(), |f| {
                        format!("{} {}", u16::from(f.code), f.reason)
                    });
                    return Err(Step::new(
                        "ping",
                        Verdict::Fail,
                        Some(t),
                        format!("the server closed the tunnel: {why}"),
                    ));
                }
                Ok(_) => continue,
                Err(e) => {
                    return Err(
                        Step::new("ping", Verdict::Fail, Some(t), format!("no pong: {e}"))
                            .hint("something on the path does not pass WebSocket control frames"),
                    );
                }
            }
        }
        rtts.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    rtts.sort_by(f64::total_cmp);
    let detail = format!(
        "round trip min {:.2} / median {:.2} / max {:.2} ms over {PINGS} pings",
        rtts[0],
        rtts[PINGS / 2],
        rtts[PINGS - 1]
    );
    Ok(((), Some(Step::new("ping", Verdict::Pass, Some(t), detail))))
}
