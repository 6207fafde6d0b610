//! The command line: pico-args parsing, and validation into a `Config` that does not
//! change afterwards. Files (certificates, hosts, credentials) are loaded here, so bad input
//! fails before any socket opens. This is the only module that reads the environment: the
//! proxy variables and `WSSH_PASSWORD`. Usage errors quote URLs only redacted, and never a
//! header value or a password. websockify's command line (the program named `websockify`, or
//! `wssh websockify`) is turned into `wssh server`'s by `websockify` and parsed here like any
//! other.

use crate::error::Error;
use crate::help::{
    fill, CLIENT_HELP, CONNECT_HELP, FORWARD_HELP, HASH_PASSWORD_HELP, MAIN_HELP, PROBE_HELP,
    SERVER_HELP, WEBSOCKIFY_HELP,
};
use crate::policy::{parse_hosts, Policy, Rule, Target};
use crate::proxy::{Proxies, ProxyUrl};
use crate::redact;
use crate::url::{self, WsUrl};
use crate::websockify::{self, Websockify};
use log::LevelFilter;
use pico_args::Arguments;
use std::ffi::OsString;
use std::io::{BufRead, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to run.
pub enum Command {
    Client(ClientConfig, LevelFilter),
    Probe(Box<crate::probe::ProbeConfig>, LevelFilter),
    Server(Box<ServerConfig>, LevelFilter),
    Connect(ListenConfig, LevelFilter),
    Forward(ListenConfig, LevelFilter),
    /// `wssh hash-password USER`, with this many iterations.
    HashPassword(String, u32),
    /// Print this text on stdout and exit 0.
    Print(String),
}

/// How the client side of every mode reaches the server.
pub struct Dialer {
    /// Present when the URL (or template) is wss://.
    pub tls: Option<crate::tls::Connector>,
    pub insecure: bool,
    pub headers: Vec<String>,
    /// The password for the URL's user, given apart from the URL (`--password-file`,
    /// `WSSH_PASSWORD`); `cli` has checked that the URL names a user and no password.
    pub password: Option<String>,
    pub proxies: Proxies,
    pub ping: Option<Duration>,
    pub connect_timeout: Duration,
    /// What parsing noticed, said once logging is set up (it is not yet while `cli` runs).
    pub warnings: Vec<String>,
}

impl Dialer {
    pub fn log_warnings(&self) {
        for w in &self.warnings {
            log::warn!("{w}");
        }
    }
}

pub struct ClientConfig {
    pub url: WsUrl,
    pub dialer: Dialer,
}

/// `wssh connect` and `wssh forward`.
pub struct ListenConfig {
    pub listen: SocketAddr,
    /// The URL, with `{host}` and `{port}` for connect.
    pub template: String,
    pub max_tunnels: usize,
    pub dialer: Dialer,
}

pub struct ServerConfig {
    pub listen: SocketAddr,
    pub policy: Policy,
    pub hosts_file: Option<PathBuf>,
    pub tls: Option<crate::tls::Acceptor>,
    pub tls_only: bool,
    pub max_tunnels: usize,
    /// Tunnels per client address (0: no cap).
    pub max_per_ip: usize,
    /// Connections still in their handshake, in all and per client address (0: no cap).
    pub max_pending: usize,
    pub max_pending_per_ip: usize,
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
    pub ping: Option<Duration>,
    pub trusted_proxies: Vec<Rule>,
    /// Browser origins allowed to open tunnels (`*`: any); requests without Origin always pass.
    pub origins: Vec<String>,
    /// `--record FILE` (made absolute): each tunnel's payload to `FILE.N`.
    pub record: Option<PathBuf>,
    /// `--record-max`, in bytes: a recording stops before its file passes this.
    pub record_max: u64,
    /// Token sources (websockify's token plugins): when present, the token decides the target.
    pub tokens: Vec<crate::tokens::Source>,
    /// The token is the Host header (without its port), not the `token` query parameter.
    pub host_token: bool,
    /// The fixed target is this Unix socket.
    pub unix_target: Option<PathBuf>,
    /// `--web`: static pages on the same port.
    pub web: Option<crate::web::Web>,
    /// `--console`: the browser console and `wssh.js` under `/_wssh/` (and at `/` without `--web`).
    pub console: bool,
    /// `--server-name`: this server's host names (lowercase), for the same-origin rule.
    pub server_names: Vec<String>,
    /// Started with websockify's command line: its banner, and where the Origin rule came from.
    pub compat: Option<websockify::Compat>,
    /// `-- PROGRAM ARGS`: the program to start, watch and end with the server.
    pub wrap: Option<crate::wrap::Program>,
    /// Basic auth and client certificate CNs (`--auth-file`, `--auth-basic`, `--client-cn`).
    pub auth: crate::auth::Gate,
    /// `--run-once`, `--timeout`, `--idle-timeout`: when the server ends by itself.
    pub ends: crate::listen::Ends,
    /// `--inetd` or systemd socket activation: listen on that socket, not on `listen`.
    pub handed: Option<crate::listen::Handed>,
    /// `-D/--daemon`: detach once bound (paths given on the command line made absolute).
    pub daemon: bool,
    /// `--pid-file`: absolute; written once bound (and detached), removed at exit.
    pub pid_file: Option<PathBuf>,
    /// `--log-file`: absolute; stderr goes there once bound, reopened on SIGHUP.
    pub log_file: Option<PathBuf>,
    /// `--unix-listen PATH` and its `--unix-listen-mode`: listen there, not on `listen`.
    pub unix_listen: Option<(PathBuf, u32)>,
    /// `--syslog SERVER`: log lines there too.
    pub syslog: Option<crate::syslog::Syslog>,
    /// `--reuse-port`: bind `listen` with SO_REUSEPORT, beside other servers.
    pub reuse_port: bool,
    /// `--metrics`: where to serve Prometheus' text format.
    pub metrics: Option<SocketAddr>,
    /// `--probe`: serve `/_wssh/probe` for `wssh probe --bytes`.
    pub probe_endpoint: bool,
}

fn usage(msg: impl std::fmt::Display) -> Error {
    Error::Usage(msg.to_string())
}

fn level(args: &mut Arguments, default: LevelFilter) -> LevelFilter {
    if args.contains("-vv") {
        LevelFilter::Trace
    } else if args.contains("-v") {
        LevelFilter::Debug
    } else if args.contains("-q") {
        LevelFilter::Error
    } else {
        default
    }
}

fn seconds(args: &mut Arguments, name: &'static str, default: u64) -> Result<Duration, Error> {
    let s: Option<u64> = args.opt_value_from_str(name).map_err(usage)?;
    match s.unwrap_or(default) {
        0 => Err(usage(format!("{name} must be at least 1"))),
        s => Ok(Duration::from_secs(s)),
    }
}

/// `--unix-listen-mode`: octal permission bits, as chmod takes them (`0600`, `660`).
fn socket_mode(m: &str) -> Result<u32, Error> {
    let bad = || {
        usage(format!(
            "--unix-listen-mode {m}: give octal permission bits such as 0600 or 0660"
        ))
    };
    let digits = m.strip_prefix("0o").unwrap_or(m);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(bad()),
    }
}

