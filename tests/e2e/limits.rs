//! Bad input gets a clear answer and the server goes on serving: garbage, oversized heads,
//! non-upgrades, text frames, unmasked frames, frames claiming 2^62 bytes, silent clients.

use crate::support::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// After each bad client, a good one still gets through.
fn still_serves(srv: &Server) {
    let (status, out, err) = run_client(&[&srv.url("ws", "/")], b"ping");
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{err}\n{}",
        srv.log()
    );
    assert_eq!(out, b"ping");
}

/// Send raw bytes, return the server's whole answer (it must close the connection).
fn answer(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bad_requests_get_clear_statuses_and_the_next_client_is_served() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let cases: &[(&[u8], &str)] = &[
        (b"\x00\x01garbage\xff\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"POST / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "HTTP/1.1 400"),
        (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n", "HTTP/1.1 400"),
    ];
    for (req, want) in cases {
        let got = answer(srv.addr, req);
        assert!(got.starts_with(want), "{req:?}: got {got:?}");
        still_serves(&srv);
    }
    let body = answer(srv.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        body.contains("not a WebSocket upgrade"),
        "the body says why: {body}"
    );
    assert_eq!(target.accepted(), 4, "only good clients dial");
}

#[test]
fn oversized_head_gets_431() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut req = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..2000 {
        req.extend_from_slice(format!("X-Pad-{i}: aaaaaaaaaaaaaaaaaaaa\r\n").as_bytes());
    }
    let got = answer(srv.addr, &req);
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    still_serves(&srv);
}

#[test]
fn text_frame_gets_close_1003() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut ws = raw_ws(srv.addr, "/");
    ws.write_all(&frame(1, b"SSH-2.0-hello")).unwrap();
    assert_eq!(close_code(&mut ws), Some(1003));
    still_serves(&srv);
}

#[test]
fn unmasked_frame_gets_close_1002() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut ws = raw_ws(srv.addr, "/");
    ws.write_all(&[0x82, 3, b'a', b'b', b'c']).unwrap();
    assert_eq!(close_code(&mut ws), Some(1002));
    still_serves(&srv);
}

#[test]
fn frame_claiming_2_pow_62_bytes_gets_close_1009() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut ws = raw_ws(srv.addr, "/");
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(1u64 << 62).to_be_bytes());
    f.extend_from_slice(&[1, 2, 3, 4]);
    ws.write_all(&f).unwrap();
    assert_eq!(close_code(&mut ws), Some(1009));
    still_serves(&srv);
}

#[test]
fn silent_connection_is_dropped_after_the_handshake_timeout() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg(), "--handshake-timeout", "1"]);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = std::time::Instant::now();
    let mut b = [0u8; 1];
    assert_eq!(s.read(&mut b).unwrap_or(0), 0, "closed without an answer");
    assert!(t.elapsed() < Duration::from_secs(4));
    still_serves(&srv);
}

#[test]
fn tunnel_limit_answers_503() {
    let target = Target::sink();
    let srv = Server::start(&["--target", &target.arg(), "--max-tunnels", "1"]);
    let _first = raw_ws(srv.addr, "/");
    eventually("the first tunnel", || target.accepted() == 1);
    let upgrade = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let got = answer(srv.addr, upgrade);
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("too many tunnels (limit 1)"), "{got}");
    // Not an upgrade at all: still a 400, whatever the tunnel count.
    let got = answer(srv.addr, b"GET / HTTP/1.1\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        &["client"][..],
        &["client", "http://x/"],
        &["server", "--allow", "1.2.3.4/40"],
        &["bogus"],
        &["server", "--tls-only"],
    ] {
        let out = std::process::Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_server_that_never_answers_gives_a_clear_timeout() {
    let mute = Target::sink(); // accepts, reads, never answers
    let t = std::time::Instant::now();
    let (status, _, err) = run_client(
        &[&format!("ws://{}/", mute.addr), "--connect-timeout", "1"],
        b"",
    );
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err.trim(),
        format!(
            "error: handshake with {}: timed out waiting for an HTTP head",
            mute.addr
        )
    );
}

#[test]
fn a_client_that_stops_answering_pings_is_dropped_by_the_server() {
    let target = Target::sink();
    let srv = Server::start(&["--target", &target.arg(), "--ping", "1"]);
    let _mute = raw_ws(srv.addr, "/"); // its kernel ACKs, but nobody answers a ping
    let t = std::time::Instant::now();
    eventually("the server to give up on the client", || {
        srv.log().contains("no answer to pings for 4 s")
    });
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn many_tunnels_at_once_each_get_their_own_bytes() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let url = srv.url("ws", "/");
    let workers: Vec<_> = (0..24u64)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let input = data(100 + i, 512 * 1024 + i as usize);
                let (status, out, err) = run_client(&[&url], &input);
                assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
                assert_eq!(checksum(&out), checksum(&input), "tunnel {i}");
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    eventually("24 log lines", || srv.log().matches(" end=").count() == 24);
}

