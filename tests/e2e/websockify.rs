//! websockify mode: the binary started as `websockify` (a symlink) or as `wssh websockify`, with
//! websockify's command line; its banner, its usage errors, a taken port, TLS from a certificate
//! file that holds the key, and parity with the real websockify 0.13 (from PyPI) where both can
//! run: the same options known, the same command lines refused, the same banner.

use crate::support::*;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;

/// A temp dir with `websockify`, a symlink to the wssh binary.
fn linked() -> (TempDir, PathBuf) {
    let dir = TempDir::new("wsfy");
    let link = dir.path("websockify");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    (dir, link)
}

/// Start wssh as `websockify ARGS` and wait for `listening on`.
fn websockify(link: &PathBuf, args: &[&str]) -> Server {
    let mut cmd = Command::new(link);
    cmd.args(args);
    Server::spawn(cmd)
}

/// The banner lines, without the logger's prefix.
fn banner(log: &str) -> Vec<String> {
    let lines = log
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, m)| m));
    let from = lines.skip_while(|l| *l != "WebSocket server settings:");
    let mut out = Vec::new();
    for l in from {
        out.push(l.to_string());
        if l.starts_with("  - proxying from") {
            break;
        }
    }
    out
}

/// Run to the end (bounded): exit code and stderr.
fn outcome(cmd: &mut Command) -> (Option<i32>, String) {
    let (status, _, err) = crate::support::outcome(cmd, None);
    (status.code(), err)
}

