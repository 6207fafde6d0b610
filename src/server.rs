//! `wssh server`: accept connections, tell TLS from plain by the first byte, run the HTTP
//! upgrade, route the path through the policy, dial the target and pump. One thread per
//! connection (`conn-N`) plus one for the second direction; one log line per tunnel at its end.
//! It does not decide what is allowed (`policy`) or how frames move (`pump`).

use crate::cli::ServerConfig;
use crate::client::dial;
use crate::error::Error;
use crate::policy::{parse_hosts, Denied, Target};
use crate::pump::{Incoming, Shared, CHUNK};
use crate::tls::Stream;
use crate::ws::{self, HeadError};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::Role;
use tungstenite::{Error as WsError, Message};

/// Stack of each tunnel thread: enough for OpenSSL, small for 32-bit boxes with many tunnels.
const STACK: usize = 256 * 1024;
/// How long shutdown waits for tunnels to finish their closing handshakes.
const DRAIN: Duration = Duration::from_millis(1500);

/// State shared by the accept loop, the connection threads and the signal handler.
struct State {
    cfg: ServerConfig,
    stopping: AtomicBool,
    next_id: AtomicU64,
    active: AtomicUsize,
    /// Target sockets of open tunnels, to cut them on shutdown.
    tunnels: Mutex<HashMap<u64, TcpStream>>,
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
    let listener = TcpListener::bind(cfg.listen)
        .map_err(|e| Error::io(format!("listen on {}", cfg.listen), e))?;
    let local = listener.local_addr().map_err(|e| Error::io("listen", e))?;
    let state = Arc::new(State {
        cfg,
        stopping: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        active: AtomicUsize::new(0),
        tunnels: Mutex::new(HashMap::new()),
        hosts: Mutex::new(HostsCache::default()),
    });
    let st = state.clone();
    ctrlc::set_handler(move || {
        if st.stopping.swap(true, Ordering::SeqCst) {
            log::warn!("second signal: exiting now");
            std::process::exit(130);
        }
        log::info!("stopping: no new tunnels, closing open ones");
        let _ = TcpStream::connect_timeout(&wake_addr(local), Duration::from_millis(200));
    })
    .map_err(|e| Error::io("install signal handler", io::Error::other(e.to_string())))?;
    log::info!("listening on {local}");