#[test]
fn a_client_that_closes_but_never_reads_does_not_hold_the_tunnel() {
    // The target floods; the client reads nothing, so the server's sender sleeps waiting for
    // room. The client's Close must still end the tunnel (and free both threads).
    let target = Target::start(|mut s| {
        let chunk = vec![7u8; 1 << 20];
        while s.write_all(&chunk).is_ok() {}
    });
    let srv = Server::start(&["--target", &target.arg()]);
    let mut ws = raw_ws(srv.addr, "/");
    std::thread::sleep(Duration::from_millis(500)); // buffers fill up
    ws.write_all(&frame(8, &1000u16.to_be_bytes())).unwrap();
    eventually("the tunnel's end", || srv.log().contains(" end="));
}

#[test]
fn the_readme_quotes_every_help_text_as_the_binary_prints_it() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for mode in [
        "client",
        "server",
        "connect",
        "forward",
        "probe",
        "websockify",
    ] {
        let out = std::process::Command::new(BIN)
            .args([mode, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success() && out.stderr.is_empty());
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            readme.contains(help.trim_end()),
            "README's `wssh {mode}` block differs from --help"
        );
    }
}

#[test]
fn browsers_need_an_allowed_origin() {
    let target = Target::echo();
    let ask = |srv: &Server, origin: Option<&str>| {
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let o = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
        let req = format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n{o}Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        crate::support::read_head(&mut s)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    let srv = Server::start(&["--target", &target.arg()]);
    assert_eq!(
        ask(&srv, None),
        "HTTP/1.1 101 Switching Protocols",
        "non-browser clients"
    );
    assert_eq!(
        ask(&srv, Some("https://evil.example")),
        "HTTP/1.1 403 Forbidden"
    );
    let srv = Server::start(&[
        "--target",
        &target.arg(),
        "--origin",
        "https://novnc.example/",
    ]);
    assert_eq!(
        ask(&srv, Some("https://NoVNC.example")),
        "HTTP/1.1 101 Switching Protocols"
    );
    assert_eq!(
        ask(&srv, Some("https://evil.example")),
        "HTTP/1.1 403 Forbidden"
    );
    eventually("the log line", || {
        srv.log()
            .contains("origin https://evil.example not allowed")
    });
    let srv = Server::start(&["--target", &target.arg(), "--origin", "*"]);
    assert_eq!(
        ask(&srv, Some("https://any.example")),
        "HTTP/1.1 101 Switching Protocols"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn open_files_limit_is_raised_and_a_too_low_one_is_reported() {
    let target = Target::echo();
    let start = |ulimits: &str| {
        let mut cmd = std::process::Command::new("sh");
        let script = format!(
            "{ulimits}; exec \"$0\" server --listen 127.0.0.1:0 --max-pending 4 --target {}",
            target.arg()
        );
        cmd.args(["-c", &script, &BIN]);
        Server::spawn(cmd)
    };
    let soft_hard = |pid: u32| {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string();
        let f: Vec<&str> = line.split_whitespace().collect();
        (f[3].to_string(), f[4].to_string())
    };
    // A login's soft limit of 1024 under a higher hard one: raised to the hard one.
    let srv = start("ulimit -S -n 1024; ulimit -H -n 8192");
    assert_eq!(soft_hard(srv.proc.pid()), ("8192".into(), "8192".into()));
    assert!(!srv.log().contains("open files limit"), "{}", srv.log());
    still_serves(&srv);
    // A hard limit too low for --max-tunnels: said at start.
    let srv = start("ulimit -S -n 256; ulimit -H -n 256");
    assert!(
        srv.log()
            .contains("allows about 108 tunnels, fewer than --max-tunnels 1000"),
        "{}",
        srv.log()
    );
    // More tunnels than the kernel lets one process map thread stacks for: said at start.
    let max: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let fit = (max - 1000 - 256 * 4) / 8;
    let srv = Server::start(&["--max-tunnels", "1000000", "--target", &target.arg()]);
    let says = format!(
        "vm.max_map_count ({max}) allows about {fit} tunnels, fewer than --max-tunnels 1000000"
    );
    assert!(srv.log().contains(&says), "{}", srv.log());
    still_serves(&srv);
}

#[test]
fn random_garbage_after_the_handshake_never_hangs_or_kills_the_server() {
    let target = Target::echo();
    let srv = Server::start(&["--target", &target.arg()]);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..60 {
        let mut ws = raw_ws(srv.addr, "/");
        let len = (next() % 300) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 3 == 0 && !junk.is_empty() {
            junk[0] = 0x82; // a plausible first byte, so the header parser is reached deeper
        }
        let _ = ws.write_all(&junk);
        let _ = ws.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        // The server must end the connection (EOF or reset), not leave it hanging.
        if let Err(e) = ws.read_to_end(&mut sink) {
            let hung = matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            );
            assert!(
                !hung,
                "round {round}: the server left the connection hanging"
            );
        }
    }
    still_serves(&srv);
}

#[test]
fn every_x_forwarded_for_line_counts_and_the_right_most_untrusted_address_wins() {
    let target = Target::sink();
    let srv = Server::start(&["--target", &target.arg(), "--trusted-proxy", "127.0.0.1"]);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    // The first line is the client's own claim; the last is what the proxy saw.
    let req = "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1\r\n\
               X-Forwarded-For: 203.0.113.9\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    s.write_all(&frame(8, &1000u16.to_be_bytes())).unwrap();
    eventually("the tunnel's log line", || srv.log().contains(" target="));
    let log = srv.log();
    assert!(log.contains("peer=203.0.113.9 via 127.0.0.1:"), "{log}");
    assert!(!log.contains("198.51.100.1"), "{log}");
}

#[test]
fn a_failed_dial_is_reported_1011_even_when_the_client_already_sent_data() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed); // nothing listens there now
    let srv = Server::start(&["--target", &format!("127.0.0.1:{port}")]);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        .to_vec();
    req.extend(frame(2, b"SSH-2.0-early bytes the server will never read"));
    s.write_all(&req).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    assert_eq!(close_code(&mut s), Some(1011), "{}", srv.log());
}