/// Whether systemd handed this process one listening socket (fd 3): `LISTEN_PID` is this
/// process and `LISTEN_FDS` is 1. More than one is a usage error.
fn systemd_socket() -> Result<bool, Error> {
    let var = |n| std::env::var(n).ok();
    let ours =
        var("LISTEN_PID").and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id());
    match var("LISTEN_FDS").filter(|_| ours).as_deref().map(str::trim) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(n) => Err(usage(format!(
            "LISTEN_FDS={n}: wssh server takes one socket (one ListenStream= per unit)"
        ))),
    }
}

/// A path made absolute against the current directory (as it is, if that cannot be read).
fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

/// An optional number of seconds, at least 1.
fn some_seconds(args: &mut Arguments, name: &'static str) -> Result<Option<Duration>, Error> {
    let s: Option<u64> = args.opt_value_from_str(name).map_err(usage)?;
    match s {
        Some(0) => Err(usage(format!("{name} must be at least 1"))),
        s => Ok(s.map(Duration::from_secs)),
    }
}

fn finish(args: Arguments) -> Result<(), Error> {
    let rest = args.finish();
    match rest.first() {
        None => Ok(()),
        Some(a) => Err(stray(&a.to_string_lossy())),
    }
}

/// A leftover argument. An option is named; a word is not shown: it may be a secret that
/// slipped out of its option (`-H X-Token: SECRET` without quotes).
fn stray(a: &str) -> Error {
    if a.starts_with('-') {
        let name = a.split('=').next().unwrap_or(a);
        usage(format!("unknown option {name:?}"))
    } else {
        usage("unexpected argument (not shown, as it may be a secret; quote -H 'Name: value')")
    }
}

/// The URL argument; an unknown option in its place is named as one.
fn url_arg(args: &mut Arguments) -> Result<String, Error> {
    let raw: String = args.free_from_str().map_err(|_| usage("missing URL"))?;
    match raw.starts_with('-') {
        true => Err(stray(&raw)),
        false => Ok(raw),
    }
}

/// The first of these environment variables that is set and not empty, and its name.
fn env(names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|&n| {
        let v = std::env::var(n).ok().filter(|v| !v.is_empty());
        v.map(|v| (n, v))
    })
}

/// The file name of the program, without an extension (`websockify.exe`, `websockify.py`).
fn is_websockify(argv0: Option<&OsString>) -> bool {
    argv0
        .map(Path::new)
        .and_then(Path::file_stem)
        .is_some_and(|n| n == "websockify")
}

/// Which command line this is: websockify's when the program is named `websockify` (a symlink
/// or a copy) or the command is `wssh websockify`; its name is what usage errors point to.
pub fn program(argv: &[OsString]) -> &'static str {
    match is_websockify(argv.first()) || argv.get(1).is_some_and(|a| a == "websockify") {
        true => "websockify",
        false => "wssh",
    }
}

