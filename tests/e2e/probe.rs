//! `wssh probe` against real programs: a healthy path to sshd, each failure it must name (DNS,
//! TCP, tinyproxy's 401, certificates wrong in each way, a TLS-inspecting middlebox, TLS and
//! plain ports mixed up, an HTTP server that is not a WebSocket one, a target the server cannot
//! reach), nginx's read timeout found by `--idle`, `--json` checked against its schema by
//! Python's json module, and no secret in any output.

use crate::reach::{nginx_with, tinyproxy};
use crate::ssh::{free_port, Sshd};
use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// Run `wssh probe ARGS` (with `env`): exit code, stdout, stderr.
fn probe_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("probe").args(args);
    for v in [
        "https_proxy",
        "HTTPS_PROXY",
        "http_proxy",
        "no_proxy",
        "NO_PROXY",
        "WSSH_PASSWORD",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let (status, out, err) = outcome(&mut cmd, None);
    (status.code().unwrap_or(-1), out, err)
}

fn probe(args: &[&str]) -> (i32, String, String) {
    probe_env(args, &[])
}

/// The line of step `name` in human output.
fn step<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} step in:\n{out}"))
}

/// Probe `args` expecting a failure whose output contains `phrase`; returns stdout.
fn fails_with(args: &[&str], failing: &str, phrase: &str) -> String {
    let (code, out, err) = probe(args);
    assert_eq!(code, 1, "{out}{err}");
    assert!(step(&out, failing).starts_with("fail"), "{out}");
    assert!(out.contains(phrase), "expected {phrase:?} in:\n{out}{err}");
    out
}

/// A wssh server in front of a target that greets with an SSH-like banner and then waits.
fn banner_target() -> Target {
    Target::start(|mut s| {
        let _ = s.write_all(b"SSH-2.0-probe_test\r\n");
        let _ = s.read_to_end(&mut Vec::new());
    })
}

/// Check `--json` output with Python's json module against the documented schema; returns
/// "step verdict" per line.
fn json_steps(out: &str) -> Vec<String> {
    let script = r#"
import json, sys
allowed = {"schema", "step", "verdict", "ms", "detail", "lines", "hint"}
for line in sys.stdin:
    o = json.loads(line)
    assert set(o) <= allowed, o
    assert o["schema"] == "wssh-probe/1", o
    assert o["step"] in ("proxy", "dns", "tcp", "connect", "tls", "upgrade", "target", "ping", "idle", "bytes", "summary"), o
    assert o["verdict"] in ("pass", "warn", "fail", "info"), o
    assert isinstance(o["detail"], str) and isinstance(o["lines"], list), o
    assert all(isinstance(l, str) for l in o["lines"]), o
    assert isinstance(o.get("ms", 0.0), (int, float)), o
    assert isinstance(o.get("hint", ""), str), o
    print(o["step"], o["verdict"])
"#;
    let (status, text, err) = outcome(
        Command::new("python3").args(["-c", script]),
        Some(out.as_bytes()),
    );
    assert!(status.success(), "schema check failed: {err}\n{out}");
    text.lines().map(String::from).collect()
}

#[test]
fn healthy_path_to_sshd_passes_every_step_and_shows_the_banner() {
    let sshd = Sshd::start();
    let srv = Server::start(&["--target", &format!("127.0.0.1:{}", sshd.port)]);
    let url = srv.url("ws", "/");
    let (code, out, err) = probe(&[&url]);
    assert_eq!(code, 0, "{out}{err}");
    for name in ["dns", "tcp", "upgrade", "target", "ping", "summary"] {
        assert!(step(&out, name).starts_with("pass"), "{out}");
    }
    assert!(
        step(&out, "target").contains("an SSH server: SSH-2.0-OpenSSH"),
        "{out}"
    );
    assert!(step(&out, "ping").contains("over 5 pings"), "{out}");
    let (code, json, _) = probe(&["--json", &url]);
    assert_eq!(code, 0);
    assert_eq!(
        json_steps(&json),
        [
            "proxy info",
            "dns pass",
            "tcp pass",
            "upgrade pass",
            "target pass",
            "ping pass",
            "summary pass"
        ]
    );
}

#[test]
fn nothing_listening_a_name_that_does_not_resolve_and_an_unreachable_target() {
    fails_with(
        &[&format!("ws://127.0.0.1:{}/", free_port())],
        "tcp",
        "refused (nothing listening)",
    );
    let out = fails_with(
        &["ws://wssh-probe-no-such-host.invalid/"],
        "dns",
        "wssh-probe-no-such-host.invalid: no",
    );
    let dns = step(&out, "dns");
    assert!(
        dns.contains("no such name") || dns.contains("no answer"),
        "{out}"
    );
    let srv = Server::start(&["--target", &format!("127.0.0.1:{}", free_port())]);
    fails_with(
        &[&srv.url("ws", "/")],
        "target",
        "the server closed the tunnel: 1011",
    );
}

