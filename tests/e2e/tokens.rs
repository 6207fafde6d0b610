//! websockify's token sources on the real server: a token file and a directory of them (added
//! and removed tokens take effect without a restart, a withdrawn token ends its tunnel), file
//! names as tokens, Unix sockets as targets, traversal attempts, 403 for a missing or unknown
//! token, no token in any log line; and the one subprotocol rule.

use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

/// The status line the server answers an upgrade of `path` with (and the socket, open on 101).
fn upgrade(srv: &Server, path: &str, extra: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    (head, s)
}

fn status(srv: &Server, path: &str) -> String {
    let head = upgrade(srv, path, "").0;
    head.lines().next().unwrap_or("").to_string()
}

/// Echo 5 bytes through an open tunnel.
fn echoes(s: &mut TcpStream) -> bool {
    s.write_all(&frame(2, b"hello")).unwrap();
    let mut b = [0u8; 7];
    s.read_exact(&mut b).is_ok() && &b[2..] == b"hello"
}

/// A Unix socket echo target in `dir`.
fn unix_echo(path: &std::path::Path) {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
}

#[test]
fn a_token_file_picks_the_target_and_changes_take_effect_without_a_restart() {
    let (a, b) = (Target::echo(), Target::echo());
    let dir = TempDir::new("tokens");
    let file = dir.path("tokens.cfg");
    std::fs::write(&file, format!("# vms\nsecret-a: {}\n", a.arg())).unwrap();
    let srv = Server::start(&["--tokens", file.to_str().unwrap(), "-vv"]);

    let (head, mut s) = upgrade(&srv, "/websockify?token=secret-a", "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(echoes(&mut s));
    assert_eq!(a.accepted(), 1);
    assert!(status(&srv, "/websockify").starts_with("HTTP/1.1 403"));
    assert!(status(&srv, "/websockify?token=nope").starts_with("HTTP/1.1 403"));
    let (head, _) = upgrade(&srv, "/?token=nope", "");
    assert!(head.contains("403"));

    // Added: works at once. Withdrawn: refused, and its open tunnel ends within a few seconds.
    std::fs::write(&file, format!("secret-b: {}\n", b.arg())).unwrap();
    let (head, mut t) = upgrade(&srv, "/?token=secret-b", "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(echoes(&mut t));
    assert!(status(&srv, "/?token=secret-a").starts_with("HTTP/1.1 403"));
    let cut = Instant::now();
    assert_eq!(
        close_code(&mut s),
        Some(1000),
        "the withdrawn token's tunnel ends"
    );
    assert!(
        cut.elapsed() < Duration::from_secs(5),
        "{:?}",
        cut.elapsed()
    );
    assert!(echoes(&mut t), "the other token's tunnel goes on");
    eventually("the log line", || srv.log().contains("token was withdrawn"));
    for secret in ["secret-a", "secret-b"] {
        assert!(
            !srv.log().contains(secret),
            "a token in the log: {}",
            srv.log()
        );
    }
}

#[test]
fn a_directory_of_token_files_and_unix_socket_targets() {
    let a = Target::echo();
    let dir = TempDir::new("tokdir");
    let tokens = dir.path("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let sock = dir.path("vnc.sock");
    unix_echo(&sock);
    std::fs::write(tokens.join("one-1"), format!("vm1: {}\n", a.arg())).unwrap();
    std::fs::write(
        tokens.join("one-2"),
        format!("vm2: unix_socket:{}\n", sock.display()),
    )
    .unwrap();
    let srv = Server::start(&["--tokens", tokens.to_str().unwrap()]);
    for t in ["vm1", "vm2"] {
        let (head, mut s) = upgrade(&srv, &format!("/?token={t}"), "");
        assert!(head.starts_with("HTTP/1.1 101"), "{t}: {head}");
        assert!(echoes(&mut s), "{t}");
    }
    // A file removed from the directory withdraws its tokens.
    std::fs::remove_file(tokens.join("one-1")).unwrap();
    assert!(status(&srv, "/?token=vm1").starts_with("HTTP/1.1 403"));

    // --unix-target: the fixed target is a Unix socket.
    let srv = Server::start(&["--unix-target", sock.to_str().unwrap()]);
    let (head, mut s) = upgrade(&srv, "/", "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(echoes(&mut s));
}

#[test]
fn file_names_and_socket_names_as_tokens_never_leave_their_directory() {
    let a = Target::echo();
    let dir = TempDir::new("toknames");
    let names = dir.path("names");
    let socks = dir.path("socks");
    std::fs::create_dir(&names).unwrap();
    std::fs::create_dir(&socks).unwrap();
    std::fs::write(names.join("vm7"), a.arg()).unwrap();
    // Outside the directories: a file with a target, and a socket.
    std::fs::write(dir.path("outside"), a.arg()).unwrap();
    unix_echo(&dir.path("outside.sock"));
    unix_echo(&socks.join("desk"));
    std::os::unix::fs::symlink(dir.path("outside"), names.join("link")).unwrap();
    std::os::unix::fs::symlink(dir.path("outside.sock"), socks.join("link")).unwrap();

    let srv = Server::start(&["--token-dir", names.to_str().unwrap(), "-vv"]);
    let (head, mut s) = upgrade(&srv, "/?token=vm7", "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(echoes(&mut s));
    let escapes = [
        "..%2Foutside",
        "../outside",
        "%2E%2E%2Foutside",
        "link",
        "%2Fetc%2Fpasswd",
        "vm7%00",
        ".",
        "",
    ];
    for t in escapes {
        let got = status(&srv, &format!("/?token={t}"));
        assert!(got.starts_with("HTTP/1.1 403"), "token {t:?}: {got}");
    }
    assert_eq!(a.accepted(), 1, "only vm7 was dialled");

    let srv = Server::start(&["--unix-token-dir", socks.to_str().unwrap()]);
    let (head, mut s) = upgrade(&srv, "/?token=desk", "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(echoes(&mut s));
    for t in ["link", "..%2Foutside.sock", "%2Ftmp", "nope"] {
        let got = status(&srv, &format!("/?token={t}"));
        assert!(got.starts_with("HTTP/1.1 403"), "token {t:?}: {got}");
    }
    assert!(!srv.log().contains("desk"), "{}", srv.log());
}

#[test]
fn the_token_can_come_from_the_host_header() {
    let a = Target::echo();
    let dir = TempDir::new("hosttok");
    let file = dir.path("t");
    std::fs::write(&file, format!("vm9.example: {}\n", a.arg())).unwrap();
    let srv = Server::start(&["--tokens", file.to_str().unwrap(), "--host-token", "-vv"]);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let req =
        "GET / HTTP/1.1\r\nHost: vm9.example:6080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    assert!(echoes(&mut s));
    assert!(status(&srv, "/?token=vm9.example").starts_with("HTTP/1.1 403"));
    // The Host header is the token here: not in any log line, even at -vv.
    eventually("the request line in the log", || {
        srv.log().contains("request: GET")
    });
    assert!(!srv.log().contains("vm9"), "{}", srv.log());
}

#[test]
fn a_broken_token_file_is_a_usage_error_naming_the_line() {
    let dir = TempDir::new("badtok");
    let file = dir.path("t");
    std::fs::write(&file, "ok: h:1\nbroken:h:2\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["server", "--tokens", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: expected `TOKEN: HOST:PORT`"), "{err}");
    assert!(!err.contains("broken"), "no token in the error: {err}");
}

#[test]
fn subprotocols_none_binary_or_base64_and_anything_else_is_400() {
    let a = Target::echo();
    let srv = Server::start(&["--target", &a.arg()]);
    let proto = |p: &str| {
        let extra = format!("Sec-WebSocket-Protocol: {p}\r\n");
        upgrade(&srv, "/", &extra).0
    };
    let (none, _) = upgrade(&srv, "/", "");
    assert!(
        none.starts_with("HTTP/1.1 101") && !none.to_lowercase().contains("sec-websocket-protocol")
    );
    for offered in [
        "binary",
        "binary, base64",
        "base64, binary",
        " base64 ,binary ",
    ] {
        let got = proto(offered);
        assert!(got.starts_with("HTTP/1.1 101"), "{offered}: {got}");
        assert!(
            got.contains("Sec-WebSocket-Protocol: binary"),
            "{offered}: {got}"
        );
    }
    // base64 alone selects base64 (tests/e2e/record.rs carries bytes that way).
    for offered in ["chat", "binaryx", "base64x"] {
        let got = proto(offered);
        assert!(got.starts_with("HTTP/1.1 400"), "{offered}: {got}");
    }
}