/// Parse the whole command line, the program name first.
pub fn parse_argv(argv: Vec<OsString>) -> Result<Command, Error> {
    let by_name = is_websockify(argv.first());
    let rest = argv.into_iter().skip(1).collect();
    match by_name {
        true => websockify(rest),
        false => parse(rest),
    }
}

/// websockify's command line, translated into `wssh server`'s and parsed as that.
fn websockify(raw: Vec<OsString>) -> Result<Command, Error> {
    let self_pem = Path::new("self.pem").is_file();
    match websockify::translate(raw, self_pem).map_err(usage)? {
        Websockify::Help => Ok(Command::Print(WEBSOCKIFY_HELP.into())),
        Websockify::Version => Ok(Command::Print(format!(
            "wssh {} (websockify mode)\n",
            env!("CARGO_PKG_VERSION")
        ))),
        Websockify::Serve {
            native,
            compat,
            program,
        } => match server(Arguments::from_vec(native), program)? {
            Command::Server(mut cfg, level) => {
                cfg.compat = Some(compat);
                if let Some(s) = &mut cfg.syslog {
                    s.app = "websockify";
                }
                Ok(Command::Server(cfg, level))
            }
            other => Ok(other),
        },
    }
}

/// `wssh --version`: the version, the target it was built for and the git commit (src/build.rs).
pub fn version() -> String {
    format!(
        "wssh {} ({}, commit {})\n",
        env!("CARGO_PKG_VERSION"),
        env!("WSSH_TARGET"),
        env!("WSSH_COMMIT")
    )
}

/// Parse the command line without the program name.
pub fn parse(mut raw: Vec<OsString>) -> Result<Command, Error> {
    if raw.first().is_some_and(|a| a == "websockify") {
        return websockify(raw[1..].to_vec());
    }
    // `-- PROGRAM ARGS` (wssh server) are not wssh's: split them off before any flag is looked
    // for, so that a program's own --help or --version stays its own.
    let program = raw.iter().position(|a| a == "--").map(|i| {
        let program = raw.split_off(i + 1);
        raw.pop();
        program
    });
    let mut args = Arguments::from_vec(raw);
    if args.contains("--version") {
        return Ok(Command::Print(version()));
    }
    let sub = args.subcommand().map_err(usage)?;
    let wants_help = args.contains(["-h", "--help"]);
    let help_for = |topic: &str| match topic {
        "client" => Some(fill(CLIENT_HELP)),
        "probe" => Some(fill(PROBE_HELP)),
        "server" => Some(SERVER_HELP.to_string()),
        "connect" => Some(fill(CONNECT_HELP)),
        "forward" => Some(fill(FORWARD_HELP)),
        "websockify" => Some(WEBSOCKIFY_HELP.to_string()),
        "hash-password" => Some(HASH_PASSWORD_HELP.to_string()),
        _ => None,
    };
    if let (true, Some(text)) = (wants_help, sub.as_deref().and_then(help_for)) {
        return Ok(Command::Print(text));
    }
    if program.is_some() && sub.as_deref() != Some("server") {
        return Err(usage("-- PROGRAM ARGS goes with wssh server"));
    }
    match sub.as_deref() {
        Some("client") => client(args),
        Some("probe") => probe(args),
        Some("server") => server(args, program),
        Some("connect") => listener(args, true),
        Some("forward") => listener(args, false),
        Some("hash-password") => hash_password(args),
        Some("help") => {
            let topic: Option<String> = args.opt_free_from_str().map_err(usage)?;
            Ok(Command::Print(
                topic
                    .as_deref()
                    .and_then(help_for)
                    .unwrap_or_else(|| MAIN_HELP.into()),
            ))
        }
        None if wants_help => Ok(Command::Print(MAIN_HELP.into())),
        None => Err(usage("no command given")),
        Some(other) => Err(usage(format!("unknown command {:?}", redact::url(other)))),
    }
}

/// The raw dialer flags; `build` validates them once the URL's scheme is known.
struct DialerArgs {
    insecure: bool,
    ca: Vec<String>,
    cert: Option<String>,
    key: Option<String>,
    headers: Vec<String>,
    password_file: Option<PathBuf>,
    proxy: Option<String>,
    ping: u64,
    connect_timeout: Duration,
}

impl DialerArgs {
    fn take(args: &mut Arguments) -> Result<DialerArgs, Error> {
        Ok(DialerArgs {
            insecure: args.contains("--insecure"),
            ca: args.values_from_str("--ca").map_err(usage)?,
            cert: args.opt_value_from_str("--cert").map_err(usage)?,
            key: args.opt_value_from_str("--key").map_err(usage)?,
            headers: args.values_from_str(["-H", "--header"]).map_err(usage)?,
            password_file: args.opt_value_from_str("--password-file").map_err(usage)?,
            proxy: args.opt_value_from_str("--proxy").map_err(usage)?,
            ping: args
                .opt_value_from_str("--ping")
                .map_err(usage)?
                .unwrap_or(30),
            connect_timeout: seconds(args, "--connect-timeout", 10)?,
        })
    }

