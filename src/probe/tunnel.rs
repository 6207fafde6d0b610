//! The probe's steps inside the connection: the upgrade and what answered it, the target's
//! first bytes or the server's close, and ping round trips.

use super::net::hop_headers;
use super::report::{printable, Step, Verdict};
use super::{Outcome, ProbeConfig};
use crate::proxy;
use crate::tls::Stream;
use crate::url::WsUrl;
use crate::ws::{self, QUIET, QUIET_HEADER};
use std::io;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// How long the target step waits for the target's first bytes (or the server's close).
const TARGET_WAIT: Duration = Duration::from_secs(2);
/// Pings whose round trips are measured.
const PINGS: usize = 5;
/// The upgrade request and the server's answer: 101 (with the subprotocol and whether it
/// agreed to stay quiet), or what answered instead.
pub fn upgrade(cfg: &ProbeConfig, s: &mut Stream) -> Outcome<(Vec<u8>, bool)> {
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
pub fn target(ws: &mut WebSocket<crate::wire::Wire>) -> Outcome<()> {
    let t = Instant::now();
    let _ = ws
        .get_ref()
        .get_ref()
        .tcp()
        .set_read_timeout(Some(TARGET_WAIT));
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
pub fn pings(ws: &mut WebSocket<crate::wire::Wire>) -> Outcome<()> {
    let t = Instant::now();
    let _ = ws
        .get_ref()
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
