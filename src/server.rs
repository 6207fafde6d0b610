//! `wssh server`: accept connections, tell TLS from plain by the first byte, read requests
//! (answering page requests from `web` on the way, keep-alive), run the HTTP upgrade, route
//! the path through the policy, dial the target and pump (or, with `--probe`, serve the
//! throughput endpoint of `throughput`). One thread per connection (`conn-N`)
//! plus one for the second direction; one log line per tunnel at its end. It does not decide
//! what is allowed (`policy`, `origin`), who may pass (`auth`), what a page is (`web`) or how
//! frames move (`pump`).

use crate::auth::{Denial, Memo, Passed};
use crate::bridge::{self, Local, Side};
use crate::cli::ServerConfig;
use crate::error::Error;
use crate::listen::{self, Busy, Hub, Limits};
use crate::metrics::Why;
use crate::policy::{parse_hosts, real_client, Denied, Route, Target};
use crate::pump::Shared;
use crate::record::Recorder;
use crate::redact;
use crate::tls::Stream;
use crate::tokens::{Dest, Tokens};
use crate::web;
use crate::ws::{self, HeadError};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::Role;

/// What the connection threads share besides the hub.
struct State {
    cfg: ServerConfig,
    hosts: Mutex<HostsCache>,
    tokens: Tokens,
    /// This machine's interface addresses, read at start-up: a name must not lead there.
    own: Vec<IpAddr>,
    /// `--record`: where each tunnel's payload goes.
    record: Option<Recorder>,
}

/// The `--hosts` map, re-read when the file's modification time changes.
#[derive(Default)]
struct HostsCache {
    mtime: Option<SystemTime>,
    map: HashMap<String, Target>,
}

/// Serve until SIGTERM or Ctrl-C, the wrapped program's end under `--wrap-mode exit`, or
/// `--run-once`, `--timeout`, `--idle-timeout`.
/// Returns wssh's exit code: 0, or that program's status.
pub fn run(mut cfg: ServerConfig) -> Result<i32, Error> {
    let listener = match (cfg.handed, &cfg.unix_listen) {
        (Some(h), _) => listen::adopt(h)?,
        (None, Some((path, mode))) => listen::bind_unix(path, *mode)?,
        (None, None) if cfg.reuse_port => listen::bind_shared(cfg.listen)?.into(),
        (None, None) => listen::bind(cfg.listen)?.into(),
    };
    let metrics = cfg.metrics.map(crate::metrics::bind).transpose()?;
    // After the bind, so that a port in use is still said where the launcher sees it.
    if let Some(file) = &cfg.log_file {
        crate::logfile::redirect(file)?;
    }
    if let Some(compat) = &cfg.compat {
        // websockify's banner: launchers wait for `proxying from :PORT` (the real port, if 0).
        let lines =
            crate::websockify::banner(compat, listener.port(), cfg.tls.is_some(), cfg.tls_only);
        for line in lines {
            log::info!("{line}");
        }
        let local = listener.local_addr();
        if compat.origin_unchecked && local.is_some_and(|l| !l.ip().is_loopback()) {
            log::warn!(
                "any web page can open tunnels here (no Origin check, as in websockify): \
                 give --auth-plugin ExpectOrigin --auth-source 'https://your.site'"
            );
        }
    }
    // After the bind (its error is the launcher's) and the banner, before any thread.
    let _pid_file = match (cfg.daemon, &cfg.pid_file) {
        (true, p) => Some(crate::daemon::detach(p.as_deref(), cfg.log_file.is_some())?),
        (false, Some(p)) => Some(crate::daemon::write_pid(p)?),
        (false, None) => None,
    };
    if let Some(l) = metrics {
        crate::metrics::serve(l)?;
    }
    let program = cfg.wrap.take();
    let program = program
        .map(|p| crate::wrap::start(p, &mut cfg.policy.fixed))
        .transpose()?;
    let limits = Limits {
        max_tunnels: cfg.max_tunnels,
        max_per_ip: cfg.max_per_ip,
        max_pending: cfg.max_pending,
        pending_per_ip: cfg.max_pending_per_ip,
        handshake: cfg.handshake_timeout,
        exempt: cfg.trusted_proxies.clone(),
    };
    let own = crate::proxy::local_addresses().unwrap_or_else(|e| {
        log::warn!("cannot list this machine's addresses: {e}; names are not checked against them");
        Vec::new()
    });
    log::debug!("own addresses: {own:?}");
    let record = cfg.record.clone().map(|file| {
        let mib = cfg.record_max >> 20;
        log::info!(
            "recording each tunnel to {}.N, at most {mib} MiB each",
            file.display()
        );
        Recorder::new(file, cfg.record_max)
    });
    let state = Arc::new(State {
        record,
        tokens: Tokens::new(cfg.tokens.clone()),
        cfg,
        hosts: Mutex::new(HostsCache::default()),
        own,
    });
    let ends = state.cfg.ends.clone();
    listen::serve_until(listener, limits, ends, move |hub, id, sock| {
        connection(&state, hub, id, sock)
    })?;
    Ok(program.map_or(0, crate::wrap::Running::finish))
}

