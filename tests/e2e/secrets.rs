//! No secret in any log line or error message: every mode at `-vv`, given distinctive secrets (a
//! URL password, a proxy password, a `-H` value, a `?token=`, `WSSH_PASSWORD`, a password file),
//! on the happy path and on each way a tunnel can fail, must print none of them, nor their Basic
//! encodings; and the messages must still name the host. Also: the password sources work.

use crate::reach::tinyproxy;
use crate::support::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};

const URL_PW: &str = "UrlPw-q7Zx";
const ENV_PW: &str = "EnvPw-k3Vd";
const FILE_PW: &str = "FilePw-m9Ts";
const PROXY_PW: &str = "ProxyPw-r2Wb";
/// tinyproxy's password in `reach::tinyproxy`, used where the proxy must accept.
const TINYPROXY_PW: &str = "s3cret";
const HEADER_TOKEN: &str = "HdrTok-w4Pn";
const QUERY_TOKEN: &str = "QryTok-c8Lj";
const COOKIE: &str = "CookieVal-h5Rs";
const PROTOCOL_TOKEN: &str = "ProtoTok-e1Gy";
/// Basic credentials as sent (`printf %s me:UrlPw-q7Zx | base64`, and so on).
const BASIC_URL: &str = "bWU6VXJsUHctcTdaeA==";
const BASIC_ENV: &str = "bWU6RW52UHctazNWZA==";
const BASIC_FILE: &str = "bWU6RmlsZVB3LW05VHM=";
const BASIC_PROXY: &str = "d3NzaDpQcm94eVB3LXIyV2I=";
const BASIC_TINYPROXY: &str = "d3NzaDpzM2NyZXQ=";

const SECRETS: &[&str] = &[
    URL_PW,
    ENV_PW,
    FILE_PW,
    PROXY_PW,
    TINYPROXY_PW,
    HEADER_TOKEN,
    QUERY_TOKEN,
    COOKIE,
    PROTOCOL_TOKEN,
    BASIC_URL,
    BASIC_ENV,
    BASIC_FILE,
    BASIC_PROXY,
    BASIC_TINYPROXY,
];

/// The test fails, naming the secret, if `text` shows any.
fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s:?}:\n{text}");
    }
}

fn header_arg() -> String {
    format!("X-Token: {HEADER_TOKEN}")
}

/// `wssh MODE ARGS` with no proxy or password from the test's own environment.
fn wssh(mode: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg(mode).args(args);
    for var in [
        "https_proxy",
        "HTTPS_PROXY",
        "http_proxy",
        "HTTP_PROXY",
        "no_proxy",
        "NO_PROXY",
        "WSSH_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `wssh connect` or `wssh forward` at -vv on 127.0.0.1:0, with `env` added.
fn listener(mode: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = wssh(mode, &["-vv", "--listen", "127.0.0.1:0"]);
    cmd.args(args).envs(env.iter().copied());
    Server::spawn(cmd)
}

/// A client run to its end at -vv: exit code and everything it printed, checked clean.
fn client(args: &[&str], env: &[(&str, &str)], input: &[u8]) -> (Option<i32>, Vec<u8>, String) {
    let mut cmd = wssh("client", &["-vv"]);
    cmd.args(args).envs(env.iter().copied());
    let (status, out, err) = run_client_cmd(cmd, input);
    assert_clean("client stderr", &err);
    assert_clean("client stdout", &String::from_utf8_lossy(&out));
    (status.as_ref().and_then(ExitStatus::code), out, err)
}

/// Ask `wssh connect` for a tunnel; its answer's head, then the socket.
fn connect_to(proxy: SocketAddr, target: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    (read_head(&mut s), s)
}

/// Connect to `wssh forward` and read until it closes (a failed tunnel closes at once).
fn forward_fails(fwd: SocketAddr) {
    let mut s = TcpStream::connect(fwd).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
}

/// Send `data` through an open tunnel to an echo target and expect it back.
fn echo_through(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).unwrap();
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, data);
}

/// An HTTP server on 127.0.0.1:0 that answers every request `401 Unauthorized` with
/// `WWW-Authenticate` and the request in the body (as debugging servers do), and keeps the
/// `Authorization` value of each request ("" if none).
struct Gate {
    target: Target,
    auth: Arc<Mutex<Vec<String>>>,
}