    /// Validate against the URL (or a connect template filled in).
    fn build(self, url: &WsUrl) -> Result<Dialer, Error> {
        let tls = url.tls;
        for (i, h) in self.headers.iter().enumerate() {
            // The value may be a secret: name the header, or its place if the name is bad too.
            let name = h.split_once(':').map(|(n, _)| n);
            let ok = name.is_some_and(|n| !n.trim().is_empty() && !n.contains(' '));
            if !ok || h.contains(['\r', '\n']) {
                let which = match name.filter(|n| ok && !n.contains(['\r', '\n'])) {
                    Some(n) => format!("header {n:?}"),
                    None => format!("header in -H number {}", i + 1),
                };
                return Err(usage(format!(
                    "bad {which}: expected 'Name: value' on one line"
                )));
            }
        }
        if !tls && (self.insecure || !self.ca.is_empty()) {
            return Err(usage("--ca and --insecure need a wss:// URL"));
        }
        let identity = match (&self.cert, &self.key) {
            (Some(c), Some(k)) if tls => Some((c.as_str(), k.as_str())),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(usage("--cert and --key need a wss:// URL")),
            _ => return Err(usage("--cert and --key go together")),
        };
        let mut warnings = Vec::new();
        let password = self.password(url, &mut warnings)?;
        let from_env = |names| {
            env(names)
                .map(|(n, v)| {
                    let p = ProxyUrl::parse(&v).map_err(|e| usage(format!("{n}: {e}")));
                    p.map(|p| (p, n))
                })
                .transpose()
        };
        let https = from_env(&["https_proxy", "HTTPS_PROXY"])?;
        let http = from_env(&["http_proxy"])?;
        let proxies = Proxies {
            explicit: self
                .proxy
                .as_deref()
                .map(|p| ProxyUrl::parse(p).map_err(usage))
                .transpose()?,
            https_var: https.as_ref().map_or("", |h| h.1),
            http_var: http.as_ref().map_or("", |h| h.1),
            https: https.map(|h| h.0),
            http: http.map(|h| h.0),
            no_proxy: env(&["no_proxy", "NO_PROXY"])
                .map_or(vec![], |(_, v)| v.split(',').map(String::from).collect()),
        };
        Ok(Dialer {
            tls: if tls {
                let named = env(&["SSL_CERT_FILE", "SSL_CERT_DIR"]).is_some();
                Some(crate::tls::connector(
                    &self.ca,
                    self.insecure,
                    identity,
                    named,
                )?)
            } else {
                None
            },
            insecure: self.insecure,
            headers: self.headers,
            password,
            proxies,
            ping: (self.ping > 0).then(|| Duration::from_secs(self.ping)),
            connect_timeout: self.connect_timeout,
            warnings,
        })
    }

    /// The password for the URL's user given where `ps` cannot see it: `--password-file`, else
    /// `WSSH_PASSWORD`. The URL must name the user, and must not carry a password too.
    fn password(&self, url: &WsUrl, warnings: &mut Vec<String>) -> Result<Option<String>, Error> {
        let (from, password) = match &self.password_file {
            Some(f) => ("--password-file", Some(read_password(f, warnings)?)),
            None => ("WSSH_PASSWORD", env(&["WSSH_PASSWORD"]).map(|(_, v)| v)),
        };
        match (password, &url.userinfo) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(usage(format!(
                "{from} needs a user in the URL: wss://USER@host/"
            ))),
            (Some(_), Some(u)) if u.contains(':') => Err(usage(format!(
                "the URL has a password and {from} gives one too: give it once"
            ))),
            (Some(p), Some(_)) => Ok(Some(p)),
        }
    }
}

