//! `wssh forward` (every connection to a local port gets a tunnel to one URL) and `wssh connect`
//! (a local HTTP proxy: `CONNECT host:port` picks the URL from a template). Both answer the
//! application only once the tunnel is open, then bridge. They do not speak WebSocket themselves.

use crate::bridge::{self, Side};
use crate::cli::ListenConfig;
use crate::client::open_tunnel;
use crate::error::Error;
use crate::listen::{self, Hub, Limits};
use crate::pump::Shared;
use crate::url::expand;
use crate::ws::{self, HeadError};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// How long an application has to send its CONNECT request.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The local modes' limits: their clients are local programs, so only the tunnel cap and the
/// deadline for a CONNECT head apply.
fn limits(cfg: &ListenConfig) -> Limits {
    Limits {
        max_tunnels: cfg.max_tunnels,
        max_per_ip: 0,
        max_pending: cfg.max_tunnels,
        pending_per_ip: 0,
        handshake: HEAD_TIMEOUT,
        exempt: Vec::new(),
    }
}

/// `wssh forward`: serve until a signal.
pub fn run_forward(cfg: ListenConfig) -> Result<(), Error> {
    let listener = listen::bind(cfg.listen)?;
    let cfg = Arc::new(cfg);
    listen::serve(listener, limits(&cfg), move |hub, id, sock| {
        let start = Instant::now();
        let Ok(_admitted) = hub.admit(id, None) else {
            return hub.refused(format_args!("conn-{id}: too many tunnels; refused"));
        };
        let url = cfg.template.clone();
        let r = crate::url::parse(&url)
            .map_err(Error::Usage)
            .and_then(|u| open_tunnel(&u, &cfg.dialer));
        finish(hub, id, sock, start, &url, r, Vec::new());
    })
}

/// `wssh connect`: serve until a signal.
pub fn run_connect(cfg: ListenConfig) -> Result<(), Error> {
    let listener = listen::bind(cfg.listen)?;
    let cfg = Arc::new(cfg);
    listen::serve(listener, limits(&cfg), move |hub, id, sock| {
        let start = Instant::now();
        match request(&sock) {
            Ok((host, port, rest)) => {
                let _admitted = match hub.admit(id, None) {
                    Ok(a) => a,
                    Err(busy) => {
                        let _ =
                            ws::refuse(&mut &sock, 503, "Service Unavailable", "too many tunnels");
                        return hub.refused(format_args!("conn-{id}: {busy}; refused"));
                    }
                };
                let url = expand(&cfg.template, &host, port);
                let r = crate::url::parse(&url)
                    .map_err(Error::Usage)
                    .and_then(|u| open_tunnel(&u, &cfg.dialer));
                let r = answer(&sock, r);
                finish(hub, id, sock, start, &url, r, rest);
            }
            Err(None) => log::debug!("conn-{id}: closed before a request"),
            Err(Some(e)) => hub.refused(format_args!("conn-{id}: {e}")),
        }
    })
}

/// Read and check a CONNECT request; answer errors here. Returns host, port, bytes after the head.
fn request(sock: &TcpStream) -> Result<(String, u16, Vec<u8>), Option<String>> {
    let _ = sock.set_read_timeout(Some(HEAD_TIMEOUT));
    let _ = sock.set_write_timeout(Some(HEAD_TIMEOUT));
    let mut s = sock;
    let refuse = |r: Refusal| {
        let _ = ws::refuse(&mut &*sock, r.code, r.reason, &r.body);
        Some(format!("{} {}: {}", r.code, r.reason, r.body))
    };
    let (head, rest) = match ws::read_head(&mut s) {
        Ok(x) => x,
        Err(HeadError::Empty) => return Err(None),
        Err(HeadError::TooLarge) => {
            return Err(refuse(Refusal::new(
                431,
                "Request Header Fields Too Large",
                "request head too large",
            )))
        }
        Err(HeadError::Io(e)) => return Err(Some(format!("read request: {e}"))),
    };
    let (host, port) = parse_connect(&head).map_err(refuse)?;
    Ok((host, port, rest))
}

/// Why a request was refused: the HTTP status, its reason phrase and a one-line body.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
    pub body: String,
}

impl Refusal {
    fn new(code: u16, reason: &'static str, body: &str) -> Refusal {
        let body = body.to_string();
        Refusal { code, reason, body }
    }
}