#[test]
fn an_http_server_that_is_not_a_websocket_server_is_shown() {
    let web = Target::start(|mut s| {
        let _ = s.read(&mut [0u8; 4096]);
        let body = "<html>welcome to the intranet</html>";
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nServer: test-httpd\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let out = fails_with(
        &[&format!("ws://{}/", web.addr)],
        "upgrade",
        "server answered 200 OK",
    );
    assert!(out.contains("<html>welcome to the intranet"), "{out}");
    assert!(out.contains("server: test-httpd"), "{out}");
    assert!(out.contains("not a WebSocket endpoint"), "{out}");
}

/// An `openssl ca` configuration in `dir`, to sign with chosen dates.
fn sign(
    dir: &TempDir,
    ca: &str,
    ca_key: &str,
    name: &str,
    san: &str,
    dates: Option<(&str, &str)>,
) -> (String, String) {
    let p = |n: &str| dir.path(n).to_str().unwrap().to_string();
    let (key, csr, cert) = (
        p(&format!("{name}.key")),
        p(&format!("{name}.csr")),
        p(&format!("{name}.pem")),
    );
    run(Command::new("openssl").args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        &format!("/CN={name}"),
    ]));
    let ext = p(&format!("{name}.ext"));
    std::fs::write(&ext, format!("subjectAltName={san}\n")).unwrap();
    let (start, end) = dates.unwrap_or(("20200101000000Z", "20991231000000Z"));
    std::fs::write(dir.path("index.txt"), "").unwrap();
    std::fs::write(dir.path("serial"), format!("{:02X}\n", rand_byte())).unwrap();
    let conf = format!(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\nnew_certs_dir = {}\nserial = {}\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n",
        p("index.txt"),
        dir.0.display(),
        p("serial")
    );
    std::fs::write(dir.path("ca.cnf"), conf).unwrap();
    run(Command::new("openssl").args([
        "ca",
        "-batch",
        "-notext",
        "-config",
        &p("ca.cnf"),
        "-cert",
        ca,
        "-keyfile",
        ca_key,
        "-in",
        &csr,
        "-out",
        &cert,
        "-startdate",
        start,
        "-enddate",
        end,
        "-extfile",
        &ext,
    ]));
    (cert, key)
}

fn rand_byte() -> u8 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 200) as u8
        + 16
}

#[test]
fn certificates_wrong_in_each_way_are_named() {
    let dir = TempDir::new("probe-certs");
    let c = certs(&dir);
    let ca_key = dir.path("ca.key").to_str().unwrap().to_string();
    let target = banner_target();
    let t = target.arg();
    let serve =
        |cert: &str, key: &str| Server::start(&["--target", &t, "--cert", cert, "--key", key]);

    let (cert, key) = sign(&dir, &c.ca, &ca_key, "other", "DNS:other.example.org", None);
    let srv = serve(&cert, &key);
    let out = fails_with(
        &["--ca", &c.ca, &srv.url("wss", "/")],
        "tls",
        "certificate name mismatch",
    );
    assert!(out.contains("names: other.example.org"), "{out}");

    let (cert, key) = sign(
        &dir,
        &c.ca,
        &ca_key,
        "expired",
        "IP:127.0.0.1",
        Some(("20200101000000Z", "20200102000000Z")),
    );
    let srv = serve(&cert, &key);
    let out = fails_with(
        &["--ca", &c.ca, &srv.url("wss", "/")],
        "tls",
        "certificate expired",
    );
    assert!(out.contains("days ago"), "{out}");

    // The test CA is private: without --ca the issuer is unknown; with it, every step passes.
    let srv = serve(&c.cert, &c.key);
    let out = fails_with(&[&srv.url("wss", "/")], "tls", "certificate issuer unknown");
    assert!(out.contains("--ca FILE"), "{out}");
    assert!(out.contains("issuer CN=wssh test CA"), "{out}");
    let (code, out, _) = probe(&["--ca", &c.ca, &srv.url("wss", "/")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        step(&out, "tls").contains("certificate verified for 127.0.0.1"),
        "{out}"
    );
    assert!(step(&out, "tls").contains("TLSv1.3"), "{out}");
    // --insecure: a warning, which passes.
    let (code, out, _) = probe(&["--insecure", &srv.url("wss", "/")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        step(&out, "tls").starts_with("warn") && out.contains("not verified (--insecure)"),
        "{out}"
    );
}

/// A CONNECT proxy of the test's own: it answers 200 to any CONNECT and splices the tunnel to
/// `to`, a TLS server whose certificate its own CA signed for whatever name: a TLS-inspecting
/// middlebox as the client sees it.
fn inspecting_proxy(to: std::net::SocketAddr) -> Target {
    Target::start(move |mut c| {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).is_ok_and(|n| n == 1) {
            head.push(b[0]);
        }
        let _ = c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        let Ok(s) = TcpStream::connect(to) else {
            return;
        };
        let (mut c2, mut s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut s2);
            let _ = s2.shutdown(std::net::Shutdown::Write);
        });
        let (mut s, mut c) = (s, c);
        let _ = std::io::copy(&mut s, &mut c);
        let _ = c.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    })
}