/// The first line of a password file, without its line end; a warning if others may read it.
fn read_password(path: &Path, warnings: &mut Vec<String>) -> Result<String, Error> {
    let err = |e: std::io::Error| usage(format!("--password-file {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(err)?.permissions().mode();
        if mode & 0o044 != 0 {
            warnings.push(format!(
                "--password-file {}: other users can read it (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = &warnings;
    let mut line = String::new();
    std::io::BufReader::new(file.take(64 * 1024))
        .read_line(&mut line)
        .map_err(err)?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Err(usage(format!(
            "--password-file {}: the first line is empty",
            path.display()
        )));
    }
    Ok(line.to_string())
}

fn client(mut args: Arguments) -> Result<Command, Error> {
    let level = level(&mut args, LevelFilter::Warn);
    let dialer = DialerArgs::take(&mut args)?;
    let raw = url_arg(&mut args)?;
    finish(args)?;
    let url = url::parse(&raw).map_err(usage)?;
    let dialer = dialer.build(&url)?;
    Ok(Command::Client(ClientConfig { url, dialer }, level))
}

fn probe(mut args: Arguments) -> Result<Command, Error> {
    let level = level(&mut args, LevelFilter::Error);
    let json = args.contains("--json");
    let idle = some_seconds(&mut args, "--idle")?;
    let bytes: Option<u64> = args.opt_value_from_str("--bytes").map_err(usage)?;
    if bytes == Some(0) {
        return Err(usage("--bytes must be at least 1"));
    }
    let dialer = DialerArgs::take(&mut args)?;
    let raw = url_arg(&mut args)?;
    finish(args)?;
    let url = url::parse(&raw).map_err(usage)?;
    let (ca, insecure) = (dialer.ca.clone(), dialer.insecure);
    let identity = dialer.cert.clone().zip(dialer.key.clone());
    let dialer = dialer.build(&url)?;
    let cfg = crate::probe::ProbeConfig {
        url,
        dialer,
        ca,
        identity,
        insecure,
        json,
        idle,
        bytes,
    };
    Ok(Command::Probe(Box::new(cfg), level))
}

fn listener(mut args: Arguments, connect: bool) -> Result<Command, Error> {
    let level = level(&mut args, LevelFilter::Info);
    let dialer = DialerArgs::take(&mut args)?;
    let listen: Option<String> = args.opt_value_from_str("--listen").map_err(usage)?;
    let max_tunnels: usize = args
        .opt_value_from_str("--max-tunnels")
        .map_err(usage)?
        .unwrap_or(1000);
    let template = url_arg(&mut args)?;
    finish(args)?;
    let listen = match (listen, connect) {
        (Some(l), _) => l,
        (None, true) => "127.0.0.1:3122".into(),
        (None, false) => return Err(usage("forward needs --listen ADDR")),
    };
    let listen = socket_addr("--listen", &listen)?;
    let url = url::parse(&url::expand(&template, "host", 22)).map_err(usage)?;
    if max_tunnels == 0 {
        return Err(usage("--max-tunnels must be at least 1"));
    }
    let cfg = ListenConfig {
        listen,
        template,
        max_tunnels,
        dialer: dialer.build(&url)?,
    };
    Ok(if connect {
        Command::Connect(cfg, level)
    } else {
        Command::Forward(cfg, level)
    })
}

fn socket_addr(flag: &str, s: &str) -> Result<SocketAddr, Error> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| usage(format!("{flag} {s:?}: not an address")))
}

/// `--record FILE`, made absolute now so that the log says where recordings go. Its directory
/// must exist; whether it can be written is found out per tunnel (a warning, not a failure).
fn record_path(file: &Path) -> Result<PathBuf, Error> {
    let bad = |why: String| usage(format!("--record {}: {why}", file.display()));
    let abs = std::path::absolute(file).map_err(|e| bad(e.to_string()))?;
    if abs.file_name().is_none() || file.to_string_lossy().ends_with(['/', '\\']) {
        return Err(bad(
            "name a file (recordings are FILE.1, FILE.2, ...)".into()
        ));
    }
    match abs.parent() {
        Some(dir) if dir.is_dir() => Ok(abs),
        _ => Err(bad("its directory does not exist".into())),
    }
}

fn server(mut args: Arguments, program: Option<Vec<OsString>>) -> Result<Command, Error> {
    let level = level(&mut args, LevelFilter::Info);
    let tls_only = args.contains("--tls-only");
    let run_once = args.contains("--run-once");
    let probe_endpoint = args.contains("--probe");
    let inetd = args.contains("--inetd");
    let daemon = args.contains(["-D", "--daemon"]);
    let pid_file: Option<PathBuf> = args.opt_value_from_str("--pid-file").map_err(usage)?;
    let log_file: Option<PathBuf> = args.opt_value_from_str("--log-file").map_err(usage)?;
    let metrics: Option<String> = args.opt_value_from_str("--metrics").map_err(usage)?;
    let metrics = metrics
        .map(|m| {
            crate::metrics::parse_addr(&m)
                .ok_or_else(|| usage(format!("--metrics {m:?}: not a port or an address")))
        })
        .transpose()?;
    let host_token = args.contains("--host-token");
    let tokens_once = args.contains("--tokens-read-once");
    let token_file: Option<PathBuf> = args.opt_value_from_str("--tokens").map_err(usage)?;
    let token_dir: Option<PathBuf> = args.opt_value_from_str("--token-dir").map_err(usage)?;
    let unix_token_dir: Option<PathBuf> =
        args.opt_value_from_str("--unix-token-dir").map_err(usage)?;
    let unix_target: Option<PathBuf> = args.opt_value_from_str("--unix-target").map_err(usage)?;
    let web_listings = args.contains("--web-listings");
    let web_dotfiles = args.contains("--web-dotfiles");
    let web_auth = args.contains("--web-auth");
    let console = args.contains("--console");
    let verify_client = args.contains("--verify-client");
    let listen: Option<String> = args.opt_value_from_str("--listen").map_err(usage)?;
    let unix_listen: Option<PathBuf> = args.opt_value_from_str("--unix-listen").map_err(usage)?;
    let unix_mode: Option<String> = args
        .opt_value_from_str("--unix-listen-mode")
        .map_err(usage)?;
    let syslog: Option<String> = args.opt_value_from_str("--syslog").map_err(usage)?;
    let legacy_syslog = args.contains("--legacy-syslog");
    let reuse_port = args.contains("--reuse-port");
    let target: Option<String> = args.opt_value_from_str("--target").map_err(usage)?;
    let wrap_mode: Option<String> = args.opt_value_from_str("--wrap-mode").map_err(usage)?;
    let allow: Vec<String> = args.values_from_str("--allow").map_err(usage)?;
    let hosts_file: Option<PathBuf> = args.opt_value_from_str("--hosts").map_err(usage)?;
    let cert: Option<String> = args.opt_value_from_str("--cert").map_err(usage)?;
    let key: Option<String> = args.opt_value_from_str("--key").map_err(usage)?;
    let max_tunnels: usize = args
        .opt_value_from_str("--max-tunnels")
        .map_err(usage)?
        .unwrap_or(1000);
    let max_per_ip: usize = args
        .opt_value_from_str("--max-per-ip")
        .map_err(usage)?
        .unwrap_or(100);
    let max_pending: usize = args
        .opt_value_from_str("--max-pending")
        .map_err(usage)?
        .unwrap_or(256);
    let max_pending_per_ip: usize = args
        .opt_value_from_str("--max-pending-per-ip")
        .map_err(usage)?
        .unwrap_or(64);
    let handshake_timeout = seconds(&mut args, "--handshake-timeout", 10)?;
    let ends = crate::listen::Ends {
        run_once,
        timeout: some_seconds(&mut args, "--timeout")?,
        idle_timeout: some_seconds(&mut args, "--idle-timeout")?,
    };
    let connect_timeout = seconds(&mut args, "--connect-timeout", 10)?;
    let ping: u64 = args
        .opt_value_from_str("--ping")
        .map_err(usage)?
        .unwrap_or(30);
    let record: Option<PathBuf> = args.opt_value_from_str("--record").map_err(usage)?;
    let record_max: Option<u64> = args.opt_value_from_str("--record-max").map_err(usage)?;
    let trusted: Vec<String> = args.values_from_str("--trusted-proxy").map_err(usage)?;
    let origins: Vec<String> = args.values_from_str("--origin").map_err(usage)?;
    let web_dir: Option<PathBuf> = args.opt_value_from_str("--web").map_err(usage)?;
    let server_names: Vec<String> = args.values_from_str("--server-name").map_err(usage)?;
    let tls_min: Option<String> = args
        .opt_value_from_str("--tls-min-version")
        .map_err(usage)?;
    let tls_ciphers: Option<String> = args.opt_value_from_str("--tls-ciphers").map_err(usage)?;
    let auth_file: Option<PathBuf> = args.opt_value_from_str("--auth-file").map_err(usage)?;
    let auth_basic: Vec<String> = args.values_from_str("--auth-basic").map_err(usage)?;
    let cafile: Option<String> = args.opt_value_from_str("--cafile").map_err(usage)?;
    let client_cns: Vec<String> = args.values_from_str("--client-cn").map_err(usage)?;
    finish(args)?;

    let handed = match (inetd, systemd_socket()?) {
        (true, true) => {
            return Err(usage(
                "--inetd and socket activation (LISTEN_FDS): give one",
            ))
        }
        (true, false) => Some(crate::listen::Handed::Inetd),
        (false, true) => Some(crate::listen::Handed::Systemd),
        (false, false) => None,
    };
    let places = [listen.is_some(), unix_listen.is_some(), handed.is_some()];
    if places.iter().filter(|p| **p).count() > 1 {
        return Err(usage(
            "--listen, --unix-listen and a socket handed over (--inetd, LISTEN_FDS): give one",
        ));
    }
    if reuse_port && (unix_listen.is_some() || handed.is_some()) {
        return Err(usage("--reuse-port goes with --listen"));
    }
    let unix_mode = match (&unix_listen, unix_mode) {
        (None, Some(_)) => return Err(usage("--unix-listen-mode goes with --unix-listen")),
        (_, m) => socket_mode(m.as_deref().unwrap_or("0600"))?,
    };
    if cfg!(not(unix)) && unix_listen.is_some() {
        return Err(usage("--unix-listen: no Unix sockets on this system"));
    }
    let syslog = match (syslog, legacy_syslog) {
        (None, true) => return Err(usage("--legacy-syslog goes with --syslog")),
        (None, false) => None,
        (Some(to), legacy) => Some(
            crate::syslog::Syslog::new(&to, legacy, daemon)
                .map_err(|e| usage(format!("--syslog {e}")))?,
        ),
    };
    let listen = listen.unwrap_or("127.0.0.1:4567".into());
    let listen = socket_addr("--listen", &listen)?;
    // A daemon works from /: what the command line names relative to here must stay put.
    let pid_file = pid_file.map(absolute);
    let log_file = log_file.map(absolute);
    let unix_listen = unix_listen.map(|p| (absolute(p), unix_mode));
    let (token_file, token_dir, unix_token_dir, unix_target, hosts_file, web_dir) = match daemon {
        true => (
            token_file.map(absolute),
            token_dir.map(absolute),
            unix_token_dir.map(absolute),
            unix_target.map(absolute),
            hosts_file.map(absolute),
            web_dir.map(absolute),
        ),
        false => (
            token_file,
            token_dir,
            unix_token_dir,
            unix_target,
            hosts_file,
            web_dir,
        ),
    };
    let target_given = target.is_some() || unix_target.is_some();
    let wrap = crate::wrap::program(program, wrap_mode.as_deref(), target_given).map_err(usage)?;
    if cfg!(not(unix)) && wrap.is_some() {
        return Err(usage("-- PROGRAM: not available on this system"));
    }
    let target = target.unwrap_or("127.0.0.1:22".into());
    let trusted_proxies = trusted
        .iter()
        .map(|t| Rule::parse_range(t).map_err(|e| usage(format!("--trusted-proxy {e}"))))
        .collect::<Result<_, _>>()?;
    let fixed = Target::parse(&target, 22).map_err(|e| usage(format!("--target: {e}")))?;
    let rules = allow
        .iter()
        .map(|r| Rule::parse(r))
        .collect::<Result<_, _>>()
        .map_err(usage)?;
    if let Some(f) = &hosts_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| usage(format!("--hosts {}: {e}", f.display())))?;
        parse_hosts(&text).map_err(|e| usage(format!("--hosts {}: {e}", f.display())))?;
    }
    let tls_opts = crate::tls::ServerTls {
        tls13_only: match tls_min.as_deref() {
            None | Some("1.2") => false,
            Some("1.3") => true,
            Some(_) => return Err(usage("--tls-min-version: 1.2 or 1.3")),
        },
        ciphers: tls_ciphers,
    };
    if cert.is_none() && (tls_min.is_some() || tls_opts.ciphers.is_some()) {
        return Err(usage(
            "--tls-min-version and --tls-ciphers need --cert and --key",
        ));
    }
    let client_ca = client_certificates(verify_client, cafile, &client_cns)?;
    // A plain connection would get past the certificate check: --verify-client is TLS only.
    let tls_only = tls_only || verify_client;
    let tls = match (&cert, &key) {
        (Some(c), Some(k)) => Some(crate::tls::acceptor(c, k, client_ca.as_deref(), &tls_opts)?),
        (None, None) if verify_client => {
            return Err(usage("--verify-client needs --cert and --key"))
        }
        (None, None) if tls_only => return Err(usage("--tls-only needs --cert and --key")),
        (None, None) => None,
        _ => return Err(usage("--cert and --key go together")),
    };
    let auth = gate(auth_file, &auth_basic, client_cns, web_auth)?;
    if web_auth && web_dir.is_none() {
        return Err(usage("--web-auth needs --web DIR"));
    }
    if max_tunnels == 0 || max_pending == 0 {
        return Err(usage("--max-tunnels and --max-pending must be at least 1"));
    }
    let web = match web_dir {
        Some(d) => Some(crate::web::Web::new(&d, web_listings, web_dotfiles).map_err(usage)?),
        None if web_listings || web_dotfiles => {
            return Err(usage("--web-listings and --web-dotfiles need --web DIR"))
        }
        None if !console && !server_names.is_empty() => {
            return Err(usage("--server-name needs --web DIR or --console"))
        }
        None => None,
    };
    let server_names = server_names
        .iter()
        .map(|n| server_name(n))
        .collect::<Result<_, _>>()?;
    let policy = Policy { fixed, rules };
    use crate::tokens::Source;
    let mut tokens = Vec::new();
    if let Some(path) = token_file {
        tokens.push(Source::File {
            path,
            once: tokens_once,
        });
    } else if tokens_once {
        return Err(usage("--tokens-read-once goes with --tokens"));
    }
    tokens.extend(token_dir.map(Source::Names));
    tokens.extend(unix_token_dir.map(Source::Sockets));
    if host_token && tokens.is_empty() {
        return Err(usage(
            "--host-token needs a token source (--tokens, --token-dir, --unix-token-dir)",
        ));
    }
    crate::tokens::Tokens::new(tokens.clone())
        .check()
        .map_err(|e| usage(format!("tokens: {e}")))?;
    if cfg!(not(unix)) && unix_target.is_some() {
        return Err(usage("--unix-target: no Unix sockets on this system"));
    }
    let record_max = match (record_max, &record) {
        (Some(_), None) => return Err(usage("--record-max goes with --record")),
        (Some(0), _) => return Err(usage("--record-max must be at least 1")),
        (mib, _) => mib
            .unwrap_or(64)
            .checked_mul(1 << 20)
            .ok_or_else(|| usage("--record-max is too large"))?,
    };
    let record = record.as_deref().map(record_path).transpose()?;
    let cfg = ServerConfig {
        listen,
        policy,
        hosts_file,
        tls,
        tls_only,
        max_tunnels,
        max_per_ip,
        max_pending,
        max_pending_per_ip,
        handshake_timeout,
        connect_timeout,
        ping: (ping > 0).then(|| Duration::from_secs(ping)),
        trusted_proxies,
        origins: origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect(),
        record,
        record_max,
        tokens,
        host_token,
        unix_target,
        web,
        console,
        server_names,
        compat: None,
        wrap,
        auth,
        ends,
        handed,
        daemon,
        pid_file,
        log_file,
        unix_listen,
        syslog,
        reuse_port,
        metrics,
        probe_endpoint,
    };
    Ok(Command::Server(Box::new(cfg), level))
}

