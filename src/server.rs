//! `wssh server`: accept connections, tell TLS from plain by the first byte, run the HTTP
//! upgrade, route the path through the policy, dial the target and pump. One thread per
//! connection (`conn-N`) plus one for the second direction; one log line per tunnel at its end.
//! It does not decide what is allowed (`policy`) or how frames move (`pump`).

use crate::bridge::{self, Side};
use crate::cli::ServerConfig;
use crate::error::Error;
use crate::listen::{self, Hub};
use crate::policy::{parse_hosts, real_client, Denied, Target};
use crate::pump::Shared;
use crate::redact;
use crate::tls::Stream;
use crate::ws::{self, HeadError};
use std::collections::HashMap;
use std::net::{IpAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::Role;

/// What the connection threads share besides the hub.
struct State {
    cfg: ServerConfig,
    hosts: Mutex<HostsCache>,
}

/// The `--hosts` map, re-read when the file's modification time changes.
#[derive(Default)]
struct HostsCache {
    mtime: Option<SystemTime>,
    map: HashMap<String, Target>,
}

/// Serve until SIGTERM or Ctrl-C.
pub fn run(cfg: ServerConfig) -> Result<(), Error> {
    let listener = listen::bind(cfg.listen)?;
    let max = cfg.max_tunnels;
    let state = Arc::new(State {
        cfg,
        hosts: Mutex::new(HostsCache::default()),
    });
    let busy = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 17\r\nConnection: close\r\n\r\ntoo many tunnels\n";
    listen::serve(listener, max, Some(busy), move |hub, id, sock| {
        connection(&state, hub, id, sock)
    })
}

/// How a tunnel went, for its one log line.
struct Summary {
    /// The real client, when a trusted proxy named it.
    client: Option<IpAddr>,
    target: String,
    up: u64,
    down: u64,
    end: String,
}

/// One connection, start to end; logs its outcome once.
fn connection(state: &State, hub: &Hub, id: u64, sock: TcpStream) {
    let start = Instant::now();
    let peer = sock.peer_addr().map_or("?".into(), |a| a.to_string());
    match serve(state, hub, id, sock) {
        Ok(Some(s)) => log::info!(
            "conn-{id} peer={}{peer} target={} up={} down={} secs={:.2} end={}",
            s.client.map_or(String::new(), |c| format!("{c} via ")),
            s.target,
            s.up,
            s.down,
            start.elapsed().as_secs_f64(),
            s.end
        ),
        Ok(None) => log::debug!("conn-{id} peer={peer}: closed before a request"),
        Err(e) => log::warn!("conn-{id} peer={peer}: {e}"),
    }
}

/// Handshake, route, dial, pump. `Ok(None)` for a connection that closed without a request.
fn serve(state: &State, hub: &Hub, id: u64, sock: TcpStream) -> Result<Option<Summary>, Error> {
    let cfg = &state.cfg;
    let setup = |e| Error::io("socket set-up", e);
    sock.set_nodelay(true).map_err(setup)?;
    sock.set_read_timeout(Some(cfg.handshake_timeout))
        .map_err(setup)?;
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
                body,
                "plain request refused (--tls-only)",
            ));
        }
        (_, false) => Stream::Plain(sock),
    };

    let (head, rest) = match ws::read_head(&mut stream) {
        Ok(x) => x,
        Err(HeadError::Empty) => return Ok(None),
        Err(HeadError::TooLarge) => {
            let body = format!("request head over {} bytes", ws::MAX_HEAD);
            return Err(refuse(&mut stream, 431, &body, &body));
        }
        Err(HeadError::Io(e)) => return Err(Error::io("read request", e)),
    };
    let req = match ws::parse_request(&head) {
        Ok(r) => r,
        Err(e) => return Err(refuse(&mut stream, 400, &e, &e)),
    };
    log::debug!(
        "conn-{id} request: {}",
        redact::head(&String::from_utf8_lossy(&head))
    );
    let client = stream.tcp().peer_addr().ok().and_then(|p| {
        let h = |n| ws::header(&req.headers, n);
        real_client(
            p.ip(),
            h("x-forwarded-for"),
            h("x-real-ip"),
            &cfg.trusted_proxies,
        )
    });
    let accept_key = match ws::check_upgrade(&req) {
        Ok(k) => k,
        Err(e) => {
            let log = format!("{} {}: {e}", req.method, redact::url(&req.target));
            return Err(refuse(&mut stream, 400, &e, &log));
        }
    };
    // A browser always says where the page came from: without an --origin that allows it, a
    // web page the user happens to visit could reach the targets (cross-site WebSocket).
    if let Some(origin) = ws::header(&req.headers, "origin") {
        let o = origin.trim_end_matches('/').to_ascii_lowercase();
        if !cfg.origins.iter().any(|a| a == "*" || *a == o) {
            let log = format!("origin {origin} not allowed (see --origin)");
            return Err(refuse(&mut stream, 403, "origin not allowed", &log));
        }
    }
    let target = match route(state, &req.target) {
        Ok(t) => t,
        Err(Denied::NotAllowed(t)) => {
            let log = format!("{}: target {t} not allowed", redact::url(&req.target));
            return Err(refuse(&mut stream, 403, "target not allowed", &log));
        }
        Err(Denied::BadPath(e)) => {
            let log = format!("{}: {e}", redact::url(&req.target));
            return Err(refuse(&mut stream, 400, &e, &log));
        }
    };
    ws::accept(&mut stream, &accept_key, ws::offers_binary(&req))
        .map_err(|e| Error::io("answer", e))?;
    let mut websocket = crate::pump::websocket(stream, rest, Role::Server);

    let target_name = target.to_string();
    let tcp = match crate::proxy::dial(&target_name, cfg.connect_timeout) {
        Ok(t) => t,
        Err(e) => {
            let _ = websocket.close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Error,
                reason: crate::pump::truncate(&e.to_string(), 120)
                    .to_string()
                    .into(),
            }));
            let _ = websocket.flush();
            return Err(e);
        }
    };
    let tunnel = Shared::new(websocket, cfg.ping).map_err(setup)?;
    let _registered = hub.register(id, &tcp);
    let o = bridge::run(hub, &tunnel, tcp, Side::Server);
    Ok(Some(Summary {
        client,
        target: target_name,
        up: o.to_local,
        down: o.to_ws,
        end: o.end,
    }))
}

/// Answer an HTTP error before any upgrade (body: one line for the user); the returned error is
/// what the log says.
fn refuse(s: &mut impl std::io::Write, code: u16, body: &str, log: &str) -> Error {
    let reason = match code {
        403 => "Forbidden",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    let _ = ws::refuse(s, code, reason, body);
    Error::Handshake(log.to_string())
}

/// Route a path, re-reading the hosts file first if it changed.
fn route(state: &State, path: &str) -> Result<Target, Denied> {
    let mut hosts = state.hosts.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(file) = &state.cfg.hosts_file {
        reload_hosts(file, &mut hosts);
    }
    state.cfg.policy.route(path, &hosts.map)
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