#[test]
fn a_tls_inspecting_proxy_is_called_one() {
    let dir = TempDir::new("probe-inspect");
    let c = certs(&dir);
    let ca_key = dir.path("ca.key").to_str().unwrap().to_string();
    let (cert, key) = sign(&dir, &c.ca, &ca_key, "gw", "DNS:gw.example.com", None);
    let target = banner_target();
    let srv = Server::start(&["--target", &target.arg(), "--cert", &cert, "--key", &key]);
    let proxy = inspecting_proxy(srv.addr);
    let via = format!("http://{}", proxy.addr);
    let out = fails_with(
        &["--proxy", &via, "wss://gw.example.com/"],
        "tls",
        "looks like a TLS-inspecting proxy",
    );
    assert!(
        step(&out, "proxy").contains(&format!("through proxy {} (from --proxy)", proxy.addr)),
        "{out}"
    );
    assert!(step(&out, "connect").starts_with("pass"), "{out}");
    // Trusting the middlebox's CA makes it work, and the warning stays.
    let (code, out, _) = probe(&["--proxy", &via, "--ca", &c.ca, "wss://gw.example.com/"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        step(&out, "tls").starts_with("warn") && out.contains("looks like a TLS-inspecting proxy"),
        "{out}"
    );
}

#[test]
fn tls_and_plain_ports_mixed_up() {
    let target = banner_target();
    let plain = Server::start(&["--target", &target.arg()]);
    fails_with(&[&plain.url("wss", "/")], "tls", "no TLS here");
    // A TLS-only port (openssl s_server) asked for ws://.
    let dir = TempDir::new("probe-s-server");
    let c = certs(&dir);
    let port = free_port();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_server",
        "-quiet",
        "-accept",
        &format!("127.0.0.1:{port}"),
        "-cert",
        &c.cert,
        "-key",
        &c.key,
    ]);
    let _server = spawn_quiet(cmd);
    eventually("s_server to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    fails_with(
        &[&format!("ws://127.0.0.1:{port}/")],
        "upgrade",
        "this port speaks TLS",
    );
}

/// Start a command with no output kept; killed on drop.
fn spawn_quiet(mut cmd: Command) -> Proc {
    use std::process::Stdio;
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc {
        child,
        stderr: Default::default(),
    }
}