/// How a tunnel went, for its one log line.
struct Summary {
    /// The real client, when a trusted proxy named it.
    client: Option<IpAddr>,
    /// The user and certificate CN that passed the auth gate (`user="alice" `), if any.
    who: Passed,
    target: String,
    up: u64,
    down: u64,
    end: String,
}

/// One connection, start to end; logs its outcome once.
fn connection(state: &State, hub: &Hub, id: u64, sock: TcpStream) {
    let start = Instant::now();
    // No address: a client of a Unix socket (see `listen::Listener`).
    let peer = sock.peer_addr().map_or("unix".into(), |a| a.to_string());
    match serve(state, hub, id, sock) {
        Ok(Some(s)) => log::info!(
            "conn-{id} peer={}{peer} {}target={} up={} down={} secs={:.2} end={}",
            s.client.map_or(String::new(), |c| format!("{c} via ")),
            s.who,
            s.target,
            s.up,
            s.down,
            start.elapsed().as_secs_f64(),
            s.end
        ),
        Ok(None) => log::debug!("conn-{id} peer={peer}: closed without a tunnel"),
        // A flood of bad requests must not become a flood of log lines.
        Err(e) => hub.refused(format_args!("conn-{id} peer={peer}: {e}")),
    }
}

/// A reader that tells the hub each time the pending connection sends something, so that it
/// is not the one shed to make room.
struct Touching<'a, R> {
    inner: R,
    hub: &'a Hub,
    id: u64,
}

impl<R: std::io::Read> std::io::Read for Touching<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hub.touch(self.id);
        }
        Ok(n)
    }
}

/// Handshake, route, dial, pump. `Ok(None)` for a connection that closed without a request.
fn serve(state: &State, hub: &Hub, id: u64, sock: TcpStream) -> Result<Option<Summary>, Error> {
    match handshake(state, hub, id, sock) {
        // The listener cut it (deadline, or shed to make room): say that, not the read error.
        Err(_) if hub.cut_reason(id).is_some() => Err(Error::Handshake(
            hub.cut_reason(id).unwrap_or_default().to_string(),
        )),
        r => r,
    }
}