/// Echo 64 KiB through `wssh client URL`.
fn echo_through(url: &str, extra: &[&str]) {
    let input = data(7, 64 * 1024);
    let args = [extra, &[url]].concat();
    let (status, out, err) = run_client(&args, &input);
    assert_eq!(checksum(&out), checksum(&input), "{err}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
}

/// The status line of an upgrade request with this Origin.
fn upgrade_with_origin(addr: SocketAddr, origin: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let req = format!(
        "GET /websockify HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    read_head(&mut s).lines().next().unwrap_or("").to_string()
}

#[test]
fn a_symlink_named_websockify_speaks_its_command_line() {
    let target = Target::echo();
    let (_dir, link) = linked();
    let srv = websockify(&link, &["127.0.0.1:0", &target.arg()]);
    let port = srv.addr.port();
    // Port 0 was asked for: the banner gives the real one, as `listening on` does.
    assert_eq!(
        banner(&srv.log()),
        [
            "WebSocket server settings:".to_string(),
            format!("  - Listen on 127.0.0.1:{port}"),
            "  - No SSL/TLS support (no cert file)".into(),
            format!("  - proxying from 127.0.0.1:{port} to {}", target.arg()),
        ]
    );
    assert!(
        !srv.log().contains("WARN"),
        "loopback: no warning\n{}",
        srv.log()
    );
    echo_through(&srv.url("ws", "/websockify"), &[]);
}

#[test]
fn wssh_websockify_is_the_same_as_the_symlink() {
    let target = Target::echo();
    let mut cmd = Command::new(BIN);
    cmd.args(["websockify", "127.0.0.1:0", &target.arg()]);
    let srv = Server::spawn(cmd);
    let port = srv.addr.port();
    assert_eq!(
        banner(&srv.log()).last().unwrap(),
        &format!("  - proxying from 127.0.0.1:{port} to {}", target.arg())
    );
    echo_through(&srv.url("ws", "/"), &[]);
}

#[test]
fn options_after_the_positionals_and_with_equals() {
    let target = Target::echo();
    let (_dir, link) = linked();
    let srv = websockify(
        &link,
        &["127.0.0.1:0", &target.arg(), "--heartbeat=1", "-v"],
    );
    assert!(
        srv.log().contains(" DEBUG "),
        "-v: debug lines\n{}",
        srv.log()
    );
    // --heartbeat=1: a ping after a second without a frame from the client.
    let mut ws = raw_ws(srv.addr, "/");
    let mut head = [0u8; 2];
    std::io::Read::read_exact(&mut ws, &mut head).unwrap();
    assert_eq!(head[0], 0x89, "expected a ping, got {head:?}");
}

#[test]
fn a_bare_port_listens_everywhere_and_warns_that_origins_are_unchecked() {
    let (_dir, link) = linked();
    // The target is a closed port: nothing is reachable through this short-lived listener.
    let srv = websockify(&link, &["0", "127.0.0.1:9"]);
    let port = srv.addr.port();
    assert_eq!(srv.addr.ip().to_string(), "0.0.0.0");
    let log = srv.log();
    // What Open OnDemand waits for: `proxying from :PORT`.
    assert!(log.contains(&format!("  - Listen on :{port}\n")), "{log}");
    assert!(
        log.contains(&format!("  - proxying from :{port} to 127.0.0.1:9")),
        "{log}"
    );
    assert!(
        log.contains("WARN") && log.contains("any web page can open tunnels here"),
        "{log}"
    );
}

#[test]
fn origins_are_unchecked_unless_expect_origin_lists_them() {
    let target = Target::echo();
    let (_dir, link) = linked();
    let open = websockify(&link, &["127.0.0.1:0", &target.arg()]);
    let page = "http://pages.example:8080";
    assert!(upgrade_with_origin(open.addr, page).starts_with("HTTP/1.1 101"));
    let listed = websockify(
        &link,
        &[
            "127.0.0.1:0",
            &target.arg(),
            "--auth-plugin=ExpectOrigin",
            "--auth-source",
            &format!("https://other.example {page}"),
        ],
    );
    assert!(upgrade_with_origin(listed.addr, page).starts_with("HTTP/1.1 101"));
    let refused = upgrade_with_origin(listed.addr, "http://evil.example");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
}

#[test]
fn idle_timeout_ends_it_with_websockifys_line() {
    let (_dir, link) = linked();
    let args = [
        "--idle-timeout=1",
        "--timeout=0",
        "127.0.0.1:0",
        "127.0.0.1:9",
    ];
    let (code, err) = outcome(Command::new(&link).args(args));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("listener exit due to --idle-timeout 1"),
        "{err}"
    );
}

#[test]
fn refused_options_and_bad_values_are_usage_errors_naming_them() {
    let (_dir, link) = linked();
    for (args, line) in [
        (&["--unix-listen=/s", "--unix-listen-mode=rw", "h:1"][..], "error: error parsing listen unix socket mode"),
        (&["6080", "h:1", "--syslog=localhost:x"], "error: error parsing syslog port"),
        (&["6080", "h:1", "--", "vncserver"], "error: too many arguments"),
        (&["--key-password", "hunter2", "6080", "h:1"], "error: --key-password: not supported: a password among the arguments is visible to every user (ps); store the key decrypted: openssl pkey -in KEY -out PLAIN"),
        (&["--token-plugin=TokenRedis", "--token-source=r:6379:0:hunter2", "6080"], "error: --token-plugin TokenRedis: not supported (it asks a network service or decodes JWTs); supported token plugins: TokenFile, ReadOnlyTokenFile, TokenFileName, UnixDomainSocketDirectory"),
        (&["6080", "h:1", "--bogus=hunter2"], "error: no such option: --bogus"),
    ] {
        let (code, err) = outcome(Command::new(&link).args(args));
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err, format!("{line}\nsee websockify --help\n"), "{args:?}");
        // The same through `wssh websockify`.
        let (code, err2) = outcome(Command::new(BIN).arg("websockify").args(args));
        assert_eq!((code, &err2), (Some(2), &err), "wssh websockify {args:?}");
    }
}

