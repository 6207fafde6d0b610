//! Reaching the server from where people are: nginx in front (TLS and plain; an idle SSH session
//! kept by pings, and cut without them), PuTTY's plink (-proxycmd, and its HTTP proxy pointed at
//! `wssh connect`), curl through `connect`, `forward`, a real corporate proxy (tinyproxy with
//! Basic auth, flags and environment), and a server frozen under an open tunnel.

use crate::ssh::{free_port, user, Sshd};
use crate::support::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Replace `from` in a shipped config, insisting it is there (so the test follows the file).
fn subst(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "shipped nginx config no longer has {from:?}"
    );
    text.replace(from, to)
}

pub fn wait_port(port: u16) {
    eventually("the port to accept", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// nginx running the shipped `nginx/` configs, with loopback ports, test certificates and the
/// given `proxy_read_timeout`. One process (`master_process off`), killed by PID.
pub struct Nginx {
    pub port: u16,
    _proc: Proc,
    _dir: TempDir,
}

fn nginx(upstream: SocketAddr, tls: Option<&Certs>, read_timeout: &str) -> Nginx {
    nginx_with(upstream, tls, read_timeout, "wssh-location.conf")
}

/// The same, with another shipped snippet included by `wssh.conf` in place of
/// `wssh-location.conf`.
pub fn nginx_with(
    upstream: SocketAddr,
    tls: Option<&Certs>,
    read_timeout: &str,
    snippet: &str,
) -> Nginx {
    let dir = TempDir::new("nginx");
    let port = free_port();
    let location = std::fs::read_to_string(format!("{REPO}/nginx/{snippet}")).unwrap();
    let location = subst(
        location,
        "proxy_read_timeout 3600s;",
        &format!("proxy_read_timeout {read_timeout};"),
    );
    std::fs::write(dir.path(snippet), location).unwrap();
    let site = std::fs::read_to_string(format!("{REPO}/nginx/wssh.conf")).unwrap();
    let site = subst(site, "    listen [::]:443 ssl;\n", "");
    let site = subst(
        site,
        "server 127.0.0.1:4567;",
        &format!("server {upstream};"),
    );
    let site = subst(
        site,
        "/etc/nginx/snippets/wssh-location.conf",
        dir.path(snippet).to_str().unwrap(),
    );
    let site = match tls {
        Some(c) => {
            let site = subst(
                site,
                "listen 443 ssl;",
                &format!("listen 127.0.0.1:{port} ssl;"),
            );
            let site = subst(site, "/etc/ssl/certs/gw.example.com.pem", &c.cert);
            subst(site, "/etc/ssl/private/gw.example.com.key", &c.key)
        }
        None => {
            let site = subst(
                site,
                "listen 443 ssl;",
                &format!("listen 127.0.0.1:{port};"),
            );
            let site = subst(
                site,
                "    ssl_certificate     /etc/ssl/certs/gw.example.com.pem;\n",
                "",
            );
            subst(
                site,
                "    ssl_certificate_key /etc/ssl/private/gw.example.com.key;\n",
                "",
            )
        }
    };
    std::fs::write(dir.path("site.conf"), site).unwrap();
    let d = dir.0.display();
    let main = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.path("nginx.conf"), main).unwrap();
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| exists(p.as_ref()))
        .expect("nginx must be installed");
    let mut child = Command::new(bin)
        .args([
            "-p",
            &d.to_string(),
            "-e",
            &format!("{d}/error.log"),
            "-c",
            &format!("{d}/nginx.conf"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Default::default();
    let _ = child.stderr.take();
    let proc = Proc { child, stderr };
    wait_port(port);
    Nginx {
        port,
        _proc: proc,
        _dir: dir,
    }
}

/// `ssh` through nginx running `sleep 10; echo alive`: ten idle seconds against nginx's 3 s.
fn idle_ssh_through_nginx(tls: bool, ping: &str) -> ((bool, String, String), Server) {
    let sshd = Sshd::start();
    let dir = TempDir::new("nginx-certs");
    let c = certs(&dir);
    let srv = Server::start(&[
        "--target",
        &format!("127.0.0.1:{}", sshd.port),
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    let nginx = nginx(srv.addr, tls.then_some(&c), "3s");
    let scheme = if tls { "wss" } else { "ws" };
    let mut proxy = format!(
        "{BIN} client --ping {ping} {scheme}://127.0.0.1:{}/ssh/",
        nginx.port
    );
    if tls {
        proxy += &format!(" --ca {}", c.ca);
    }
    let host = format!("{}@wssh-test", user());
    let t = Instant::now();
    let r = try_run(
        Command::new("ssh")
            .args(sshd.opts(&proxy))
            .args([&host, "sleep 10; echo alive"]),
    );
    eprintln!(
        "idle ssh through nginx (tls {tls}, ping {ping}): {:?}",
        t.elapsed()
    );
    (r, srv)
}

#[test]
fn nginx_with_tls_keeps_an_idle_ssh_session_alive_with_pings() {
    let ((ok, out, err), _srv) = idle_ssh_through_nginx(true, "1");
    assert!(ok, "ssh failed: {err}");
    assert_eq!(out.trim(), "alive");
}

#[test]
fn nginx_cuts_an_idle_ssh_session_without_pings() {
    let ((ok, out, _), srv) = idle_ssh_through_nginx(false, "0");
    assert!(
        !ok && out.trim().is_empty(),
        "nginx's 3 s read timeout must cut an idle session without pings"
    );
    eventually("the tunnel's log line", || srv.log().contains("end="));
}

#[test]
fn server_logs_the_real_client_only_behind_a_trusted_proxy() {
    let target = Target::echo();
    for (trusted, want) in [
        (true, "peer=203.0.113.9 via 127.0.0.1:"),
        (false, "peer=127.0.0.1:"),
    ] {
        let mut args = vec!["--target".to_string(), target.arg()];
        if trusted {
            args.extend(["--trusted-proxy".into(), "127.0.0.1".into()]);
        }
        let srv = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let nginx = nginx(srv.addr, None, "60s");
        let mut s = TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let req = "GET /ssh/ HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 203.0.113.9\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        s.write_all(req.as_bytes()).unwrap();
        assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
        s.write_all(&frame(8, &1000u16.to_be_bytes())).unwrap();
        eventually("the tunnel's log line", || srv.log().contains(" target="));
        let log = srv.log();
        assert!(log.contains(want), "want {want:?} in {log}");
        assert_eq!(
            log.contains("203.0.113.9"),
            trusted,
            "the header counts only from a trusted proxy"
        );
    }
}

/// The sshd host key's SHA256 fingerprint, for plink's -hostkey.
fn host_fingerprint(sshd: &Sshd) -> String {
    let pubkey = sshd.dir.path("host_key.pub");
    let out = run(Command::new("ssh-keygen").args([
        "-l",
        "-E",
        "sha256",
        "-f",
        pubkey.to_str().unwrap(),
    ]));
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// The OpenSSH test key converted with puttygen.
fn putty_key(sshd: &Sshd) -> PathBuf {
    let ppk = sshd.dir.path("id.ppk");
    run(Command::new("puttygen").arg(sshd.dir.path("id")).args([
        "-O",
        "private",
        "-o",
        ppk.to_str().unwrap(),
    ]));
    ppk
}

#[test]
fn plink_proxycmd_runs_a_command() {
    let sshd = Sshd::start();
    let srv = Server::start(&["--target", &format!("127.0.0.1:{}", sshd.port)]);
    let (fp, ppk) = (host_fingerprint(&sshd), putty_key(&sshd));
    let proxycmd = format!("{BIN} client {}", srv.url("ws", "/"));
    let out = run(Command::new("plink")
        .args([
            "-batch",
            "-ssh",
            "-P",
            &sshd.port.to_string(),
            "-l",
            &user(),
        ])
        .args([
            "-i",
            ppk.to_str().unwrap(),
            "-hostkey",
            &fp,
            "-proxycmd",
            &proxycmd,
            "wssh-test.invalid", // not localhost: PuTTY would skip the proxy for that
            "echo",
            "hello-from-plink",
        ]));
    assert_eq!(out.trim(), "hello-from-plink");
    eventually("the tunnel's log line", || {
        srv.log()
            .contains(&format!("target=127.0.0.1:{}", sshd.port))
    });
}

#[test]
fn plink_saved_session_with_http_proxy_through_connect() {
    let sshd = Sshd::start();
    let srv = Server::start(&["--target", &format!("127.0.0.1:{}", sshd.port)]);
    let connect = Server::mode("connect", "127.0.0.1:0", &[&srv.url("ws", "/ssh/")]);
    let (fp, ppk) = (host_fingerprint(&sshd), putty_key(&sshd));
    let home = TempDir::new("putty-home");
    std::fs::create_dir_all(home.path(".putty/sessions")).unwrap();
    let session = format!(
        "HostName=127.0.0.1\nPortNumber={}\nProtocol=ssh\nUserName={}\nPublicKeyFile={}\n\
         ProxyMethod=3\nProxyHost=127.0.0.1\nProxyPort={}\nProxyLocalhost=1\n",
        sshd.port,
        user(),
        ppk.display(),
        connect.addr.port()
    );
    std::fs::write(home.path(".putty/sessions/wssh-connect"), session).unwrap();
    let out = run(Command::new("plink").env("HOME", &home.0).args([
        "-batch",
        "-load",
        "wssh-connect",
        "-hostkey",
        &fp,
        "echo",
        "via-connect",
    ]));
    assert_eq!(out.trim(), "via-connect");
    // PuTTY really went through the proxy (it skips it for 127.0.0.1 without ProxyLocalhost=1).
    let want = format!("url=ws://{}/ssh/127.0.0.1:{}", srv.addr, sshd.port);
    eventually("connect's log line", || connect.log().contains(&want));
}

/// A one-shot HTTP target: reads a request head, answers `body`, closes.
#[test]
fn curl_through_connect_and_connect_errors() {
    let web = http_target("hello through connect");
    let srv = Server::start(&["--allow", "127.0.0.1:*"]);
    let connect = Server::mode(
        "connect",
        "127.0.0.1:0",
        &[&srv.url("ws", "/ssh/{host}:{port}")],
    );
    let out = curl_through(connect.addr, web.addr);
    assert_eq!(out, "hello through connect");

    let ask = |req: &str| {
        let mut s = TcpStream::connect(connect.addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut a = String::new();
        let _ = s.read_to_string(&mut a);
        a
    };
    assert!(ask("GET http://x/ HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(ask("CONNECT nonsense HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400"));
    let big = format!("CONNECT a:1 HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert!(ask(&big).starts_with("HTTP/1.1 431"));
    // The server refuses targets outside --allow: connect answers 403 with the reason.
    let a = ask("CONNECT 10.255.255.1:22 HTTP/1.1\r\n\r\n");
    assert!(
        a.starts_with("HTTP/1.1 403") && a.contains("target not allowed"),
        "{a}"
    );
    // Server unreachable: 502.
    let dead = format!("ws://127.0.0.1:{}/ssh/", free_port());
    let broken = Server::mode("connect", "127.0.0.1:0", &[&dead]);
    let mut s = TcpStream::connect(broken.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"CONNECT h:22 HTTP/1.1\r\n\r\n").unwrap();
    let mut a = String::new();
    let _ = s.read_to_string(&mut a);
    assert!(a.starts_with("HTTP/1.1 502"), "{a}");
}

#[test]
fn forward_lets_plain_ssh_reach_sshd() {
    let sshd = Sshd::start();
    let srv = Server::start(&["--target", &format!("127.0.0.1:{}", sshd.port)]);
    let fwd = Server::mode("forward", "127.0.0.1:0", &[&srv.url("ws", "/")]);
    let out = run(Command::new("ssh").args(sshd.direct_opts()).args([
        "-p",
        &fwd.addr.port().to_string(),
        &format!("{}@127.0.0.1", user()),
        "echo",
        "forwarded",
    ]));
    assert_eq!(out.trim(), "forwarded");
    eventually("forward's log line", || fwd.log().contains(" up="));
}

/// tinyproxy on loopback with Basic auth `wssh:s3cret`.
pub fn tinyproxy() -> (Proc, u16, TempDir) {
    let dir = TempDir::new("tinyproxy");
    let port = free_port();
    let conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\nAllow 127.0.0.1\nBasicAuth wssh s3cret\n\
         LogLevel Connect\nPidFile \"{}\"\n",
        dir.path("pid").display()
    );
    std::fs::write(dir.path("tinyproxy.conf"), conf).unwrap();
    let mut child = Command::new("tinyproxy")
        .args(["-d", "-c", dir.path("tinyproxy.conf").to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tinyproxy must be installed");
    let _ = child.stderr.take();
    let p = Proc {
        child,
        stderr: Default::default(),
    };
    wait_port(port);
    (p, port, dir)
}

#[test]
fn corporate_proxy_with_basic_auth_flags_and_environment() {
    let (_tp, port, _dir) = tinyproxy();
    let target = Target::echo();
    let TlsServer {
        srv,
        certs: c,
        dir: _dir,
    } = tls_server(&target.arg(), &[]);
    let good = format!("http://wssh:s3cret@127.0.0.1:{port}");
    let bad = format!("http://wssh:wrong@127.0.0.1:{port}");
    // The server is on loopback too: the proxy can be seen in use because bad credentials fail.
    let client = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = client_cmd(args);
        for var in [
            "https_proxy",
            "HTTPS_PROXY",
            "http_proxy",
            "no_proxy",
            "NO_PROXY",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        let (status, out, err) = run_client_cmd(cmd, b"through");
        (
            status.and_then(|s| s.code()),
            String::from_utf8_lossy(&out).into_owned(),
            err,
        )
    };
    let wss = srv.url("wss", "/");
    let ws = srv.url("ws", "/");

    let (code, out, err) = client(&["--proxy", &good, "--ca", &c.ca, &wss], &[]);
    assert_eq!((code, out.as_str()), (Some(0), "through"), "{err}");
    let (code, _, err) = client(&["--proxy", &bad, "--ca", &c.ca, &wss], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("rejected the credentials") && err.contains("USER:PASS"),
        "{err}"
    );
    let (code, _, err) = client(&["--proxy", &format!("http://127.0.0.1:{port}"), &ws], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("needs credentials"), "{err}");

    let (code, out, err) = client(&["--ca", &c.ca, &wss], &[("https_proxy", &good)]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "through"),
        "https_proxy: {err}"
    );
    let (code, _, err) = client(&["--ca", &c.ca, &wss], &[("HTTPS_PROXY", &bad)]);
    assert_eq!(code, Some(1), "HTTPS_PROXY is used: {err}");
    let (code, out, err) = client(
        &["--ca", &c.ca, &wss],
        &[("https_proxy", &bad), ("no_proxy", "localhost,127.0.0.1")],
    );
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "through"),
        "no_proxy bypasses: {err}"
    );
    let (code, out, err) = client(&[&ws], &[("http_proxy", &good)]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "through"),
        "http_proxy: {err}"
    );
    let (code, _, _) = client(&[&ws], &[("http_proxy", &bad)]);
    assert_eq!(code, Some(1), "http_proxy is used");
}

#[test]
fn frozen_server_is_detected_by_pings() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "--ping", "0"]);
    let mut c = client(&["--ping", "1", &srv.url("ws", "/")]);
    let mut stdin = c.child.stdin.take().unwrap();
    let mut stdout = c.child.stdout.take().unwrap();
    stdin.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    stdout.read_exact(&mut b).unwrap(); // the tunnel is open end to end
    srv.proc.signal("STOP"); // no FIN, no RST: just silence
    let t = Instant::now();
    let status = c.wait_for(Duration::from_secs(10));
    srv.proc.signal("CONT");
    let status = status.expect("client must notice the frozen server");
    assert_eq!(status.code(), Some(1));
    assert!(
        c.stderr_text().contains("no answer to pings for 4 s"),
        "{}",
        c.stderr_text()
    );
    assert!(
        t.elapsed() < Duration::from_secs(7),
        "took {:?}",
        t.elapsed()
    );
}