impl Gate {
    fn start() -> Gate {
        let auth = Arc::new(Mutex::new(Vec::new()));
        let seen = auth.clone();
        let target = Target::start(move |mut s| {
            let head = read_head(&mut s);
            let value = head
                .lines()
                .find_map(|l| l.strip_prefix("Authorization: "))
                .unwrap_or("");
            seen.lock().unwrap().push(value.to_string());
            let body = format!("who are you? you sent {head}");
            let _ = write!(
                s,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"gw\"\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
        Gate { target, auth }
    }

    /// The Authorization value of the one request seen so far.
    fn only_auth(&self) -> String {
        eventually("a request at the gate", || {
            self.auth.lock().unwrap().len() == 1
        });
        self.auth.lock().unwrap()[0].clone()
    }
}

/// A password file with `mode`, in `dir`.
fn password_file(dir: &TempDir, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path("password");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn client_to_server_happy_path_through_a_proxy_shows_no_secret() {
    let (_tp, tp_port, _tp_dir) = tinyproxy();
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "-vv"]);
    let url = format!("ws://me:{URL_PW}@{}/?token={QUERY_TOKEN}", srv.addr);
    let proxy = format!("http://wssh:{TINYPROXY_PW}@127.0.0.1:{tp_port}");
    let h = header_arg();
    let (code, out, err) = client(&["--proxy", &proxy, "-H", &h, &url], &[], b"hello");
    assert_eq!((code, out.as_slice()), (Some(0), &b"hello"[..]), "{err}");
    // The debug dumps ran, named the host, and hid the values.
    let host = srv.addr.to_string();
    assert!(err.contains(&format!("request to {host}")), "{err}");
    assert!(err.contains("Authorization: [redacted]"), "{err}");
    assert!(err.contains("Proxy-Authorization: [redacted]"), "{err}");
    assert!(err.contains("X-Token: [redacted]"), "{err}");
    eventually("the tunnel's log line", || srv.log().contains(" end="));
    let log = srv.log();
    assert_clean("server log", &log);
    assert!(log.contains("?token=[redacted]"), "{log}");
}

#[test]
fn server_at_vv_hides_credentials_cookies_and_tokens() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "-vv"]);
    let request = |path: &str, upgrade: bool| {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut req = format!(
            "GET {path}?token={QUERY_TOKEN} HTTP/1.1\r\nHost: gw\r\n\
             Authorization: Basic {BASIC_URL}\r\nCookie: session={COOKIE}\r\n\
             X-Auth-Token: {HEADER_TOKEN}\r\nSec-WebSocket-Protocol: binary, {PROTOCOL_TOKEN}\r\n"
        );
        if upgrade {
            req += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        }
        s.write_all(format!("{req}\r\n").as_bytes()).unwrap();
        let head = read_head(&mut s);
        (head, s)
    };
    // Accepted: the tunnel runs, then the client closes it.
    let (head, mut s) = request("/", true);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&frame(8, &1000u16.to_be_bytes())).unwrap();
    eventually("the tunnel's log line", || srv.log().contains(" end="));
    // Refused: not an upgrade (400), and a target no rule allows (403).
    assert!(request("/", false).0.starts_with("HTTP/1.1 400"));
    assert!(request("/ssh/10.9.9.9:25", true)
        .0
        .starts_with("HTTP/1.1 403"));
    eventually("both refusals in the log", || {
        srv.log().contains("not a WebSocket") && srv.log().contains("not allowed")
    });
    let log = srv.log();
    assert_clean("server log", &log);
    for shown in [
        "Authorization: [redacted]",
        "Cookie: [redacted]",
        "X-Auth-Token: [redacted]",
        "Sec-WebSocket-Protocol: [redacted]",
        "GET /ssh/10.9.9.9:25?token=[redacted]",
        "target 10.9.9.9:25 not allowed",
    ] {
        assert!(log.contains(shown), "want {shown:?} in {log}");
    }
}