#[test]
fn tinyproxy_credentials_missing_or_wrong_and_no_secret_shown() {
    let (_tp, port, _dir) = tinyproxy();
    let target = banner_target();
    let srv = Server::start(&[
        "--target",
        &target.arg(),
        "--auth-basic",
        "alice:pa55word-alice",
    ]);
    let url = format!("ws://alice@{}/", srv.addr);
    let good = [("WSSH_PASSWORD", "pa55word-alice")];
    let header = "X-Token: t0ken-s3cret-value";
    let out = probe_env(
        &["--proxy", &format!("http://127.0.0.1:{port}"), &url],
        &good,
    )
    .1;
    // tinyproxy answers 401 (1.10) or 407 (1.11): either is said as what it is.
    let connect = step(&out, "connect");
    assert!(
        connect.starts_with("fail")
            && (connect.contains(": 401 ") || connect.contains(": 407 "))
            && connect.contains("credentials missing"),
        "{out}"
    );
    let (code, out, _) = probe_env(
        &[
            "--proxy",
            &format!("http://wssh:wrong-pr0xy-pass@127.0.0.1:{port}"),
            "-H",
            header,
            &url,
        ],
        &good,
    );
    assert_eq!(code, 1);
    assert!(
        step(&out, "connect").contains("credentials rejected") && out.contains("Basic"),
        "{out}"
    );
    // The right proxy credentials: every step passes; the wrong server password: a 401.
    let proxy = format!("http://wssh:s3cret@127.0.0.1:{port}");
    let mut seen = String::new();
    for json in [false, true] {
        let mut args = vec!["--proxy", &proxy, "-H", header];
        if json {
            args.push("--json");
        }
        args.push(&url);
        let (code, out, err) = probe_env(&args, &good);
        assert_eq!(code, 0, "{out}{err}");
        seen += &out;
        let (code, out, err) = probe_env(&args, &[("WSSH_PASSWORD", "wr0ng-passw0rd")]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(out.contains("401"), "{out}");
        seen += &out;
        seen += &err;
        if json {
            json_steps(&out);
        }
    }
    // A server that echoes our credentials and headers back in its refusal's body.
    let echo = Target::start(|mut s| {
        let head = read_head(&mut s);
        let body: String = head
            .lines()
            .filter(|l| l.starts_with("Authorization") || l.starts_with("X-Token"))
            .collect();
        let _ = write!(
            s,
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let echoed = format!("ws://alice:pa55word-alice@{}/", echo.addr);
    for json in [false, true] {
        let json = if json { "--json" } else { "-q" };
        let (code, out, err) = probe(&["-H", header, json, &echoed]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(out.contains("Authorization: [redacted]"), "{out}");
        seen += &out;
        seen += &err;
    }
    let basic = "YWxpY2U6cGE1NXdvcmQtYWxpY2U="; // base64 of alice:pa55word-alice
    for secret in [
        basic,
        "s3cret",
        "pa55word-alice",
        "wr0ng-passw0rd",
        "t0ken-s3cret-value",
        "wrong-pr0xy-pass",
    ] {
        assert!(!seen.contains(secret), "{secret} shown:\n{seen}");
    }
}

/// nginx with `proxy_read_timeout 3s` in front of a wssh server: `--idle 10` finds the cut at
/// 3 s and suggests a ping under it, whatever the server's own ping interval.
#[test]
fn idle_finds_nginx_read_timeout_even_when_the_server_pings() {
    let target = banner_target();
    for ping in [None, Some("1")] {
        let mut args = vec!["--target".to_string(), target.arg()];
        args.extend(
            ping.map(|p| ["--ping".to_string(), p.to_string()])
                .into_iter()
                .flatten(),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let srv = Server::start(&args);
        let nginx = nginx_with(srv.addr, None, "3s", "wssh-location.conf");
        let url = format!("ws://127.0.0.1:{}/ssh/", nginx.port);
        let t = std::time::Instant::now();
        let (code, out, err) = probe(&["--idle", "10", &url]);
        assert!(t.elapsed() < Duration::from_secs(12), "{out}");
        assert_eq!(code, 1, "{out}{err}");
        let idle = step(&out, "idle");
        let secs: f64 = idle
            .split("after ")
            .nth(1)
            .and_then(|s| s.split(" s").next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            (2.0..=4.0).contains(&secs),
            "cut at {secs} s (ping {ping:?}):\n{out}"
        );
        assert!(out.contains("--ping 1 "), "{out}");
        assert!(out.contains("the server agreed to stay silent"), "{out}");
    }
    // Without nginx nothing cuts 3 s of silence; a websockify-like server that does not
    // answer the quiet request would be named (here the wssh server agrees).
    let srv = Server::start(&["--target", &target.arg(), "--ping", "1"]);
    let (code, out, _) = probe(&["--idle", "3", &srv.url("ws", "/")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        step(&out, "idle").starts_with("pass") && out.contains("no cut in 3 s"),
        "{out}"
    );
}

#[test]
fn bytes_measures_throughput_against_a_server_with_probe_only() {
    let target = banner_target();
    // Two: the walk's own tunnel may still hold its slot for a moment after its close.
    let srv = Server::start(&["--target", &target.arg(), "--probe", "--max-tunnels", "2"]);
    let (code, out, err) = probe(&["--bytes", "5000000", &srv.url("ws", "/")]);
    assert_eq!(code, 0, "{out}{err}");
    let bytes = step(&out, "bytes");
    assert!(
        bytes.contains("up ") && bytes.contains("(5000000 bytes in") && bytes.contains("down "),
        "{out}"
    );
    eventually("the endpoint's log line", || {
        srv.log()
            .contains("target=probe endpoint up=5000000 down=5000000")
    });
    // It never reached the target: only the walk's own tunnel did.
    assert_eq!(target.accepted(), 1);
    // It counts as a tunnel: with two held open, the endpoint gets 503 (--max-tunnels 2).
    let _held = [raw_ws(srv.addr, "/"), raw_ws(srv.addr, "/")];
    eventually("the held tunnels", || target.accepted() == 3);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(
        b"GET /_wssh/probe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");

    // Off by default: the path is the server's own, and 404.
    let plain = Server::start(&["--target", &target.arg()]);
    let out = fails_with(&["--bytes", "1000", &plain.url("ws", "/")], "bytes", "404");
    assert!(out.contains("wssh server --probe"), "{out}");
}
