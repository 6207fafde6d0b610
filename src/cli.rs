//! The command line: help texts, pico-args parsing, and validation into a `Config` that does not
//! change afterwards. Files (certificates, hosts) are loaded here, so bad input fails before any
//! socket opens. This is the only module that reads the environment (it reads none yet).

use crate::error::Error;
use crate::policy::{parse_hosts, Policy, Rule, Target};
use crate::url::{self, WsUrl};
use log::LevelFilter;
use native_tls::{TlsAcceptor, TlsConnector};
use pico_args::Arguments;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub const MAIN_HELP: &str = "\
wssh: SSH (or any TCP) over WebSocket

Usage:
  wssh client [OPTIONS] URL    stdin/stdout to a ws:// or wss:// URL (an SSH ProxyCommand)
  wssh server [OPTIONS]        WebSocket to TCP (default: 127.0.0.1:4567 to 127.0.0.1:22)
  wssh help COMMAND            help for one command
  wssh --version

Example ~/.ssh/config:
  Host myhost
    ProxyCommand wssh client wss://gw.example.com/
";

pub const CLIENT_HELP: &str = "\
wssh client: carry stdin and stdout over a WebSocket (use it as an SSH ProxyCommand)

Usage: wssh client [OPTIONS] URL

URL is ws://[user:pass@]host[:port]/path or wss://...; user:pass is sent as Basic auth.
Example: ssh -o ProxyCommand='wssh client wss://gw.example.com/ssh/%h:%p' me@db1

Options:
  --ca FILE              also trust this PEM CA certificate (repeatable)
  --insecure             do not verify the server's certificate (dangerous: prints a warning)
  -H, --header 'N: v'    send an extra HTTP header (repeatable)
  --connect-timeout S    seconds to connect and finish the handshakes [default: 10]
  -v, -vv, -q            debug, trace, or errors only [default: warnings]
  -h, --help             this text

stdout carries only tunnel bytes; all messages go to stderr.
Exit codes: 0 the server closed normally, 1 an error (one line on stderr), 2 a usage error,
130 ended by a signal (SIGHUP, SIGTERM, Ctrl-C).
";

pub const SERVER_HELP: &str = "\
wssh server: accept WebSocket tunnels and connect each to a TCP target

Usage: wssh server [OPTIONS]

Every tunnel goes to the fixed target, unless its path is /ssh/NAME and NAME is allowed:
NAME is a name from --hosts, or HOST[:PORT] (port 22 if left out) matching an --allow rule.
With no rule, the path cannot choose: the server is never an open proxy.

Options:
  --listen ADDR          address to listen on [default: 127.0.0.1:4567]; [::1]:4567 for IPv6
  --target HOST:PORT     the fixed target [default: 127.0.0.1:22]
  --allow PATTERN        let /ssh/ paths reach these targets (repeatable): a host glob
                         (*.internal), an IP or CIDR range (10.0.0.0/8, [fd00::/8]), then
                         :PORT, :LOW-HIGH or :* [default port: 22]. Globs match names only,
                         CIDR ranges IP addresses only.
  --hosts FILE           NAME HOST:PORT per line; /ssh/NAME goes there (re-read on change)
  --cert FILE --key FILE serve wss:// too (PEM chain, PKCS#8 PEM key); plain ws:// stays on
                         the same port, told apart by the first byte
  --tls-only             refuse plain ws:// (needs --cert and --key)
  --max-tunnels N        tunnels at once; more get 503 [default: 1000]
  --handshake-timeout S  seconds a client has to finish TLS and HTTP [default: 10]
  --connect-timeout S    seconds to connect to a target [default: 10]
  -v, -vv, -q            debug, trace, or errors only [default: info]
  -h, --help             this text

SIGTERM or Ctrl-C: stop accepting, close tunnels (1001), exit within 2 s; a second one exits now.
";

/// What to run.
pub enum Command {
    Client(ClientConfig, LevelFilter),
    Server(Box<ServerConfig>, LevelFilter),
    /// Print this text on stdout and exit 0.
    Print(String),
}

pub struct ClientConfig {
    pub url: WsUrl,
    pub tls: Option<TlsConnector>,
    pub insecure: bool,
    pub headers: Vec<String>,
    pub connect_timeout: Duration,
}