#[test]
fn connect_and_forward_carry_tunnels_and_show_no_secret() {
    let (_tp, tp_port, _tp_dir) = tinyproxy();
    let target = Target::echo();
    let srv = Server::start(&["--allow", "127.0.0.1:*", "-vv"]);
    let h = header_arg();

    // connect: the URL's password, a query token, -H, and a proxy password.
    let template = format!(
        "ws://me:{URL_PW}@{}/ssh/{{host}}:{{port}}?token={QUERY_TOKEN}",
        srv.addr
    );
    let proxy = format!("http://wssh:{TINYPROXY_PW}@127.0.0.1:{tp_port}");
    let connect = listener("connect", &["--proxy", &proxy, "-H", &h, &template], &[]);
    let (head, mut s) = connect_to(connect.addr, &target.arg());
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    echo_through(&mut s, b"via connect");
    drop(s);
    eventually("connect's tunnel line", || connect.log().contains(" up="));
    let log = connect.log();
    assert_clean("connect log", &log);
    let want = format!(
        "url=ws://me:[redacted]@{}/ssh/{}?token=[redacted]",
        srv.addr,
        target.arg()
    );
    assert!(log.contains(&want), "want {want:?} in {log}");

    // forward: the user in the URL, the password from a file (and one from the environment
    // that the file overrides), a query token and -H.
    let dir = TempDir::new("secrets-forward");
    let file = password_file(&dir, &format!("{FILE_PW}\n"), 0o600);
    let url = format!(
        "ws://me@{}/ssh/{}?token={QUERY_TOKEN}",
        srv.addr,
        target.arg()
    );
    let fwd = listener(
        "forward",
        &["--password-file", &file, "-H", &h, &url],
        &[("WSSH_PASSWORD", ENV_PW)],
    );
    let mut s = TcpStream::connect(fwd.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    echo_through(&mut s, b"via forward");
    drop(s);
    eventually("forward's tunnel line", || fwd.log().contains(" up="));
    let log = fwd.log();
    assert_clean("forward log", &log);
    assert!(log.contains(&format!("url=ws://me@{}/", srv.addr)), "{log}");
    assert!(
        !log.contains("other users can read"),
        "mode 600 is fine: {log}"
    );

    eventually("both tunnels in the server's log", || {
        srv.log().matches(" end=").count() == 2
    });
    assert_clean("server log", &srv.log());
}

#[test]
fn a_proxy_that_rejects_the_password_is_reported_without_it() {
    let (_tp, tp_port, _tp_dir) = tinyproxy();
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let url = format!("ws://me:{URL_PW}@{}/?token={QUERY_TOKEN}", srv.addr);
    let bad = format!("http://wssh:{PROXY_PW}@127.0.0.1:{tp_port}");
    let h = header_arg();
    let proxy_named = format!("proxy 127.0.0.1:{tp_port} rejected the credentials");

    let (code, _, err) = client(&["--proxy", &bad, "-H", &h, &url], &[], b"");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&proxy_named), "{err}");
    let (code, _, err) = client(&["-H", &h, &url], &[("http_proxy", &bad)], b"");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&proxy_named), "{err}");

    let connect = listener("connect", &["--proxy", &bad, "-H", &h, &url], &[]);
    let (head, _s) = connect_to(connect.addr, "db1:22");
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    eventually("connect's failure line", || {
        connect.log().contains(&proxy_named)
    });
    assert_clean("connect log", &connect.log());

    let fwd = listener("forward", &["-H", &h, &url], &[("http_proxy", &bad)]);
    forward_fails(fwd.addr);
    eventually("forward's failure line", || {
        fwd.log().contains(&proxy_named)
    });
    let log = fwd.log();
    assert_clean("forward log", &log);
    assert!(
        log.contains(&format!("url=ws://me:[redacted]@{}/", srv.addr)),
        "{log}"
    );
}

#[test]
fn a_401_from_the_server_side_is_reported_without_secrets() {
    let gate = Gate::start();
    let url = format!(
        "ws://me:{URL_PW}@{}/ssh/db1?token={QUERY_TOKEN}",
        gate.target.addr
    );
    let h = header_arg();
    let (code, _, err) = client(&["-H", &h, &url], &[], b"");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("server answered 401 Unauthorized"), "{err}");
    assert!(err.contains(&gate.target.arg()), "{err}");
    assert_eq!(gate.only_auth(), format!("Basic {BASIC_URL}"));

    for mode in ["connect", "forward"] {
        let l = listener(mode, &["-H", &h, &url], &[]);
        match mode {
            "connect" => assert!(connect_to(l.addr, "db1:22").0.starts_with("HTTP/1.1 502")),
            _ => forward_fails(l.addr),
        }
        eventually("the failure line", || l.log().contains("url="));
        let log = l.log();
        assert_clean(mode, &log);
        let want = format!("url=ws://me:[redacted]@{}/ssh/db1", gate.target.addr);
        assert!(log.contains(&want), "{mode}: want {want:?} in {log}");
    }
}