/// Check a CONNECT request head (pure): the host and a non-zero port it asks for, or the refusal.
pub fn parse_connect(head: &[u8]) -> Result<(String, u16), Refusal> {
    let req = ws::parse_request(head).map_err(|e| Refusal::new(400, "Bad Request", &e))?;
    if req.method != "CONNECT" {
        let body = "this is a CONNECT proxy for wssh tunnels";
        return Err(Refusal::new(405, "Method Not Allowed", body));
    }
    match crate::url::split_host_port(&req.target, 0) {
        Ok((host, port)) if port != 0 => Ok((host, port)),
        _ => Err(Refusal::new(400, "Bad Request", "CONNECT needs host:port")),
    }
}

/// Tell the application how opening the tunnel went: 200, or the reason it failed.
fn answer(sock: &TcpStream, r: Result<Shared, Error>) -> Result<Shared, Error> {
    let mut s = sock;
    match r {
        Ok(t) => {
            s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .map_err(|e| Error::io("answer", e))?;
            Ok(t)
        }
        Err(e) => {
            let (code, reason) = match &e {
                Error::Refused { code: 403, .. } => (403, "Forbidden"),
                Error::Refused { code: 407, .. } => (502, "Bad Gateway"),
                Error::Io { source, .. } | Error::Dial { source, .. }
                    if source.kind() == std::io::ErrorKind::TimedOut =>
                {
                    (504, "Gateway Timeout")
                }
                _ => (502, "Bad Gateway"),
            };
            let _ = ws::refuse(&mut s, code, reason, &e.to_string());
            Err(e)
        }
    }
}

/// Bridge an opened tunnel to the application's socket; log one line.
fn finish(
    hub: &Hub,
    id: u64,
    sock: TcpStream,
    start: Instant,
    url: &str,
    tunnel: Result<Shared, Error>,
    early: Vec<u8>,
) {
    let peer = sock.peer_addr().map_or("?".into(), |a| a.to_string());
    let url = crate::redact::url(url);
    let tunnel = match tunnel {
        Ok(t) => t,
        Err(e) => return log::warn!("conn-{id} peer={peer} url={url}: {e}"),
    };
    let _ = sock.set_read_timeout(None);
    let _ = sock.set_write_timeout(None);
    let _ = sock.set_nodelay(true);
    // Bytes the application sent right after its request belong to the tunnel.
    if !early.is_empty() {
        if let Err(e) = tunnel.send(Message::binary(early)) {
            return log::warn!("conn-{id} peer={peer} url={url}: send: {e}");
        }
    }
    let sock = std::sync::Arc::new(bridge::Local::Tcp(sock));
    let registered = hub.register(id, &sock);
    let o = bridge::run(hub, &tunnel, &sock, Side::Client);
    drop(registered);
    log::info!(
        "conn-{id} peer={peer} url={url} up={} down={} secs={:.2} end={}",
        o.to_ws,
        o.to_local,
        start.elapsed().as_secs_f64(),
        if o.end.is_empty() { "closed" } else { &o.end }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected`: the host and port, or the refusal's status code.
    fn check(input: &str, expected: Result<(&str, u16), u16>) {
        let got = parse_connect(input.as_bytes()).map_err(|r| r.code);
        let expected = expected.map(|(h, p)| (h.to_string(), p));
        assert_eq!(got, expected, "{input:?}");
    }

    #[test]
    fn connect_heads() {
        // What curl (-p -x) and PuTTY (HTTP proxy) send.
        check(
            "CONNECT db1:22 HTTP/1.1\r\nHost: db1:22\r\nUser-Agent: curl/8.5.0\r\n\
             Proxy-Connection: Keep-Alive\r\n\r\n",
            Ok(("db1", 22)),
        );
        check(
            "CONNECT db1:22 HTTP/1.1\r\nHost: db1:22\r\n\r\n",
            Ok(("db1", 22)),
        );
        check(
            "CONNECT 10.0.0.5:2222 HTTP/1.0\r\n\r\n",
            Ok(("10.0.0.5", 2222)),
        );
        check("CONNECT [::1]:22 HTTP/1.1\r\n\r\n", Ok(("::1", 22)));
        check("CONNECT db1 HTTP/1.1\r\n\r\n", Err(400)); // no port
        check("CONNECT db1:0 HTTP/1.1\r\n\r\n", Err(400));
        check("CONNECT db1:65536 HTTP/1.1\r\n\r\n", Err(400));
        check("CONNECT ::1 HTTP/1.1\r\n\r\n", Err(400)); // bare IPv6: no port
        check("CONNECT a b:22 HTTP/1.1\r\n\r\n", Err(400));
        check("GET http://db1/ HTTP/1.1\r\nHost: db1\r\n\r\n", Err(405));
        check("CONNECT db1:22 HTTP/1.1\r\n", Err(400)); // head not complete
        check("\x16\x03\x01\x02\x00\r\n\r\n", Err(400)); // a TLS hello
        check("", Err(400));
    }
}