/// Everything from the first byte to the end of the tunnel.
fn handshake(state: &State, hub: &Hub, id: u64, sock: TcpStream) -> Result<Option<Summary>, Error> {
    let cfg = &state.cfg;
    let start = Instant::now();
    let setup = |e| Error::io("socket set-up", e);
    // Fails on a Unix socket (see `listen::Listener`), where there is no Nagle to turn off.
    let _ = sock.set_nodelay(true);
    // Reads need no timeout of their own: the listener cuts the connection at its deadline.
    sock.set_write_timeout(Some(cfg.handshake_timeout))
        .map_err(setup)?;

    let mut first = [0u8; 1];
    let tls_hello = match sock.peek(&mut first) {
        Ok(0) => return Ok(None),
        Ok(_) => first[0] == 0x16,
        Err(e) => return Err(Error::io("read request", e)),
    };
    let mut stream = match (&cfg.tls, tls_hello) {
        (Some(acceptor), true) => crate::tls::accept(acceptor, sock)?,
        (None, true) => {
            return Err(Error::Handshake(
                "TLS hello on a plain server (use ws://, or give --cert and --key)".into(),
            ))
        }
        (_, false) if cfg.tls_only => {
            let body = "this server speaks TLS only: use wss://";
            return Err(refuse(
                &mut &sock,
                400,
                Why::TlsOnly,
                body,
                "plain request refused (--tls-only)",
            ));
        }
        (_, false) => Stream::Plain(sock),
    };

    let Some((req, rest, who)) = front_door(state, hub, id, &mut stream)? else {
        return Ok(None);
    };
    let client = stream.tcp().peer_addr().ok().and_then(|p| {
        real_client(
            p.ip(),
            ws::header_all(&req.headers, "x-forwarded-for").as_deref(),
            ws::header(&req.headers, "x-real-ip"),
            &cfg.trusted_proxies,
        )
    });
    let accept_key = match ws::check_upgrade(&req) {
        Ok(k) => k,
        Err(e) => {
            let log = format!("{} {}: {e}", req.method, redact::url(&req.target));
            return Err(refuse(&mut stream, 400, Why::BadRequest, &e, &log));
        }
    };
    let peer_ip = stream.tcp().peer_addr().map(|p| p.ip()).ok();
    let trusted = peer_ip.is_some_and(|ip| cfg.trusted_proxies.iter().any(|r| r.contains_ip(ip)));
    // A page the user happens to visit must not reach the targets (cross-site WebSocket).
    if let Err(log) = origin_ok(state, &req, &stream) {
        return Err(refuse(
            &mut stream,
            403,
            Why::Origin,
            "origin not allowed",
            &log,
        ));
    }
    // Now a tunnel, not a pending connection: it counts against --max-tunnels and
    // --max-per-ip (the real client's address; a trusted proxy that names none is not counted).
    let counted = client.or(peer_ip.filter(|_| !trusted));
    let _admitted = match hub.admit(id, counted) {
        Ok(a) => a,
        Err(Busy::Cut(why)) => return Err(Error::Handshake(why.into())),
        Err(busy) => {
            let body = busy.to_string();
            return Err(refuse(&mut stream, 503, Why::Busy, &body, &body));
        }
    };
    let proto = match ws::subprotocol(&req) {
        Ok(p) => p,
        Err(e) => return Err(refuse(&mut stream, 400, Why::Subprotocol, &e, &e)),
    };
    if crate::throughput::is_endpoint(&req.target) {
        // `--probe`: front_door let only the endpoint itself through; it counts as a tunnel
        // (admitted above) and never reaches a target.
        ws::accept(&mut stream, &accept_key, proto, "").map_err(|e| Error::io("answer", e))?;
        crate::metrics::handshake_done(start.elapsed());
        let websocket = crate::pump::websocket(stream, rest, Role::Server);
        let tunnel = Shared::new(websocket, cfg.ping, proto.encoding()).map_err(setup)?;
        let (up, down, end) = crate::throughput::serve(&tunnel);
        return Ok(Some(Summary {
            client,
            who: Passed::default(),
            target: "probe endpoint".into(),
            up,
            down,
            end,
        }));
    }
    let (way, token) = match route(state, &req) {
        Ok(r) => r,
        Err((code, body, log)) => {
            let log = format!("{}: {log}", redact::url(&req.target));
            let why = if code == 503 {
                Why::Lookup
            } else {
                Why::Target
            };
            return Err(refuse(&mut stream, code, why, &body, &log));
        }
    };
    // --connect-timeout is one deadline for the lookup, before the answer, and the connect.
    let deadline = Instant::now() + cfg.connect_timeout;
    let addrs = match &way {
        Way::Net(route) => match addresses(state, route, deadline) {
            Ok(a) => a,
            Err((code, body)) => {
                let log = format!("{}: {body}", redact::url(&req.target));
                let why = if code == 502 {
                    Why::Lookup
                } else {
                    Why::Target
                };
                return Err(refuse(&mut stream, code, why, &body, &log));
            }
        },
        Way::Unix(..) => Vec::new(),
    };
    // `wssh probe --idle` asks for a silent tunnel, to find how long the path tolerates one:
    // no pings from us (the client's own pings, if any, still keep it alive).
    let quiet = ws::header(&req.headers, ws::QUIET_HEADER) == Some(ws::QUIET);
    let (ping, extra) = match quiet {
        true => (None, "X-Wssh-Probe: quiet\r\n"),
        false => (cfg.ping, ""),
    };
    ws::accept(&mut stream, &accept_key, proto, extra).map_err(|e| Error::io("answer", e))?;
    crate::metrics::handshake_done(start.elapsed());
    let websocket = crate::pump::websocket(stream, rest, Role::Server);
    let tunnel = Shared::new(websocket, ping, proto.encoding()).map_err(setup)?;

    let target_name = way.to_string();
    let local = match dial(&way, &addrs, deadline) {
        Ok(local) => Arc::new(local),
        Err(e) => {
            crate::metrics::target_failed();
            // Tell the client why, and let it read that before the socket goes.
            tunnel.close(CloseCode::Error, &e.to_string());
            tunnel.drain_until_closed();
            tunnel.finish();
            return Err(e);
        }
    };
    let _registered = hub.register(id, &local);
    // A tunnel opened by a token ends when the token is withdrawn.
    let _watched = token
        .as_ref()
        .map(|t| state.tokens.watch(id, t.clone(), local.clone()));
    // --record: copies of the payload go to a recording thread, never waited for while the
    // tunnel runs; once it is over, its file's last line is (at most 1 s).
    let open = crate::metrics::Open::start();
    let recording = state.record.as_ref().and_then(|r| r.start(id));
    let observer = recording.as_ref().map(|r| r as &dyn bridge::Observer);
    let o = bridge::run_observed(hub, &tunnel, &local, Side::Server, observer);
    drop(recording);
    open.end(o.to_local, o.to_ws);
    Ok(Some(Summary {
        client,
        who,
        target: target_name,
        up: o.to_local,
        down: o.to_ws,
        end: o.end,
    }))
}