/// `--verify-client --cafile FILE [--client-cn CN]...`: the CA file, checked for what goes
/// together and for what this platform can do.
fn client_certificates(
    verify: bool,
    cafile: Option<String>,
    cns: &[String],
) -> Result<Option<String>, Error> {
    match (verify, cafile) {
        (true, _) if !crate::tls::VERIFIES_CLIENTS => Err(usage(
            "--verify-client is not available on this platform: the server's TLS here is not \
             OpenSSL (Linux and other Unix but macOS); put nginx in front to verify clients",
        )),
        (true, None) => Err(usage("--verify-client needs --cafile FILE")),
        (false, Some(_)) => Err(usage("--cafile goes with --verify-client")),
        (false, None) if !cns.is_empty() => Err(usage("--client-cn needs --verify-client")),
        (_, cafile) => Ok(cafile),
    }
}

/// The auth gate from `--auth-file`, `--auth-basic`, `--client-cn` and `--web-auth`. Errors
/// name the file and line or the flag's place, never a password.
fn gate(
    file: Option<PathBuf>,
    basic: &[String],
    cns: Vec<String>,
    pages: bool,
) -> Result<crate::auth::Gate, Error> {
    let mut entries = match &file {
        Some(f) => crate::auth::read_file(f)
            .map_err(|e| usage(format!("--auth-file {}: {e}", f.display())))?,
        None => Vec::new(),
    };
    for (i, b) in basic.iter().enumerate() {
        let e = crate::auth::parse_entry(b)
            .map_err(|e| usage(format!("--auth-basic number {}: {e}", i + 1)))?;
        entries.push(e);
    }
    let users = match (&file, basic.is_empty()) {
        (None, true) => None,
        _ => Some(crate::auth::Credentials::new(entries).map_err(|e| {
            let from = file.as_ref().map_or("--auth-basic".into(), |f| {
                format!("--auth-file {}", f.display())
            });
            usage(format!("{from}: {e}"))
        })?),
    };
    if let Some(cn) = cns.iter().find(|c| c.is_empty()) {
        return Err(usage(format!("--client-cn {cn:?}: empty")));
    }
    let gate = crate::auth::Gate { users, cns, pages };
    if pages && !gate.active() {
        return Err(usage(
            "--web-auth needs --auth-file, --auth-basic or --client-cn",
        ));
    }
    Ok(gate)
}