#[test]
fn a_peer_that_echoes_the_request_gets_no_secret_into_the_error() {
    let echo = Target::echo();
    let url = format!("ws://me:{URL_PW}@{}/?token={QUERY_TOKEN}", echo.addr);
    let h = header_arg();
    let (code, _, err) = client(&["-H", &h, &url], &[], b"");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the answer is not HTTP: GET /?token=[redacted] HTTP/1.1"),
        "{err}"
    );
}

#[test]
fn name_and_tls_failures_are_reported_without_secrets() {
    let h = header_arg();
    let dns = format!("ws://me:{URL_PW}@nonexistent.invalid/?token={QUERY_TOKEN}");
    let (code, _, err) = client(&["-H", &h, &dns], &[], b"");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nonexistent.invalid:80"), "{err}");
    let fwd = listener("forward", &["-H", &h, &dns], &[]);
    forward_fails(fwd.addr);
    eventually("forward's failure line", || {
        fwd.log()
            .contains("url=ws://me:[redacted]@nonexistent.invalid/")
    });
    assert_clean("forward log", &fwd.log());

    // A certificate the client does not trust (no --ca).
    let target = Target::echo();
    let TlsServer { srv, dir: _dir, .. } = tls_server(&target.arg(), &["-vv"]);
    let wss = format!("wss://me:{URL_PW}@{}/?token={QUERY_TOKEN}", srv.addr);
    let (code, _, err) = client(&["-H", &h, &wss], &[], b"");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("certificate verify failed for 127.0.0.1"),
        "{err}"
    );
    let connect = listener("connect", &["-H", &h, &wss], &[]);
    assert!(connect_to(connect.addr, "db1:22")
        .0
        .starts_with("HTTP/1.1 502"));
    eventually("connect's failure line", || {
        connect.log().contains("certificate verify failed")
    });
    assert_clean("connect log", &connect.log());
    assert_clean("server log", &srv.log());
}

/// Arguments and environment of one command.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[test]
fn usage_errors_quote_no_secret() {
    let dir = TempDir::new("secrets-usage");
    let file = password_file(&dir, &format!("{FILE_PW}\n"), 0o600);
    let h = header_arg();
    let bad_url = format!("ws://me:{URL_PW}@gw:x/?token={QUERY_TOKEN}");
    let not_ws = format!("http://me:{URL_PW}@gw/?token={QUERY_TOKEN}");
    let bad_escape = format!("ws://me:{URL_PW}%zz@gw/");
    let slash = format!("ws://me:{URL_PW}/x@gw:1/");
    let bad_proxy = format!("http://wssh:{PROXY_PW}@proxy:x");
    let socks = format!("socks5://wssh:{PROXY_PW}@proxy:1080");
    let good_url = format!("ws://me:{URL_PW}@gw/");
    let user_only = "ws://me@gw/";
    let no_colon = format!("X-Token {HEADER_TOKEN}");
    let cases: Vec<Case> = vec![
        (vec![&bad_url], vec![]),
        (vec![&not_ws], vec![]),
        (vec![&bad_escape], vec![]),
        (vec![&slash], vec![]),
        (vec!["--proxy", &bad_proxy, user_only], vec![]),
        (vec!["--proxy", &socks, user_only], vec![]),
        (vec![user_only], vec![("https_proxy", &bad_proxy)]),
        (vec![user_only], vec![("http_proxy", &socks)]),
        (vec!["-H", &no_colon, user_only], vec![]),
        (vec!["-H", "X-Token:", user_only, HEADER_TOKEN], vec![]),
        (vec![&good_url], vec![("WSSH_PASSWORD", ENV_PW)]),
        (vec!["--password-file", &file, &good_url], vec![]),
        (vec!["--password-file", &file, "ws://gw/"], vec![]),
        (vec!["-H", &h, "--bogus", &good_url], vec![]),
    ];
    for mode in ["client", "connect", "forward"] {
        for (args, env) in &cases {
            let mut cmd = wssh(mode, &["-vv"]);
            if mode == "forward" {
                cmd.args(["--listen", "127.0.0.1:0"]);
            }
            cmd.args(args).envs(env.iter().copied());
            let (status, out, err) = run_client_cmd(cmd, b"");
            let code = status.and_then(|s| s.code());
            assert_eq!(code, Some(2), "{mode} {args:?} {env:?}: {err}");
            assert_clean(&format!("{mode} {args:?} {env:?}"), &err);
            assert!(out.is_empty());
        }
    }
    // The URL's host still shows where it helps.
    let (_, _, err) = client(&[&bad_url], &[], b"");
    assert!(err.contains("me:[redacted]@gw:x"), "{err}");
}