/// Read requests until one asks for an upgrade, answering page requests (`--web`) on the way,
/// on the same connection while the client keeps it alive (noVNC loads dozens of files). The
/// connection stays pending meanwhile: each request has its own `--handshake-timeout`, and the
/// listener may shed it. Every request that the auth gate guards must pass it first. Returns
/// the upgrade request (without `--web`: any request, for `check_upgrade` to judge), the bytes
/// read past its head and who passed the gate; `None` when the connection ended without one.
fn front_door(
    state: &State,
    hub: &Hub,
    id: u64,
    stream: &mut Stream,
) -> Result<Option<(ws::Request, Vec<u8>, Passed)>, Error> {
    let mut carry = Vec::new();
    // With --host-token the Host header is the token: a secret, hidden in debug logs.
    let host_secret: &[&str] = if state.cfg.host_token {
        &["host", "origin", "x-forwarded-host"]
    } else {
        &[]
    };
    let gate = &state.cfg.auth;
    let cn = match gate.cns.is_empty() {
        true => None,
        false => crate::tls::peer_cn(stream),
    };
    let mut memo = Memo::default();
    loop {
        let reader = Touching {
            inner: &mut *stream,
            hub,
            id,
        };
        // Bytes past the previous head (pipelined requests) come first.
        let (head, rest) = match ws::read_head_from(&mut { reader }, std::mem::take(&mut carry)) {
            Ok(x) => x,
            Err(HeadError::Empty) => return Ok(None),
            Err(HeadError::TooLarge) => {
                let body = format!("request head over {} bytes", ws::MAX_HEAD);
                return Err(refuse(stream, 431, Why::BadRequest, &body, &body));
            }
            Err(HeadError::Io(e)) => return Err(Error::io("read request", e)),
        };
        let req = match ws::parse_request(&head) {
            Ok(r) => r,
            Err(e) => return Err(refuse(stream, 400, Why::BadRequest, &e, &e)),
        };
        log::debug!(
            "conn-{id} request: {}",
            redact::head_hiding(&String::from_utf8_lossy(&head), host_secret)
        );
        let line = || format!("{} {}", req.method, redact::url(&req.target));
        let mut who = Passed::default();
        let web_on = state.cfg.web.is_some();
        let console =
            state.cfg.console && !req.wants_upgrade() && crate::console::wants(&req.target, web_on);
        // The console's pages and check are guarded as tunnels are.
        if gate.guards(req.wants_upgrade() || console, web_on) {
            let authorization = ws::header_all(&req.headers, "authorization");
            who = match gate.check(authorization.as_deref(), cn.as_deref(), &mut memo) {
                Ok(p) => p,
                // No credentials at all: the challenge, a debug line (browsers always start so).
                Err(d) if !d.attempt => {
                    log::debug!("conn-{id} {}: {} ({})", line(), d.log, d.code);
                    let _ = deny(stream, &d, "");
                    return Ok(None);
                }
                // Failed attempts: logged through the rate limit, the user named.
                Err(d) => return Err(deny(stream, &d, &format!("{}: {}", line(), d.log))),
            };
        }
        let probe = state.cfg.probe_endpoint
            && req.wants_upgrade()
            && crate::throughput::is_endpoint(&req.target);
        // The server's own prefix: neither a target nor the web root, whatever the request.
        if web::reserved(&req.target) && !console && !probe {
            let log = format!("{}: reserved for the server's own pages", line());
            return Err(refuse(stream, 404, Why::Reserved, "not found", &log));
        }
        let served = match &state.cfg.web {
            _ if console => console_answer(state, &req, stream),
            Some(w) if !req.wants_upgrade() => w.serve(&req, stream),
            _ => return Ok(Some((req, rest, who))),
        };
        let served = served.map_err(|e| Error::io(format!("answer {}", line()), e))?;
        log::debug!(
            "conn-{id} {}: {} {} bytes{}",
            line(),
            served.status,
            served.bytes,
            match served.note {
                "" => String::new(),
                n => format!(" ({n})"),
            }
        );
        if !served.keep_alive {
            return match served.status {
                400 | 405 => Err(Error::Handshake(format!("{}: {}", line(), served.note))),
                _ => Ok(None),
            };
        }
        // The next request has a deadline of its own; the connection is still pending.
        hub.rearm(id)
            .map_err(|why| Error::Handshake(why.to_string()))?;
        carry = rest;
    }
}