/// `wssh hash-password [--iterations N] USER`.
fn hash_password(mut args: Arguments) -> Result<Command, Error> {
    let iterations: u32 = args
        .opt_value_from_str("--iterations")
        .map_err(usage)?
        .unwrap_or(crate::auth::DEFAULT_ITERATIONS);
    let user: String = args
        .free_from_str()
        .map_err(|_| usage("hash-password needs a USER"))?;
    if user.starts_with('-') {
        return Err(stray(&user));
    }
    finish(args)?;
    Ok(Command::HashPassword(user, iterations))
}

/// A `--server-name`: a DNS name as a browser sends it in `Host` (lowercase, no trailing dot).
fn server_name(n: &str) -> Result<String, Error> {
    match crate::policy::classify(n) {
        Ok(crate::policy::Host::Name(name)) => Ok(name),
        Ok(crate::policy::Host::Addr(_)) => Err(usage(format!(
            "--server-name {n:?}: an address needs no --server-name"
        ))),
        Err(_) => Err(usage(format!("--server-name {n:?}: not a host name"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--trusted-proxy` takes IPv6 bare (`::1`, `fd00::/8`) as well as in brackets.
    #[test]
    fn trusted_proxies_in_every_form() {
        let args = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        let trusted = |t: &str| match parse(args(&["server", "--trusted-proxy", t])) {
            Ok(Command::Server(cfg, _)) => Ok(cfg.trusted_proxies),
            Ok(_) => panic!("not a server"),
            Err(e) => Err(e.to_string()),
        };
        for (t, peer) in [
            ("::1", "::1"),
            ("[::1]", "::1"),
            ("fd00::/8", "fd00::7"),
            ("[fd00::/8]", "fd00::7"),
            ("127.0.0.1", "127.0.0.1"),
            ("10.0.0.0/8", "10.1.2.3"),
        ] {
            let rules = trusted(t).unwrap_or_else(|e| panic!("--trusted-proxy {t}: {e}"));
            let peer = peer.parse().unwrap();
            let real = crate::policy::real_client(peer, Some("203.0.113.9"), None, &rules);
            assert_eq!(real, Some([203, 0, 113, 9].into()), "--trusted-proxy {t}");
        }
        assert_eq!(
            trusted("proxy.example").unwrap_err(),
            "--trusted-proxy \"proxy.example\": expected an IP address or CIDR range"
        );
    }
}