#[test]
fn a_taken_port_is_an_error_naming_address_already_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (_dir, link) = linked();
    let (code, err) = outcome(Command::new(&link).args([&format!("127.0.0.1:{port}"), "h:1"]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
}

#[test]
fn tls_from_a_cert_file_holding_the_key_and_self_pem_by_default() {
    let target = Target::echo();
    let (dir, link) = linked();
    let certs = certs(&dir);
    let both = [
        std::fs::read(&certs.cert).unwrap(),
        std::fs::read(&certs.key).unwrap(),
    ]
    .concat();
    let combined = dir.path("combined.pem");
    std::fs::write(&combined, &both).unwrap();
    let ca = ["--ca", certs.ca.as_str()];

    let srv = websockify(
        &link,
        &[
            "--cert",
            combined.to_str().unwrap(),
            "--ssl-only",
            "127.0.0.1:0",
            &target.arg(),
        ],
    );
    let lines = banner(&srv.log());
    assert_eq!(
        lines[2..4],
        ["  - SSL/TLS support", "  - Deny non-SSL/TLS connections"]
    );
    echo_through(&srv.url("wss", "/"), &ca);
    let (status, _, _) = run_client(&[&srv.url("ws", "/")], b"x");
    assert_ne!(
        status.and_then(|s| s.code()),
        Some(0),
        "--ssl-only: plain refused"
    );

    // No --cert: websockify's self.pem in the current directory, when there is one.
    std::fs::write(dir.path("self.pem"), &both).unwrap();
    let mut cmd = Command::new(&link);
    cmd.current_dir(&dir.0).args(["127.0.0.1:0", &target.arg()]);
    let srv = Server::spawn(cmd);
    assert_eq!(banner(&srv.log())[2], "  - SSL/TLS support");
    echo_through(&srv.url("wss", "/"), &ca);
}

#[test]
fn ssl_version_and_ssl_ciphers_limit_what_tls_offers() {
    let (dir, link) = linked();
    let certs = certs(&dir);
    let handshake = |srv: &Server, args: &[&str]| {
        let connect = srv.addr.to_string();
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-connect", &connect]).args(args);
        try_run(&mut cmd).0
    };
    let tls13 = websockify(
        &link,
        &[
            "--cert",
            &certs.cert,
            "--key",
            &certs.key,
            "--ssl-version=tlsv1_3",
            "127.0.0.1:0",
            "h:1",
        ],
    );
    assert!(handshake(&tls13, &["-tls1_3"]));
    assert!(!handshake(&tls13, &["-tls1_2"]), "TLS 1.2 refused");
    let one = "ECDHE-RSA-AES256-GCM-SHA384";
    let ciphers = websockify(
        &link,
        &[
            "--cert",
            &certs.cert,
            "--key",
            &certs.key,
            "--ssl-ciphers",
            one,
            "127.0.0.1:0",
            "h:1",
        ],
    );
    assert!(handshake(&ciphers, &["-tls1_2", "-cipher", one]));
    assert!(!handshake(
        &ciphers,
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]
    ));
    assert!(
        handshake(&ciphers, &["-tls1_3"]),
        "TLS 1.3 suites untouched"
    );
}

/// The real websockify, as `python3 -m websockify ARGS`, in `dir`.
fn python_websockify(dir: &TempDir, args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.current_dir(&dir.0)
        .args(["-m", "websockify"])
        .args(args);
    cmd
}

#[test]
fn every_option_of_the_real_websockify_is_known_and_in_the_readme() {
    let dir = TempDir::new("wsfy-help");
    let help = run(&mut python_websockify(&dir, &["--help"]));
    let names: Vec<&str> = help
        .lines()
        .filter(|l| l.starts_with("  -"))
        .flat_map(|l| l.split([',', ' ', '=']))
        .filter(|w| w.starts_with("--"))
        .collect();
    assert!(names.len() >= 36, "websockify's options: {names:?}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Replacing websockify")
        .nth(1)
        .expect("README has a Replacing websockify section");
    for name in names {
        // Never runs a server: no positionals, so at worst "too few arguments".
        let (code, err) = outcome(Command::new(BIN).args(["websockify", &format!("{name}=x")]));
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(
            !err.contains("no such option") && !err.contains("ambiguous"),
            "{name}: {err}"
        );
        assert!(
            section.contains(&format!("| `{name}")) || section.contains(&format!(", `{name}")),
            "README's table lacks {name}"
        );
    }
}