/// A browser always says where the page came from: without an --origin that allows it (or our
/// own page's origin, see `origin`), a web page the user happens to visit could reach the
/// targets (cross-site WebSocket), or read the console's answers. Requests without `Origin`
/// pass. The error is the log line.
fn origin_ok(state: &State, req: &ws::Request, stream: &Stream) -> Result<(), String> {
    let cfg = &state.cfg;
    let Some(origin) = ws::header(&req.headers, "origin") else {
        return Ok(());
    };
    let peer_ip = stream.tcp().peer_addr().map(|p| p.ip()).ok();
    let trusted = peer_ip.is_some_and(|ip| cfg.trusted_proxies.iter().any(|r| r.contains_ip(ip)));
    let h = |name| ws::header(&req.headers, name);
    let seen = crate::origin::Seen {
        origin,
        host: h("host"),
        forwarded_host: h("x-forwarded-host").filter(|_| trusted),
        forwarded_proto: h("x-forwarded-proto").filter(|_| trusted),
        tls: !matches!(stream, Stream::Plain(_)),
    };
    let rule = crate::origin::Rule {
        listed: &cfg.origins,
        web: cfg.web.is_some() || cfg.console,
        names: &cfg.server_names,
    };
    // With --host-token the page's origin holds the token: do not log it.
    crate::origin::allowed(&seen, &rule).map_err(|log| match cfg.host_token {
        true => "origin not allowed".into(),
        false => log,
    })
}