/// Descriptors a process holds now.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `n` tunnels through `url`, each shown open by an echo.
fn open_tunnels(url: &str, n: usize) -> Vec<Proc> {
    let mut open = Vec::new();
    for _ in 0..n {
        let mut c = client(&[url]);
        c.child.stdin.as_mut().unwrap().write_all(b"hi").unwrap();
        let mut two = [0u8; 2];
        c.child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut two)
            .unwrap();
        assert_eq!(&two, b"hi");
        open.push(c);
    }
    open
}

#[test]
fn a_tunnel_holds_two_descriptors_on_the_server() {
    const N: usize = 20;
    let target = Target::echo();
    // The fixed target: exactly its two sockets each (the WebSocket's and the target's).
    let srv = Server::start(&["--target", &target.arg()]);
    let pid = srv.proc.pid();
    let before = descriptors(pid);
    let plain = open_tunnels(&srv.url("ws", "/"), N);
    assert_eq!(descriptors(pid) - before, 2 * N);
    drop(plain);
    eventually("the tunnels to close", || descriptors(pid) == before);
    // A token's tunnels too (the token file may be open for a moment while it is re-read).
    let dir = TempDir::new("fds");
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, format!("t1: {}\n", target.arg())).unwrap();
    let srv = Server::start(&["--tokens", tokens.to_str().unwrap()]);
    let pid = srv.proc.pid();
    let before = descriptors(pid);
    let _by_token = open_tunnels(&srv.url("ws", "/?token=t1"), N);
    let held = descriptors(pid) - before;
    assert!(
        (2 * N..=2 * N + 1).contains(&held),
        "{held} for {N} tunnels"
    );
}

#[test]
fn two_servers_share_a_port_with_reuse_port() {
    let target = Target::echo();
    let first = Server::start(&["--reuse-port", "--target", &target.arg()]);
    let at = first.addr.to_string();
    let second = Server::start_on(&at, &["--reuse-port", "--target", &target.arg()]);
    assert_eq!(second.addr, first.addr);
    // Without the option, the port is taken.
    let (ok, _, err) = try_run(std::process::Command::new(BIN).args(["server", "--listen", &at]));
    assert!(!ok && err.contains("Address already in use"), "{err}");
    // The kernel spreads connections over both (by a hash of each connection's addresses).
    let tunnels = open_tunnels(&first.url("ws", "/"), 40);
    let served = |s: &Server| s.log().matches(" target=").count();
    drop(tunnels);
    eventually("40 tunnels logged", || {
        served(&first) + served(&second) == 40
    });
    assert!(
        served(&first) > 0 && served(&second) > 0,
        "{} / {}",
        served(&first),
        served(&second)
    );
}