#[test]
fn command_lines_the_real_websockify_refuses_are_refused() {
    let dir = TempDir::new("wsfy-refused"); // no self.pem here
    for args in [
        &["6080"][..],
        &["6080", "localhost"],
        &["x:port", "h:1"],
        &["6080", "h:port"],
        &["6080", "h:1", "extra"],
        &["--bogus", "6080", "h:1"],
        &["-x", "6080", "h:1"],
        &["--verbose=1", "6080", "h:1"],
        &["--heartbeat=x", "6080", "h:1"],
        &["--ssl-version=sslv3", "6080", "h:1"],
        &["--ssl-only", "6080", "h:1"],
        &["--token-source=t", "6080"],
        &["--host-token", "6080", "h:1"],
        &["--auth-source=x", "6080", "h:1"],
        &["--legacy-syslog", "6080", "h:1"],
        &["--syslog=localhost:x", "6080", "h:1"],
        &["--unix-listen=s", "--unix-listen-mode=rw", "h:1"],
        &["--unix-listen=s", "6080", "h:1"],
        &["--target-config=t", "6080", "h:1"],
        &["6080", "--web"],
    ] {
        let (code, err) = outcome(&mut python_websockify(&dir, args));
        assert_eq!(code, Some(2), "websockify {args:?}: {err}");
        let mut ours = Command::new(BIN);
        let (code, err) = outcome(ours.current_dir(&dir.0).arg("websockify").args(args));
        assert_eq!(code, Some(2), "wssh websockify {args:?}: {err}");
        assert_eq!(err.matches("error: ").count(), 1, "{err}");
    }
}

#[test]
fn the_banner_is_the_real_websockifys() {
    let (dir, link) = linked();
    let certs = certs(&dir);
    let tls = ["--cert", &certs.cert, "--key", &certs.key, "--ssl-only"];
    let target = "127.0.0.1:5900"; // never dialled: no client comes
    let listen = format!("127.0.0.1:{}", crate::ssh::free_port());
    let python = python_websockify(&dir, &[&tls[..], &[&listen, target]].concat());
    let (theirs, _) = spawn_until(python, "proxying from");
    let ours = websockify(&link, &[&tls[..], &["127.0.0.1:0", target]].concat());
    // Ours asked for port 0: put websockify's port in place of the one chosen.
    let ours = banner(&ours.log())
        .join("\n")
        .replace(&ours.addr.to_string(), &listen);
    // (The line spawn_until saw may not be in the collected text yet.)
    eventually("websockify's banner", || {
        theirs.stderr_text().contains("proxying from")
    });
    assert_eq!(ours, theirs.stderr_text(), "ours, then websockify's");
}

#[test]
fn wrap_mode_and_record_as_websockify_launchers_give_them() {
    let (dir, link) = linked();
    let rec = dir.path("session");
    // websockify's wrap syntax: a listen port and `-- PROGRAM`, no target. The program is told
    // the loopback port it must listen on ({port}); socat echoes there.
    let srv = websockify(
        &link,
        &[
            "127.0.0.1:0",
            "--record",
            rec.to_str().unwrap(),
            "--wrap-mode=ignore",
            "--",
            "socat",
            "TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
            "EXEC:cat",
        ],
    );
    let lines = banner(&srv.log());
    let abs = std::path::absolute(&rec).unwrap();
    assert!(
        lines.contains(&format!("  - Recording to '{}.*'", abs.display())),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("to the wrapped program ({port})"),
        "{lines:?}"
    );
    // socat may need a moment to listen after it starts.
    eventually("the wrapped program to listen", || {
        let (status, out, _) = run_client(&[&srv.url("ws", "/")], b"ping");
        status.and_then(|s| s.code()) == Some(0) && out == b"ping"
    });
    echo_through(&srv.url("ws", "/"), &[]);
    eventually("a recording", || dir.path("session.1").exists());
}

#[test]
fn basic_auth_as_websockify_takes_it() {
    let target = Target::echo();
    let (_dir, link) = linked();
    let srv = websockify(
        &link,
        &[
            "127.0.0.1:0",
            &target.arg(),
            "--auth-plugin=BasicHTTPAuth",
            "--auth-source=alice:s3cret-pw",
        ],
    );
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let req =
        "GET /websockify HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(head.contains("WWW-Authenticate: Basic realm="), "{head}");
    let url = format!("ws://alice:s3cret-pw@{}/websockify", srv.addr);
    echo_through(&url, &[]);
    assert!(!srv.log().contains("s3cret-pw"), "{}", srv.log());
}