/// Answer a request for the console (`console`): its files, or the check, which routes the
/// path as a tunnel request would and looks its target up, but dials nothing. Pages from
/// another origin get 403 unless the origin rule lets them in, and then the CORS header.
fn console_answer(
    state: &State,
    req: &ws::Request,
    stream: &mut Stream,
) -> std::io::Result<web::Served> {
    let allowed = origin_ok(state, req, stream);
    let cors = match (ws::header(&req.headers, "origin"), &allowed) {
        (Some(o), Ok(())) => format!("Access-Control-Allow-Origin: {o}\r\nVary: Origin\r\n"),
        _ => "Vary: Origin\r\n".into(),
    };
    web::respond(req, stream, |req| {
        let mut reply = match crate::console::ask(&req.target) {
            _ if allowed.is_err() => web::Reply::error(403, "origin not allowed"),
            crate::console::Ask::Check(path) => crate::console::verdict(&check(state, req, path)),
            ask => crate::console::reply(ask),
        };
        reply.extra = format!("{}{}{cors}", reply.extra, crate::console::CSP);
        reply
    })
}

/// Would a tunnel request on `path` (with this request's headers) be allowed? Else the status
/// it would get and why, in words.
fn check(state: &State, req: &ws::Request, path: String) -> Result<(), (u16, String)> {
    let probe = ws::Request {
        method: "GET".into(),
        target: path,
        version: req.version,
        headers: req.headers.clone(),
    };
    let way = match route(state, &probe) {
        // With tokens, the log line may name the token's file: the body says enough.
        Err((code, body, _)) if state.tokens.configured() => return Err((code, body)),
        Err((code, _, log)) => return Err((code, log)),
        Ok((way, _)) => way,
    };
    match way {
        Way::Net(route) => {
            let deadline = Instant::now() + state.cfg.connect_timeout;
            addresses(state, &route, deadline).map(|_| ())
        }
        Way::Unix(..) => Ok(()),
    }
}

/// Answer an HTTP error before any upgrade (body: one line for the user); the returned error is
/// what the log says.
fn refuse(s: &mut impl std::io::Write, code: u16, why: Why, body: &str, log: &str) -> Error {
    crate::metrics::refused(code, why);
    let reason = match code {
        403 => "Forbidden",
        404 => "Not Found",
        502 => "Bad Gateway",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Bad Request",
    };
    let _ = ws::refuse(s, code, reason, body);
    Error::Handshake(log.to_string())
}

/// Refuse what the auth gate refused: 401 asks for Basic credentials, 403 does not.
fn deny(s: &mut impl std::io::Write, d: &Denial, log: &str) -> Error {
    if d.code != 401 {
        return refuse(s, d.code, Why::Auth, d.body, log);
    }
    crate::metrics::refused(401, Why::Auth);
    let challenge = format!(
        "WWW-Authenticate: Basic realm=\"{}\"\r\n",
        crate::auth::REALM
    );
    let _ = ws::refuse_with(s, 401, "Unauthorized", &challenge, d.body);
    Error::Handshake(log.to_string())
}