#[test]
fn password_from_the_environment_or_a_file_is_sent_as_basic_auth() {
    let dir = TempDir::new("secrets-password");
    let user_only = |gate: &Gate| format!("ws://me@{}/", gate.target.addr);

    let gate = Gate::start();
    let (code, _, err) = client(&[&user_only(&gate)], &[("WSSH_PASSWORD", ENV_PW)], b"");
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(gate.only_auth(), format!("Basic {BASIC_ENV}"));

    // The file's first line, without its line end (CRLF too); the file wins over the variable.
    let gate = Gate::start();
    let file = password_file(&dir, &format!("{FILE_PW}\r\nsecond line\n"), 0o600);
    let args = ["--password-file", &file, &user_only(&gate)];
    let (code, _, err) = client(&args, &[("WSSH_PASSWORD", ENV_PW)], b"");
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains("other users can read"), "{err}");
    assert_eq!(gate.only_auth(), format!("Basic {BASIC_FILE}"));

    // A file others can read still works, with a warning that names the file.
    let gate = Gate::start();
    let file = password_file(&dir, FILE_PW, 0o644);
    let (code, _, err) = client(&["--password-file", &file, &user_only(&gate)], &[], b"");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("--password-file {file}: other users can read it")),
        "{err}"
    );
    assert_eq!(gate.only_auth(), format!("Basic {BASIC_FILE}"));

    // forward and connect take it too, for every tunnel.
    let gate = Gate::start();
    let fwd = listener(
        "forward",
        &[&user_only(&gate)],
        &[("WSSH_PASSWORD", ENV_PW)],
    );
    forward_fails(fwd.addr);
    assert_eq!(gate.only_auth(), format!("Basic {BASIC_ENV}"));
    let gate = Gate::start();
    let connect = listener(
        "connect",
        &["--password-file", &file, &user_only(&gate)],
        &[],
    );
    let _ = connect_to(connect.addr, "db1:22");
    assert_eq!(gate.only_auth(), format!("Basic {BASIC_FILE}"));
    assert!(connect.log().contains("other users can read it"));
    eventually("connect's failure line", || connect.log().contains("url="));
    assert_clean("connect log", &connect.log());
    assert_clean("forward log", &fwd.log());
}

#[test]
fn basic_auth_at_the_server_shows_no_password_in_logs_or_usage_errors() {
    let dir = TempDir::new("secrets-auth");
    let target = Target::echo();
    // The server's own file: the right password is FILE_PW.
    let users = dir.path("users");
    std::fs::write(&users, format!("me:{FILE_PW}\n")).unwrap();
    run(Command::new("chmod").args(["600", users.to_str().unwrap()]));
    let users = users.to_str().unwrap();
    let srv = Server::start(&["--target", &target.arg(), "--auth-file", users, "-vv"]);

    // Wrong passwords from the URL and the environment, then the right one from a file.
    let url = format!("ws://me:{URL_PW}@{}/?token={QUERY_TOKEN}", srv.addr);
    let (code, _, err) = client(&[&url], &[], b"");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("401 Unauthorized"), "{err}");
    let user_only = format!("ws://me@{}/", srv.addr);
    let (code, _, _) = client(&[&user_only], &[("WSSH_PASSWORD", ENV_PW)], b"");
    assert_eq!(code, Some(1));
    let file = password_file(&dir, &format!("{FILE_PW}\n"), 0o600);
    let args = ["--password-file", &file, &user_only];
    let (code, out, err) = client(&args, &[], b"in");
    assert_eq!((code, out.as_slice()), (Some(0), &b"in"[..]), "{err}");
    eventually("two refusals and a tunnel", || {
        let log = srv.log();
        log.matches("wrong password for user \"me\"").count() == 2 && log.contains(" end=")
    });
    assert_clean("server log", &srv.log());

    // Usage errors about credentials quote none: a bad --auth-basic, a bad line in the file.
    std::fs::write(dir.path("users"), format!("me:{FILE_PW}\n{ENV_PW}\n")).unwrap();
    for args in [
        vec!["--auth-basic", URL_PW],
        vec!["--auth-basic", &format!(":{URL_PW}")],
        vec!["--auth-file", users],
    ] {
        // Bounded: a server that started instead would fail the test, not hang it.
        let (ok, _, err) = try_run(&mut wssh("server", &args));
        assert!(!ok && err.contains("see wssh --help"), "{args:?}: {err}");
        assert_clean(&format!("server {args:?}"), &err);
    }
}