    for conn in listener.incoming() {
        if state.stopping.load(Ordering::SeqCst) {
            break;
        }
        let sock = match conn {
            Ok(s) => s,
            Err(e) => {
                // EMFILE, ECONNABORTED and the like: say so, breathe, go on.
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let id = state.next_id.fetch_add(1, Ordering::Relaxed);
        if state.active.fetch_add(1, Ordering::SeqCst) >= state.cfg.max_tunnels {
            state.active.fetch_sub(1, Ordering::SeqCst);
            log::warn!(
                "conn-{id}: over --max-tunnels {}, answered 503",
                state.cfg.max_tunnels
            );
            let _ = sock.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = ws::refuse(&mut &sock, 503, "Service Unavailable", "too many tunnels");
            continue;
        }
        let st = state.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{id}"))
            .stack_size(STACK)
            .spawn(move || {
                connection(&st, id, sock);
                st.active.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            state.active.fetch_sub(1, Ordering::SeqCst);
            log::warn!("conn-{id}: cannot start a thread: {e}");
        }
    }
    shutdown(&state);
    Ok(())
}

/// Where the signal handler connects to wake the blocked `accept()`.
fn wake_addr(local: SocketAddr) -> SocketAddr {
    let mut a = local;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => [127, 0, 0, 1].into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// Cut every target socket (each tunnel then sends Close 1001) and wait a little for them.
fn shutdown(state: &State) {
    for t in state
        .tunnels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
    {
        let _ = t.shutdown(Shutdown::Both);
    }
    let deadline = Instant::now() + DRAIN;
    while state.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    log::info!("stopped");
}

/// How a tunnel went, for its one log line.
struct Summary {
    target: String,
    up: u64,
    down: u64,
    end: String,
}

/// One connection, start to end; logs its outcome once.
fn connection(state: &State, id: u64, sock: TcpStream) {
    let start = Instant::now();
    let peer = sock.peer_addr().map_or("?".into(), |a| a.to_string());
    match serve(state, id, sock) {
        Ok(Some(s)) => log::info!(
            "conn-{id} peer={peer} target={} up={} down={} secs={:.2} end={}",
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
fn serve(state: &State, id: u64, sock: TcpStream) -> Result<Option<Summary>, Error> {
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
        (Some(acceptor), true) => match acceptor.accept(sock) {
            Ok(s) => Stream::Tls(Box::new(s)),
            Err(e) => return Err(Error::Tls(format!("handshake: {e}"))),
        },
        (None, true) => {
            return Err(Error::Handshake(
                "TLS hello on a plain server (use ws://, or give --cert and --key)".into(),
            ))
        }
        (_, false) if cfg.tls_only => {
            let _ = ws::refuse(
                &mut &sock,
                400,
                "Bad Request",
                "this server speaks TLS only: use wss://",
            );
            return Err(Error::Handshake(
                "plain request refused (--tls-only)".into(),
            ));
        }
        (_, false) => Stream::Plain(sock),
    };

    let (head, rest) = match ws::read_head(&mut stream) {
        Ok(x) => x,
        Err(HeadError::Empty) => return Ok(None),
        Err(HeadError::TooLarge) => {
            let body = format!("request head over {} bytes", ws::MAX_HEAD);
            let _ = ws::refuse(&mut stream, 431, "Request Header Fields Too Large", &body);
            return Err(Error::Handshake(body));
        }
        Err(HeadError::Io(e)) => return Err(Error::io("read request", e)),
    };
    let req = match ws::parse_request(&head) {
        Ok(r) => r,
        Err(e) => {
            let _ = ws::refuse(&mut stream, 400, "Bad Request", &e);
            return Err(Error::Handshake(e));
        }
    };
    log::debug!(
        "conn-{id} request: {}",
        ws::redact(&String::from_utf8_lossy(&head))
    );
    let accept_key = match ws::check_upgrade(&req) {
        Ok(k) => k,
        Err(e) => {
            let _ = ws::refuse(&mut stream, 400, "Bad Request", &e);
            return Err(Error::Handshake(format!(
                "{} {}: {e}",
                req.method, req.target
            )));
        }
    };
    let target = match route(state, &req.target) {
        Ok(t) => t,
        Err(Denied::NotAllowed(t)) => {
            let _ = ws::refuse(&mut stream, 403, "Forbidden", "target not allowed");
            return Err(Error::Handshake(format!(
                "{}: target {t} not allowed",
                req.target
            )));
        }
        Err(Denied::BadPath(e)) => {
            let _ = ws::refuse(&mut stream, 400, "Bad Request", &e);
            return Err(Error::Handshake(format!("{}: {e}", req.target)));
        }
    };
    ws::accept(&mut stream, &accept_key, ws::offers_binary(&req))
        .map_err(|e| Error::io("answer", e))?;
    let mut websocket = crate::pump::websocket(stream, rest, Role::Server);

    let target_name = target.to_string();
    let tcp = match dial(&target_name, cfg.connect_timeout) {
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
    let tunnel = Shared::new(websocket).map_err(setup)?;
    let registered = tcp.try_clone().map_err(setup)?;
    state
        .tunnels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, registered);
    if state.stopping.load(Ordering::SeqCst) {
        let _ = tcp.shutdown(Shutdown::Both);
    }
    let summary = pump(state, &tunnel, tcp, target_name);
    state
        .tunnels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    Ok(Some(summary))
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

/// Run both directions until the tunnel is over.
fn pump(state: &State, tunnel: &Shared, tcp: TcpStream, target: String) -> Summary {
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let ws_gone = AtomicBool::new(false);
    // Dropped when the WebSocket side is done: wakes the other thread waiting for that.
    let (gone_tx, gone_rx) = mpsc::channel::<()>();
    let end = std::thread::scope(|s| {
        let reader = tcp.try_clone();
        let down_dir = std::thread::Builder::new()
            .stack_size(STACK)
            .name(std::thread::current().name().unwrap_or("conn").to_string() + "-down")
            .spawn_scoped(s, || match reader {
                Ok(r) => target_to_ws(state, tunnel, r, &down, &ws_gone, gone_rx),
                Err(e) => format!("socket set-up: {e}"),
            });
        let up_end = ws_to_target(tunnel, &tcp, &up);
        ws_gone.store(true, Ordering::SeqCst);
        drop(gone_tx);
        // Wake the other direction if it sleeps in read(2) on the target.
        let _ = tcp.shutdown(Shutdown::Both);
        let down_end = match down_dir {
            Ok(h) => h.join().unwrap_or_else(|_| "panic".into()),
            Err(e) => format!("cannot start a thread: {e}"),
        };
        if down_end.is_empty() {
            up_end
        } else {
            down_end
        }
    });
    Summary {
        target,
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    }
}

/// WebSocket to target. Ends when the client closes or fails; returns how.
fn ws_to_target(tunnel: &Shared, tcp: &TcpStream, count: &AtomicU64) -> String {
    let mut out = tcp;
    loop {
        match tunnel.recv() {
            Ok(Incoming::Data(b)) if b.is_empty() => {
                log::debug!("client sent end of data");
                let _ = tcp.shutdown(Shutdown::Write);
            }
            Ok(Incoming::Data(b)) => {
                if let Err(e) = out.write_all(&b) {
                    tunnel.close(CloseCode::Error, &format!("target: {e}"));
                    tunnel.drain_until_closed();
                    return format!("target write: {e}");
                }
                count.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            Ok(Incoming::Text) => {
                tunnel.close(
                    CloseCode::Unsupported,
                    "text frames are not supported: send binary",
                );
                tunnel.drain_until_closed();
                return "client sent a text frame (closed 1003)".into();
            }
            Ok(Incoming::Close(f)) => {
                tunnel.flush_close();
                let code = f.map_or(1005, |f| u16::from(f.code));
                return format!("client closed ({code})");
            }
            Ok(Incoming::Ended) => return String::new(),
            Err(e) => return fail(tunnel, e),
        }
    }
}

/// Close a WebSocket that broke the protocol with the code that says why; returns the reason.
fn fail(tunnel: &Shared, e: WsError) -> String {
    let (code, what) = match &e {
        WsError::Capacity(_) => (CloseCode::Size, "frame or message too large"),
        WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
            return "client vanished (no close)".into();
        }
        WsError::Protocol(_) => (CloseCode::Protocol, "protocol error"),
        WsError::Io(_) => return format!("client connection: {e}"),
        _ => (CloseCode::Error, "error"),
    };
    tunnel.close(code, &format!("{what}: {e}"));
    tunnel.shutdown();
    format!("{what}: {e} (closed {})", u16::from(code))
}

/// Target to WebSocket, one message per read. At the target's EOF (or a server stop) it closes
/// the tunnel; everything read before is on the wire first. Returns "" if the client went first.
fn target_to_ws(
    state: &State,
    tunnel: &Shared,
    mut tcp: TcpStream,
    count: &AtomicU64,
    ws_gone: &AtomicBool,
    gone: mpsc::Receiver<()>,
) -> String {
    let mut buf = vec![0u8; CHUNK];
    let (code, reason) = loop {
        match tcp.read(&mut buf) {
            Ok(0) if ws_gone.load(Ordering::SeqCst) => return String::new(),
            Ok(0) if state.stopping.load(Ordering::SeqCst) => {
                break (CloseCode::Away, "server shutting down".to_string())
            }
            Ok(0) => break (CloseCode::Normal, "target closed".to_string()),
            Ok(n) => {
                if let Err(e) = tunnel.send(Message::binary(buf[..n].to_vec())) {
                    return if ws_gone.load(Ordering::SeqCst) {
                        String::new()
                    } else {
                        format!("send: {e}")
                    };
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) if ws_gone.load(Ordering::SeqCst) => return String::new(),
            Err(e) => break (CloseCode::Error, format!("target: {e}")),
        }
    };
    tunnel.close(code, &reason);
    // The other thread reads the client's Close reply and ends; if the client never answers
    // within CLOSE_WAIT, cut the socket so that it wakes.
    if let Err(mpsc::RecvTimeoutError::Timeout) = gone.recv_timeout(crate::pump::CLOSE_WAIT) {
        tunnel.shutdown();
    }
    reason
}
