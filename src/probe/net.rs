//! The probe's first steps: the name looked up, TCP to each address, and a proxy's answer to
//! CONNECT, each in plain words.

use super::report::{Step, Verdict};
use super::Outcome;
use crate::proxy::{self, ProxyUrl};
use crate::ws;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The addresses of `host`, IPv4 and IPv6 apart; the resolver's answers told apart.
pub fn dns(host: &str, port: u16, timeout: Duration) -> Outcome<Vec<SocketAddr>> {
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
pub fn connect(
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
pub fn connect_step(tcp: &mut TcpStream, p: &ProxyUrl, authority: &str) -> Outcome<()> {
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
pub fn hop_headers(headers: &[(String, String)]) -> Vec<String> {
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