/// The addresses a routed target may be dialled at, by `deadline`; else the HTTP status and
/// the one-line reason: 502 when the name does not resolve, 403 when the policy refuses every
/// address it resolves to.
fn addresses(
    state: &State,
    route: &Route,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, (u16, String)> {
    let t = route.target();
    let addrs = crate::proxy::resolve(&t.host, t.port, deadline)
        .map_err(|e| (502, format!("target {t}: {e}")))?;
    match route {
        Route::Direct(_) => Ok(addrs),
        Route::Screened(_) => {
            let passed = state.cfg.policy.screen(t, &addrs, &state.own);
            if let Ok(p) = &passed {
                if p.len() < addrs.len() {
                    log::debug!("target {t}: of {addrs:?}, only {p:?} may be dialled");
                }
            }
            passed.map_err(|e| (403, e))
        }
    }
}

/// Where a tunnel goes: a routed TCP target, or a Unix socket.
enum Way {
    Net(Route),
    /// The socket, and how to name it in logs (a token directory's entry is a secret). Without
    /// Unix sockets (Windows) only the name is used, to refuse.
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix(PathBuf, String),
}

impl std::fmt::Display for Way {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Way::Net(r) => r.target().fmt(f),
            Way::Unix(_, name) => f.write_str(name),
        }
    }
}

/// Connect to where a tunnel goes, by `deadline`.
fn dial(way: &Way, addrs: &[SocketAddr], deadline: Instant) -> Result<Local, Error> {
    match way {
        Way::Net(r) => {
            crate::proxy::connect_any(&r.target().to_string(), addrs, deadline).map(Local::Tcp)
        }
        #[cfg(unix)]
        Way::Unix(path, name) => std::os::unix::net::UnixStream::connect(path)
            .map(Local::Unix)
            .map_err(|source| Error::Dial {
                addr: name.clone(),
                source,
            }),
        #[cfg(not(unix))]
        Way::Unix(_, name) => Err(Error::Handshake(format!("{name}: no Unix sockets here"))),
    }
}

/// Route a request: by its token when token sources are configured, else by its path (the
/// hosts file re-read first if it changed). A refusal is (status, body, log line). Returns the
/// token too, to end the tunnel if it is withdrawn.
fn route(state: &State, req: &ws::Request) -> Result<(Way, Option<String>), (u16, String, String)> {
    let cfg = &state.cfg;
    if state.tokens.configured() {
        let host = ws::header(&req.headers, "host");
        let Some(token) = crate::tokens::from_request(&req.target, host, cfg.host_token) else {
            let why = "no token in the request";
            return Err((403, why.into(), why.into()));
        };
        return match state.tokens.lookup(&token) {
            Ok(Some((Dest::Tcp(t), _))) => Ok((Way::Net(Route::Direct(t)), Some(token))),
            Ok(Some((Dest::Unix(p), name))) => Ok((Way::Unix(p, name), Some(token))),
            Ok(None) => Err((403, "unknown token".into(), "unknown token".into())),
            Err(e) => Err((503, "token lookup failed".into(), e)),
        };
    }
    let mut hosts = state.hosts.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(file) = &cfg.hosts_file {
        reload_hosts(file, &mut hosts);
    }
    match cfg.policy.route(&req.target, &hosts.map) {
        Ok(Route::Direct(t)) if t == cfg.policy.fixed && cfg.unix_target.is_some() => {
            let p = cfg.unix_target.clone().unwrap_or_default();
            let name = format!("unix:{}", p.display());
            Ok((Way::Unix(p, name), None))
        }
        Ok(r) => Ok((Way::Net(r), None)),
        Err(Denied::NotAllowed(t)) => Err((
            403,
            "target not allowed".into(),
            format!("target {t} not allowed"),
        )),
        Err(Denied::BadPath(e)) => Err((400, e.clone(), e)),
    }
}

fn reload_hosts(file: &PathBuf, cache: &mut HostsCache) {
    let mtime = std::fs::metadata(file).and_then(|m| m.modified()).ok();
    if mtime.is_none() || mtime == cache.mtime {
        return;
    }
    match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| parse_hosts(&t))
    {
        Ok(map) => {
            log::info!("hosts: loaded {} names from {}", map.len(), file.display());
            *cache = HostsCache { mtime, map };
        }
        Err(e) => log::warn!("hosts: {}: {e}; keeping the previous map", file.display()),
    }
}
