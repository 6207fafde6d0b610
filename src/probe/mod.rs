//! `wssh probe URL`: walk the path to a wssh server one step at a time (which proxy, DNS, TCP,
//! the proxy's CONNECT, TLS, the upgrade, the target, ping round trips, then optionally how
//! long silence lasts and the throughput) and say for each what was found, stopping at the
//! first failure with what to do about it. It opens its own connection with the client's
//! options; nothing it prints holds a secret (`report` scrubs them). Exit 0 only when no step
//! failed. Here: the order of the steps; `net`: DNS, TCP, CONNECT; `tls`; `tunnel`: the
//! upgrade, the target, pings; `idle`; `report`: the output.

mod idle;
mod net;
pub mod report;
mod tls;
mod tunnel;

use crate::cli::Dialer;
use crate::throughput;
use crate::tls::Stream;
use crate::url::WsUrl;
use net::{connect, connect_step, dns};
use report::{Report, Step, Verdict};
use std::io;
use std::time::{Duration, Instant};
use tungstenite::protocol::Role;
pub use tunnel::first_bytes;
use tunnel::{pings, target, upgrade};

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
pub(crate) type Outcome<T> = Result<(T, Option<Step>), Step>;

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