pub struct ServerConfig {
    pub listen: SocketAddr,
    pub policy: Policy,
    pub hosts_file: Option<PathBuf>,
    pub tls: Option<TlsAcceptor>,
    pub tls_only: bool,
    pub max_tunnels: usize,
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
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

fn finish(args: Arguments) -> Result<(), Error> {
    let rest = args.finish();
    match rest.first() {
        None => Ok(()),
        Some(a) => Err(usage(format!("unexpected argument {a:?}"))),
    }
}

/// Parse the whole command line (without the program name).
pub fn parse(raw: Vec<std::ffi::OsString>) -> Result<Command, Error> {
    let mut args = Arguments::from_vec(raw);
    if args.contains("--version") {
        return Ok(Command::Print(format!(
            "wssh {}\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let sub = args.subcommand().map_err(usage)?;
    let help = args.contains(["-h", "--help"]);
    match sub.as_deref() {
        Some("client") if help => Ok(Command::Print(CLIENT_HELP.into())),
        Some("server") if help => Ok(Command::Print(SERVER_HELP.into())),
        Some("client") => client(args),
        Some("server") => server(args),
        Some("help") => {
            let topic: Option<String> = args.opt_free_from_str().map_err(usage)?;
            match topic.as_deref() {
                Some("client") => Ok(Command::Print(CLIENT_HELP.into())),
                Some("server") => Ok(Command::Print(SERVER_HELP.into())),
                _ => Ok(Command::Print(MAIN_HELP.into())),
            }
        }
        None if help => Ok(Command::Print(MAIN_HELP.into())),
        None => Err(usage("no command given")),
        Some(other) => Err(usage(format!("unknown command {other:?}"))),
    }
}

fn client(mut args: Arguments) -> Result<Command, Error> {
    let level = level(&mut args, LevelFilter::Warn);
    let insecure = args.contains("--insecure");
    let ca: Vec<String> = args.values_from_str("--ca").map_err(usage)?;
    let mut headers: Vec<String> = args.values_from_str(["-H", "--header"]).map_err(usage)?;
    let connect_timeout = seconds(&mut args, "--connect-timeout", 10)?;
    let raw: String = args.free_from_str().map_err(|_| usage("missing URL"))?;
    finish(args)?;
    let url = url::parse(&raw).map_err(usage)?;
    for h in &mut headers {
        let ok = h
            .split_once(':')
            .is_some_and(|(n, _)| !n.trim().is_empty() && !n.contains(' '));
        if !ok || h.contains(['\r', '\n']) {
            return Err(usage(format!("bad header {h:?}: expected 'Name: value'")));
        }
    }
    if !url.tls && (insecure || !ca.is_empty()) {
        return Err(usage("--ca and --insecure need a wss:// URL"));
    }
    let tls = if url.tls {
        Some(crate::tls::connector(&ca, insecure)?)
    } else {
        None
    };
    let cfg = ClientConfig {
        url,
        tls,
        insecure,
        headers,
        connect_timeout,
    };
    Ok(Command::Client(cfg, level))
}

fn server(mut args: Arguments) -> Result<Command, Error> {
    let level = level(&mut args, LevelFilter::Info);
    let tls_only = args.contains("--tls-only");
    let listen: String = args
        .opt_value_from_str("--listen")
        .map_err(usage)?
        .unwrap_or("127.0.0.1:4567".into());
    let target: String = args
        .opt_value_from_str("--target")
        .map_err(usage)?
        .unwrap_or("127.0.0.1:22".into());
    let allow: Vec<String> = args.values_from_str("--allow").map_err(usage)?;
    let hosts_file: Option<PathBuf> = args.opt_value_from_str("--hosts").map_err(usage)?;
    let cert: Option<String> = args.opt_value_from_str("--cert").map_err(usage)?;
    let key: Option<String> = args.opt_value_from_str("--key").map_err(usage)?;
    let max_tunnels: usize = args
        .opt_value_from_str("--max-tunnels")
        .map_err(usage)?
        .unwrap_or(1000);
    let handshake_timeout = seconds(&mut args, "--handshake-timeout", 10)?;
    let connect_timeout = seconds(&mut args, "--connect-timeout", 10)?;
    finish(args)?;

    let listen = listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| usage(format!("--listen {listen:?}: not an address")))?;
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
    let tls = match (&cert, &key) {
        (Some(c), Some(k)) => Some(crate::tls::acceptor(c, k)?),
        (None, None) if tls_only => return Err(usage("--tls-only needs --cert and --key")),
        (None, None) => None,
        _ => return Err(usage("--cert and --key go together")),
    };
    if max_tunnels == 0 {
        return Err(usage("--max-tunnels must be at least 1"));
    }
    let policy = Policy { fixed, rules };
    let cfg = ServerConfig {
        listen,
        policy,
        hosts_file,
        tls,
        tls_only,
        max_tunnels,
        handshake_timeout,
        connect_timeout,
    };
    Ok(Command::Server(Box::new(cfg), level))
}
